// The host itself: scanning plugin files and shutting the host down at interpreter exit.
#include "Bindings.h"
#include "ReleaseGil.h"

#include "fxgrad/Host.h"

namespace fxgrad::bindings {

void bindHost (py::module_& m)
{
    m.def ("scan", [] (const std::vector<std::string>& paths) {
            ReleaseGil release;
            return Host::get()->scan (paths);
        }, py::arg ("paths"));
    m.def ("shutdown", [] { ReleaseGil release; Host::shutdown(); },
           "Releases every plugin instance and stops the host (called at interpreter exit).");
}

} // namespace fxgrad::bindings
