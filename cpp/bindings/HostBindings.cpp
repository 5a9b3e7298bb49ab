// The host itself: scanning plugin files, what plugins print, and shutting the host down at
// interpreter exit.
#include "Bindings.h"
#include "ReleaseGil.h"

#include "fxgrad/Host.h"
#include "fxgrad/PluginOutput.h"

namespace fxgrad::bindings {

void bindHost (py::module_& m)
{
    m.def ("scan", [] (const std::vector<std::string>& paths) {
            ReleaseGil release;
            return Host::get()->scan (paths);
        }, py::arg ("paths"));
    m.def ("set_output_capture", &setOutputCapture, py::arg ("enabled"),
           "Capture what plugins print to stdout/stderr while they are scanned, created or freed "
           "(off by default).");
    m.def ("take_plugin_output", &takeCapturedOutput,
           "The lines plugins printed while captured, since the last call, oldest first.");
    m.def ("shutdown", [] { ReleaseGil release; Host::shutdown(); },
           "Releases every plugin instance and stops the host (called at interpreter exit).");
}

} // namespace fxgrad::bindings
