#include "ChainSpec.h"

#include "Wire.h"

namespace fxgrad {

ChainSpec ChainSpec::of (const Chain& chain)
{
    ChainSpec spec;
    for (const auto& p : chain.plugins()) {
        if (p->source().identifierOrPath.empty())
            fail (ErrorKind::Value, "plugin '" + p->info().name + "' was not loaded from an identifier; it cannot be rebuilt in a worker");
        PluginEntry entry { p->source(), p->options(), p->getState(), {} };
        for (int i = 0; i < p->numParameters(); ++i)
            entry.normalized.push_back (p->getNormalized (i));
        spec.plugins.push_back (std::move (entry));
    }
    spec.learned = chain.learned();
    spec.pinned = chain.pinned();
    return spec;
}

std::unique_ptr<Chain> ChainSpec::build (std::atomic<int32_t>* loading) const
{
    std::vector<std::shared_ptr<Plugin>> loaded;
    for (const auto& entry : plugins) {
        if (loading != nullptr)
            loading->store ((int32_t) loaded.size());
        auto plugin = Plugin::load (entry.source.identifierOrPath, entry.options, entry.source.hint);
        plugin->adopt (entry.state, entry.normalized);
        loaded.push_back (std::move (plugin));
    }
    return Chain::assemble (std::move (loaded), learned, pinned);
}

std::string ChainSpec::serialize() const
{
    wire::Writer w;
    w.put ((uint64_t) plugins.size());
    for (const auto& e : plugins) {
        w.put (e.source.identifierOrPath);
        w.put (e.source.hint);
        w.put (e.options);
        w.put (e.state);
        w.put (e.normalized);
    }
    w.put (learned);
    w.put ((uint64_t) pinned.size());
    for (const auto& [ref, value] : pinned) {
        w.put (ref);
        w.put (value);
    }
    return std::move (w.bytes);
}

ChainSpec ChainSpec::deserialize (const std::string& bytes)
{
    wire::Reader r (bytes);
    ChainSpec spec;
    const auto count = r.get<uint64_t>();
    for (uint64_t k = 0; k < count; ++k) {
        PluginEntry e;
        e.source.identifierOrPath = r.get<std::string>();
        e.source.hint = r.get<std::string>();
        e.options = r.get<PluginOptions>();
        e.state = r.get<std::string>();
        e.normalized = r.getVector<float>();
        spec.plugins.push_back (std::move (e));
    }
    spec.learned = r.getVector<ParameterRef>();
    const auto pinnedCount = r.get<uint64_t>();
    for (uint64_t k = 0; k < pinnedCount; ++k) {
        const auto ref = r.get<ParameterRef>();
        spec.pinned.emplace_back (ref, r.get<float>());
    }
    return spec;
}

} // namespace fxgrad
