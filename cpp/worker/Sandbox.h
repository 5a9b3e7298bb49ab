#pragma once
// The sandbox of an fxgrad-worker started with isolation "sandbox" (docs/training.md has the
// threat model): entered first thing, while the worker is still single-threaded and before any
// plugin code is loaded. What a plugin can still do afterwards: compute, read files the worker's
// user may read, write its private temporary folder, and use the descriptors the worker
// inherited (its shared memory, the control socket, its log).
#include <string>

namespace fxgrad::worker {

/** Own user, mount and network namespaces (no network at all); every mount read-only but /tmp,
    where `writableFolder` (the worker's private folder) is bound and TMPDIR then points; the
    unprivileged "nobody" when started by root; no capabilities; a seccomp filter that
    refuses exec, ptrace and other processes' memory, new sockets, mounting and namespaces, and
    signals to any other process. Returns an empty string, or why the sandbox cannot be
    entered (then the worker must not go on). */
std::string enterSandbox (const std::string& writableFolder);

} // namespace fxgrad::worker
