// Chain: plugins in series with one vector of learned, normalised parameters.
#include "Arguments.h"
#include "Bindings.h"

#include "fxgrad/Chain.h"
#include "fxgrad/Errors.h"

namespace fxgrad::bindings {

namespace {
std::shared_ptr<Chain> makeChain (std::vector<std::shared_ptr<Plugin>> plugins, py::object learned,
                                  std::vector<std::pair<std::string, float>> pinned)
{
    const bool learnAll = learned.is_none();
    auto names = learnAll ? std::vector<std::string> {} : learned.cast<std::vector<std::string>>();
    ReleaseGil release;
    return std::make_shared<Chain> (std::move (plugins), names, learnAll, pinned);
}

std::vector<std::string> learnedNames (const Chain& c)
{
    std::vector<std::string> names;
    for (const auto& r : c.learned())
        names.push_back (c.qualifiedName (r));
    return names;
}

std::vector<std::pair<std::string, float>> pinnedValues (const Chain& c)
{
    std::vector<std::pair<std::string, float>> values;
    for (const auto& [r, v] : c.pinned())
        values.emplace_back (c.qualifiedName (r), v);
    return values;
}

void setLearned (Chain& c, const py::handle& values)
{
    auto array = FloatArray::ensure (values);
    if (! array || array.ndim() != 1 || array.shape (0) != c.numLearned())
        fail (ErrorKind::Value, "expected a 1-D float32 array of " + std::to_string (c.numLearned()) + " normalised values");
    c.setLearned (array.data());
}

FloatArray getLearned (const Chain& c)
{
    FloatArray out (c.numLearned());
    c.getLearned (out.mutable_data());
    return out;
}
} // namespace

void bindChain (py::module_& m)
{
    py::class_<Chain, std::shared_ptr<Chain>> (m, "Chain")
        .def (py::init (&makeChain), py::arg ("plugins"), py::arg ("learned"), py::arg ("pinned"))
        .def_property_readonly ("plugins", &Chain::plugins)
        .def_property_readonly ("num_parameters", &Chain::numLearned)
        .def_property_readonly ("learned", &learnedNames)
        .def_property_readonly ("pinned", &pinnedValues)
        .def_property_readonly ("channels", &Chain::channels)
        .def_property_readonly ("sample_rate", &Chain::sampleRate)
        .def_property_readonly ("block_size", &Chain::blockSize)
        .def_property_readonly ("latency_samples", &Chain::latencySamples)
        .def_property_readonly ("has_dsp_snapshot", &Chain::hasDspSnapshot)
        .def ("resolve", [] (const Chain& c, const std::string& name) { return c.qualifiedName (c.resolve (name)); })
        .def ("set_learned", &setLearned, py::arg ("values"))
        .def ("get_learned", &getLearned)
        .def ("process", [] (Chain& c, const py::handle& audio) { return processAudio (c, c.channels(), audio); },
              py::arg ("audio"))
        .def ("reset", [] (Chain& c) { ReleaseGil release; c.reset(); })
        .def ("clone", [] (const Chain& c) { ReleaseGil release; return std::shared_ptr<Chain> (c.clone()); });
}

} // namespace fxgrad::bindings
