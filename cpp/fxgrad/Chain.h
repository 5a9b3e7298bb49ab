#pragma once
// Plugins in series driven by one vector of learned parameters (normalised), with the other
// parameters pinned to fixed plain values.
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "Plugin.h"

namespace fxgrad {

struct ParameterRef {
    int plugin = 0;
    int parameter = 0;
};

class Chain {
public:
    /** `learned` and `pinned` name parameters as "INDEX.ID" or as an id/name unique in the chain.
        An empty `learned` with `learnAll` selects every automatable parameter that is not
        pinned, a bypass switch, a toggle or a trigger. Pinned values are plain units. */
    Chain (std::vector<std::shared_ptr<Plugin>> plugins, const std::vector<std::string>& learned, bool learnAll,
           const std::vector<std::pair<std::string, float>>& pinned);

    /** A chain of new instances of the same plugins, parameters, pinned values and preset state. */
    std::unique_ptr<Chain> clone() const;

    /** A chain of plugins whose pinned values are already set, learning `learned` (as rebuilt in
        another process from a ChainSpec). */
    static std::unique_ptr<Chain> assemble (std::vector<std::shared_ptr<Plugin>> plugins, std::vector<ParameterRef> learned,
                                            std::vector<std::pair<ParameterRef, float>> pinned);

    /** process() stores the index of the plugin it is in here (fault reports); null: nowhere. */
    void trackProgress (std::atomic<int32_t>* slot) { progress = slot; }

    const std::vector<std::shared_ptr<Plugin>>& plugins() const { return chainPlugins; }
    int numLearned() const { return (int) learnedRefs.size(); }
    const std::vector<ParameterRef>& learned() const { return learnedRefs; }
    const std::vector<std::pair<ParameterRef, float>>& pinned() const { return pinnedValues; }
    std::string qualifiedName (const ParameterRef&) const;

    ParameterRef resolve (const std::string& name) const;

    int channels() const { return chainPlugins.front()->options().channels; }
    double sampleRate() const { return chainPlugins.front()->options().sampleRate; }
    int blockSize() const { return chainPlugins.front()->options().blockSize; }
    int latencySamples() const;
    bool hasDspSnapshot() const;

    /** Sets the learned parameters from `numLearned()` normalised values in [0, 1]. */
    void setLearned (const float* normalized);
    void getLearned (float* normalized) const;
    void applyPinned();

    /** Processes (channels, numSamples) planar audio through every plugin in order. */
    void process (const float* input, int64_t inputStride, float* output, int64_t outputStride, int64_t numSamples);

    void reset();
    std::vector<std::string> getStates() const;
    void setStates (const std::vector<std::string>&);

private:
    Chain() = default;
    std::vector<std::shared_ptr<Plugin>> chainPlugins;
    std::vector<ParameterRef> learnedRefs;
    std::vector<std::pair<ParameterRef, float>> pinnedValues;
    std::atomic<int32_t>* progress = nullptr;
};

} // namespace fxgrad
