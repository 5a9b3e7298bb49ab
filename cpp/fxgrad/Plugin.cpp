#include "Plugin.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "Errors.h"
#include "Finite.h"
#include "LadspaMetadata.h"
#include "Lv2Metadata.h"
#include "ParameterDiscovery.h"
#include "ParameterText.h"
#include "PluginOutput.h"

namespace fxgrad {


void Plugin::checkOptions (double sampleRate, int64_t blockSize, int64_t channels)
{
    if (! (sampleRate >= 8000.0 && sampleRate <= 768000.0))
        fail (ErrorKind::Value, "sample_rate must be between 8000 and 768000 Hz, got " + formatNumber ((float) sampleRate));
    if (blockSize < 1 || blockSize > 65536)
        fail (ErrorKind::Value, "block_size must be between 1 and 65536, got " + std::to_string (blockSize));
    if (channels < 1 || channels > 32)
        fail (ErrorKind::Value, "channels must be between 1 and 32, got " + std::to_string (channels));
}

std::shared_ptr<Plugin> Plugin::load (const std::string& identifierOrPath, const PluginOptions& options,
                                      const std::string& hint)
{
    checkOptions (options.sampleRate, options.blockSize, options.channels);
    auto host = Host::get();
    // Creating an instance touches JUCE's LV2 world at several points; one load at a time.
    std::lock_guard<std::recursive_mutex> world (host->worldMutex());
    auto description = host->resolve (identifierOrPath, hint);
    auto plugin = std::shared_ptr<Plugin> (new Plugin (host, std::move (description), options));
    plugin->loadedFrom = { identifierOrPath, hint };
    return plugin;
}

Plugin::Plugin (std::shared_ptr<Host> hostIn, juce::PluginDescription descriptionIn, const PluginOptions& options,
                bool probeReset)
    : host (std::move (hostIn)), description (std::move (descriptionIn)), opts (options)
{
    instance = host->instantiate (description, opts.sampleRate, opts.blockSize);
    pluginInfo = Host::describe (description);
    configureChannels();
    readParameters();
    prepare();
    // JUCE's LV2 host re-creates an instance from its full state on reset, which for fxgrad's
    // own plugins includes the DSP state: they reset from the state of a just-prepared instance.
    if (hasDspSnapshot() && isLv2())
        freshState = getState();
    if (isLv2()) {
        // LV2 plugins report their latency through an output port written by run(): one block
        // of silence makes it known, then the instance starts afresh.
        buffer.clear();
        instance->processBlock (buffer, midi);
        midi.clear();
        reset();
    } else {
        // JUCE's VST3 host reads the latency before the plugin's first activation has set it.
        instance->releaseResources();
        prepare();
    }
    // LADSPA's activate() and VST2/VST3's deactivation need not clear a plugin's DSP state
    // (caps' AmpVTS and LSP's VST2 builds keep theirs); reset() then takes a new instance, which
    // a LADSPA plugin (no state but its ports) makes in a fifth of a millisecond. For VST2 and
    // VST3 a second instance tells (probeResetKeepsState), once per plugin and options.
    if (ladspa != nullptr) {
        renewOnReset = true;
    } else if (probeReset && ! isLv2() && ! hasDspSnapshot()) {
        const auto key = description.pluginFormatName.toStdString() + "|" + description.createIdentifierString().toStdString()
                         + "|" + formatNumber (opts.sampleRate) + "|" + std::to_string (opts.blockSize) + "|"
                         + std::to_string (opts.channels);
        renewOnReset = host->resetKeepsState (key, [this] { return probeResetKeepsState(); });
    }
    settleMessages();
    host->registerOwner (this);
}

Plugin::~Plugin()
{
    if (! host->inCreatingProcess()) {
        // A forked child: freeing the instance needs the parent's message thread (and its
        // locks may have been held by a thread that was not copied). The process leaks it.
        (void) instance.release();
        return;
    }
    host->unregisterOwner (this);
    releaseInstances();
}

std::unique_lock<std::recursive_mutex> Plugin::lockForUse() const
{
    host->requireCreatingProcess();   // first: a forked child may inherit the mutex held
    return std::unique_lock<std::recursive_mutex> (mutex);
}

void Plugin::releaseInstances()
{
    std::lock_guard<std::recursive_mutex> lock (mutex);
    // Freeing an LV2 instance frees nodes of JUCE's LV2 world too.
    std::lock_guard<std::recursive_mutex> world (host->worldMutex());
    instance.reset();
}

juce::AudioPluginInstance& Plugin::live() const
{
    if (instance == nullptr)
        fail (ErrorKind::Closed, "plugin '" + pluginInfo.name + "' was released when the fxgrad host shut down");
    return *instance;
}

std::shared_ptr<Plugin> Plugin::clone() const
{
    const auto lock = lockForUse();
    std::unique_lock<std::recursive_mutex> world (host->worldMutex());
    auto copy = std::shared_ptr<Plugin> (new Plugin (host, description, opts));
    world.unlock();
    copy->loadedFrom = loadedFrom;
    copy->adopt (getState(), normalizedValues);
    return copy;
}

void Plugin::adopt (const std::string& state, const std::vector<float>& normalized)
{
    if (normalized.size() != params.size())
        fail (ErrorKind::Value, "expected " + std::to_string (params.size()) + " parameter values for '" + pluginInfo.name
              + "', got " + std::to_string (normalized.size()));
    setState (state);
    // An LV2 or LADSPA state holds every port value exactly; setting them again through the
    // normalised mapping would round log-scaled values (150 ms -> 149.99997 ms) and break bit-identity.
    // A value the state already gave is not set again: setting a VST3's program parameter
    // ("Current Program", DPF's) to the value it has loads that program later, on the message
    // thread, and put a copy's other parameters back to the program's values.
    for (int i = 0; i < numParameters(); ++i)
        if ((! (isLv2() || ladspa != nullptr) || params[(size_t) i].plainFromText)
            && normalizedValues[(size_t) i] != normalized[(size_t) i])
            setNormalized (i, normalized[(size_t) i]);
    reset();
}

void Plugin::configureChannels()
{
    auto& p = *instance;
    p.enableAllBuses();
    const int mainIn = p.getBusCount (true) > 0 ? p.getChannelCountOfBus (true, 0) : 0;
    const int mainOut = p.getBusCount (false) > 0 ? p.getChannelCountOfBus (false, 0) : 0;
    const int totalIn = p.getTotalNumInputChannels();
    const int totalOut = p.getTotalNumOutputChannels();
    if (mainOut < 1)
        fail (ErrorKind::PluginLoad, "plugin '" + pluginInfo.name + "' has no audio output: fxgrad hosts audio effects");
    // JUCE gives a LADSPA generator the default stereo input bus, which enableAllBuses() turns on
    // though no port reads it; the descriptor's port count (in pluginInfo) is the plugin's own.
    if (totalIn < 1 || (pluginInfo.format == "LADSPA" && pluginInfo.numInputs < 1))
        fail (ErrorKind::PluginLoad, "plugin '" + pluginInfo.name + "' has no audio input (an instrument or a generator): "
              "fxgrad hosts audio effects, which process the audio they are given");

    // JUCE's LV2 host puts ungrouped sidechain ports (lv2:isSideChain, e.g. ZamComp's) into the
    // main input bus; they count as sidechains here, not as main inputs.
    std::vector<int> mainChannels, sideChannels;
    {
        std::vector<bool> sideInMain;
        if (isLv2()) {
            std::lock_guard<std::recursive_mutex> world (host->worldMutex());
            sideInMain = host->lv2Metadata().mainBusSideChains (description.fileOrIdentifier.toStdString());
        }
        const bool known = (int) sideInMain.size() == mainIn
                           && std::find (sideInMain.begin(), sideInMain.end(), false) != sideInMain.end();
        for (int j = 0; j < totalIn; ++j)
            (j < mainIn && ! (known && sideInMain[(size_t) j]) ? mainChannels : sideChannels).push_back (j);
    }
    routing = ChannelRouting::plan (opts.channels, mainChannels, sideChannels, totalIn, mainOut);
    streamIn.resize ((size_t) opts.channels);
    streamOut.resize ((size_t) opts.channels);

    bufferChannels = std::max (totalIn, totalOut);
    buffer.setSize (bufferChannels, opts.blockSize);
    midi.ensureSize (256);
    pluginInfo.numInputs = totalIn;
    pluginInfo.numOutputs = totalOut;
}

void Plugin::prepare() { prepareOffline (live(), opts); }

void Plugin::prepareOffline (juce::AudioPluginInstance& p, const PluginOptions& options)
{
    // Not setPlayConfigDetails: it disables every bus but the main ones, and a plugin then gets
    // null buffers for the sidechains configureChannels() enabled and feeds (Calf's Envelope
    // Filter read them and crashed).
    p.setRateAndBufferSizeDetails (options.sampleRate, options.blockSize);
    p.prepareToPlay (options.sampleRate, options.blockSize);
    // After prepareToPlay: JUCE's LV2 host replaces the plugin's instance there, and the new one
    // starts in realtime mode, its LV2 work queued to JUCE's worker thread (cpp/CMakeLists.txt).
    p.setNonRealtime (true);
}

void Plugin::readParameters()
{
    std::map<std::string, ParameterInfo> declared;   // declared ranges, by JUCE's parameter id
    if (isLv2()) {
        std::lock_guard<std::recursive_mutex> world (host->worldMutex());
        declared = host->lv2Metadata().parameters (description.fileOrIdentifier.toStdString());
    } else if (description.pluginFormatName == "LADSPA") {
        // JUCE numbers a library's plugins by position, in uniqueId.
        ladspa = std::make_unique<LadspaPorts> (description.fileOrIdentifier.toStdString(),
                                                description.uniqueId != 0 ? description.uniqueId : description.deprecatedUid,
                                                opts.sampleRate);
        declared = ladspa->parameters();
    }
    auto found = discoverParameters (*instance, description.pluginFormatName, declared);
    params = std::move (found.infos);
    juceParams = std::move (found.handles);
    messageParameters = found.messageParameters;
    invertedParameter = found.invertedParameter;
    // JUCE's LADSPA host starts a port at its default but its coordinate at 0 for several kinds
    // of default (a [-12, 36] dB port defaulting to 0 dB reads as -12 dB): set both to the
    // declared default, moving the coordinate first since JUCE ignores a value it already has.
    if (ladspa != nullptr)
        for (size_t i = 0; i < params.size(); ++i)
            if (! params[i].plainFromText) {
                const float target = ladspa->hostValue ((int) i, params[i].defaultValue);
                juceParams[i]->setValue (target < 0.5f ? 1.0f : 0.0f);
                juceParams[i]->setValue (target);
            }
    refreshParameterCache();
}

void Plugin::refreshParameterCache()
{
    plainValues.assign (params.size(), std::nanf (""));
    normalizedValues.assign (params.size(), 0.0f);
    for (size_t i = 0; i < params.size(); ++i) {
        const auto& info = params[i];
        const float juceValue = (int) i == invertedParameter ? 1.0f - juceParams[i]->getValue() : juceParams[i]->getValue();
        if (info.plainFromText) {
            normalizedValues[i] = juceValue;
        } else {
            plainValues[i] = ladspa != nullptr ? ladspa->plainValue ((int) i, juceValue)
                                               : info.quantize (info.minimum + juceValue * (info.maximum - info.minimum));
            normalizedValues[i] = info.toNormalized (plainValues[i]);
        }
    }
}

int Plugin::requireIndex (int64_t index) const
{
    if (index < 0 || index >= numParameters())
        fail (ErrorKind::Value, "parameter index " + std::to_string (index) + " out of range for '" + pluginInfo.name
              + "' (" + std::to_string (numParameters()) + " parameters)");
    return (int) index;
}

int Plugin::findParameter (const std::string& name) const
{
    for (const auto& p : params)
        if (p.id == name)
            return p.index;
    for (const auto& p : params)
        if (p.name == name)
            return p.index;
    std::vector<std::string> ids;
    for (const auto& p : params)
        ids.push_back (p.id);
    const auto close = closeMatches (name, ids);
    std::string message = "'" + pluginInfo.name + "' has no parameter '" + name + "'";
    if (! close.empty()) {
        message += "; close matches: ";
        for (size_t i = 0; i < close.size(); ++i)
            message += (i ? ", " : "") + close[i];
    } else {
        message += "; `fxgrad info` lists its " + std::to_string (params.size()) + " parameters";
    }
    fail (ErrorKind::Key, message);
}

float Plugin::juceValueFor (int index, float plain, float normalized) const
{
    const auto& info = params[(size_t) index];
    if (info.plainFromText)
        return normalized;
    if (ladspa != nullptr)
        return ladspa->hostValue (index, plain);
    const float value = info.maximum > info.minimum ? (plain - info.minimum) / (info.maximum - info.minimum) : 0.0f;
    return index == invertedParameter ? 1.0f - value : value;
}

void Plugin::setPlain (int index, float plain)
{
    const auto lock = lockForUse();
    requireIndex (index);
    const auto& info = params[(size_t) index];
    if (! std::isfinite (plain))
        fail (ErrorKind::Value, "value for '" + info.id + "' is not finite");
    if (! info.inRange (plain))
        fail (ErrorKind::Value, "value " + formatNumber (plain) + " for '" + info.id + "' is outside its range ["
              + formatNumber (info.minimum) + ", " + formatNumber (info.maximum) + "]"
              + (info.unit.empty() ? "" : " " + info.unit));
    live();
    if (info.plainFromText) {
        const float normalized = info.choices.empty()
            ? (isVst2() ? invertDisplay (*juceParams[(size_t) index], plain)
                        : juceParams[(size_t) index]->getValueForText (juce::String (formatNumber (plain))))
            : (info.choices.size() > 1 ? std::round (plain) / (float) (info.choices.size() - 1) : 0.0f);
        store (index, plain, normalized);
    } else {
        const float snapped = info.quantize (std::clamp (plain, info.minimum, info.maximum));
        store (index, snapped, info.toNormalized (snapped));
    }
}

void Plugin::store (int index, float plain, float normalized)
{
    juceParams[(size_t) index]->setValue (juceValueFor (index, plain, normalized));
    markPending (index);
    plainValues[(size_t) index] = plain;
    normalizedValues[(size_t) index] = normalized;
}

float Plugin::getPlain (int index) const
{
    const auto lock = lockForUse();
    requireIndex (index);
    const auto i = (size_t) index;
    return std::isnan (plainValues[i]) ? plainFor (index, normalizedValues[i]) : plainValues[i];
}

float Plugin::plainFor (int index, float normalized) const
{
    std::lock_guard<std::recursive_mutex> lock (mutex);
    requireIndex (index);
    const auto& info = params[(size_t) index];
    if (! info.plainFromText)
        return info.quantize (info.toPlain (normalized));
    if (! info.choices.empty())
        return (float) std::lround (normalized * (float) (info.choices.size() - 1));
    const float parsed = parseLeadingNumber (displayText (*juceParams[(size_t) index], normalized, isVst2()));
    return std::isnan (parsed) ? normalized : parsed;
}

void Plugin::setNormalized (int index, float normalized)
{
    const auto lock = lockForUse();
    requireIndex (index);
    live();
    const auto& info = params[(size_t) index];
    if (! (normalized >= 0.0f && normalized <= 1.0f))
        fail (ErrorKind::Value, "normalised value " + formatNumber (normalized) + " for '" + info.id + "' is outside [0, 1]");
    // Plain values of text-mapped parameters are read back from the plugin's text on demand.
    store (index, info.plainFromText ? std::nanf ("") : info.toPlain (normalized), normalized);
}

float Plugin::getNormalized (int index) const
{
    const auto lock = lockForUse();
    requireIndex (index);
    return normalizedValues[(size_t) index];
}

void Plugin::process (const float* input, int64_t inputStride, float* output, int64_t outputStride, int64_t numSamples)
{
    const auto lock = lockForUse();
    auto& p = live();
    const int c = opts.channels;
    for (int ch = 0; ch < c; ++ch)
        if (hasNonFinite (input + ch * inputStride, numSamples))
            fail (ErrorKind::Value, "input audio for '" + pluginInfo.name + "' contains NaN or Inf (channel "
                  + std::to_string (ch) + ")");

    juce::ScopedNoDenormals noDenormals;
    for (int64_t offset = 0; offset < numSamples; offset += opts.blockSize) {
        const int n = (int) std::min<int64_t> (opts.blockSize, numSamples - offset);
        for (int ch = 0; ch < c; ++ch) {
            streamIn[(size_t) ch] = input + ch * inputStride + offset;
            streamOut[(size_t) ch] = output + ch * outputStride + offset;
        }
        juce::AudioBuffer<float> block (buffer.getArrayOfWritePointers(), bufferChannels, n);
        mixChannels (routing.inputSources, streamIn.data(), block.getArrayOfWritePointers(), bufferChannels, n);
        p.processBlock (block, midi);
        midi.clear();
        pendingParameters.clear();
        mixChannels (routing.outputSources, block.getArrayOfReadPointers(), streamOut.data(), c, n);
    }

    for (int ch = 0; ch < c; ++ch)
        if (hasNonFinite (output + ch * outputStride, numSamples))
            fail (ErrorKind::PluginOutput, "plugin '" + pluginInfo.name + "' (" + pluginInfo.identifier
                  + ") produced NaN or Inf output (channel " + std::to_string (ch) + ")");
}

void Plugin::markPending (int index)
{
    if (std::find (pendingParameters.begin(), pendingParameters.end(), index) == pendingParameters.end())
        pendingParameters.push_back (index);
}

float Plugin::juceTarget (int index) const
{
    const auto i = (size_t) index;
    return params[i].plainFromText ? normalizedValues[i] : juceValueFor (index, plainValues[i], normalizedValues[i]);
}

std::vector<PortValue> Plugin::portValues() const
{
    // The port values JUCE gave the plugin, or will give it in its next run (Lv2PresetPatch.h):
    // JUCE maps its [0, 1] value f to minimum + (maximum - minimum) * f.
    std::vector<PortValue> values;
    for (int index = 0; index < numParameters(); ++index) {
        const auto i = (size_t) index;
        const auto& info = params[i];
        if (info.plainFromText)
            continue;
        const bool pending = std::find (pendingParameters.begin(), pendingParameters.end(), index) != pendingParameters.end();
        float port;
        if (pending && index == invertedParameter) {
            port = plainValues[i];
        } else {
            float f = pending ? juceValueFor (index, plainValues[i], normalizedValues[i]) : juceParams[i]->getValue();
            if (! pending && index == invertedParameter)
                f = 1.0f - f;
            port = info.minimum + (info.maximum - info.minimum) * std::clamp (f, 0.0f, 1.0f);
        }
        values.push_back ({ info.id, port, pending });
    }
    return values;
}

void Plugin::reset()
{
    const auto lock = lockForUse();
    auto& p = live();
    if (! freshState.empty()) {
        // fxgrad's own plugins restore their complete DSP state from a state chunk; the chunk of
        // a just-prepared instance clears it exactly and cheaply. The parameters stay as set.
        std::vector<float> targets ((size_t) numParameters());
        for (int i = 0; i < numParameters(); ++i)
            targets[(size_t) i] = juceTarget (i);
        const auto plain = plainValues;
        const auto normalized = normalizedValues;
        setState (freshState);
        // The exact values the plugin had, so the output matches a fresh instance bit for bit.
        for (int i = 0; i < numParameters(); ++i)
            juceParams[(size_t) i]->setValue (targets[(size_t) i]);
        plainValues = plain;
        normalizedValues = normalized;
        return;
    }
    if (renewOnReset) {
        renewInstance();
        return;
    }
    // JUCE's LV2 host has no reset; preparing again re-creates the instance from its state,
    // which is what a fresh instance is. For VST2 and VST3 it deactivates and reactivates.
    std::unique_lock<std::recursive_mutex> world (host->worldMutex(), std::defer_lock);
    if (isLv2())
        world.lock();
    p.releaseResources();
    prepare();
    settleMessages();
    // JUCE's LV2 host re-created the instance from its control ports, which lack the values set
    // since the last processBlock, and took its parameters from them: set those again.
    for (const int index : pendingParameters)
        juceParams[(size_t) index]->setValue (juceTarget (index));
}

void Plugin::renewInstance()
{
    // A new instance given the live one's state and values: a fresh instance with the current
    // settings. (A LADSPA plugin's state is its ports, which the values carry.)
    OutputCapture capture;   // plugins talk as they restore a state ("Found standard VST 2.x chunk header")
    juce::MemoryBlock state;
    if (ladspa == nullptr)
        live().getStateInformation (state);
    std::vector<float> targets ((size_t) numParameters());
    for (int i = 0; i < numParameters(); ++i)
        targets[(size_t) i] = juceTarget (i);
    auto fresh = host->instantiate (description, opts.sampleRate, opts.blockSize);
    fresh->enableAllBuses();
    const auto& freshParameters = fresh->getParameters();
    if (freshParameters.size() != live().getParameters().size())
        fail (ErrorKind::PluginLoad, "'" + pluginInfo.name + "' has " + std::to_string (freshParameters.size())
              + " parameters in a new instance, " + std::to_string (live().getParameters().size()) + " in this one");
    for (int i = 0; i < numParameters(); ++i)
        juceParams[(size_t) i] = freshParameters[juceParams[(size_t) i]->getParameterIndex()];
    instance = std::move (fresh);
    prepare();
    if (state.getSize() > 0)
        instance->setStateInformation (state.getData(), (int) state.getSize());
    settleMessages();
    // Only the values the state did not give (a program parameter set to its own value loads
    // that program later: see adopt()).
    for (int i = 0; i < numParameters(); ++i)
        if (juceParams[(size_t) i]->getValue() != targets[(size_t) i])
            juceParams[(size_t) i]->setValue (targets[(size_t) i]);
}

void Plugin::settleMessages() const
{
    // A VST3 answers a new state, or its own activation, with restartComponent(), which JUCE's
    // host carries out later on the message thread: it re-reads every parameter from the edit
    // controller (and may re-prepare the plugin). A round trip through that thread's queue lets
    // what was posted before it run now, not in the middle of the next render.
    if (! isVst3())
        return;
    auto* messages = juce::MessageManager::getInstanceWithoutCreating();
    if (messages == nullptr || messages->isThisTheMessageThread())
        return;
    messages->callFunctionOnMessageThread ([] (void*) -> void* { return nullptr; }, nullptr);
}

bool Plugin::probeResetKeepsState() const
{
    // A second instance at settings spread over the ranges (switches included; at its defaults
    // a compressor may hold state that makes no sound yet) renders noise, is reset and renders
    // it again: a reset that clears the DSP state renders the same. (fxgrad check tells the
    // ones this misses: their state shows only at other settings.)
    Plugin probe (host, description, opts, false);
    uint32_t x = 0x9E3779B9u;
    const auto next = [&x] {
        x = x * 1664525u + 1013904223u;
        return (float) (x >> 8) / 16777216.0f;
    };
    for (int i = 0; i < probe.numParameters(); ++i) {
        const auto& info = probe.params[(size_t) i];
        if (info.automatable && info.maximum > info.minimum)
            probe.setNormalized (i, 0.15f + 0.7f * next());
    }
    // A quarter of a second past the plugin's latency: a delay line or a linear-phase filter
    // shows what it kept only once its latency has passed.
    const int64_t n = (int64_t) probe.latencySamples() + std::max<int64_t> (4 * (int64_t) opts.blockSize, (int64_t) (opts.sampleRate / 4));
    std::vector<float> noise ((size_t) opts.channels * (size_t) n), first (noise.size()), second (noise.size());
    for (auto& v : noise)
        v = 0.5f * next() - 0.25f;
    try {
        probe.process (noise.data(), n, first.data(), n, n);
        probe.reset();
        probe.process (noise.data(), n, second.data(), n, n);
    } catch (const std::exception&) {
        return false;   // a plugin that cannot render these settings is reported where it is used
    }
    return std::memcmp (first.data(), second.data(), first.size() * sizeof (float)) != 0;
}

int Plugin::latencySamples() const
{
    const auto lock = lockForUse();
    return live().getLatencySamples();
}

} // namespace fxgrad
