// Python bindings of the fxgrad core: a thin layer that checks arrays, releases the GIL around
// plugin work and turns core errors into Python exceptions.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "fxgrad/BatchRenderer.h"
#include "fxgrad/Chain.h"
#include "fxgrad/Errors.h"
#include "fxgrad/Host.h"
#include "fxgrad/Plugin.h"
#include "fxgrad/Rack.h"

#include <chrono>
#include <cmath>
#include <thread>

namespace py = pybind11;
using namespace fxgrad;

namespace {

using FloatArray = py::array_t<float, py::array::c_style>;

/** py::gil_scoped_release, except for a daemon thread still inside fxgrad while the interpreter
    finalises: Python ends such a thread with pthread_exit when it re-takes the GIL, and that
    forced unwind through pybind11's noexcept destructor aborts the whole process ("terminate
    called without an active exception"). Such a thread is parked instead; the process is exiting. */
class ReleaseGil {
public:
    ReleaseGil() : state (PyEval_SaveThread()) {}
    ~ReleaseGil()
    {
#if PY_VERSION_HEX >= 0x030D0000
        while (Py_IsFinalizing())
#else
        while (_Py_IsFinalizing())
#endif
            std::this_thread::sleep_for (std::chrono::hours (1));
        PyEval_RestoreThread (state);
    }
    ReleaseGil (const ReleaseGil&) = delete;
    ReleaseGil& operator= (const ReleaseGil&) = delete;

private:
    PyThreadState* state;
};

/** float32 in native byte order; dtypes compare by value (an unpickled array has its own). */
bool isFloat32 (const py::array& array)
{
    return array.dtype().attr ("__eq__") (py::dtype::of<float>()).cast<bool>();
}

/** A (channels, samples) float32 C-contiguous view of `audio`, with errors that name the problem. */
FloatArray audioArgument (const py::handle& audio, int channels, const std::string& what)
{
    if (! py::isinstance<py::array> (audio))
        throw py::type_error (what + " must be a numpy array of float32, shaped (channels, samples); got "
                              + std::string (py::str (py::type::of (audio).attr ("__name__"))));
    auto array = py::reinterpret_borrow<py::array> (audio);
    if (! isFloat32 (array))
        throw py::type_error (what + " must have dtype float32, got " + std::string (py::str (array.dtype())));
    if (array.ndim() != 2)
        throw py::value_error (what + " must be 2-D (channels, samples), got " + std::to_string (array.ndim()) + "-D");
    if (array.shape (0) != channels)
        throw py::value_error (what + " has " + std::to_string (array.shape (0)) + " channels; this plugin was loaded with channels="
                               + std::to_string (channels));
    return FloatArray::ensure (array);
}

/** A float32 C-contiguous array of the given shape (-1: any length), with errors that name it. */
FloatArray checkedArray (const py::handle& value, const std::string& name, std::vector<int64_t> shape, const std::string& layout)
{
    if (! py::isinstance<py::array> (value))
        throw py::type_error (name + " must be a float32 numpy array shaped " + layout);
    auto array = py::reinterpret_borrow<py::array> (value);
    if (! isFloat32 (array))
        throw py::type_error (name + " must have dtype float32, got " + std::string (py::str (array.dtype())));
    bool ok = array.ndim() == (py::ssize_t) shape.size();
    for (size_t i = 0; ok && i < shape.size(); ++i)
        ok = shape[i] < 0 ? array.shape ((py::ssize_t) i) > 0 : array.shape ((py::ssize_t) i) == shape[i];
    if (! ok) {
        std::string expected = "(", got = "(";
        for (size_t i = 0; i < shape.size(); ++i)
            expected += (i ? ", " : "") + (shape[i] < 0 ? std::string ("N") : std::to_string (shape[i]));
        for (py::ssize_t i = 0; i < array.ndim(); ++i)
            got += (i ? ", " : "") + std::to_string (array.shape (i));
        throw py::value_error (name + " must be shaped " + layout + " = " + expected + "), got " + got + ")");
    }
    return FloatArray::ensure (array);
}

py::bytes toBytes (const std::string& s) { return py::bytes (s.data(), s.size()); }

/** An integer argument (Python int, NumPy integer: anything with __index__ but a bool) as
    int64; beyond int64 it saturates, which every range check then refuses. */
int64_t integerArgument (const py::handle& value, const std::string& name)
{
    if (PyBool_Check (value.ptr()) || ! PyIndex_Check (value.ptr()))
        throw py::type_error (name + " must be an integer, got " + std::string (py::repr (value)));
    const auto number = py::reinterpret_steal<py::object> (PyNumber_Index (value.ptr()));
    if (! number)
        throw py::error_already_set();
    int overflow = 0;
    const long long result = PyLong_AsLongLongAndOverflow (number.ptr(), &overflow);
    return overflow > 0 ? INT64_MAX : overflow < 0 ? INT64_MIN : (int64_t) result;
}

int parameterIndex (const Plugin& plugin, const py::handle& key)
{
    if (py::isinstance<py::str> (key))
        return plugin.findParameter (key.cast<std::string>());
    if (PyBool_Check (key.ptr()) || ! PyIndex_Check (key.ptr()))
        throw py::type_error ("a parameter is named by its id/name (str) or index (int), got " + std::string (py::repr (key)));
    return plugin.requireIndex (integerArgument (key, "a parameter index"));
}

/** The bytes of a bytes-like object (bytes, bytearray, memoryview). */
std::string bytesArgument (const py::handle& value, const std::string& name)
{
    if (py::isinstance<py::bytes> (value))
        return value.cast<std::string>();
    if (PyObject_CheckBuffer (value.ptr()) && ! py::isinstance<py::str> (value)) {
        const auto bytes = py::reinterpret_steal<py::object> (PyBytes_FromObject (value.ptr()));
        if (! bytes)
            throw py::error_already_set();
        return bytes.cast<std::string>();
    }
    throw py::type_error (name + " must be bytes (a Plugin.state), got "
                          + py::type::of (value).attr ("__name__").cast<std::string>());
}

std::string parameterRepr (const ParameterInfo& p)
{
    std::string text = "<Parameter " + p.id + " '" + p.name + "' [" + std::to_string (p.minimum) + ", " + std::to_string (p.maximum) + "]";
    if (! p.unit.empty())
        text += " " + p.unit;
    return text + " default=" + std::to_string (p.defaultValue) + ">";
}

} // namespace

