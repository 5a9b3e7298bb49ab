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
    if (! (opts.baseline >= 0.0f && opts.baseline < 1.0f))
        fail (ErrorKind::Value, "baseline must be in [0, 1) (0: no control variate), got " + std::to_string (opts.baseline));
    if (opts.directions == Directions::Guided && opts.subspace < 1)
        fail (ErrorKind::Value, "guided directions need subspace >= 1 (past estimates spanning it)");
    if (opts.subspace < 0 || (opts.subspace > 0 && opts.directions != Directions::Guided))
        fail (ErrorKind::Value, "subspace is for guided directions only, and >= 0");
    if (! (opts.guidedShare > 0.0f && opts.guidedShare <= 1.0f))
        fail (ErrorKind::Value, "guided_share must be in (0, 1], got " + std::to_string (opts.guidedShare));
    if (opts.estimator == Estimator::FiniteDifference
        && (opts.directions != Directions::Rademacher || opts.sharedPerturbations || opts.baseline > 0.0f))
        fail (ErrorKind::Value, "the fd estimator takes no directions, shared perturbations or baseline");

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
    if (opts.isolation == Isolation::Process || opts.isolation == Isolation::Sandbox) {
        IsolationOptions iso;
        iso.threads = threadCount;
        iso.workers = opts.workers;
        iso.timeoutSeconds = opts.timeoutSeconds;
        iso.workerLog = opts.workerLog;
        iso.interrupted = opts.interrupted;
        iso.sandbox = opts.isolation == Isolation::Sandbox;
        lanes_ = std::make_unique<IsolatedLanes> (*this->prototype, layout, iso);
    } else {
        lanes_ = std::make_unique<LocalLanes> (*this->prototype, layout, threadCount);
    }
    frameTheta.assign ((size_t) opts.lanes * (size_t) numParams, 0.0f);
    evaluationThetas.assign ((size_t) opts.lanes * (size_t) layout.evaluations * (size_t) numParams, 0.0f);
    dots.assign ((size_t) opts.lanes * (size_t) layout.evaluations, 0.0);
    centreDots.assign ((size_t) opts.lanes, 0.0);
    faulted.assign ((size_t) opts.lanes, 0);
    directionsDrawn.assign ((size_t) opts.lanes * (size_t) opts.perturbations * (size_t) numParams, 0.0f);
    baselines.assign (opts.baseline > 0.0f ? (size_t) opts.lanes * (size_t) numParams : 0, 0.0);
    history.assign ((size_t) opts.lanes * (size_t) opts.subspace * (size_t) numParams, 0.0f);
    historyCount.assign ((size_t) opts.lanes, 0);
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

bool Rack::signForm() const
{
    return opts.directions == Directions::Rademacher;
}

namespace {
/** A standard normal value for a key (Box-Muller on 64 random bits). */
double gaussian (uint64_t seed, uint64_t step, uint64_t lane, uint64_t k, uint64_t i)
{
    const uint64_t bits = randomBits (seed ^ 0x5851f42d4c957f2dull, step, lane, k, i);
    const double u1 = ((double) (bits >> 40) + 0.5) / 16777216.0;            // (0, 1)
    const double u2 = (double) (bits & 0xffffffull) / 16777216.0;            // [0, 1)
    return std::sqrt (-2.0 * std::log (u1)) * std::cos (6.283185307179586 * u2);
}

/** Makes the rows of `rows` (count x n, row-major) orthonormal, in order (modified Gram-Schmidt);
    a row that is (numerically) in the span of the earlier ones becomes zero. Returns the rank. */
int orthonormalise (std::vector<double>& rows, int count, int n)
{
    int rank = 0;
    for (int r = 0; r < count; ++r) {
        double* row = rows.data() + (size_t) r * (size_t) n;
        double before = 0.0;
        for (int i = 0; i < n; ++i)
            before += row[i] * row[i];
        for (int q = 0; q < r; ++q) {
            const double* other = rows.data() + (size_t) q * (size_t) n;
            double dot = 0.0;
            for (int i = 0; i < n; ++i)
                dot += row[i] * other[i];
            for (int i = 0; i < n; ++i)
                row[i] -= dot * other[i];
        }
        double norm = 0.0;
        for (int i = 0; i < n; ++i)
            norm += row[i] * row[i];
        norm = std::sqrt (norm);
        const bool independent = norm > 1e-6 * std::sqrt (before) && norm > 0.0;
        for (int i = 0; i < n; ++i)
            row[i] = independent ? row[i] / norm : 0.0;
        rank += independent ? 1 : 0;
    }
    return rank;
}
} // namespace

