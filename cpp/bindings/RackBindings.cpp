// Rack: M lanes of a chain with SPSA (or FD) gradients; its options by name (Names.h) and its
// fault reports as dicts.
#include <cmath>

#include "Arguments.h"
#include "Bindings.h"
#include "Names.h"

#include "fxgrad/Errors.h"
#include "fxgrad/IsolatedLanes.h"
#include "fxgrad/Rack.h"

namespace fxgrad::bindings {

using namespace pybind11::literals;

namespace {
/** The exception a Python signal handler raised during a wait, until the interrupted call's
    error is translated (in the same thread). */
struct PendingInterrupt {
    PyObject* type = nullptr;
    PyObject* value = nullptr;
    PyObject* traceback = nullptr;
};
thread_local PendingInterrupt pendingInterrupt;

/** The rack's wait hook: on the main thread, Python's signal handlers run (Ctrl-C reaches the
    trainer's handler, which may interrupt() the rack, or raises KeyboardInterrupt, which ends the
    wait at once). Other threads (a pipelined trainer's) never take the GIL here. */
std::function<bool()> signalPoll()
{
    const auto mainThread = py::module_::import ("threading").attr ("main_thread")().attr ("ident").cast<unsigned long>();
    return [mainThread] {
        if (PyThread_get_thread_ident() != mainThread)
            return false;
        py::gil_scoped_acquire gil;
        if (PyErr_CheckSignals() == 0)
            return false;
        Py_XDECREF (pendingInterrupt.type);
        Py_XDECREF (pendingInterrupt.value);
        Py_XDECREF (pendingInterrupt.traceback);
        PyErr_Fetch (&pendingInterrupt.type, &pendingInterrupt.value, &pendingInterrupt.traceback);
        return true;
    };
}
std::shared_ptr<Rack> makeRack (const Chain& chain, int lanes, float eps, int perturbations, const std::string& strategy,
                                const std::string& estimator, int64_t replaySamples, int threads, uint64_t seed,
                                const std::string& isolation, int workers, double timeoutSeconds,
                                const std::string& workerLog, int64_t maxFaults, int maxFaultsPerMinute,
                                const std::string& directions, bool shared, float baseline, int subspace, float guidedShare)
{
    RackOptions o;
    o.lanes = lanes;
    o.eps = eps;
    o.perturbations = perturbations;
    o.replaySamples = replaySamples;
    o.threads = threads;
    o.seed = seed;
    o.strategy = parseName (strategyNames, "strategy", strategy);
    o.estimator = parseName (estimatorNames, "estimator", estimator);
    o.isolation = parseName (isolationNames, "isolation", isolation);
    o.directions = parseName (directionNames, "directions", directions);
    o.sharedPerturbations = shared;
    o.baseline = baseline;
    o.subspace = subspace;
    o.guidedShare = guidedShare;
    if (workers < 0)
        fail (ErrorKind::Value, "workers must be >= 0 (0: automatic), got " + std::to_string (workers));
    if (! (timeoutSeconds >= 0.0) || ! std::isfinite (timeoutSeconds))
        fail (ErrorKind::Value, "timeout_s must be a finite number >= 0 (0: the default, "
              + std::to_string ((int) defaultCallSeconds) + " s)");
    if (maxFaults < 0 || maxFaultsPerMinute < 0)
        fail (ErrorKind::Value, "max_faults and max_faults_per_minute must be >= 0 (0: no limit)");
    o.workers = workers;
    o.timeoutSeconds = timeoutSeconds;
    o.workerLog = workerLog;
    o.maxFaults = maxFaults;
    o.maxFaultsPerMinute = maxFaultsPerMinute;
    o.interrupted = signalPoll();
    ReleaseGil release;
    return std::make_shared<Rack> (chain, o);
}

FloatArray forward (Rack& r, const py::handle& thetaIn, const py::handle& xIn, bool record)
{
    auto theta = checkedArray (thetaIn, "theta", { r.lanes(), r.numParameters() }, "(lanes, parameters)");
    auto x = checkedArray (xIn, "x", { r.lanes(), r.channels(), -1 }, "(lanes, channels, samples)");
    const auto samples = x.shape (2);
    FloatArray y ({ (py::ssize_t) r.lanes(), (py::ssize_t) r.channels(), samples });
    {
        ReleaseGil release;
        r.forward (theta.data(), x.data(), y.mutable_data(), samples, record);
    }
    return y;
}

FloatArray vjp (Rack& r, const py::handle& gradIn)
{
    if (! r.hasRecordedFrame())
        fail (ErrorKind::Value, Rack::noRecordedFrame);
    auto grad = checkedArray (gradIn, "grad_y", { r.lanes(), r.channels(), r.frameSamples() },
                              "(lanes, channels, samples) of the last frame");
    FloatArray out ({ r.lanes(), r.numParameters() });
    {
        ReleaseGil release;
        r.vjp (grad.data(), out.mutable_data());
    }
    return out;
}

void resetLanes (Rack& r, const py::handle& maskIn, const py::object& prerollIn)
{
    auto mask = py::array_t<bool, py::array::c_style | py::array::forcecast>::ensure (maskIn);
    if (! mask || mask.ndim() != 1 || mask.shape (0) != r.lanes())
        fail (ErrorKind::Value, "mask must be a 1-D boolean array of length lanes=" + std::to_string (r.lanes()));
    std::vector<uint8_t> flags (mask.data(), mask.data() + r.lanes());
    FloatArray preroll;
    int64_t prerollSamples = 0;
    if (! prerollIn.is_none()) {
        preroll = checkedArray (prerollIn, "preroll", { r.lanes(), r.channels(), -1 }, "(lanes, channels, samples)");
        prerollSamples = preroll.shape (2);
    }
    ReleaseGil release;
    r.resetLanes (flags.data(), prerollSamples > 0 ? preroll.data() : nullptr, prerollSamples);
}

py::dict stats (const Rack& r)
{
    const auto s = r.stats();
    return py::dict ("dsp_seconds"_a = s.dspSeconds, "wall_seconds"_a = s.wallSeconds, "evaluations"_a = s.evaluations,
                     "faults"_a = s.faults, "restarts"_a = s.restarts, "recovery_seconds"_a = s.recoverySeconds,
                     "busy_seconds"_a = s.busySeconds, "phase_seconds"_a = s.phaseSeconds,
                     "handoff_seconds"_a = s.handoffSeconds);
}

py::dict faultDict (const Chain& chain, const FaultReport& report)
{
    static const char* const phases[] = { "idle", "forward", "replay", "evaluate", "reset" };
    const auto& plugins = chain.plugins();
    const auto& f = report.fault;
    py::dict normalized, plain;
    const auto& learned = chain.learned();
    for (size_t i = 0; i < report.theta.size() && i < learned.size(); ++i) {
        const auto name = chain.qualifiedName (learned[i]);
        normalized[py::str (name)] = report.theta[i];
        plain[py::str (name)] = plugins[(size_t) learned[i].plugin]->plainFor (learned[i].parameter, report.theta[i]);
    }
    const auto plugin = f.plugin >= 0 && f.plugin < (int) plugins.size() ? plugins[(size_t) f.plugin]->info().name : std::string();
    return py::dict ("kind"_a = faultKindName (f.kind), "detail"_a = f.detail, "step"_a = report.step, "lanes"_a = f.lanes,
                     "lane"_a = f.lane, "phase"_a = f.phase >= 0 && f.phase <= 4 ? phases[f.phase] : "unknown",
                     "evaluation"_a = f.evaluation, "plugin_index"_a = f.plugin, "plugin"_a = plugin,
                     "normalized"_a = normalized, "plain"_a = plain);
}

py::list takeFaults (Rack& r)
{
    py::list out;
    for (const auto& report : r.takeFaults())
        out.append (faultDict (r.chain(), report));
    return out;
}

py::array_t<bool> faulted (const Rack& r)
{
    const auto& f = r.faultedLanes();
    py::array_t<bool> out ((py::ssize_t) f.size());
    std::copy (f.begin(), f.end(), out.mutable_data());
    return out;
}
} // namespace

bool restorePendingInterrupt()
{
    if (pendingInterrupt.type == nullptr)
        return false;
    PyErr_Restore (pendingInterrupt.type, pendingInterrupt.value, pendingInterrupt.traceback);
    pendingInterrupt = {};
    return true;
}

void bindRack (py::module_& m)
{
    m.attr ("DEFAULT_TIMEOUT_S") = defaultCallSeconds;
    m.attr ("STRATEGIES") = namesOf (strategyNames);
    m.attr ("ESTIMATORS") = namesOf (estimatorNames);
    m.attr ("ISOLATIONS") = namesOf (isolationNames);
    m.attr ("DIRECTIONS") = namesOf (directionNames);

    py::class_<Rack, std::shared_ptr<Rack>> (m, "Rack")
        .def (py::init (&makeRack), py::arg ("chain"), py::arg ("lanes"), py::arg ("eps"), py::arg ("perturbations"),
              py::arg ("strategy"), py::arg ("estimator"), py::arg ("replay_samples"), py::arg ("threads"), py::arg ("seed"),
              py::arg ("isolation") = "none", py::arg ("workers") = 0, py::arg ("timeout_s") = 0.0,
              py::arg ("worker_log") = "", py::arg ("max_faults") = 1000, py::arg ("max_faults_per_minute") = 30,
              py::arg ("directions") = "rademacher", py::arg ("shared") = false, py::arg ("baseline") = 0.0f,
              py::arg ("subspace") = 0, py::arg ("guided_share") = 0.5f)
        .def_property_readonly ("lanes", &Rack::lanes)
        .def_property_readonly ("num_parameters", &Rack::numParameters)
        .def_property_readonly ("channels", &Rack::channels)
        .def_property_readonly ("block_size", &Rack::blockSize)
        .def_property_readonly ("threads", &Rack::threads)
        .def_property_readonly ("evaluators_per_lane", &Rack::evaluatorsPerLane)
        .def_property ("step", &Rack::step, &Rack::setStep)
        .def ("forward", &forward, py::arg ("theta"), py::arg ("x"), py::arg ("record") = true)
        .def ("vjp", &vjp, py::arg ("grad_y"))
        .def ("perturbation", &Rack::perturbation, py::arg ("lane"), py::arg ("k") = 0)
        .def ("reset_lanes", &resetLanes, py::arg ("mask"), py::arg ("preroll") = py::none())
        .def ("stats", &stats)
        .def ("reset_stats", &Rack::resetStats)
        .def_property_readonly ("faulted", &faulted)
        .def_property_readonly ("worker_pids", &Rack::workerPids)
        .def_property_readonly ("timeout_s", &Rack::timeoutSeconds,
                                "The workers' deadline per call in seconds (0 without isolation).")
        .def ("interrupt", &Rack::interrupt,
              "Abandon a wait on the workers still running 0.3 s from now, and every later call "
              "(raises KeyboardInterrupt); for a signal handler that asks for a stop.")
        .def ("take_faults", &takeFaults,
              "Faults contained since the last call, oldest first (dicts: kind, detail, step, lanes, lane, phase, "
              "evaluation, plugin, plugin_index, normalized, plain).");
}

} // namespace fxgrad::bindings
