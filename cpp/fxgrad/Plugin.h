#pragma once
// One hosted plugin instance: parameters in plain and normalised units, stateful processing of
// (channels, samples) float32 audio, reset, preset state and latency.
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "ChannelRouting.h"
#include "Host.h"
#include "Lv2PresetPatch.h"
#include "Parameter.h"

namespace fxgrad {

class LadspaPorts;

struct PluginOptions {
    double sampleRate = 44100.0;
    int blockSize = 1024;
    int channels = 2;            // channels of the audio passed to process()
};

class Plugin : public InstanceOwner {
public:
    /** Loads an LV2 URI or bundle folder, a VST3 bundle, a VST2 or LADSPA library, or
        PATH#SELECTOR. `hint` picks one plugin where a file or bundle holds several. */
    static std::shared_ptr<Plugin> load (const std::string& identifierOrPath, const PluginOptions&,
                                         const std::string& hint = {});

    /** A new instance of the same plugin with the same options, parameters and preset state
        (its DSP state starts fresh). */
    std::shared_ptr<Plugin> clone() const;

    /** What load() was given, so that another process can load the same plugin. */
    struct Source {
        std::string identifierOrPath, hint;
    };
    const Source& source() const { return loadedFrom; }

    /** Takes another instance's preset state and normalised values (all parameters, as from
        getState() and getNormalized()), then clears the DSP state: what clone() gives a copy. */
    void adopt (const std::string& state, const std::vector<float>& normalized);

    ~Plugin() override;

    const PluginInfo& info() const { return pluginInfo; }
    const PluginOptions& options() const { return opts; }
    const std::vector<ParameterInfo>& parameters() const { return params; }
    int numParameters() const { return (int) params.size(); }

    /** Throws ErrorKind::Value for a sample rate, block size or channel count out of range. */
    static void checkOptions (double sampleRate, int64_t blockSize, int64_t channels);

    /** Index of a parameter by id or name; throws ErrorKind::Key listing close matches. */
    int findParameter (const std::string& name) const;
    /** `index` when it names a parameter; throws ErrorKind::Value otherwise. */
    int requireIndex (int64_t index) const;

    void setPlain (int index, float plain);
    float getPlain (int index) const;
    void setNormalized (int index, float normalized);
    float getNormalized (int index) const;
    /** The plain value `normalized` stands for, without setting it (fault reports). */
    float plainFor (int index, float normalized) const;

    /** Processes `numSamples` frames of `channels` planar channels (channel c at
        input + c * inputStride). Input and output may alias. Stateful across calls. */
    void process (const float* input, int64_t inputStride, float* output, int64_t outputStride,
                  int64_t numSamples);

    /** Clears DSP state: the instance is as freshly loaded with the current parameters. */
    void reset();

    /** The plugin's state (parameters, and for fxgrad's own plugins the DSP state), in a
        header naming the plugin, with the size and checksum of the plugin's data. */
    std::string getState() const;
    /** Restores a state from getState() of this plugin (any instance, any options). Throws
        ErrorKind::Value, leaving the plugin as it was, for anything else: arbitrary bytes, a
        state of another plugin, a truncated or corrupted one. */
    void setState (const std::string& blob);

    /** The plugin's own state data, without fxgrad's header (what a preset file carries), and
        the reverse: data from a preset, applied as this plugin's state. */
    std::string pluginData() const;
    void loadPluginData (const std::string& data);

    /** A VST3's current state as a .vstpreset file, written by Steinberg's PresetFile::savePreset
        (the component state, the controller's where it saves one); and such a file applied the
        way JUCE's VST3 host applies one (PresetFile::loadPreset), ErrorKind::Value if it refuses. */
    std::string vst3Preset() const;
    void loadVst3Preset (const std::string& file);
    /** A VST2's current program as JUCE writes an .fxp: the plugin's program chunk ('FPCh') where
        it declares programsAreChunks, else its parameter values ('FxCk'). loadPluginData() takes it. */
    std::string vst2Program() const;
    /** An LV2's current state as the Turtle of a preset file to be written at `fileUri`, labelled
        `label` (lv2PresetFile); and a preset file read by lilv and applied. Loading throws
        ErrorKind::Value for a preset of another plugin or one lilv cannot read. */
    std::string lv2Preset (const std::string& fileUri, const std::string& label) const;
    void loadLv2Preset (const std::string& path);

    int latencySamples() const;

    /** fxgrad's own plugins carry their complete DSP state in their state chunk, so a state
        taken mid-stream and restored elsewhere continues bit-identically. */
    bool hasDspSnapshot() const { return pluginInfo.vendor == "fxgrad"; }

    void releaseInstances() override;

private:
    Plugin (std::shared_ptr<Host>, juce::PluginDescription, const PluginOptions&, bool probeReset = true);
    void configureChannels();
    void readParameters();
    void refreshParameterCache();
    void prepare();
    /** Ready to render offline at ``options``' rate and block size (the live or a second instance). */
    static void prepareOffline (juce::AudioPluginInstance&, const PluginOptions& options);
    juce::AudioPluginInstance& live() const;
    bool isLv2() const { return description.pluginFormatName == "LV2"; }
    bool isVst2() const { return description.pluginFormatName == "VST"; }
    bool isVst3() const { return description.pluginFormatName == "VST3"; }
    void settleMessages() const;
    void flushParameterMessages() const;
    bool changesNeedAudio() const;
    InstancePtr instanceWithPendingChanges() const;
    bool probeResetKeepsState() const;
    void renewInstance();
    std::string readCurrent (const std::function<std::string (juce::AudioPluginInstance&)>& read) const;
    std::string withValuesSet (std::string vst2Data) const;
    std::unique_lock<std::recursive_mutex> lockForUse() const;
    size_t checkedStateData (const std::string& blob) const;
    float juceValueFor (int index, float plain, float normalized) const;
    void store (int index, float plain, float normalized);
    float juceTarget (int index) const;
    void markPending (int index);
    std::vector<PortValue> portValues() const;

    std::shared_ptr<Host> host;
    Source loadedFrom;
    juce::PluginDescription description;
    PluginOptions opts;
    PluginInfo pluginInfo;
    InstancePtr instance;
    std::vector<ParameterInfo> params;
    std::vector<juce::AudioProcessorParameter*> juceParams;
    std::vector<float> plainValues, normalizedValues;
    bool messageParameters = false;   // parameter values travel inside process calls (LV2 patch, VST3)
    std::string freshState;           // fxgrad's own plugins: the state of a just-prepared instance
    bool renewOnReset = false;        // reset() takes a new instance (deactivation keeps DSP state)
    // JUCE's LV2 host wraps a port designated lv2:enabled in an inverted bypass parameter.
    int invertedParameter = -1;
    // LADSPA: declared port ranges, and JUCE's mapping from its [0, 1] coordinate to port values.
    std::unique_ptr<LadspaPorts> ladspa;
    // Parameters set since the last processBlock: a host hands changes to a plugin only there,
    // so reset() and the state (hence clone()) must carry them over explicitly.
    std::vector<int> pendingParameters;

    int bufferChannels = 0;
    ChannelRouting routing;
    std::vector<const float*> streamIn;            // per stream channel, within one block of process()
    std::vector<float*> streamOut;
    mutable juce::AudioBuffer<float> buffer;       // scratch, guarded by the mutex
    mutable juce::MidiBuffer midi;
    mutable std::recursive_mutex mutex;            // one caller at a time per instance
};

} // namespace fxgrad