void Rack::drawDirections (int lane, float* out) const
{
    // The K directions of `lane` at this step, (K, P). E[D D^T] = I for Rademacher and
    // Orthogonal; Guided puts (1 - guidedShare) of the energy into the span of past estimates.
    const int K = opts.perturbations, P = numParams;
    const uint64_t key = opts.sharedPerturbations ? 0 : (uint64_t) lane;
    const uint64_t step = (uint64_t) stepIndex;
    if (opts.directions == Directions::Rademacher) {
        for (int k = 0; k < K; ++k)
            for (int i = 0; i < P; ++i)
                out[(size_t) k * (size_t) P + (size_t) i] = rademacher (opts.seed, step, key, (uint64_t) k, (uint64_t) i);
        return;
    }
    if (opts.directions == Directions::Orthogonal) {
        for (int first = 0; first < K; first += P) {
            const int count = std::min (P, K - first);
            std::vector<double> rows ((size_t) count * (size_t) P);
            for (int r = 0; r < count; ++r)
                for (int i = 0; i < P; ++i)
                    rows[(size_t) r * (size_t) P + (size_t) i] = gaussian (opts.seed, step, key, (uint64_t) (first + r), (uint64_t) i);
            orthonormalise (rows, count, P);
            for (size_t j = 0; j < rows.size(); ++j)
                out[(size_t) first * (size_t) P + j] = (float) (rows[j] * std::sqrt ((double) P));
        }
        return;
    }
    // Guided: sqrt(a) z + sqrt((1 - a) P / r) U w, z Rademacher, w standard normal, U an
    // orthonormal basis (rank r) of the lane's stored estimates; z alone until there are any.
    const int stored = historyCount[(size_t) lane];
    std::vector<double> basis ((size_t) stored * (size_t) P);
    for (int h = 0; h < stored; ++h)
        for (int i = 0; i < P; ++i)
            basis[(size_t) h * (size_t) P + (size_t) i]
                = history[((size_t) lane * (size_t) opts.subspace + (size_t) h) * (size_t) P + (size_t) i];
    const int rank = stored > 0 ? orthonormalise (basis, stored, P) : 0;
    const double a = rank > 0 ? (double) opts.guidedShare : 1.0;
    const double inSpan = rank > 0 ? std::sqrt ((1.0 - a) * (double) P / (double) rank) : 0.0;
    for (int k = 0; k < K; ++k) {
        float* d = out + (size_t) k * (size_t) P;
        for (int i = 0; i < P; ++i)
            d[i] = (float) (std::sqrt (a) * rademacher (opts.seed, step, key, (uint64_t) k, (uint64_t) i));
        for (int h = 0; h < stored; ++h) {
            const double w = gaussian (opts.seed, step, key, (uint64_t) k, (uint64_t) h) * inSpan;
            for (int i = 0; i < P; ++i)
                d[i] += (float) (w * basis[(size_t) h * (size_t) P + (size_t) i]);
        }
    }
}

void Rack::perturbedTheta (int lane, int evaluation, float* out) const
{
    const float* theta = frameTheta.data() + (size_t) lane * (size_t) numParams;
    const float eps = opts.eps;
    const auto clip = [] (float v) { return std::clamp (v, 0.0f, 1.0f); };
    const float* directions = directionsDrawn.data() + (size_t) lane * (size_t) opts.perturbations * (size_t) numParams;
    switch (opts.estimator) {
        case Estimator::TwoSided: {
            const float* d = directions + (size_t) (evaluation / 2) * (size_t) numParams;
            const float sign = evaluation % 2 == 0 ? 1.0f : -1.0f;
            for (int i = 0; i < numParams; ++i)
                out[i] = clip (theta[i] + sign * eps * d[i]);
            break;
        }
        case Estimator::OneSided: {
            // A coordinate that would leave [0,1] steps the other way, so every difference is eps |d_i|.
            const float* d = directions + (size_t) evaluation * (size_t) numParams;
            for (int i = 0; i < numParams; ++i) {
                const float step = eps * d[i];
                const float up = theta[i] + step;
                out[i] = up >= 0.0f && up <= 1.0f ? up : clip (theta[i] - step);
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
    std::vector<float> all ((size_t) opts.perturbations * (size_t) numParams);
    drawDirections (lane, all.data());
    return std::vector<float> (all.begin() + (ptrdiff_t) ((size_t) k * (size_t) numParams),
                               all.begin() + (ptrdiff_t) ((size_t) (k + 1) * (size_t) numParams));
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
    requireFinite (x, numSamples, "x");
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
    const size_t perLane = (size_t) opts.perturbations * P;
    for (int m = 0; m < opts.lanes; ++m) {
        if (opts.estimator != Estimator::FiniteDifference)
            drawDirections (m, directionsDrawn.data() + (size_t) m * perLane);
        for (int e = 0; e < evaluations; ++e)
            perturbedTheta (m, e, evaluationThetas.data() + ((size_t) m * (size_t) evaluations + (size_t) e) * P);
    }
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
            forget (m);   // the lane restarted: its baseline and history start afresh
            continue;
        }
        laneGradient (m, out);
        remember (m, out);
    }
    ++stepIndex;
    recorded = false;
    totals.wallSeconds += secondsSince (start);
}

void Rack::laneGradient (int m, float* out)
{
    const int evaluations = evaluationsPerStep();
    const size_t P = (size_t) numParams;
    const bool oneSided = opts.estimator == Estimator::OneSided;
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
        // With a control variate b (the lane's running mean of its estimates), each difference
        // is taken less what b predicts for it, and b is added back: still unbiased (b does not
        // depend on this step's directions), with the variance of D D^T (r - b) instead of D D^T r.
        const double* b = opts.baseline > 0.0f ? baselines.data() + (size_t) m * P : nullptr;
        const double scale = (oneSided ? 1.0 : 2.0) * (double) opts.eps;   // |theta+ - theta-| per unit of D
        for (int k = 0; k < opts.perturbations; ++k) {
            const float* up = thetas + (size_t) (oneSided ? k : 2 * k) * P;
            const float* down = oneSided ? theta : thetas + (size_t) (2 * k + 1) * P;
            double difference = oneSided ? d[k] - centreDots[(size_t) m] : d[2 * k] - d[2 * k + 1];
            if (b != nullptr)
                for (size_t i = 0; i < P; ++i)
                    difference -= ((double) up[i] - (double) down[i]) * b[i];
            if (signForm()) {
                for (size_t i = 0; i < P; ++i)   // Eq. 2: the difference over each coordinate's step
                    grad[i] += difference / ((double) up[i] - (double) down[i]);
            } else {
                for (size_t i = 0; i < P; ++i)   // D (D . r): the step times the directional derivative
                    grad[i] += ((double) up[i] - (double) down[i]) / scale * (difference / scale);
            }
        }
        for (size_t i = 0; i < P; ++i) {
            grad[i] /= opts.perturbations;
            if (b != nullptr)
                grad[i] += b[i];
        }
    }
    for (size_t i = 0; i < P; ++i)
        out[i] = (float) grad[i];
}

