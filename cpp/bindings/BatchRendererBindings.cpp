// BatchRenderer (fxgrad.render_batch): K settings over one clip, or K clips, each from a fresh
// DSP state.
#include "Arguments.h"
#include "Bindings.h"

#include "fxgrad/BatchRenderer.h"
#include "fxgrad/Errors.h"

namespace fxgrad::bindings {

using namespace pybind11::literals;

namespace {
FloatArray render (BatchRenderer& r, const py::handle& thetaIn, const py::handle& audioIn)
{
    const auto& chain = r.prototype();
    const auto numParams = (py::ssize_t) chain.numLearned(), channels = (py::ssize_t) chain.channels();
    const bool thetaVector = py::isinstance<py::array> (thetaIn) && py::reinterpret_borrow<py::array> (thetaIn).ndim() == 1;
    auto theta = checkedArray (thetaIn, "theta", thetaVector ? std::vector<int64_t> { numParams } : std::vector<int64_t> { -1, numParams },
                               "(K, parameters) or (parameters,)");
    if (! py::isinstance<py::array> (audioIn))
        fail (ErrorKind::Type, "audio must be a float32 numpy array shaped (channels, samples) or (K, channels, samples)");
    const auto audioDims = py::reinterpret_borrow<py::array> (audioIn).ndim();
    auto audio = checkedArray (audioIn, "audio", audioDims == 2 ? std::vector<int64_t> { channels, -1 } : std::vector<int64_t> { -1, channels, -1 },
                               "(channels, samples) or (K, channels, samples)");
    const bool sharedTheta = theta.ndim() == 1, sharedAudio = audio.ndim() == 2;
    const auto count = sharedTheta ? (sharedAudio ? 1 : audio.shape (0)) : theta.shape (0);
    if (! sharedTheta && ! sharedAudio && audio.shape (0) != count)
        fail (ErrorKind::Value, "theta has " + std::to_string (count) + " rows but audio " + std::to_string (audio.shape (0)) + " clips");
    const auto samples = audio.shape (audio.ndim() - 1);
    FloatArray out ({ count, channels, samples });
    {
        ReleaseGil release;
        r.render (theta.data(), sharedTheta, audio.data(), sharedAudio, (int) count, samples, out.mutable_data());
    }
    return out;
}

py::dict stats (const BatchRenderer& r)
{
    const auto s = r.stats();
    return py::dict ("dsp_seconds"_a = s.dspSeconds, "wall_seconds"_a = s.wallSeconds, "renders"_a = s.renders);
}
} // namespace

void bindBatchRenderer (py::module_& m)
{
    py::class_<BatchRenderer, std::shared_ptr<BatchRenderer>> (m, "BatchRenderer")
        .def (py::init ([] (std::shared_ptr<Chain> chain, int threads) {
                  ReleaseGil release;
                  return std::make_shared<BatchRenderer> (std::move (chain), threads);
              }), py::arg ("chain"), py::arg ("threads") = 0)
        .def_property_readonly ("threads", &BatchRenderer::threads)
        .def_property_readonly ("instances", &BatchRenderer::instances)
        .def ("render", &render, py::arg ("theta"), py::arg ("audio"))
        .def ("stats", &stats)
        .def ("reset_stats", &BatchRenderer::resetStats);
}

} // namespace fxgrad::bindings
