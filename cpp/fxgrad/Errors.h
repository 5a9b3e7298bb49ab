#pragma once
// Errors raised by the core. Each carries a kind that the Python bindings translate into the
// matching built-in exception, so bad input never surfaces as a crash or a bare RuntimeError.
#include <stdexcept>
#include <string>

namespace fxgrad {

enum class ErrorKind {
    Value,          // ValueError: bad value, shape, channel count, NaN/Inf input
    Type,           // TypeError: wrong dtype or kind of object
    Key,            // KeyError: unknown parameter name
    FileNotFound,   // FileNotFoundError
    PluginLoad,     // fxgrad.PluginLoadError: not a plugin, or instantiation failed
    PluginOutput,   // fxgrad.PluginOutputError: a plugin produced NaN/Inf
    PluginCrashed,  // fxgrad.PluginCrashedError: an isolated plugin's process died (signal, abort, exit)
    PluginTimeout,  // fxgrad.PluginTimeoutError: an isolated plugin missed its deadline (a hang)
    Closed,         // RuntimeError: used after the host shut down
    Forked,         // RuntimeError: used in a process forked from the one that made it
    Resource,       // RuntimeError: the OS refused a thread or memory
    Interrupted,    // KeyboardInterrupt (or the Python exception a signal handler raised): a wait was interrupted
};

class Error : public std::runtime_error {
public:
    Error (ErrorKind kindIn, const std::string& message) : std::runtime_error (message), kind (kindIn) {}
    ErrorKind kind;
};

[[noreturn]] inline void fail (ErrorKind kind, const std::string& message) { throw Error (kind, message); }

} // namespace fxgrad
