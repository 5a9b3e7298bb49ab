#pragma once
// The SPSA engine: M lanes, one per batch item, each owning a centre chain that renders the
// forward pass and evaluator chains that render perturbed parameters for the gradient. All
// lanes' evaluations run on a thread pool; no Python object lives here, so lanes could move to
// worker processes behind the same interface.
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "Chain.h"
#include "ThreadPool.h"

namespace fxgrad {

/** How a perturbed evaluation obtains the DSP state it starts from. */
enum class Strategy {
    Lockstep,   // DeepAFx: each evaluator streams along with its own perturbed settings
    Replay,     // replay the lane's recent input with the centre's parameter history first
    Snapshot,   // copy the centre's full DSP state (plugins that carry it in their state chunk)
};

enum class Estimator {
    TwoSided,          // SPSA, Eq. 2: f(theta + eps D) - f(theta - eps D), 2K evaluations
    OneSided,          // f(theta + eps D) - f(theta), K evaluations, reusing the centre's output
    FiniteDifference,  // Eq. 1: one coordinate at a time, 2P evaluations (validation)
};

struct RackOptions {
    int lanes = 1;
    int perturbations = 1;       // K: perturbations averaged per step
    float eps = 0.01f;           // step in normalised parameter space
    Strategy strategy = Strategy::Lockstep;
    Estimator estimator = Estimator::TwoSided;
    int64_t replaySamples = 0;   // R: history replayed before a perturbed frame (Replay)
    int threads = 0;             // 0: all available cores
    uint64_t seed = 0;
};

struct RackStats {
    double dspSeconds = 0.0;     // time inside the plugins, summed over threads
    double wallSeconds = 0.0;    // wall time of forward/vjp/reset calls
    int64_t evaluations = 0;     // frames rendered by chains (forward + perturbed + replayed)
};

class Rack {
public:
    Rack (const Chain& prototype, const RackOptions&);
    ~Rack();

    int lanes() const { return opts.lanes; }
    int numParameters() const { return numParams; }
    int channels() const { return numChannels; }
    int blockSize() const { return block; }
    int threads() const { return pool->size(); }
    int evaluatorsPerLane() const;
    const RackOptions& options() const { return opts; }
    int64_t step() const { return stepIndex; }
    void setStep (int64_t s) { stepIndex = s; }
    int64_t frameSamples() const { return frameLength; }
    bool hasRecordedFrame() const { return recorded; }

    /** theta (M, P) in [0,1], x (M, C, N) -> y (M, C, N). Frames of a lane are consecutive.
        With `record`, the frame is kept for vjp() (and the centre's state, for Snapshot). */
    void forward (const float* theta, const float* x, float* y, int64_t numSamples, bool record);

    /** grad_y (M, C, N) for the last recorded frame -> grad_theta (M, P). Advances the step. */
    void vjp (const float* gradY, float* gradTheta);

    /** The perturbation signs of (lane, k) at the current step, for inspection and tests. */
    std::vector<float> perturbation (int lane, int k) const;

    /** Returns the masked lanes to the chain's preset state with clear DSP state; `preroll`
        (M, C, prerollSamples), if given, is then rendered by every chain of those lanes. */
    void resetLanes (const uint8_t* mask, const float* preroll, int64_t prerollSamples);

    static const char* const noRecordedFrame;

    RackStats stats() const { return totals; }
    void resetStats() { totals = {}; }

private:
    struct Lane;
    int evaluationsPerStep() const;
    void perturbedTheta (int lane, int evaluation, float* out) const;
    void render (Chain&, const float* theta, const float* x, float* y, int64_t n, double& dspSeconds);
    void ensureFrameBuffers (int64_t numSamples);

    RackOptions opts;
    int numParams = 0, numChannels = 0, block = 0;
    int historyFrames = 0;                       // H: frames replayed (Replay)
    std::vector<std::string> presetStates;
    std::vector<std::unique_ptr<Lane>> laneData;
    std::unique_ptr<ThreadPool> pool;

    int64_t frameLength = 0;
    int64_t stepIndex = 0;
    bool recorded = false;
    std::vector<float> frameTheta, frameInput, frameOutput;   // the last recorded frame
    std::vector<double> taskDsp;                             // per-task DSP time, summed after
    RackStats totals;
};

} // namespace fxgrad