PYBIND11_MODULE (_native, m)
{
    m.doc() = "fxgrad's native plugin host (JUCE). Use the fxgrad package rather than this module.";

    // One base for every fault of a plugin's own, so that callers can catch them together.
    static py::exception<Error> pluginError (m, "PluginError", PyExc_RuntimeError);
    static py::exception<Error> pluginLoadError (m, "PluginLoadError", pluginError.ptr());
    static py::exception<Error> pluginOutputError (m, "PluginOutputError", pluginError.ptr());
    static py::exception<Error> pluginCrashedError (m, "PluginCrashedError", pluginError.ptr());
    static py::exception<Error> pluginTimeoutError (m, "PluginTimeoutError", pluginError.ptr());

    py::register_exception_translator ([] (std::exception_ptr p) {
        try {
            if (p)
                std::rethrow_exception (p);
        } catch (const Error& e) {
            switch (e.kind) {
                case ErrorKind::Value: PyErr_SetString (PyExc_ValueError, e.what()); return;
                case ErrorKind::Type: PyErr_SetString (PyExc_TypeError, e.what()); return;
                case ErrorKind::Key: PyErr_SetObject (PyExc_KeyError, py::str (e.what()).ptr()); return;
                case ErrorKind::FileNotFound: PyErr_SetString (PyExc_FileNotFoundError, e.what()); return;
                case ErrorKind::PluginLoad: py::set_error (pluginLoadError, e.what()); return;
                case ErrorKind::PluginOutput: py::set_error (pluginOutputError, e.what()); return;
                case ErrorKind::PluginCrashed: py::set_error (pluginCrashedError, e.what()); return;
                case ErrorKind::PluginTimeout: py::set_error (pluginTimeoutError, e.what()); return;
                case ErrorKind::Closed:
                case ErrorKind::Forked:
                case ErrorKind::Resource: PyErr_SetString (PyExc_RuntimeError, e.what()); return;
            }
        } catch (const std::bad_alloc&) {
            PyErr_SetString (PyExc_MemoryError, "out of memory in fxgrad's native host (use fewer lanes, "
                             "perturbations or shorter frames)");
        }
    });

    py::class_<PluginInfo> (m, "PluginInfo")
        .def_readonly ("format", &PluginInfo::format)
        .def_readonly ("name", &PluginInfo::name)
        .def_readonly ("vendor", &PluginInfo::vendor)
        .def_readwrite ("identifier", &PluginInfo::identifier)   // fxgrad.scan names the own effects fxgrad:NAME
        .def_readonly ("unique_id", &PluginInfo::uniqueId)
        .def_readonly ("num_inputs", &PluginInfo::numInputs)
        .def_readonly ("num_outputs", &PluginInfo::numOutputs)
        .def_readonly ("unsupported", &PluginInfo::unsupported)
        .def ("__repr__", [] (const PluginInfo& i) {
            return "<PluginInfo " + i.format + " '" + i.name + "' by " + i.vendor + " (" + i.identifier + "), "
                   + std::to_string (i.numInputs) + " in / " + std::to_string (i.numOutputs) + " out>";
        });

    py::class_<ParameterInfo> (m, "ParameterInfo")
        .def_readonly ("index", &ParameterInfo::index)
        .def_readonly ("id", &ParameterInfo::id)
        .def_readonly ("name", &ParameterInfo::name)
        .def_readonly ("unit", &ParameterInfo::unit)
        .def_readonly ("minimum", &ParameterInfo::minimum)
        .def_readonly ("maximum", &ParameterInfo::maximum)
        .def_readonly ("default", &ParameterInfo::defaultValue)
        .def_readonly ("normalized_default", &ParameterInfo::defaultNormalized)
        .def_property_readonly ("logarithmic", [] (const ParameterInfo& p) { return p.scale == Scale::Logarithmic; })
        .def_readonly ("steps", &ParameterInfo::steps)
        .def_readonly ("is_toggle", &ParameterInfo::isToggle)
        .def_readonly ("is_integer", &ParameterInfo::isInteger)
        .def_readonly ("automatable", &ParameterInfo::automatable)
        .def_readonly ("is_bypass", &ParameterInfo::isBypass)
        .def_readonly ("is_trigger", &ParameterInfo::isTrigger)
        .def_readonly ("choices", &ParameterInfo::choices)
        .def ("__repr__", &parameterRepr);

    py::class_<Plugin, std::shared_ptr<Plugin>> (m, "Plugin", py::dynamic_attr())
        .def_static ("load", [] (const std::string& identifier, double sampleRate, const py::handle& blockSizeIn,
                                 const py::handle& channelsIn, const std::string& hint) {
                const auto blockSize = integerArgument (blockSizeIn, "block_size");
                const auto channels = integerArgument (channelsIn, "channels");
                Plugin::checkOptions (sampleRate, blockSize, channels);
                PluginOptions options { sampleRate, (int) blockSize, (int) channels };
                ReleaseGil release;
                return Plugin::load (identifier, options, hint);
            }, py::arg ("identifier"), py::arg ("sample_rate"), py::arg ("block_size"), py::arg ("channels"), py::arg ("hint") = "")
        .def_property_readonly ("info", &Plugin::info)
        .def_property_readonly ("name", [] (const Plugin& p) { return p.info().name; })
        .def_property_readonly ("vendor", [] (const Plugin& p) { return p.info().vendor; })
        .def_property_readonly ("format", [] (const Plugin& p) { return p.info().format; })
        .def_property_readonly ("identifier", [] (const Plugin& p) { return p.info().identifier; })
        .def_property_readonly ("sample_rate", [] (const Plugin& p) { return p.options().sampleRate; })
        .def_property_readonly ("block_size", [] (const Plugin& p) { return p.options().blockSize; })
        .def_property_readonly ("channels", [] (const Plugin& p) { return p.options().channels; })
        .def_property_readonly ("parameters", &Plugin::parameters)
        .def_property_readonly ("latency_samples", &Plugin::latencySamples)
        .def_property_readonly ("has_dsp_snapshot", &Plugin::hasDspSnapshot)
        .def ("parameter_index", &Plugin::findParameter, py::arg ("name"))
        .def ("set", [] (Plugin& p, const py::handle& key, float value, bool normalized) {
                const int index = parameterIndex (p, key);
                normalized ? p.setNormalized (index, value) : p.setPlain (index, value);
            }, py::arg ("name"), py::arg ("value"), py::arg ("normalized") = false)
        .def ("get", [] (const Plugin& p, const py::handle& key, bool normalized) {
                const int index = parameterIndex (p, key);
                return normalized ? p.getNormalized (index) : p.getPlain (index);
            }, py::arg ("name"), py::arg ("normalized") = false)
        .def ("process", [] (Plugin& p, const py::handle& audio) {
                auto in = audioArgument (audio, p.options().channels, "audio");
                const auto channels = in.shape (0), samples = in.shape (1);
                FloatArray out ({ channels, samples });
                {
                    ReleaseGil release;
                    p.process (in.data(), samples, out.mutable_data(), samples, samples);
                }
                return out;
            }, py::arg ("audio"))
        .def ("reset", [] (Plugin& p) { ReleaseGil release; p.reset(); })
        .def_property_readonly ("state", [] (const Plugin& p) { return toBytes (p.getState()); })
        .def_property_readonly ("plugin_data", [] (const Plugin& p) { return toBytes (p.pluginData()); },
                                "The plugin's own state data, without fxgrad's header (what presets carry).")
        .def ("load_plugin_data", [] (Plugin& p, const py::handle& blob) {
                const std::string data = bytesArgument (blob, "data");
                ReleaseGil release;
                p.loadPluginData (data);
            }, py::arg ("data"), "Apply a preset's state data (as `plugin_data` gives) to this plugin.")
        .def ("load_state", [] (Plugin& p, const py::handle& blob) {
                const std::string data = bytesArgument (blob, "state");
                ReleaseGil release;
                p.setState (data);
            }, py::arg ("state"))
        .def ("__repr__", [] (const Plugin& p) {
                return "<Plugin " + p.info().format + " '" + p.info().name + "' by " + p.info().vendor + ", "
                       + std::to_string (p.numParameters()) + " parameters, " + std::to_string (p.options().channels)
                       + " ch at " + std::to_string ((int) p.options().sampleRate) + " Hz>";
            })
        .def ("clone", [] (const Plugin& p) { ReleaseGil release; return p.clone(); });

    py::class_<Chain, std::shared_ptr<Chain>> (m, "Chain")
        .def (py::init ([] (std::vector<std::shared_ptr<Plugin>> plugins, py::object learned,
                            std::vector<std::pair<std::string, float>> pinned) {
                  const bool learnAll = learned.is_none();
                  auto names = learnAll ? std::vector<std::string> {} : learned.cast<std::vector<std::string>>();
                  ReleaseGil release;
                  return std::make_shared<Chain> (std::move (plugins), names, learnAll, pinned);
              }), py::arg ("plugins"), py::arg ("learned"), py::arg ("pinned"))
        .def_property_readonly ("plugins", &Chain::plugins)
        .def_property_readonly ("num_parameters", &Chain::numLearned)
        .def_property_readonly ("learned", [] (const Chain& c) {
            std::vector<std::string> names;
            for (const auto& r : c.learned())
                names.push_back (c.qualifiedName (r));
            return names;
        })
        .def_property_readonly ("pinned", [] (const Chain& c) {
            std::vector<std::pair<std::string, float>> values;
            for (const auto& [r, v] : c.pinned())
                values.emplace_back (c.qualifiedName (r), v);
            return values;
        })
        .def_property_readonly ("channels", &Chain::channels)
        .def_property_readonly ("sample_rate", &Chain::sampleRate)
        .def_property_readonly ("block_size", &Chain::blockSize)
        .def_property_readonly ("latency_samples", &Chain::latencySamples)
        .def_property_readonly ("has_dsp_snapshot", &Chain::hasDspSnapshot)
        .def ("resolve", [] (const Chain& c, const std::string& name) { return c.qualifiedName (c.resolve (name)); })
        .def ("set_learned", [] (Chain& c, const py::handle& values) {
                auto array = FloatArray::ensure (values);
                if (! array || array.ndim() != 1 || array.shape (0) != c.numLearned())
                    throw py::value_error ("expected a 1-D float32 array of " + std::to_string (c.numLearned()) + " normalised values");
                c.setLearned (array.data());
            }, py::arg ("values"))
        .def ("get_learned", [] (const Chain& c) {
                FloatArray out (c.numLearned());
                c.getLearned (out.mutable_data());
                return out;
            })
        .def ("process", [] (Chain& c, const py::handle& audio) {
                auto in = audioArgument (audio, c.channels(), "audio");
                const auto samples = in.shape (1);
                FloatArray out ({ in.shape (0), samples });
                {
                    ReleaseGil release;
                    c.process (in.data(), samples, out.mutable_data(), samples, samples);
                }
                return out;
            }, py::arg ("audio"))
        .def ("reset", [] (Chain& c) { ReleaseGil release; c.reset(); })
        .def ("clone", [] (const Chain& c) { ReleaseGil release; return std::shared_ptr<Chain> (c.clone()); });

    py::class_<Rack, std::shared_ptr<Rack>> (m, "Rack")
        .def (py::init ([] (const Chain& chain, int lanes, float eps, int perturbations, const std::string& strategy,
                            const std::string& estimator, int64_t replaySamples, int threads, uint64_t seed,
                            const std::string& isolation, int workers, double timeoutSeconds, const std::string& workerLog,
                            int64_t maxFaults, int maxFaultsPerMinute) {
                  RackOptions o;
                  o.lanes = lanes;
                  o.eps = eps;
                  o.perturbations = perturbations;
                  o.replaySamples = replaySamples;
                  o.threads = threads;
                  o.seed = seed;
                  if (strategy == "lockstep") o.strategy = Strategy::Lockstep;
                  else if (strategy == "replay") o.strategy = Strategy::Replay;
                  else if (strategy == "snapshot") o.strategy = Strategy::Snapshot;
                  else throw py::value_error ("strategy must be 'lockstep', 'replay' or 'snapshot', got '" + strategy + "'");
                  if (estimator == "two-sided") o.estimator = Estimator::TwoSided;
                  else if (estimator == "one-sided") o.estimator = Estimator::OneSided;
                  else if (estimator == "fd") o.estimator = Estimator::FiniteDifference;
                  else throw py::value_error ("estimator must be 'two-sided', 'one-sided' or 'fd', got '" + estimator + "'");
                  if (isolation == "none") o.isolation = Isolation::None;
                  else if (isolation == "process") o.isolation = Isolation::Process;
                  else throw py::value_error ("isolation must be 'none' or 'process', got '" + isolation + "'");
                  if (workers < 0)
                      throw py::value_error ("workers must be >= 0 (0: automatic), got " + std::to_string (workers));
                  if (! (timeoutSeconds >= 0.0) || ! std::isfinite (timeoutSeconds))
                      throw py::value_error ("timeout_s must be a finite number >= 0 (0: automatic)");
                  if (maxFaults < 0 || maxFaultsPerMinute < 0)
                      throw py::value_error ("max_faults and max_faults_per_minute must be >= 0 (0: no limit)");
                  o.workers = workers;
                  o.timeoutSeconds = timeoutSeconds;
                  o.workerLog = workerLog;
                  o.maxFaults = maxFaults;
                  o.maxFaultsPerMinute = maxFaultsPerMinute;
                  ReleaseGil release;
                  return std::make_shared<Rack> (chain, o);
              }), py::arg ("chain"), py::arg ("lanes"), py::arg ("eps"), py::arg ("perturbations"), py::arg ("strategy"),
              py::arg ("estimator"), py::arg ("replay_samples"), py::arg ("threads"), py::arg ("seed"),
              py::arg ("isolation") = "none", py::arg ("workers") = 0, py::arg ("timeout_s") = 0.0,
              py::arg ("worker_log") = "", py::arg ("max_faults") = 1000, py::arg ("max_faults_per_minute") = 30)
        .def_property_readonly ("lanes", &Rack::lanes)
        .def_property_readonly ("num_parameters", &Rack::numParameters)
        .def_property_readonly ("channels", &Rack::channels)
        .def_property_readonly ("block_size", &Rack::blockSize)
        .def_property_readonly ("threads", &Rack::threads)
        .def_property_readonly ("evaluators_per_lane", &Rack::evaluatorsPerLane)
        .def_property ("step", &Rack::step, &Rack::setStep)
        .def ("forward", [] (Rack& r, const py::handle& thetaIn, const py::handle& xIn, bool record) {
                auto theta = checkedArray (thetaIn, "theta", { r.lanes(), r.numParameters() }, "(lanes, parameters)");
                auto x = checkedArray (xIn, "x", { r.lanes(), r.channels(), -1 }, "(lanes, channels, samples)");
                const auto samples = x.shape (2);
                FloatArray y ({ (py::ssize_t) r.lanes(), (py::ssize_t) r.channels(), samples });
                {
                    ReleaseGil release;
                    r.forward (theta.data(), x.data(), y.mutable_data(), samples, record);
                }
                return y;
            }, py::arg ("theta"), py::arg ("x"), py::arg ("record") = true)
        .def ("vjp", [] (Rack& r, const py::handle& gradIn) {
                if (! r.hasRecordedFrame())
                    throw py::value_error (Rack::noRecordedFrame);
                auto grad = checkedArray (gradIn, "grad_y", { r.lanes(), r.channels(), r.frameSamples() }, "(lanes, channels, samples) of the last frame");
                FloatArray out ({ r.lanes(), r.numParameters() });
                {
                    ReleaseGil release;
                    r.vjp (grad.data(), out.mutable_data());
                }
                return out;
            }, py::arg ("grad_y"))
        .def ("perturbation", &Rack::perturbation, py::arg ("lane"), py::arg ("k") = 0)
        .def ("reset_lanes", [] (Rack& r, const py::handle& maskIn, const py::object& prerollIn) {
                auto mask = py::array_t<bool, py::array::c_style | py::array::forcecast>::ensure (maskIn);
                if (! mask || mask.ndim() != 1 || mask.shape (0) != r.lanes())
                    throw py::value_error ("mask must be a 1-D boolean array of length lanes=" + std::to_string (r.lanes()));
                std::vector<uint8_t> flags (mask.data(), mask.data() + r.lanes());
                FloatArray preroll;
                int64_t prerollSamples = 0;
                if (! prerollIn.is_none()) {
                    preroll = checkedArray (prerollIn, "preroll", { r.lanes(), r.channels(), -1 }, "(lanes, channels, samples)");
                    prerollSamples = preroll.shape (2);
                }
                ReleaseGil release;
                r.resetLanes (flags.data(), prerollSamples > 0 ? preroll.data() : nullptr, prerollSamples);
            }, py::arg ("mask"), py::arg ("preroll") = py::none())
        .def ("stats", [] (const Rack& r) {
                const auto s = r.stats();
                py::dict d;
                d["dsp_seconds"] = s.dspSeconds;
                d["wall_seconds"] = s.wallSeconds;
                d["evaluations"] = s.evaluations;
                d["faults"] = s.faults;
                d["restarts"] = s.restarts;
                d["recovery_seconds"] = s.recoverySeconds;
                return d;
            })
        .def ("reset_stats", &Rack::resetStats)
        .def_property_readonly ("faulted", [] (const Rack& r) {
                const auto& f = r.faultedLanes();
                py::array_t<bool> out ((py::ssize_t) f.size());
                std::copy (f.begin(), f.end(), out.mutable_data());
                return out;
            })
        .def_property_readonly ("worker_pids", &Rack::workerPids)
        .def ("take_faults", [] (Rack& r) {
                py::list out;
                const auto& plugins = r.chain().plugins();
                for (const auto& report : r.takeFaults()) {
                    const auto& f = report.fault;
                    py::dict d;
                    d["kind"] = faultKindName (f.kind);
                    d["detail"] = f.detail;
                    d["step"] = report.step;
                    d["lanes"] = f.lanes;
                    d["lane"] = f.lane;
                    static const char* const phases[] = { "idle", "forward", "replay", "evaluate", "reset" };
                    d["phase"] = f.phase >= 0 && f.phase <= 4 ? phases[f.phase] : "unknown";
                    d["evaluation"] = f.evaluation;
                    d["plugin_index"] = f.plugin;
                    d["plugin"] = f.plugin >= 0 && f.plugin < (int) plugins.size() ? plugins[(size_t) f.plugin]->info().name : std::string();
                    py::dict normalized, plain;
                    const auto& learned = r.chain().learned();
                    for (size_t i = 0; i < report.theta.size() && i < learned.size(); ++i) {
                        const auto name = r.chain().qualifiedName (learned[i]);
                        normalized[py::str (name)] = report.theta[i];
                        plain[py::str (name)] = plugins[(size_t) learned[i].plugin]->plainFor (learned[i].parameter, report.theta[i]);
                    }
                    d["normalized"] = normalized;
                    d["plain"] = plain;
                    out.append (d);
                }
                return out;
            }, "Faults contained since the last call, oldest first (dicts: kind, detail, step, lanes, lane, phase, "
               "evaluation, plugin, plugin_index, normalized, plain).");

    // fxgrad.render_batch: K settings over one clip, or K clips, each from a fresh DSP state.
    py::class_<BatchRenderer, std::shared_ptr<BatchRenderer>> (m, "BatchRenderer")
        .def (py::init ([] (std::shared_ptr<Chain> chain, int threads) {
                  ReleaseGil release;
                  return std::make_shared<BatchRenderer> (std::move (chain), threads);
              }), py::arg ("chain"), py::arg ("threads") = 0)
        .def_property_readonly ("threads", &BatchRenderer::threads)
        .def_property_readonly ("instances", &BatchRenderer::instances)
        .def ("render", [] (BatchRenderer& r, const py::handle& thetaIn, const py::handle& audioIn) {
                const auto& chain = r.prototype();
                const auto numParams = (py::ssize_t) chain.numLearned(), channels = (py::ssize_t) chain.channels();
                auto theta = checkedArray (thetaIn, "theta", py::isinstance<py::array> (thetaIn) && py::reinterpret_borrow<py::array> (thetaIn).ndim() == 1
                                               ? std::vector<int64_t> { numParams } : std::vector<int64_t> { -1, numParams },
                                           "(K, parameters) or (parameters,)");
                if (! py::isinstance<py::array> (audioIn))
                    throw py::type_error ("audio must be a float32 numpy array shaped (channels, samples) or (K, channels, samples)");
                const auto audioDims = py::reinterpret_borrow<py::array> (audioIn).ndim();
                auto audio = checkedArray (audioIn, "audio", audioDims == 2 ? std::vector<int64_t> { channels, -1 } : std::vector<int64_t> { -1, channels, -1 },
                                           "(channels, samples) or (K, channels, samples)");
                const bool sharedTheta = theta.ndim() == 1, sharedAudio = audio.ndim() == 2;
                const auto count = sharedTheta ? (sharedAudio ? 1 : audio.shape (0)) : theta.shape (0);
                if (! sharedTheta && ! sharedAudio && audio.shape (0) != count)
                    throw py::value_error ("theta has " + std::to_string (count) + " rows but audio " + std::to_string (audio.shape (0)) + " clips");
                const auto samples = audio.shape (audio.ndim() - 1);
                FloatArray out ({ count, channels, samples });
                {
                    ReleaseGil release;
                    r.render (theta.data(), sharedTheta, audio.data(), sharedAudio, (int) count, samples, out.mutable_data());
                }
                return out;
            }, py::arg ("theta"), py::arg ("audio"))
        .def ("stats", [] (const BatchRenderer& r) {
                const auto s = r.stats();
                py::dict d;
                d["dsp_seconds"] = s.dspSeconds;
                d["wall_seconds"] = s.wallSeconds;
                d["renders"] = s.renders;
                return d;
            })
        .def ("reset_stats", &BatchRenderer::resetStats);

    m.def ("scan", [] (const std::vector<std::string>& paths) {
            ReleaseGil release;
            return Host::get()->scan (paths);
        }, py::arg ("paths"));
    m.def ("shutdown", [] { ReleaseGil release; Host::shutdown(); },
           "Releases every plugin instance and stops the host (called at interpreter exit).");
}
