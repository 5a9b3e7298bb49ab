#pragma once
// Everything another process needs to rebuild a chain exactly: how each plugin was loaded, its
// options, preset state and normalised values, and which parameters are learned and pinned. A
// worker process that builds its lanes from a ChainSpec renders bit-identically to lanes cloned
// in this process.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "Chain.h"

namespace fxgrad {

struct ChainSpec {
    struct PluginEntry {
        Plugin::Source source;
        PluginOptions options;
        std::string state;
        std::vector<float> normalized;   // every parameter, in the plugin's order
    };
    std::vector<PluginEntry> plugins;
    std::vector<ParameterRef> learned;
    std::vector<std::pair<ParameterRef, float>> pinned;

    static ChainSpec of (const Chain&);
    /** Loads the plugins and gives them the recorded state; `loading`, if given, holds the index
        of the plugin being loaded (a crash at load names it). */
    std::unique_ptr<Chain> build (std::atomic<int32_t>* loading = nullptr) const;

    std::string serialize() const;
    static ChainSpec deserialize (const std::string&);
};

} // namespace fxgrad
