#include "Rack.h"

#include <algorithm>
#include <cmath>
#include <thread>

#include "Errors.h"
#include "IsolatedLanes.h"
#include "Random.h"

namespace fxgrad {

const char* const Rack::noRecordedFrame = "vjp() needs a preceding forward() with record=True for the same frame";

namespace {
using Clock = std::chrono::steady_clock;

double secondsSince (Clock::time_point start)
{
    return std::chrono::duration<double> (Clock::now() - start).count();
}
} // namespace

Rack::Rack (const Chain& chainIn, const RackOptions& options) : opts (options)
{
    const Chain& prototype = chainIn;
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
    this->prototype = prototype.clone();

    LaneLayout layout;
    layout.lanes = opts.lanes;
    layout.parameters = numParams;
    layout.channels = numChannels;
    layout.blockSize = block;
    layout.strategy = opts.strategy;
    layout.evaluations = evaluationsPerStep();
    layout.evaluatorsPerLane = evaluatorsPerLane();
    layout.replaySamples = opts.replaySamples;

    const int threadCount = opts.threads > 0 ? opts.threads : (int) std::max (1u, std::thread::hardware_concurrency());
    if (opts.isolation == Isolation::Process) {
        IsolationOptions iso;
        iso.threads = threadCount;
        iso.workers = opts.workers;
        iso.timeoutSeconds = opts.timeoutSeconds;
        iso.workerLog = opts.workerLog;
        lanes_ = std::make_unique<IsolatedLanes> (*this->prototype, layout, iso);
    } else {
        lanes_ = std::make_unique<LocalLanes> (*this->prototype, layout, threadCount);
    }
    frameTheta.assign ((size_t) opts.lanes * (size_t) numParams, 0.0f);
    evaluationThetas.assign ((size_t) opts.lanes * (size_t) layout.evaluations * (size_t) numParams, 0.0f);
    dots.assign ((size_t) opts.lanes * (size_t) layout.evaluations, 0.0);
    centreDots.assign ((size_t) opts.lanes, 0.0);
    faulted.assign ((size_t) opts.lanes, 0);
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

void Rack::forward (const float* theta, const float* x, float* y, int64_t numSamples, bool recordFrame)
{
    const auto start = Clock::now();
    if (numSamples < 1 || numSamples % block != 0)
        fail (ErrorKind::Value, "frame length " + std::to_string (numSamples) + " must be a positive multiple of the chain's block size ("
              + std::to_string (block) + ")");
    for (size_t i = 0; i < (size_t) opts.lanes * (size_t) numParams; ++i)
        if (! (theta[i] >= 0.0f && theta[i] <= 1.0f))
            fail (ErrorKind::Value, "theta must lie in [0, 1] (normalised) and be finite; lane " + std::to_string (i / (size_t) numParams)
                  + ", parameter " + std::to_string (i % (size_t) numParams) + " is " + std::to_string (theta[i]));
    frameLength = numSamples;
    std::copy (theta, theta + frameTheta.size(), frameTheta.begin());
    std::fill (faulted.begin(), faulted.end(), 0);
    recorded = false;
    stepFaults.clear();
    lanes_->forward (theta, x, y, numSamples, recordFrame, stepFaults);
    recorded = recordFrame;
    record (stepFaults, nullptr);
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

    const int evaluations = evaluationsPerStep();
    const size_t P = (size_t) numParams;
    for (int m = 0; m < opts.lanes; ++m)
        for (int e = 0; e < evaluations; ++e)
            perturbedTheta (m, e, evaluationThetas.data() + ((size_t) m * (size_t) evaluations + (size_t) e) * P);
    const bool oneSided = opts.estimator == Estimator::OneSided;
    stepFaults.clear();
    lanes_->evaluate (evaluationThetas.data(), gradY, faulted.data(), dots.data(), oneSided ? centreDots.data() : nullptr,
                      stepFaults);
    record (stepFaults, evaluationThetas.data());

    // Reduction in a fixed order: identical results for any thread or worker count.
    for (int m = 0; m < opts.lanes; ++m) {
        float* out = gradTheta + (size_t) m * P;
        if (faulted[(size_t) m]) {
            std::fill (out, out + P, 0.0f);
            continue;
        }
        const float* theta = frameTheta.data() + (size_t) m * P;
        const float* thetas = evaluationThetas.data() + (size_t) m * (size_t) evaluations * P;
        const double* d = dots.data() + (size_t) m * (size_t) evaluations;
        std::vector<double> grad (P, 0.0);
        if (opts.estimator == Estimator::FiniteDifference) {
            for (size_t i = 0; i < P; ++i) {
                const double diff = (double) std::min (theta[i] + opts.eps, 1.0f) - (double) std::max (theta[i] - opts.eps, 0.0f);
                grad[i] = (d[2 * i] - d[2 * i + 1]) / diff;
            }
        } else {
            for (int k = 0; k < opts.perturbations; ++k) {
                const float* up = thetas + (size_t) (oneSided ? k : 2 * k) * P;
                const float* down = oneSided ? theta : thetas + (size_t) (2 * k + 1) * P;
                const double difference = oneSided ? d[k] - centreDots[(size_t) m] : d[2 * k] - d[2 * k + 1];
                for (size_t i = 0; i < P; ++i)
                    grad[i] += difference / ((double) up[i] - (double) down[i]);
            }
            for (auto& g : grad)
                g /= opts.perturbations;
        }
        for (size_t i = 0; i < P; ++i)
            out[i] = (float) grad[i];
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
    recorded = false;
    stepFaults.clear();
    lanes_->reset (mask, preroll, prerollSamples, stepFaults);
    record (stepFaults, nullptr);
    totals.wallSeconds += secondsSince (start);
}

void Rack::record (std::vector<LaneFault>& faults, const float* thetas)
{
    if (faults.empty())
        return;
    const auto now = Clock::now();
    const size_t P = (size_t) numParams;
    const int evaluations = evaluationsPerStep();
    for (auto& fault : faults) {
        for (int m : fault.lanes)
            faulted[(size_t) m] = 1;
        FaultReport report;
        report.step = stepIndex;
        if (fault.lane >= 0) {
            const float* theta = thetas != nullptr && fault.phase == ChainActivity::Evaluate && fault.evaluation >= 0
                ? thetas + ((size_t) fault.lane * (size_t) evaluations + (size_t) fault.evaluation) * P
                : frameTheta.data() + (size_t) fault.lane * P;
            report.theta.assign (theta, theta + P);
        }
        report.fault = std::move (fault);
        pendingFaults.push_back (std::move (report));
        ++totals.faults;
        recentFaults.push_back (now);
    }
    while (! recentFaults.empty() && now - recentFaults.front() > std::chrono::seconds (60))
        recentFaults.pop_front();
    const bool overTotal = opts.maxFaults > 0 && totals.faults > opts.maxFaults;
    const bool overRate = opts.maxFaultsPerMinute > 0 && (int) recentFaults.size() > opts.maxFaultsPerMinute;
    if (! overTotal && ! overRate)
        return;
    const auto& last = pendingFaults.back().fault;
    std::string plugin = "the chain";
    if (last.plugin >= 0 && last.plugin < (int) prototype->plugins().size())
        plugin = "plugin " + std::to_string (last.plugin) + " ('" + prototype->plugins()[(size_t) last.plugin]->info().name + "')";
    const auto kind = last.kind == FaultKind::TimedOut ? ErrorKind::PluginTimeout
                    : last.kind == FaultKind::NonFinite ? ErrorKind::PluginOutput : ErrorKind::PluginCrashed;
    fail (kind, plugin + " keeps failing: " + std::to_string (overRate ? (int64_t) recentFaults.size() : totals.faults)
          + (overRate ? " faults within a minute (max_faults_per_minute=" + std::to_string (opts.maxFaultsPerMinute) + ")"
                      : " faults (max_faults=" + std::to_string (opts.maxFaults) + ")")
          + "; the last: " + faultKindName (last.kind) + (last.detail.empty() ? "" : " (" + last.detail + ")")
          + ". Pin or clamp the parameters named in the fault reports, or raise the budget");
}

std::vector<FaultReport> Rack::takeFaults()
{
    std::vector<FaultReport> out;
    out.swap (pendingFaults);
    return out;
}

std::vector<int> Rack::workerPids() const
{
    std::vector<int> pids;
    if (const auto* isolated = dynamic_cast<const IsolatedLanes*> (lanes_.get()))
        for (pid_t pid : isolated->workerPids())
            pids.push_back ((int) pid);
    return pids;
}

RackStats Rack::stats() const
{
    auto s = totals;
    const auto l = lanes_->stats();
    s.dspSeconds = l.dspSeconds - laneBase.dspSeconds;
    s.evaluations = l.evaluations - laneBase.evaluations;
    if (const auto* isolated = dynamic_cast<const IsolatedLanes*> (lanes_.get())) {
        s.restarts = isolated->restarts();
        s.recoverySeconds = isolated->recoverySeconds();
    }
    return s;
}

void Rack::resetStats()
{
    totals = {};
    laneBase = lanes_->stats();
}

} // namespace fxgrad
