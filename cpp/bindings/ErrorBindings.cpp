// The one error channel: the core raises fxgrad::Error with a kind (fxgrad/Errors.h), and this
// translator maps each kind to a built-in exception or to fxgrad's own PluginError family.
#include "Bindings.h"

#include "fxgrad/Errors.h"

namespace fxgrad::bindings {

void bindErrors (py::module_& m)
{
    // One base for every fault of a plugin's own, so that callers can catch them together.
    static py::exception<Error> pluginError (m, "PluginError", PyExc_RuntimeError);
    static py::exception<Error> pluginLoadError (m, "PluginLoadError", pluginError.ptr());
    static py::exception<Error> pluginOutputError (m, "PluginOutputError", pluginError.ptr());
    static py::exception<Error> pluginCrashedError (m, "PluginCrashedError", pluginError.ptr());
    static py::exception<Error> pluginTimeoutError (m, "PluginTimeoutError", pluginError.ptr());

    py::register_exception_translator ([] (std::exception_ptr p) {
        try {
            if (p)
                std::rethrow_exception (p);
        } catch (const Error& e) {
            switch (e.kind) {
                case ErrorKind::Value: PyErr_SetString (PyExc_ValueError, e.what()); return;
                case ErrorKind::Type: PyErr_SetString (PyExc_TypeError, e.what()); return;
                case ErrorKind::Key: PyErr_SetObject (PyExc_KeyError, py::str (e.what()).ptr()); return;
                case ErrorKind::FileNotFound: PyErr_SetString (PyExc_FileNotFoundError, e.what()); return;
                case ErrorKind::PluginLoad: py::set_error (pluginLoadError, e.what()); return;
                case ErrorKind::PluginOutput: py::set_error (pluginOutputError, e.what()); return;
                case ErrorKind::PluginCrashed: py::set_error (pluginCrashedError, e.what()); return;
                case ErrorKind::PluginTimeout: py::set_error (pluginTimeoutError, e.what()); return;
                case ErrorKind::Closed:
                case ErrorKind::Forked:
                case ErrorKind::Resource: PyErr_SetString (PyExc_RuntimeError, e.what()); return;
                case ErrorKind::Interrupted:
                    if (! restorePendingInterrupt())
                        PyErr_SetString (PyExc_KeyboardInterrupt, e.what());
                    return;
            }
        } catch (const std::bad_alloc&) {
            PyErr_SetString (PyExc_MemoryError, "out of memory in fxgrad's native host (use fewer lanes, "
                             "perturbations or shorter frames)");
        }
    });
}

} // namespace fxgrad::bindings
