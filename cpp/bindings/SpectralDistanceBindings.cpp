// SpectralDistance (fxgrad.match.loss.MatchLoss's CPU path): the aligned match loss of K
// outputs against one reference, on native threads without the GIL.
#include "Arguments.h"
#include "Bindings.h"

#include "fxgrad/Errors.h"
#include "fxgrad/SpectralDistance.h"

namespace fxgrad::bindings {

namespace {
using DoubleArray = py::array_t<double, py::array::c_style>;

std::shared_ptr<SpectralDistance> make (const py::handle& referenceIn, const py::list& resolutionsIn, const py::handle& weightingIn,
                                        float floorMagnitude, int threads)
{
    auto reference = checkedArray (referenceIn, "reference", { -1, -1 }, "(channels, samples)");
    std::vector<SpectralResolution> resolutions;
    for (const auto& item : resolutionsIn) {
        const auto entry = py::reinterpret_borrow<py::tuple> (item);
        if (entry.size() != 3)
            fail (ErrorKind::Value, "a resolution is (fft_size, hop, window)");
        SpectralResolution r;
        r.fftSize = (int) integerArgument (entry[0], "fft_size");
        r.hop = integerArgument (entry[1], "hop");
        auto window = checkedArray (entry[2], "window", { r.fftSize }, "(fft_size,)");
        r.window.assign (window.data(), window.data() + window.size());
        resolutions.push_back (std::move (r));
    }
    auto weighting = checkedArray (weightingIn, "weighting", { -1 }, "(bins,)");
    std::vector<float> weights (weighting.data(), weighting.data() + weighting.size());
    ReleaseGil release;
    return std::make_shared<SpectralDistance> (reference.data(), (int) reference.shape (0), reference.shape (1), std::move (resolutions),
                                               std::move (weights), floorMagnitude, threads);
}

DoubleArray evaluate (SpectralDistance& d, const py::handle& outputsIn)
{
    auto outputs = checkedArray (outputsIn, "outputs", { -1, d.channels(), d.samples() }, "(K, channels, samples) of the reference's shape");
    DoubleArray losses (outputs.shape (0));
    {
        ReleaseGil release;
        d.evaluate (outputs.data(), (int) outputs.shape (0), losses.mutable_data());
    }
    return losses;
}
} // namespace

void bindSpectralDistance (py::module_& m)
{
    py::class_<SpectralDistance, std::shared_ptr<SpectralDistance>> (m, "SpectralDistance")
        .def (py::init (&make), py::arg ("reference"), py::arg ("resolutions"), py::arg ("weighting"), py::arg ("floor"),
              py::arg ("threads") = 1)
        .def_property_readonly ("channels", &SpectralDistance::channels)
        .def_property_readonly ("samples", &SpectralDistance::samples)
        .def_property_readonly ("threads", &SpectralDistance::threads)
        .def_property_readonly ("reference_loudness", &SpectralDistance::referenceLoudness)
        .def ("evaluate", &evaluate, py::arg ("outputs"));
}

} // namespace fxgrad::bindings
