#pragma once
// Releasing the GIL around plugin work, safely for daemon threads at interpreter exit.
#include <pybind11/pybind11.h>

#include <chrono>
#include <thread>

namespace fxgrad::bindings {

/** py::gil_scoped_release, except for a daemon thread still inside fxgrad while the interpreter
    finalises: Python ends such a thread with pthread_exit when it re-takes the GIL, and that
    forced unwind through pybind11's noexcept destructor aborts the whole process ("terminate
    called without an active exception"). Such a thread is parked instead; the process is exiting. */
class ReleaseGil {
public:
    ReleaseGil() : state (PyEval_SaveThread()) {}
    ~ReleaseGil()
    {
#if PY_VERSION_HEX >= 0x030D0000
        while (Py_IsFinalizing())
#else
        while (_Py_IsFinalizing())
#endif
            std::this_thread::sleep_for (std::chrono::hours (1));
        PyEval_RestoreThread (state);
    }
    ReleaseGil (const ReleaseGil&) = delete;
    ReleaseGil& operator= (const ReleaseGil&) = delete;

private:
    PyThreadState* state;
};

} // namespace fxgrad::bindings
