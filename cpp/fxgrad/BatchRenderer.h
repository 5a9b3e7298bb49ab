#pragma once
// K renders of one chain in parallel, each from a fresh DSP state: K parameter settings over the
// same audio, or K clips. The copies of the chain that render persist across calls, so a steady
// stream of calls creates no plugin instance.
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "Chain.h"
#include "ThreadPool.h"

namespace fxgrad {

struct BatchStats {
    double dspSeconds = 0.0;     // time inside the plugins, summed over threads
    double wallSeconds = 0.0;    // wall time of render() calls
    int64_t renders = 0;
};

class BatchRenderer {
public:
    /** `threads` <= 0: all available cores. The prototype is kept: every call renders with the
        preset state (pinned and other parameters, plugin state) it has at that moment. */
    BatchRenderer (std::shared_ptr<Chain> prototype, int threads);
    ~BatchRenderer();

    const Chain& prototype() const { return *proto; }
    int threads() const { return pool->size(); }
    int instances() const { return (int) workers.size(); }

    /** Render k of `count` is what a fresh clone of the prototype gives after setLearned with
        theta row k, processing audio clip k: bit for bit. theta holds `count` rows of
        numLearned() normalised values, or one row for all (sharedTheta); audio holds `count`
        planar (channels, numSamples) clips, or one for all (sharedAudio). out: (count, C, N). */
    void render (const float* theta, bool sharedTheta, const float* audio, bool sharedAudio, int count,
                 int64_t numSamples, float* out);

    BatchStats stats() const { return totals; }
    void resetStats() { totals = {}; }

private:
    std::shared_ptr<Chain> proto;
    std::unique_ptr<ThreadPool> pool;
    std::vector<std::unique_ptr<Chain>> workers;   // one per thread at most, grown on demand
    std::vector<int> idle;                         // workers free to take a render
    std::mutex idleMutex;
    std::mutex callMutex;                          // one render() at a time (the pool is not reentrant)
    BatchStats totals;
};

} // namespace fxgrad
