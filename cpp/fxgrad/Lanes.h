#pragma once
// The lanes of a rack: one per batch item, each a centre chain that renders the forward pass and
// evaluator chains that render perturbed parameters. The rack (Rack.h) owns the API, the
// perturbations and the gradient arithmetic; lanes only render and take dot products. Two
// implementations behind one interface: LocalLanes on a thread pool in this process, and
// IsolatedLanes (IsolatedLanes.h), which runs LocalLanes inside worker processes so that a
// plugin's crash or hang costs the lanes of one worker instead of the whole process.
#include <atomic>
#include <chrono>
#include <functional>
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

/** What the lanes need to know of the rack; both sides of a worker agree on it. */
struct LaneLayout {
    int lanes = 1;
    int parameters = 0;          // P, learned
    int channels = 0;
    int blockSize = 0;
    Strategy strategy = Strategy::Lockstep;
    int evaluations = 0;         // E: perturbed renders per lane per step
    int evaluatorsPerLane = 0;   // evaluator chains per lane
    int64_t replaySamples = 0;   // R: history replayed before a perturbed frame (Replay)

    int chainsPerLane() const { return 1 + evaluatorsPerLane; }
};

enum class FaultKind {
    NonFinite,   // a plugin produced NaN or Inf (lanes of any kind)
    Crashed,     // the worker process died by a signal (isolated lanes)
    Exited,      // the worker process exited by itself (isolated lanes)
    TimedOut,    // the worker missed its deadline and was killed (isolated lanes)
    Interrupted, // the worker was stopped by an interrupted call and restarted (isolated lanes)
};

const char* faultKindName (FaultKind);

/** Where a render stands, per chain of a lane, so that a fault can say what was being rendered.
    Written by the rendering thread before each render and each plugin; in shared memory for
    worker processes, where it outlives a crash. */
struct ChainActivity {
    enum Phase : int32_t { Idle = 0, Forward, Replay, Evaluate, Reset };
    std::atomic<int32_t> phase { Idle };
    std::atomic<int32_t> evaluation { -1 };   // the perturbed evaluation being rendered
    std::atomic<int32_t> plugin { -1 };       // chain index of the plugin being processed
};

/** One fault: what was lost, and (where known) what was rendering when it happened. */
struct LaneFault {
    FaultKind kind = FaultKind::NonFinite;
    std::vector<int> lanes;       // lanes lost; they were restarted from the preset state
    int lane = -1;                // the lane that was rendering, -1 when unknown
    int phase = ChainActivity::Idle;
    int evaluation = -1;          // perturbed evaluation index (phase Evaluate), else -1
    int plugin = -1;              // chain index of the plugin, -1 when unknown
    std::string detail;           // signal name, exit status, deadline, or the plugin's message
};

struct LaneStats {
    double dspSeconds = 0.0;      // time inside the plugins, summed over threads
    int64_t evaluations = 0;      // frames rendered by chains (forward + perturbed + replayed)
    double busySeconds = 0.0;     // time the threads spent in tasks (DSP, copies, dot products), summed (in-process lanes)
    double phaseSeconds = 0.0;    // wall time of the parallel phases (in-process lanes)
    double handoffSeconds = 0.0;  // of that, before the first task starts and after the last ends (in-process lanes)
};

class Lanes {
public:
    virtual ~Lanes() = default;

    virtual int threads() const = 0;

    /** theta (M, P), x (M, C, N) -> y (M, C, N). With `record`, the frame (and the centre's
        state, for Snapshot) is kept for evaluate(). Lanes that fault are restarted, their y
        zeroed and a fault appended. */
    virtual void forward (const float* theta, const float* x, float* y, int64_t numSamples, bool record,
                          std::vector<LaneFault>& faults) = 0;

    /** For the recorded frame: renders thetas (M, E, P) and writes dots (M, E) = <gradY, output>;
        with `centreDots`, also <gradY, forward output> (M). Lanes with skip[m] render nothing. */
    virtual void evaluate (const float* thetas, const float* gradY, const uint8_t* skip, double* dots,
                           double* centreDots, std::vector<LaneFault>& faults) = 0;

    /** Returns masked lanes to the preset state with clear DSP state, then renders `preroll`
        (M, C, prerollSamples) through each of their chains, if given. */
    virtual void reset (const uint8_t* mask, const float* preroll, int64_t prerollSamples,
                        std::vector<LaneFault>& faults) = 0;

    virtual LaneStats stats() const = 0;
};

/** Lanes in this process, on a thread pool. */
class LocalLanes final : public Lanes {
public:
    /** `activity`: lanes x chainsPerLane records to write to (e.g. in shared memory); null to
        keep them here. */
    LocalLanes (const Chain& prototype, const LaneLayout&, int threads, ChainActivity* activity = nullptr);
    ~LocalLanes() override;

    int threads() const override { return pool->size(); }
    void forward (const float* theta, const float* x, float* y, int64_t numSamples, bool record,
                  std::vector<LaneFault>& faults) override;
    void evaluate (const float* thetas, const float* gradY, const uint8_t* skip, double* dots, double* centreDots,
                   std::vector<LaneFault>& faults) override;
    void reset (const uint8_t* mask, const float* preroll, int64_t prerollSamples,
                std::vector<LaneFault>& faults) override;
    LaneStats stats() const override { return totals; }

private:
    struct Lane;
    void ensureFrameBuffers (int64_t numSamples);
    void restart (int lane, const float* preroll, int64_t prerollSamples, double& dspSeconds);
    void render (Chain&, const float* theta, const float* x, float* y, int64_t n, double& dspSeconds);
    ChainActivity& activityOf (int lane, int chain);
    void parallel (int tasks, const std::function<void (int)>& task);
    void collect (std::vector<std::string>& laneErrors, FaultKind, std::vector<LaneFault>& faults);

    LaneLayout layout;
    std::vector<std::string> presetStates;
    std::vector<std::unique_ptr<Lane>> laneData;
    std::unique_ptr<ThreadPool> pool;
    std::unique_ptr<ChainActivity[]> ownActivity;
    ChainActivity* activity = nullptr;
    int historyFrames = 0;                       // H: frames replayed (Replay)
    int64_t frameLength = 0;
    std::vector<double> taskDsp;                 // per-task DSP time, summed after
    std::vector<int64_t> taskFrames;
    std::vector<double> taskBusy;                // per-task wall time, summed after
    std::vector<std::chrono::steady_clock::time_point> taskStart, taskEnd;
    LaneStats totals;
};

} // namespace fxgrad