void Rack::remember (int m, const float* estimate)
{
    const size_t P = (size_t) numParams;
    if (opts.baseline > 0.0f) {
        double* b = baselines.data() + (size_t) m * P;
        for (size_t i = 0; i < P; ++i)
            b[i] = opts.baseline * b[i] + (1.0 - opts.baseline) * (double) estimate[i];
    }
    if (opts.subspace > 0) {
        // A ring in which the newest estimate replaces the oldest.
        auto& count = historyCount[(size_t) m];
        float* ring = history.data() + (size_t) m * (size_t) opts.subspace * P;
        if (count == opts.subspace)
            std::copy (ring + P, ring + (size_t) opts.subspace * P, ring);
        else
            ++count;
        std::copy (estimate, estimate + P, ring + (size_t) (count - 1) * P);
    }
}

void Rack::forget (int m)
{
    const size_t P = (size_t) numParams;
    if (! baselines.empty())
        std::fill (baselines.begin() + (ptrdiff_t) ((size_t) m * P), baselines.begin() + (ptrdiff_t) ((size_t) (m + 1) * P), 0.0);
    historyCount[(size_t) m] = 0;
}

void Rack::resetLanes (const uint8_t* mask, const float* preroll, int64_t prerollSamples)
{
    const auto start = Clock::now();
    if (preroll != nullptr && prerollSamples % block != 0)
        fail (ErrorKind::Value, "preroll length " + std::to_string (prerollSamples) + " must be a multiple of the block size ("
              + std::to_string (block) + ")");
    if (preroll != nullptr)
        requireFinite (preroll, prerollSamples, "preroll");
    recorded = false;
    for (int m = 0; m < opts.lanes; ++m)
        if (mask[m])
            forget (m);   // a new clip: what the lane's past gradients said no longer holds
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
        if (fault.lane >= 0 && fault.phase == ChainActivity::Reset) {
            // A reset renders its preroll at the chain's preset values, not at any frame's.
            report.theta.assign (P, 0.0f);
            prototype->getLearned (report.theta.data());
        } else if (fault.lane >= 0) {
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

void Rack::requireFinite (const float* audio, int64_t numSamples, const char* what) const
{
    // Checked for every lane before any renders: a bad lane must not leave the others advanced.
    const size_t frame = (size_t) numChannels * (size_t) numSamples;
    for (size_t i = 0; i < (size_t) opts.lanes * frame; ++i)
        if (! std::isfinite (audio[i]))
            fail (ErrorKind::Value, std::string (what) + " contains NaN or Inf (lane " + std::to_string (i / frame) + ", channel "
                  + std::to_string (i % frame / (size_t) numSamples) + ", sample " + std::to_string (i % (size_t) numSamples)
                  + "); no lane was rendered");
}

double Rack::timeoutSeconds() const
{
    const auto* isolated = dynamic_cast<const IsolatedLanes*> (lanes_.get());
    return isolated != nullptr ? isolated->callSeconds() : 0.0;
}

void Rack::interrupt()
{
    if (auto* isolated = dynamic_cast<IsolatedLanes*> (lanes_.get()))
        isolated->interrupt();
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
    s.busySeconds = l.busySeconds - laneBase.busySeconds;
    s.phaseSeconds = l.phaseSeconds - laneBase.phaseSeconds;
    s.handoffSeconds = l.handoffSeconds - laneBase.handoffSeconds;
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
