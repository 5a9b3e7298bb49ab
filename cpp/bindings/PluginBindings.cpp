// Plugin (one hosted instance), and what a scan or a load reports: PluginInfo, ParameterInfo.
#include "Arguments.h"
#include "Bindings.h"

#include "fxgrad/Errors.h"
#include "fxgrad/Plugin.h"

namespace fxgrad::bindings {

namespace {
int parameterIndex (const Plugin& plugin, const py::handle& key)
{
    if (py::isinstance<py::str> (key))
        return plugin.findParameter (key.cast<std::string>());
    if (PyBool_Check (key.ptr()) || ! PyIndex_Check (key.ptr()))
        fail (ErrorKind::Type, "a parameter is named by its id/name (str) or index (int), got " + std::string (py::repr (key)));
    return plugin.requireIndex (integerArgument (key, "a parameter index"));
}

/** A parameter value: a real number (a numpy scalar too), never a string or a bool. */
float parameterValue (const Plugin& plugin, int index, const py::handle& value)
{
    if (PyBool_Check (value.ptr()) || py::isinstance<py::str> (value) || py::isinstance<py::bytes> (value)
        || ! PyNumber_Check (value.ptr()))
        fail (ErrorKind::Type, "the value for '" + plugin.parameters()[(size_t) index].id + "' must be a number, got "
              + std::string (py::str (value.get_type().attr ("__name__"))) + " " + std::string (py::repr (value)));
    const double number = PyFloat_AsDouble (value.ptr());
    if (number == -1.0 && PyErr_Occurred())
        throw py::error_already_set();
    return (float) number;
}

std::string pluginInfoRepr (const PluginInfo& i)
{
    return "<PluginInfo " + i.format + " '" + i.name + "' by " + i.vendor + " (" + i.identifier + "), "
           + std::to_string (i.numInputs) + " in / " + std::to_string (i.numOutputs) + " out>";
}

std::string parameterRepr (const ParameterInfo& p)
{
    std::string text = "<Parameter " + p.id + " '" + p.name + "' [" + std::to_string (p.minimum) + ", " + std::to_string (p.maximum) + "]";
    if (! p.unit.empty())
        text += " " + p.unit;
    return text + " default=" + std::to_string (p.defaultValue) + ">";
}

/** The bytes `read` returns, read with the GIL released (a VST3's state may need a second
    instance of the plugin, which JUCE creates on its message thread). */
py::bytes withoutGil (const std::function<std::string()>& read)
{
    std::string bytes;
    {
        ReleaseGil release;
        bytes = read();
    }
    return toBytes (bytes);
}

std::string pluginRepr (const Plugin& p)
{
    return "<Plugin " + p.info().format + " '" + p.info().name + "' by " + p.info().vendor + ", "
           + std::to_string (p.numParameters()) + " parameters, " + std::to_string (p.options().channels)
           + " ch at " + std::to_string ((int) p.options().sampleRate) + " Hz>";
}

std::shared_ptr<Plugin> load (const std::string& identifier, double sampleRate, const py::handle& blockSizeIn,
                              const py::handle& channelsIn, const std::string& hint)
{
    const auto blockSize = integerArgument (blockSizeIn, "block_size");
    const auto channels = integerArgument (channelsIn, "channels");
    Plugin::checkOptions (sampleRate, blockSize, channels);
    PluginOptions options { sampleRate, (int) blockSize, (int) channels };
    ReleaseGil release;
    return Plugin::load (identifier, options, hint);
}

void bindInfo (py::module_& m)
{
    py::class_<PluginInfo> (m, "PluginInfo")
        .def_readonly ("format", &PluginInfo::format)
        .def_readonly ("name", &PluginInfo::name)
        .def_readonly ("vendor", &PluginInfo::vendor)
        .def_readwrite ("identifier", &PluginInfo::identifier)   // fxgrad.scan names the own effects fxgrad:NAME
        .def_readonly ("unique_id", &PluginInfo::uniqueId)
        .def_readonly ("num_inputs", &PluginInfo::numInputs)
        .def_readonly ("num_outputs", &PluginInfo::numOutputs)
        .def_readonly ("unsupported", &PluginInfo::unsupported)
        .def ("__repr__", &pluginInfoRepr);

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
}
} // namespace

void bindPlugin (py::module_& m)
{
    bindInfo (m);

    py::class_<Plugin, std::shared_ptr<Plugin>> (m, "Plugin", py::dynamic_attr())
        .def_static ("load", &load, py::arg ("identifier"), py::arg ("sample_rate"), py::arg ("block_size"),
                     py::arg ("channels"), py::arg ("hint") = "")
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
        .def ("set", [] (Plugin& p, const py::handle& key, const py::handle& valueIn, bool normalized) {
                const int index = parameterIndex (p, key);
                const float value = parameterValue (p, index, valueIn);
                normalized ? p.setNormalized (index, value) : p.setPlain (index, value);
            }, py::arg ("name"), py::arg ("value"), py::arg ("normalized") = false)
        .def ("get", [] (const Plugin& p, const py::handle& key, bool normalized) {
                const int index = parameterIndex (p, key);
                return normalized ? p.getNormalized (index) : p.getPlain (index);
            }, py::arg ("name"), py::arg ("normalized") = false)
        .def ("process", [] (Plugin& p, const py::handle& audio) { return processAudio (p, p.options().channels, audio); },
              py::arg ("audio"))
        .def ("reset", [] (Plugin& p) { ReleaseGil release; p.reset(); },
              "Clear DSP state: the instance behaves as a fresh one with the current parameters (a new "
              "instance, for LADSPA and for VST2/VST3 plugins that keep DSP state through deactivation).")
        .def_property_readonly ("state", [] (const Plugin& p) { return withoutGil ([&] { return p.getState(); }); })
        .def_property_readonly ("plugin_data", [] (const Plugin& p) { return withoutGil ([&] { return p.pluginData(); }); },
                                "The plugin's own state data, without fxgrad's header (what presets carry).")
        .def ("load_plugin_data", [] (Plugin& p, const py::handle& blob) {
                const std::string data = bytesArgument (blob, "data");
                ReleaseGil release;
                p.loadPluginData (data);
            }, py::arg ("data"), "Apply a preset's state data (as `plugin_data` gives) to this plugin.")
        .def_property_readonly ("vst3_preset", [] (const Plugin& p) { return withoutGil ([&] { return p.vst3Preset(); }); },
                                "A VST3's current state as a .vstpreset file, as Steinberg's PresetFile::savePreset writes it.")
        .def ("load_vst3_preset", [] (Plugin& p, const py::handle& blob) {
                const std::string file = bytesArgument (blob, "file");
                ReleaseGil release;
                p.loadVst3Preset (file);
            }, py::arg ("file"), "Apply a .vstpreset file's bytes the way JUCE's VST3 host does (Steinberg's reader).")
        .def_property_readonly ("vst2_program", [] (const Plugin& p) { return toBytes (p.vst2Program()); },
                                "A VST2's current program as JUCE writes an .fxp ('FPCh' chunk or 'FxCk' values).")
        .def ("lv2_preset", [] (const Plugin& p, const std::string& fileUri, const std::string& label) {
                return withoutGil ([&] { return p.lv2Preset (fileUri, label); });
            }, py::arg ("file_uri"), py::arg ("label"),
            "The current state as the Turtle of an LV2 preset file to be written at FILE_URI.")
        .def ("load_lv2_preset", [] (Plugin& p, const std::string& path) {
                ReleaseGil release;
                p.loadLv2Preset (path);
            }, py::arg ("path"), "Apply an LV2 preset file (its .ttl) as lilv reads it.")
        .def ("load_state", [] (Plugin& p, const py::handle& blob) {
                const std::string data = bytesArgument (blob, "state");
                ReleaseGil release;
                p.setState (data);
            }, py::arg ("state"))
        .def ("__repr__", &pluginRepr)
        .def ("clone", [] (const Plugin& p) { ReleaseGil release; return p.clone(); });
}

} // namespace fxgrad::bindings
