#pragma once
// The SPSA engine: M lanes, one per batch item, each owning a centre chain that renders the
// forward pass and evaluator chains that render perturbed parameters for the gradient. Here:
// the API, the perturbations (a counter-based generator) and the gradient arithmetic (Eq. 1 and
// 2 of DeepAFx, reduced in a fixed order). The lanes (Lanes.h) render, in this process on a
// thread pool or in sandboxed worker processes (IsolatedLanes.h); no Python object lives here.
// A plugin's fault (NaN, and with isolation a crash or a hang) costs the lanes it hit for one
// step: they restart from the preset state, their gradient is zero, and the fault is reported.
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "Chain.h"
#include "Lanes.h"

namespace fxgrad {

enum class Isolation {
    None,      // lanes in this process
    Process,   // lanes in worker processes (IsolatedLanes.h)
    Sandbox,   // lanes in worker processes in a sandbox (cpp/worker/Sandbox.h)
};

enum class Estimator {
    TwoSided,          // SPSA, Eq. 2: f(theta + eps D) - f(theta - eps D), 2K evaluations
    OneSided,          // f(theta + eps D) - f(theta), K evaluations, reusing the centre's output
    FiniteDifference,  // Eq. 1: one coordinate at a time, 2P evaluations (validation)
};

/** How the K perturbation directions of a lane and step are drawn (SPSA estimators only). */
enum class Directions {
    Rademacher,   // DeepAFx: independent +-1 signs; Eq. 2's 1/Delta_i form
    Orthogonal,   // K mutually orthogonal directions (Gaussian, Gram-Schmidt, norm sqrt(P)); blocks of P for K > P
    Guided,       // guided ES: a share in the span of the lane's last `subspace` estimates, the rest +-1 signs
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
    Isolation isolation = Isolation::None;
    int workers = 0;             // worker processes (Process); 0: one per four threads, at most one per lane
    double timeoutSeconds = 0.0; // a worker's deadline per call; 0: defaultCallSeconds (IsolatedLanes.h)
    std::string workerLog;       // file that receives what plugins print in workers; empty: inherit
    std::function<bool()> interrupted; // polled while waiting on workers (IsolationOptions::interrupted)
    int64_t maxFaults = 1000;    // faults in the rack's lifetime before it raises (0: no limit)
    int maxFaultsPerMinute = 30; // faults within any 60 s before it raises (0: no limit)
    Directions directions = Directions::Rademacher;
    bool sharedPerturbations = false; // every lane of a step draws the same directions (lane 0's)
    float baseline = 0.0f;       // control variate: beta of each lane's running mean of its estimates; 0: none
    int subspace = 0;            // Guided: the lane's past estimates that span the guiding subspace
    float guidedShare = 0.5f;    // Guided: the share of the perturbation's energy outside that subspace
};

struct RackStats {
    double dspSeconds = 0.0;     // time inside the plugins, summed over threads
    double wallSeconds = 0.0;    // wall time of forward/vjp/reset calls
    int64_t evaluations = 0;     // frames rendered by chains (forward + perturbed + replayed)
    int64_t faults = 0;          // faults contained (lanes restarted)
    int64_t restarts = 0;        // worker processes restarted (Process)
    double recoverySeconds = 0.0; // time spent restarting workers
    double busySeconds = 0.0;    // threads' time in tasks, summed (in-process lanes; 0 isolated)
    double phaseSeconds = 0.0;   // wall time of the parallel phases (in-process lanes; 0 isolated)
    double handoffSeconds = 0.0; // of that, waking the pool and returning from it (in-process lanes; 0 isolated)
};

/** A contained fault as reported to the caller: a LaneFault plus the step and the parameters
    that were being rendered (normalised, the perturbed ones for an evaluation). */
struct FaultReport {
    LaneFault fault;
    int64_t step = 0;
    std::vector<float> theta;    // P normalised values; empty when the rendering lane is unknown
};

class Rack {
public:
    Rack (const Chain& prototype, const RackOptions&);
    ~Rack();

    int lanes() const { return opts.lanes; }
    int numParameters() const { return numParams; }
    int channels() const { return numChannels; }
    int blockSize() const { return block; }
    int threads() const { return lanes_->threads(); }
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

    /** Lanes that faulted since the last forward(): their output of that forward is zero and
        their gradient of the following vjp() too. */
    const std::vector<uint8_t>& faultedLanes() const { return faulted; }

    /** Process ids of the worker processes (isolation Process), for inspection and tests. */
    std::vector<int> workerPids() const;

    /** The workers' deadline per call in seconds (isolation Process; 0 in process). */
    double timeoutSeconds() const;
    /** From any thread (a signal handler's): a call still waiting on workers 0.3 s
        from now is abandoned, and so is every later one (ErrorKind::Interrupted). */
    void interrupt();

    /** Faults since the last call, oldest first. */
    std::vector<FaultReport> takeFaults();

    /** The chain the rack was built from: names and plain values of its parameters. */
    const Chain& chain() const { return *prototype; }

    static const char* const noRecordedFrame;

    RackStats stats() const;
    void resetStats();

private:
    int evaluationsPerStep() const;
    bool signForm() const;
    void drawDirections (int lane, float* out) const;
    void perturbedTheta (int lane, int evaluation, float* out) const;
    void laneGradient (int lane, float* out);
    void remember (int lane, const float* estimate);
    void forget (int lane);
    void record (std::vector<LaneFault>& faults, const float* evaluationThetas);
    void requireFinite (const float* audio, int64_t numSamples, const char* what) const;

    RackOptions opts;
    std::unique_ptr<Chain> prototype;
    int numParams = 0, numChannels = 0, block = 0;
    std::unique_ptr<Lanes> lanes_;

    int64_t frameLength = 0;
    int64_t stepIndex = 0;
    bool recorded = false;
    std::vector<float> frameTheta;               // the last recorded frame's parameters
    std::vector<float> evaluationThetas;         // (M, E, P) perturbed parameters of a vjp
    std::vector<float> directionsDrawn;          // (M, K, P) this step's directions (SPSA)
    std::vector<double> baselines;               // (M, P) the control variate's running means
    std::vector<float> history;                  // (M, subspace, P) Guided: the last estimates, a ring
    std::vector<int> historyCount;               // (M) estimates in the ring
    std::vector<double> dots, centreDots;        // (M, E) and (M) from the lanes
    std::vector<uint8_t> faulted;
    std::vector<LaneFault> stepFaults;
    std::vector<FaultReport> pendingFaults;
    std::deque<std::chrono::steady_clock::time_point> recentFaults;
    RackStats totals;
    LaneStats laneBase;                          // lanes' counters at the last resetStats()
};

} // namespace fxgrad
