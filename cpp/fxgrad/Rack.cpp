#include "Rack.h"

#include <algorithm>
#include <cmath>
#include <thread>

#include "Errors.h"
#include "Random.h"

namespace fxgrad {

const char* const Rack::noRecordedFrame = "vjp() needs a preceding forward() with record=True for the same frame";

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

struct Rack::Lane {
    std::unique_ptr<Chain> centre;
    std::vector<std::unique_ptr<Chain>> evaluators;
    std::vector<std::vector<float>> scratch;     // one (C, N) output per evaluator
    std::vector<std::vector<float>> thetas;      // one perturbed theta per evaluator
    std::vector<std::string> snapshot;           // the centre's state before the recorded frame
    // Replay: a ring of the last H + 1 frames (input and theta); the newest is the recorded one.
    std::vector<float> historyAudio, historyTheta;
    int historyCount = 0, historyHead = 0;
    int64_t framesSinceReset = 0;
    std::vector<float> preroll;                  // replayed first while the ring holds the whole clip
    std::vector<std::vector<float>> prerollOutputs;
    std::vector<double> dots;                    // <grad_y, evaluator output> per evaluation
    double centreDot = 0.0;
};

Rack::Rack (const Chain& prototype, const RackOptions& options) : opts (options)
{
    if (opts.lanes < 1)
        fail (ErrorKind::Value, "lanes must be at least 1, got " + std::to_string (opts.lanes));
    if (opts.perturbations < 1)
        fail (ErrorKind::Value, "perturbations must be at least 1, got " + std::to_string (opts.perturbations));
    if (! (opts.eps > 0.0f && opts.eps < 0.5f))
        fail (ErrorKind::Value, "eps must be in (0, 0.5) (normalised units), got " + std::to_string (opts.eps));
    if (prototype.numLearned() < 1)
        fail (ErrorKind::Value, "the chain has no learned parameter");
    if (opts.estimator == Estimator::OneSided && opts.strategy == Strategy::Lockstep)
        fail (ErrorKind::Value, "the one-sided estimator needs perturbed evaluations that start from the centre's state: "
              "use strategy 'replay' or 'snapshot'");
    if (opts.strategy == Strategy::Snapshot && ! prototype.hasDspSnapshot()) {
        std::string names;
        for (const auto& p : prototype.plugins())
            if (! p->hasDspSnapshot())
                names += (names.empty() ? "" : ", ") + p->info().name;
        fail (ErrorKind::Value, "strategy 'snapshot' needs plugins that carry their full DSP state (fxgrad's own); "
              "not: " + names + ". Use 'replay' or 'lockstep'");
    }
    if (opts.strategy == Strategy::Replay && opts.replaySamples < 0)
        fail (ErrorKind::Value, "replay_samples must be >= 0");

    numParams = prototype.numLearned();
    numChannels = prototype.channels();
    block = prototype.blockSize();
    presetStates = prototype.getStates();

    const int threadCount = opts.threads > 0 ? opts.threads : (int) std::max (1u, std::thread::hardware_concurrency());
    pool = std::make_unique<ThreadPool> (threadCount);

    const int evaluators = evaluatorsPerLane();
    for (int m = 0; m < opts.lanes; ++m) {
        auto lane = std::make_unique<Lane>();
        lane->centre = prototype.clone();
        for (int e = 0; e < evaluators; ++e)
            lane->evaluators.push_back (prototype.clone());
        lane->scratch.resize ((size_t) evaluators);
        lane->thetas.assign ((size_t) evaluators, std::vector<float> ((size_t) numParams));
        lane->dots.assign ((size_t) evaluationsPerStep(), 0.0);
        laneData.push_back (std::move (lane));
    }
    frameTheta.assign ((size_t) opts.lanes * (size_t) numParams, 0.0f);
}

Rack::~Rack() = default;

int Rack::evaluationsPerStep() const
{
    switch (opts.estimator) {
        case Estimator::TwoSided: return 2 * opts.perturbations;
        case Estimator::OneSided: return opts.perturbations;
        case Estimator::FiniteDifference: return 2 * numParams;
    }
    return 0;
}

int Rack::evaluatorsPerLane() const
{
    // Lockstep evaluators each follow one perturbed trajectory. The others restore their start
    // state before every evaluation, so two per lane (one per sign) keep the threads busy.
    if (opts.strategy == Strategy::Lockstep)
        return evaluationsPerStep();
    return std::min (evaluationsPerStep(), 2);
}

void Rack::perturbedTheta (int lane, int evaluation, float* out) const
{
    const float* theta = frameTheta.data() + (size_t) lane * (size_t) numParams;
    const float eps = opts.eps;
    const auto clip = [] (float v) { return std::clamp (v, 0.0f, 1.0f); };
    switch (opts.estimator) {
        case Estimator::TwoSided: {
            const int k = evaluation / 2;
            const float sign = evaluation % 2 == 0 ? 1.0f : -1.0f;
            for (int i = 0; i < numParams; ++i)
                out[i] = clip (theta[i] + sign * eps * rademacher (opts.seed, (uint64_t) stepIndex, (uint64_t) lane, (uint64_t) k, (uint64_t) i));
            break;
        }
        case Estimator::OneSided: {
            // A coordinate that would leave [0,1] steps the other way, so every difference is eps.
            for (int i = 0; i < numParams; ++i) {
                const float d = eps * rademacher (opts.seed, (uint64_t) stepIndex, (uint64_t) lane, (uint64_t) evaluation, (uint64_t) i);
                const float up = theta[i] + d;
                out[i] = up >= 0.0f && up <= 1.0f ? up : theta[i] - d;
            }
            break;
        }
        case Estimator::FiniteDifference: {
            const int coordinate = evaluation / 2;
            const float sign = evaluation % 2 == 0 ? 1.0f : -1.0f;
            std::copy (theta, theta + numParams, out);
            out[coordinate] = clip (theta[coordinate] + sign * eps);
            break;
        }
    }
}

std::vector<float> Rack::perturbation (int lane, int k) const
{
    if (lane < 0 || lane >= opts.lanes || k < 0 || k >= opts.perturbations)
        fail (ErrorKind::Value, "lane or perturbation index out of range");
    std::vector<float> delta ((size_t) numParams);
    for (int i = 0; i < numParams; ++i)
        delta[(size_t) i] = rademacher (opts.seed, (uint64_t) stepIndex, (uint64_t) lane, (uint64_t) k, (uint64_t) i);
    return delta;
}

void Rack::render (Chain& chain, const float* theta, const float* x, float* y, int64_t n, double& dspSeconds)
{
    const auto start = Clock::now();
    chain.setLearned (theta);
    chain.process (x, n, y, n, n);
    dspSeconds += secondsSince (start);
}

void Rack::ensureFrameBuffers (int64_t numSamples)
{
    if (numSamples == frameLength)
        return;
    // A new frame length invalidates the replay history; this is set-up, not the steady state.
    frameLength = numSamples;
    const size_t frame = (size_t) numChannels * (size_t) numSamples;
    frameInput.assign ((size_t) opts.lanes * frame, 0.0f);
    frameOutput.assign ((size_t) opts.lanes * frame, 0.0f);
    historyFrames = opts.strategy == Strategy::Replay ? (int) ((opts.replaySamples + numSamples - 1) / numSamples) : 0;
    for (auto& lane : laneData) {
        for (auto& s : lane->scratch)
            s.assign (frame, 0.0f);
        lane->historyAudio.assign ((size_t) (historyFrames + 1) * frame, 0.0f);
        lane->historyTheta.assign ((size_t) (historyFrames + 1) * (size_t) numParams, 0.0f);
        lane->historyCount = lane->historyHead = 0;
    }
}

void Rack::forward (const float* theta, const float* x, float* y, int64_t numSamples, bool record)
{
    const auto start = Clock::now();
    if (numSamples < 1 || numSamples % block != 0)
        fail (ErrorKind::Value, "frame length " + std::to_string (numSamples) + " must be a positive multiple of the chain's block size ("
              + std::to_string (block) + ")");
    for (size_t i = 0; i < (size_t) opts.lanes * (size_t) numParams; ++i)
        if (! (theta[i] >= 0.0f && theta[i] <= 1.0f))
            fail (ErrorKind::Value, "theta must lie in [0, 1] (normalised) and be finite; lane " + std::to_string (i / (size_t) numParams)
                  + ", parameter " + std::to_string (i % (size_t) numParams) + " is " + std::to_string (theta[i]));
    ensureFrameBuffers (numSamples);
    const size_t frame = (size_t) numChannels * (size_t) numSamples;
    std::copy (theta, theta + frameTheta.size(), frameTheta.begin());
    std::copy (x, x + (size_t) opts.lanes * frame, frameInput.begin());

    taskDsp.assign ((size_t) opts.lanes, 0.0);
    pool->run (opts.lanes, [&] (int m) {
        auto& lane = *laneData[(size_t) m];
        const float* laneTheta = theta + (size_t) m * (size_t) numParams;
        const float* laneInput = x + (size_t) m * frame;
        if (record && opts.strategy == Strategy::Snapshot)
            lane.snapshot = lane.centre->getStates();
        render (*lane.centre, laneTheta, laneInput, y + (size_t) m * frame, numSamples, taskDsp[(size_t) m]);
        if (opts.strategy == Strategy::Replay) {
            const int capacity = historyFrames + 1;
            std::copy (laneInput, laneInput + frame, lane.historyAudio.begin() + (ptrdiff_t) ((size_t) lane.historyHead * frame));
            std::copy (laneTheta, laneTheta + numParams, lane.historyTheta.begin() + (ptrdiff_t) ((size_t) lane.historyHead * (size_t) numParams));
            lane.historyHead = (lane.historyHead + 1) % capacity;
            lane.historyCount = std::min (lane.historyCount + 1, capacity);
            ++lane.framesSinceReset;
        }
    });
    std::copy (y, y + (size_t) opts.lanes * frame, frameOutput.begin());
    recorded = record;

    for (double d : taskDsp)
        totals.dspSeconds += d;
    totals.evaluations += opts.lanes;
    totals.wallSeconds += secondsSince (start);
}

void Rack::vjp (const float* gradY, float* gradTheta)
{
    const auto start = Clock::now();
    if (! recorded)
        fail (ErrorKind::Value, noRecordedFrame);
    const size_t frame = (size_t) numChannels * (size_t) frameLength;
    for (size_t i = 0; i < (size_t) opts.lanes * frame; ++i)
        if (! std::isfinite (gradY[i]))
            fail (ErrorKind::Value, "the upstream gradient contains NaN or Inf (lane " + std::to_string (i / frame) + ")");

    const int evaluators = evaluatorsPerLane();
    const int evaluations = evaluationsPerStep();
    const int tasks = opts.lanes * evaluators;
    taskDsp.assign ((size_t) tasks, 0.0);
    std::vector<int64_t> taskFrames ((size_t) tasks, 0);

    pool->run (tasks, [&] (int task) {
        const int m = task / evaluators;
        const int slot = task % evaluators;
        auto& lane = *laneData[(size_t) m];
        auto& chain = *lane.evaluators[(size_t) slot];
        auto& out = lane.scratch[(size_t) slot];
        const float* laneInput = frameInput.data() + (size_t) m * frame;
        const float* laneGrad = gradY + (size_t) m * frame;
        auto& theta = lane.thetas[(size_t) slot];
        double& dsp = taskDsp[(size_t) task];

        if (slot == 0 && opts.estimator == Estimator::OneSided)
            lane.centreDot = dot (laneGrad, frameOutput.data() + (size_t) m * frame, (int64_t) frame);

        for (int e = slot; e < evaluations; e += evaluators) {
            if (opts.strategy == Strategy::Snapshot) {
                chain.setStates (lane.snapshot);
            } else if (opts.strategy == Strategy::Replay) {
                // Start where the lane started (preset state, clear DSP) and follow the centre:
                // exact while the ring holds the whole clip, else for memories shorter than R.
                chain.setStates (presetStates);
                chain.reset();
                const int capacity = historyFrames + 1;
                if (lane.framesSinceReset <= capacity && ! lane.preroll.empty()) {
                    const auto t0 = Clock::now();
                    const int64_t n = (int64_t) lane.preroll.size() / numChannels;
                    auto& sink = lane.prerollOutputs[(size_t) slot];
                    chain.process (lane.preroll.data(), n, sink.data(), n, n);
                    dsp += secondsSince (t0);
                }
                const int oldest = (lane.historyHead - lane.historyCount + capacity) % capacity;
                for (int h = 0; h + 1 < lane.historyCount; ++h) {
                    const int index = (oldest + h) % capacity;
                    render (chain, lane.historyTheta.data() + (size_t) index * (size_t) numParams,
                            lane.historyAudio.data() + (size_t) index * frame, out.data(), frameLength, dsp);
                    ++taskFrames[(size_t) task];
                }
            }
            perturbedTheta (m, e, theta.data());
            render (chain, theta.data(), laneInput, out.data(), frameLength, dsp);
            ++taskFrames[(size_t) task];
            lane.dots[(size_t) e] = dot (laneGrad, out.data(), (int64_t) frame);
        }
    });

    // Reduction in a fixed order: identical results for any thread count.
    std::vector<float> up ((size_t) numParams), down ((size_t) numParams);
    for (int m = 0; m < opts.lanes; ++m) {
        const auto& lane = *laneData[(size_t) m];
        const float* theta = frameTheta.data() + (size_t) m * (size_t) numParams;
        std::vector<double> grad ((size_t) numParams, 0.0);
        if (opts.estimator == Estimator::FiniteDifference) {
            for (int i = 0; i < numParams; ++i) {
                const double diff = (double) std::min (theta[i] + opts.eps, 1.0f) - (double) std::max (theta[i] - opts.eps, 0.0f);
                grad[(size_t) i] = (lane.dots[(size_t) (2 * i)] - lane.dots[(size_t) (2 * i + 1)]) / diff;
            }
        } else {
            for (int k = 0; k < opts.perturbations; ++k) {
                double difference;
                if (opts.estimator == Estimator::TwoSided) {
                    perturbedTheta (m, 2 * k, up.data());
                    perturbedTheta (m, 2 * k + 1, down.data());
                    difference = lane.dots[(size_t) (2 * k)] - lane.dots[(size_t) (2 * k + 1)];
                } else {
                    perturbedTheta (m, k, up.data());
                    std::copy (theta, theta + numParams, down.begin());
                    difference = lane.dots[(size_t) k] - lane.centreDot;
                }
                for (int i = 0; i < numParams; ++i)
                    grad[(size_t) i] += difference / ((double) up[(size_t) i] - (double) down[(size_t) i]);
            }
            for (auto& g : grad)
                g /= opts.perturbations;
        }
        for (int i = 0; i < numParams; ++i)
            gradTheta[(size_t) m * (size_t) numParams + (size_t) i] = (float) grad[(size_t) i];
    }

    for (int t = 0; t < tasks; ++t) {
        totals.dspSeconds += taskDsp[(size_t) t];
        totals.evaluations += taskFrames[(size_t) t];
    }
    ++stepIndex;
    recorded = false;
    totals.wallSeconds += secondsSince (start);
}

void Rack::resetLanes (const uint8_t* mask, const float* preroll, int64_t prerollSamples)
{
    const auto start = Clock::now();
    if (preroll != nullptr && prerollSamples % block != 0)
        fail (ErrorKind::Value, "preroll length " + std::to_string (prerollSamples) + " must be a multiple of the block size ("
              + std::to_string (block) + ")");
    std::vector<int> selected;
    for (int m = 0; m < opts.lanes; ++m)
        if (mask[m])
            selected.push_back (m);
    const size_t prerollFrame = (size_t) numChannels * (size_t) prerollSamples;
    taskDsp.assign (selected.size(), 0.0);
    pool->run ((int) selected.size(), [&] (int task) {
        const int m = selected[(size_t) task];
        auto& lane = *laneData[(size_t) m];
        std::vector<float> scratch (preroll != nullptr ? prerollFrame : 0);
        auto restart = [&] (Chain& chain) {
            chain.setStates (presetStates);
            chain.reset();
            if (preroll != nullptr && prerollSamples > 0) {
                const auto t0 = Clock::now();
                chain.process (preroll + (size_t) m * prerollFrame, prerollSamples, scratch.data(), prerollSamples, prerollSamples);
                taskDsp[(size_t) task] += secondsSince (t0);
            }
        };
        restart (*lane.centre);
        for (auto& chain : lane.evaluators)
            restart (*chain);
        lane.historyCount = lane.historyHead = 0;
        lane.framesSinceReset = 0;
        lane.snapshot.clear();
        if (opts.strategy == Strategy::Replay) {
            if (preroll != nullptr && prerollSamples > 0)
                lane.preroll.assign (preroll + (size_t) m * prerollFrame, preroll + (size_t) (m + 1) * prerollFrame);
            else
                lane.preroll.clear();
            lane.prerollOutputs.assign (lane.evaluators.size(), std::vector<float> (lane.preroll.size()));
        }
    });
    for (double d : taskDsp)
        totals.dspSeconds += d;
    recorded = false;
    totals.wallSeconds += secondsSince (start);
}

} // namespace fxgrad
