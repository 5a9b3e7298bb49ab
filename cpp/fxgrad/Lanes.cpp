#include "Lanes.h"

#include <algorithm>
#include <chrono>

#include "Errors.h"

namespace fxgrad {

const char* faultKindName (FaultKind kind)
{
    switch (kind) {
        case FaultKind::NonFinite: return "nan";
        case FaultKind::Crashed: return "crash";
        case FaultKind::Exited: return "exit";
        case FaultKind::TimedOut: return "timeout";
        case FaultKind::Interrupted: return "interrupted";
    }
    return "fault";
}

namespace {
using Clock = std::chrono::steady_clock;

double secondsSince (Clock::time_point start)
{
    return std::chrono::duration<double> (Clock::now() - start).count();
}

double dot (const float* a, const float* b, int64_t n)
{
    double sum = 0.0;
    for (int64_t i = 0; i < n; ++i)
        sum += (double) a[i] * (double) b[i];
    return sum;
}
} // namespace

struct LocalLanes::Lane {
    std::unique_ptr<Chain> centre;
    std::vector<std::unique_ptr<Chain>> evaluators;
    std::vector<std::vector<float>> scratch;     // one (C, N) output per evaluator
    std::vector<std::string> snapshot;           // the centre's state before the recorded frame
    std::vector<float> input, output;            // the recorded frame
    // Replay: a ring of the last H + 1 frames (input and theta); the newest is the recorded one.
    std::vector<float> historyAudio, historyTheta;
    int historyCount = 0, historyHead = 0;
    int64_t framesSinceReset = 0;
    std::vector<float> preroll;                  // replayed first while the ring holds the whole clip
    std::vector<std::vector<float>> prerollOutputs;
};

LocalLanes::LocalLanes (const Chain& prototype, const LaneLayout& layoutIn, int threads, ChainActivity* activityIn)
    : layout (layoutIn), activity (activityIn)
{
    presetStates = prototype.getStates();
    pool = std::make_unique<ThreadPool> (std::max (1, threads));
    if (activity == nullptr) {
        ownActivity.reset (new ChainActivity[(size_t) layout.lanes * (size_t) layout.chainsPerLane()]);
        activity = ownActivity.get();
    }
    for (int m = 0; m < layout.lanes; ++m) {
        auto lane = std::make_unique<Lane>();
        lane->centre = prototype.clone();
        lane->centre->trackProgress (&activityOf (m, 0).plugin);
        for (int e = 0; e < layout.evaluatorsPerLane; ++e) {
            lane->evaluators.push_back (prototype.clone());
            lane->evaluators.back()->trackProgress (&activityOf (m, 1 + e).plugin);
        }
        lane->scratch.resize ((size_t) layout.evaluatorsPerLane);
        laneData.push_back (std::move (lane));
    }
}

LocalLanes::~LocalLanes() = default;

void LocalLanes::parallel (int tasks, const std::function<void (int)>& task)
{
    // The pool's run, timed: the phase's wall time, each task's, and the hand-offs (from the
    // call to the first task's start, and from the last task's end to the return), so that the
    // threads' time splits into DSP, other work in tasks, hand-offs and waiting for the last task.
    const size_t count = (size_t) std::max (tasks, 0);
    taskBusy.assign (count, 0.0);
    taskStart.assign (count, Clock::time_point::max());
    taskEnd.assign (count, Clock::time_point::min());
    const auto start = Clock::now();
    pool->run (tasks, [&] (int t) {
        const auto begun = Clock::now();
        task (t);
        taskEnd[(size_t) t] = Clock::now();
        taskStart[(size_t) t] = begun;
        taskBusy[(size_t) t] = std::chrono::duration<double> (taskEnd[(size_t) t] - begun).count();
    });
    const auto end = Clock::now();
    totals.phaseSeconds += std::chrono::duration<double> (end - start).count();
    for (double b : taskBusy)
        totals.busySeconds += b;
    if (count > 0) {
        const auto first = *std::min_element (taskStart.begin(), taskStart.end());
        const auto last = *std::max_element (taskEnd.begin(), taskEnd.end());
        if (first >= start && last <= end)
            totals.handoffSeconds += std::chrono::duration<double> ((first - start) + (end - last)).count();
    }
}

ChainActivity& LocalLanes::activityOf (int lane, int chain)
{
    return activity[(size_t) lane * (size_t) layout.chainsPerLane() + (size_t) chain];
}

void LocalLanes::render (Chain& chain, const float* theta, const float* x, float* y, int64_t n, double& dspSeconds)
{
    const auto start = Clock::now();
    chain.setLearned (theta);
    chain.process (x, n, y, n, n);
    dspSeconds += secondsSince (start);
}

void LocalLanes::ensureFrameBuffers (int64_t numSamples)
{
    if (numSamples == frameLength)
        return;
    // A new frame length invalidates the replay history; this is set-up, not the steady state.
    frameLength = numSamples;
    const size_t frame = (size_t) layout.channels * (size_t) numSamples;
    historyFrames = layout.strategy == Strategy::Replay ? (int) ((layout.replaySamples + numSamples - 1) / numSamples) : 0;
    for (auto& lane : laneData) {
        for (auto& s : lane->scratch)
            s.assign (frame, 0.0f);
        lane->input.assign (frame, 0.0f);
        lane->output.assign (frame, 0.0f);
        lane->historyAudio.assign ((size_t) (historyFrames + 1) * frame, 0.0f);
        lane->historyTheta.assign ((size_t) (historyFrames + 1) * (size_t) layout.parameters, 0.0f);
        lane->historyCount = lane->historyHead = 0;
    }
}

void LocalLanes::collect (std::vector<std::string>& laneErrors, FaultKind kind, std::vector<LaneFault>& faults)
{
    // Serially and in lane order after the parallel part: restarting a lane must not race with
    // another task of the same lane, and the report order must not depend on the threads.
    for (int m = 0; m < layout.lanes; ++m) {
        if (laneErrors[(size_t) m].empty())
            continue;
        LaneFault fault;
        fault.kind = kind;
        fault.lanes = { m };
        fault.lane = m;
        for (int c = 0; c < layout.chainsPerLane(); ++c) {
            auto& act = activityOf (m, c);
            if (act.phase.load() != ChainActivity::Idle) {
                fault.phase = act.phase.load();
                fault.evaluation = act.evaluation.load();
                fault.plugin = act.plugin.load();
                break;
            }
        }
        fault.detail = laneErrors[(size_t) m];
        double unused = 0.0;
        restart (m, nullptr, 0, unused);
        faults.push_back (std::move (fault));
    }
}

void LocalLanes::forward (const float* theta, const float* x, float* y, int64_t numSamples, bool record,
                          std::vector<LaneFault>& faults)
{
    ensureFrameBuffers (numSamples);
    const size_t frame = (size_t) layout.channels * (size_t) numSamples;
    const size_t P = (size_t) layout.parameters;
    taskDsp.assign ((size_t) layout.lanes, 0.0);
    std::vector<std::string> laneErrors ((size_t) layout.lanes);
    parallel (layout.lanes, [&] (int m) {
        auto& lane = *laneData[(size_t) m];
        auto& act = activityOf (m, 0);
        const float* laneTheta = theta + (size_t) m * P;
        const float* laneInput = x + (size_t) m * frame;
        float* laneOutput = y + (size_t) m * frame;
        act.phase = ChainActivity::Forward;
        try {
            if (record && layout.strategy == Strategy::Snapshot)
                lane.snapshot = lane.centre->getStates();
            render (*lane.centre, laneTheta, laneInput, laneOutput, numSamples, taskDsp[(size_t) m]);
        } catch (const Error& e) {
            if (e.kind != ErrorKind::PluginOutput)
                throw;
            laneErrors[(size_t) m] = e.what();
            std::fill (laneOutput, laneOutput + frame, 0.0f);
            return;   // the activity stays set for collect()
        }
        act.phase = ChainActivity::Idle;
        if (record) {
            std::copy (laneInput, laneInput + frame, lane.input.begin());
            std::copy (laneOutput, laneOutput + frame, lane.output.begin());
        }
        if (layout.strategy == Strategy::Replay) {
            const int capacity = historyFrames + 1;
            std::copy (laneInput, laneInput + frame, lane.historyAudio.begin() + (ptrdiff_t) ((size_t) lane.historyHead * frame));
            std::copy (laneTheta, laneTheta + P, lane.historyTheta.begin() + (ptrdiff_t) ((size_t) lane.historyHead * P));
            lane.historyHead = (lane.historyHead + 1) % capacity;
            lane.historyCount = std::min (lane.historyCount + 1, capacity);
            ++lane.framesSinceReset;
        }
    });
    collect (laneErrors, FaultKind::NonFinite, faults);
    for (double d : taskDsp)
        totals.dspSeconds += d;
    totals.evaluations += layout.lanes;
}

void LocalLanes::evaluate (const float* thetas, const float* gradY, const uint8_t* skip, double* dots, double* centreDots,
                           std::vector<LaneFault>& faults)
{
    const size_t frame = (size_t) layout.channels * (size_t) frameLength;
    const size_t P = (size_t) layout.parameters;
    const int E = layout.evaluations;
    const int evaluators = layout.evaluatorsPerLane;
    const int tasks = layout.lanes * evaluators;
    taskDsp.assign ((size_t) tasks, 0.0);
    taskFrames.assign ((size_t) tasks, 0);
    std::vector<std::string> taskErrors ((size_t) tasks);

    parallel (tasks, [&] (int task) {
        const int m = task / evaluators;
        const int slot = task % evaluators;
        if (skip != nullptr && skip[m])
            return;
        auto& lane = *laneData[(size_t) m];
        auto& chain = *lane.evaluators[(size_t) slot];
        auto& act = activityOf (m, 1 + slot);
        auto& out = lane.scratch[(size_t) slot];
        const float* laneGrad = gradY + (size_t) m * frame;
        double& dsp = taskDsp[(size_t) task];

        if (slot == 0 && centreDots != nullptr)
            centreDots[m] = dot (laneGrad, lane.output.data(), (int64_t) frame);

        try {
            for (int e = slot; e < E; e += evaluators) {
                act.evaluation = e;
                if (layout.strategy == Strategy::Snapshot) {
                    chain.setStates (lane.snapshot);
                } else if (layout.strategy == Strategy::Replay) {
                    // Start where the lane started (preset state, clear DSP) and follow the centre:
                    // exact while the ring holds the whole clip, else for memories shorter than R.
                    act.phase = ChainActivity::Replay;
                    chain.setStates (presetStates);
                    chain.reset();
                    const int capacity = historyFrames + 1;
                    if (lane.framesSinceReset <= capacity && ! lane.preroll.empty()) {
                        const auto t0 = Clock::now();
                        const int64_t n = (int64_t) lane.preroll.size() / layout.channels;
                        auto& sink = lane.prerollOutputs[(size_t) slot];
                        chain.process (lane.preroll.data(), n, sink.data(), n, n);
                        dsp += secondsSince (t0);
                    }
                    const int oldest = (lane.historyHead - lane.historyCount + capacity) % capacity;
                    for (int h = 0; h + 1 < lane.historyCount; ++h) {
                        const int index = (oldest + h) % capacity;
                        render (chain, lane.historyTheta.data() + (size_t) index * P,
                                lane.historyAudio.data() + (size_t) index * frame, out.data(), frameLength, dsp);
                        ++taskFrames[(size_t) task];
                    }
                }
                act.phase = ChainActivity::Evaluate;
                render (chain, thetas + ((size_t) m * (size_t) E + (size_t) e) * P, lane.input.data(), out.data(),
                        frameLength, dsp);
                ++taskFrames[(size_t) task];
                dots[(size_t) m * (size_t) E + (size_t) e] = dot (laneGrad, out.data(), (int64_t) frame);
            }
        } catch (const Error& e) {
            if (e.kind != ErrorKind::PluginOutput)
                throw;
            taskErrors[(size_t) task] = e.what();
            return;   // the activity stays set for collect()
        }
        act.phase = ChainActivity::Idle;
        act.evaluation = -1;
    });
    std::vector<std::string> laneErrors ((size_t) layout.lanes);
    for (int task = 0; task < tasks; ++task)
        if (laneErrors[(size_t) (task / evaluators)].empty())
            laneErrors[(size_t) (task / evaluators)] = taskErrors[(size_t) task];
    collect (laneErrors, FaultKind::NonFinite, faults);
    for (int t = 0; t < tasks; ++t) {
        totals.dspSeconds += taskDsp[(size_t) t];
        totals.evaluations += taskFrames[(size_t) t];
    }
}

void LocalLanes::restart (int m, const float* preroll, int64_t prerollSamples, double& dspSeconds)
{
    auto& lane = *laneData[(size_t) m];
    const size_t prerollFrame = (size_t) layout.channels * (size_t) prerollSamples;
    std::vector<float> scratch (preroll != nullptr ? prerollFrame : 0);
    auto fresh = [&] (Chain& chain, ChainActivity& act) {
        act.phase = ChainActivity::Reset;
        chain.setStates (presetStates);
        chain.reset();
        if (preroll != nullptr && prerollSamples > 0) {
            const auto t0 = Clock::now();
            chain.process (preroll, prerollSamples, scratch.data(), prerollSamples, prerollSamples);
            dspSeconds += secondsSince (t0);
        }
        act.phase = ChainActivity::Idle;
        act.evaluation = -1;
        act.plugin = -1;
    };
    fresh (*lane.centre, activityOf (m, 0));
    for (size_t e = 0; e < lane.evaluators.size(); ++e)
        fresh (*lane.evaluators[e], activityOf (m, 1 + (int) e));
    lane.historyCount = lane.historyHead = 0;
    lane.framesSinceReset = 0;
    lane.snapshot.clear();
    if (layout.strategy == Strategy::Replay) {
        if (preroll != nullptr && prerollSamples > 0)
            lane.preroll.assign (preroll, preroll + prerollFrame);
        else
            lane.preroll.clear();
        lane.prerollOutputs.assign (lane.evaluators.size(), std::vector<float> (lane.preroll.size()));
    }
}

void LocalLanes::reset (const uint8_t* mask, const float* preroll, int64_t prerollSamples, std::vector<LaneFault>& faults)
{
    std::vector<int> selected;
    for (int m = 0; m < layout.lanes; ++m)
        if (mask[m])
            selected.push_back (m);
    const size_t prerollFrame = (size_t) layout.channels * (size_t) prerollSamples;
    taskDsp.assign (selected.size(), 0.0);
    std::vector<std::string> laneErrors ((size_t) layout.lanes);
    parallel ((int) selected.size(), [&] (int task) {
        const int m = selected[(size_t) task];
        try {
            restart (m, preroll != nullptr ? preroll + (size_t) m * prerollFrame : nullptr, prerollSamples,
                     taskDsp[(size_t) task]);
        } catch (const Error& e) {
            if (e.kind != ErrorKind::PluginOutput)
                throw;
            laneErrors[(size_t) m] = e.what();
        }
    });
    collect (laneErrors, FaultKind::NonFinite, faults);
    for (double d : taskDsp)
        totals.dspSeconds += d;
}

} // namespace fxgrad
