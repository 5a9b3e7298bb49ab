#pragma once
// fork() copies only the thread that calls it: in a child, the host's message thread and a
// thread pool's workers do not exist, so waiting on them would hang for ever. Objects that own
// threads record the process they were made in and refuse to work in another one.
#include <cstdint>
#include <string>

namespace fxgrad {

/** The number of forks between the process that loaded fxgrad and this one. */
uint64_t processGeneration();

/** Throws ErrorKind::Forked, naming `what` and saying to use the 'spawn' start method, when
    called in a process forked after the one of `generation`. */
void requireProcess (uint64_t generation, const std::string& what);

} // namespace fxgrad
