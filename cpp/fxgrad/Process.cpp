#include "Process.h"

#include <atomic>
#include <pthread.h>

#include "Errors.h"

namespace fxgrad {

namespace {
std::atomic<uint64_t> generation { 0 };
const int registered = pthread_atfork (nullptr, nullptr, [] { generation.fetch_add (1); });
} // namespace

uint64_t processGeneration()
{
    (void) registered;
    return generation.load();
}

void requireProcess (uint64_t madeIn, const std::string& what)
{
    if (madeIn != processGeneration())
        fail (ErrorKind::Forked, what + " was made before this process was forked, and fork() copies only the calling "
              "thread, not the plugin host's: make plugins in the process that uses them, e.g. with the multiprocessing "
              "'spawn' start method (torch: DataLoader(..., multiprocessing_context=\"spawn\"))");
}

} // namespace fxgrad
