#include "Plugin.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <set>

#include "Errors.h"
#include "LadspaMetadata.h"
#include "Lv2Metadata.h"

namespace fxgrad {

namespace {
std::string snakeCase (const std::string& text)
{
    std::string out;
    for (unsigned char c : text) {
        if (std::isalnum (c))
            out += (char) std::tolower (c);
        else if (! out.empty() && out.back() != '_')
            out += '_';
    }
    while (! out.empty() && out.back() == '_')
        out.pop_back();
    return out.empty() ? "param" : out;
}

bool looksLikeBypass (const std::string& id, const std::string& name)
{
    const auto key = snakeCase (id + " " + name);
    for (const char* word : { "bypass", "enable", "enabled", "on_off", "power" })
        if (key.find (word) != std::string::npos)
            return true;
    return false;
}

// Leading number of a plugin's display text ("-12.0 dB" -> -12); NaN when there is none.
float parseLeadingNumber (const juce::String& text)
{
    const auto s = text.trim().toStdString();
    char* end = nullptr;
    const float v = std::strtof (s.c_str(), &end);
    return end == s.c_str() ? std::nanf ("") : v;
}

// True when any value is NaN or +-Inf. Works on the exponent bits so that it vectorises.
bool hasNonFinite (const float* data, int64_t n)
{
    uint32_t any = 0;
    for (int64_t i = 0; i < n; ++i) {
        uint32_t bits;
        std::memcpy (&bits, data + i, sizeof bits);
        any |= (uint32_t) ((bits & 0x7f800000u) == 0x7f800000u);
    }
    return any != 0;
}

std::string formatNumber (float v)
{
    char text[32];
    std::snprintf (text, sizeof text, "%.9g", (double) v);
    return text;
}

// A state is a header naming its plugin and the size and checksum of the plugin's own data,
// then that data. JUCE's hosts apply whatever they are given (an LV2 plugin resets to its
// defaults on garbage and crashes on Turtle that is not a preset; a LADSPA one reads as many
// floats as it has parameters, whatever the size), so setState() checks the header first.
const std::string stateMagic = "fxgrad-state ";
constexpr int stateVersion = 1;

uint64_t fnv1a (const std::string& data, size_t from)
{
    uint64_t hash = 0xcbf29ce484222325ull;
    for (size_t i = from; i < data.size(); ++i)
        hash = (hash ^ (unsigned char) data[i]) * 0x100000001b3ull;
    return hash;
}

std::string hex (uint64_t value)
{
    char text[24];
    std::snprintf (text, sizeof text, "%016llx", (unsigned long long) value);
    return text;
}

// The start of bytes from a blob, printable ASCII (messages become Python str: UTF-8 only).
std::string preview (const std::string& blob, size_t length = 24)
{
    std::string text;
    for (size_t i = 0; i < std::min (blob.size(), length); ++i) {
        const unsigned char c = (unsigned char) blob[i];
        if (c >= 32 && c < 127 && c != '\\') {
            text += (char) c;
        } else {
            char escaped[8];
            std::snprintf (escaped, sizeof escaped, "\\x%02x", c);
            text += escaped;
        }
    }
    return text + (blob.size() > length ? "..." : "");
}

// A plugin's own text for a normalised value. A VST2 plugin displays only its current value
// (effGetParamDisplay; JUCE's getText formats the number itself): the value is set for the
// question and put back.
juce::String displayText (juce::AudioProcessorParameter& p, float normalized, bool currentOnly)
{
    if (! currentOnly)
        return p.getText (normalized, 256);
    const float current = p.getValue();
    p.setValue (normalized);
    const auto text = p.getCurrentValueAsText();
    p.setValue (current);
    return text;
}

// The normalised value whose display reads `plain`. VST2 has no text-to-value call that JUCE
// makes, so the display is inverted, taken to be monotonic as parameter displays are: the linear
// guess (exact for linear parameters), else bisection to the closest reading.
float invertDisplay (juce::AudioProcessorParameter& p, float plain)
{
    const auto at = [&p] (float v) { return parseLeadingNumber (displayText (p, v, true)); };
    const float low = at (0.0f), high = at (1.0f);
    if (std::isnan (low) || std::isnan (high) || low == high)
        return std::clamp (plain, 0.0f, 1.0f);   // no number shown: the value is the normalised one
    const auto error = [&] (float v) { const float shown = at (v); return std::isnan (shown) ? INFINITY : std::abs (shown - plain); };
    const float guess = std::clamp ((plain - low) / (high - low), 0.0f, 1.0f);
    if (error (guess) == 0.0f)
        return guess;
    const bool rising = high > low;
    float lo = 0.0f, hi = 1.0f;
    for (int i = 0; i < 40 && hi - lo > 1e-7f; ++i) {
        const float mid = 0.5f * (lo + hi);
        ((at (mid) < plain) == rising ? lo : hi) = mid;
    }
    float best = guess;
    for (const float v : { lo, hi })
        if (error (v) < error (best))
            best = v;
    return best;
}
} // namespace

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

Plugin::Plugin (std::shared_ptr<Host> hostIn, juce::PluginDescription descriptionIn, const PluginOptions& options)
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
    for (int i = 0; i < numParameters(); ++i)
        if (! (isLv2() || ladspa != nullptr) || params[(size_t) i].plainFromText)
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
    if (totalIn < 1)
        fail (ErrorKind::PluginLoad, "plugin '" + pluginInfo.name + "' has no audio input (an instrument or a generator): "
              "fxgrad hosts audio effects, which process the audio they are given");
    const int c = opts.channels;

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
    const int numMain = (int) mainChannels.size();

    // Main inputs: one-to-one when the counts match, a mono input takes the average of the
    // stream, otherwise channels repeat cyclically. Other inputs (sidechains) get the main input.
    inputSources.assign ((size_t) totalIn, {});
    for (int k = 0; k < numMain; ++k) {
        auto& sources = inputSources[(size_t) mainChannels[(size_t) k]];
        if (numMain == 1 && c > 1)
            for (int s = 0; s < c; ++s)
                sources.push_back (s);
        else
            sources.push_back (k % c);
    }
    for (size_t k = 0; k < sideChannels.size(); ++k)
        inputSources[(size_t) sideChannels[k]] = numMain > 0 ? inputSources[(size_t) mainChannels[k % (size_t) numMain]]
                                                             : std::vector<int> { (int) k % c };

    // Outputs: one-to-one, a mono output feeds every stream channel, a mono stream takes the
    // average of the plugin's outputs, otherwise outputs repeat cyclically.
    outputSources.assign ((size_t) c, {});
    for (int s = 0; s < c; ++s) {
        if (c == 1 && mainOut > 1)
            for (int o = 0; o < mainOut; ++o)
                outputSources[0].push_back (o);
        else
            outputSources[(size_t) s].push_back (s % mainOut);
    }

    bufferChannels = std::max (totalIn, totalOut);
    buffer.setSize (bufferChannels, opts.blockSize);
    midi.ensureSize (256);
    pluginInfo.numInputs = totalIn;
    pluginInfo.numOutputs = totalOut;
}

void Plugin::prepare()
{
    auto& p = live();
    p.setNonRealtime (true);
    // Not setPlayConfigDetails: it disables every bus but the main ones, and a plugin then gets
    // null buffers for the sidechains configureChannels() enabled and feeds (Calf's Envelope
    // Filter read them and crashed).
    p.setRateAndBufferSizeDetails (opts.sampleRate, opts.blockSize);
    p.prepareToPlay (opts.sampleRate, opts.blockSize);
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
    const auto* bypass = instance->getBypassParameter();
    std::set<std::string> usedIds;

    for (auto* p : instance->getParameters()) {
        ParameterInfo info;
        const auto* hosted = dynamic_cast<juce::HostedAudioProcessorParameter*> (p);
        const auto juceId = hosted != nullptr ? hosted->getParameterID().toStdString() : std::string();
        const auto port = declared.find (juceId);
        // LV2 patch parameters and VST3 parameter changes reach the plugin inside a process call.
        if (juceId.rfind ("des:", 0) == 0 || description.pluginFormatName == "VST3")
            messageParameters = true;
        if (port != declared.end()) {
            info = port->second;
            if (info.id.empty())
                info.id = snakeCase (info.name);
            info.defaultNormalized = info.toNormalized (info.defaultValue);
        } else {
            info.name = p->getName (256).toStdString();
            info.id = snakeCase (info.name);
            info.unit = p->getLabel().toStdString();
            info.plainFromText = true;
            info.isToggle = p->isBoolean();
            info.steps = p->isDiscrete() || p->isBoolean() ? p->getNumSteps() : 0;
            // VST2 declares no defaults (JUCE reads them from VSTXML files only): a fresh
            // instance's values are its defaults.
            info.defaultNormalized = isVst2() ? p->getValue() : p->getDefaultValue();
            const auto labels = p->getAllValueStrings();
            if (p->isDiscrete() && labels.size() > 1)
                for (int k = 0; k < labels.size(); ++k)
                    info.choices.emplace_back ((float) k, labels[k].toStdString());
            const float low = parseLeadingNumber (displayText (*p, 0.0f, isVst2()));
            const float high = parseLeadingNumber (displayText (*p, 1.0f, isVst2()));
            if (std::isfinite (low) && std::isfinite (high)) {
                info.minimum = std::min (low, high);
                info.maximum = std::max (low, high);
                const float shown = parseLeadingNumber (displayText (*p, info.defaultNormalized, isVst2()));
                info.defaultValue = std::isnan (shown) ? info.defaultNormalized : shown;
            } else if (std::isnan (low) && std::isnan (high)) {
                // No number shown (choices, switches): the plain value is the normalised one.
                info.minimum = 0.0f, info.maximum = 1.0f;
                info.defaultValue = info.defaultNormalized;
            } else {
                // A number at one end only, or an infinite one ("-inf dB"): no plain range to
                // speak of, so the parameter is set in its normalised units.
                info.plainFromText = false;
                info.unit.clear();
                info.minimum = 0.0f, info.maximum = 1.0f;
                info.defaultValue = info.defaultNormalized;
            }
        }
        info.index = (int) params.size();
        info.automatable = info.automatable && p->isAutomatable();
        info.isBypass = info.isBypass || p == bypass || looksLikeBypass (info.id, info.name);
        if (isLv2() && p == bypass && port != declared.end())
            invertedParameter = (int) params.size();   // JUCE shows lv2:enabled as "bypass" = 1 - enabled
        while (! usedIds.insert (info.id).second)
            info.id += "_";
        params.push_back (std::move (info));
        juceParams.push_back (p);
    }
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
    const int numIn = (int) inputSources.size();
    for (int64_t offset = 0; offset < numSamples; offset += opts.blockSize) {
        const int n = (int) std::min<int64_t> (opts.blockSize, numSamples - offset);
        juce::AudioBuffer<float> block (buffer.getArrayOfWritePointers(), bufferChannels, n);
        for (int j = 0; j < bufferChannels; ++j) {
            float* dest = block.getWritePointer (j);
            if (j >= numIn) {
                std::fill (dest, dest + n, 0.0f);
                continue;
            }
            const auto& sources = inputSources[(size_t) j];
            std::copy_n (input + sources[0] * inputStride + offset, n, dest);
            if (sources.size() > 1) {
                for (size_t k = 1; k < sources.size(); ++k) {
                    const float* src = input + sources[k] * inputStride + offset;
                    for (int i = 0; i < n; ++i)
                        dest[i] += src[i];
                }
                const float scale = 1.0f / (float) sources.size();
                for (int i = 0; i < n; ++i)
                    dest[i] *= scale;
            }
        }
        p.processBlock (block, midi);
        midi.clear();
        pendingParameters.clear();
        for (int s = 0; s < c; ++s) {
            float* dest = output + s * outputStride + offset;
            const auto& sources = outputSources[(size_t) s];
            std::copy_n (block.getReadPointer (sources[0]), n, dest);
            if (sources.size() > 1) {
                for (size_t k = 1; k < sources.size(); ++k) {
                    const float* src = block.getReadPointer (sources[k]);
                    for (int i = 0; i < n; ++i)
                        dest[i] += src[i];
                }
                const float scale = 1.0f / (float) sources.size();
                for (int i = 0; i < n; ++i)
                    dest[i] *= scale;
            }
        }
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

std::string Plugin::withPendingPortValues (std::string state) const
{
    // JUCE's LV2 host saves the control ports, which receive values set since the last
    // processBlock only in the next one: write those values into the saved preset, as the port
    // values JUCE will give the plugin (lilv writes `lv2:symbol "ID" ; pset:value VALUE`).
    for (const int index : pendingParameters) {
        const auto& info = params[(size_t) index];
        if (info.plainFromText)
            continue;
        const float f = std::clamp (juceValueFor (index, plainValues[(size_t) index], normalizedValues[(size_t) index]), 0.0f, 1.0f);
        const float portValue = index == invertedParameter ? plainValues[(size_t) index]
                                                           : info.minimum + (info.maximum - info.minimum) * f;
        const std::string key = "lv2:symbol \"" + info.id + "\"";
        const auto at = state.find (key);
        auto value = at == std::string::npos ? at : state.find ("pset:value", at);
        if (value == std::string::npos || state.find ("lv2:symbol", at + key.size()) < value)
            continue;
        value = state.find_first_not_of (" \t\r\n", value + std::strlen ("pset:value"));
        const auto end = state.find_first_of (" \t\r\n;],", value);
        if (value == std::string::npos || end == std::string::npos)
            continue;
        auto text = formatNumber (portValue);
        if (text.find_first_of (".en") == std::string::npos)
            text += ".0";
        state.replace (value, end - value, text);
    }
    return state;
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
    // JUCE's LV2 host has no reset; preparing again re-creates the instance from its state,
    // which is what a fresh instance is. For VST3 and LADSPA it deactivates and reactivates.
    std::unique_lock<std::recursive_mutex> world (host->worldMutex(), std::defer_lock);
    if (isLv2())
        world.lock();
    p.releaseResources();
    prepare();
    // JUCE's LV2 host re-created the instance from its control ports, which lack the values set
    // since the last processBlock, and took its parameters from them: set those again.
    for (const int index : pendingParameters)
        juceParams[(size_t) index]->setValue (juceTarget (index));
}

std::string Plugin::getState() const
{
    const auto lock = lockForUse();
    // Values set since the last run have not reached a patch-parameter plugin yet.
    flushParameterMessages();
    juce::MemoryBlock block;
    std::unique_lock<std::recursive_mutex> world (host->worldMutex(), std::defer_lock);
    if (isLv2())
        world.lock();
    live().getStateInformation (block);
    std::string state (static_cast<const char*> (block.getData()), block.getSize());
    if (isLv2() && ! pendingParameters.empty())
        state = withPendingPortValues (std::move (state));
    return wrapState (state);
}

std::string Plugin::wrapState (const std::string& data) const
{
    return stateMagic + std::to_string (stateVersion) + "\n" + stateOwner() + "\n" + std::to_string (data.size()) + " "
           + hex (fnv1a (data, 0)) + "\n" + data;
}

std::string Plugin::pluginData() const
{
    const auto blob = getState();
    size_t at = 0;
    for (int line = 0; line < 3; ++line)
        at = blob.find ('\n', at) + 1;
    return blob.substr (at);
}

void Plugin::loadPluginData (const std::string& data)
{
    setState (wrapState (data));
}

std::string Plugin::stateOwner() const
{
    // LV2 plugins are their URI wherever the bundle lies; others their name and unique id.
    std::string owner = description.pluginFormatName.toStdString() + " "
                        + (isLv2() ? pluginInfo.identifier : pluginInfo.name + " " + hex ((uint32_t) description.uniqueId));
    std::replace (owner.begin(), owner.end(), '\n', ' ');
    return owner;
}

size_t Plugin::checkedStateData (const std::string& blob) const
{
    const auto describeMe = [&] { return "'" + pluginInfo.name + "' (" + pluginInfo.identifier + ")"; };
    if (blob.compare (0, stateMagic.size(), stateMagic) != 0)
        fail (ErrorKind::Value, "load_state: not a plugin state from fxgrad (Plugin.state gives one): "
              + std::to_string (blob.size()) + " bytes starting '" + preview (blob) + "'");
    const auto line = [&] (size_t from) {
        const auto end = blob.find ('\n', from);
        if (end == std::string::npos)
            fail (ErrorKind::Value, "load_state: the state's header is cut short (" + std::to_string (blob.size()) + " bytes)");
        return std::make_pair (blob.substr (from, end - from), end + 1);
    };
    const auto [version, ownerAt] = line (stateMagic.size());
    if (version != std::to_string (stateVersion))
        fail (ErrorKind::Value, "load_state: state format version '" + preview (version) + "'; this fxgrad reads version "
              + std::to_string (stateVersion));
    const auto [owner, sizeAt] = line (ownerAt);
    if (owner != stateOwner())
        fail (ErrorKind::Value, "load_state: the state belongs to another plugin (" + preview (owner, 200) + "), not to "
              + describeMe());
    const auto [sizeAndSum, dataAt] = line (sizeAt);
    unsigned long long declared = 0;
    char checksum[17] = {};
    if (std::sscanf (sizeAndSum.c_str(), "%llu %16[0-9a-f]", &declared, checksum) != 2
        || sizeAndSum != std::to_string (declared) + " " + checksum)
        fail (ErrorKind::Value, "load_state: the state's header is damaged ('" + preview (sizeAndSum) + "')");
    const auto actual = blob.size() - dataAt;
    if (actual != declared)
        fail (ErrorKind::Value, "load_state: the state for " + describeMe() + " is " + (actual < declared ? "truncated" : "too long")
              + ": its header declares " + std::to_string (declared) + " bytes of plugin data, " + std::to_string (actual)
              + " follow");
    if (hex (fnv1a (blob, dataAt)) != checksum)
        fail (ErrorKind::Value, "load_state: the state for " + describeMe() + " is corrupted: its data do not match its checksum");
    // JUCE's LADSPA host reads one float per parameter, whatever the size it is given.
    if (description.pluginFormatName == "LADSPA" && actual != (size_t) numParameters() * sizeof (float))
        fail (ErrorKind::Value, "load_state: a LADSPA state for " + describeMe() + " holds " + std::to_string (numParameters())
              + " floats, this one " + std::to_string (actual) + " bytes");
    return dataAt;
}

void Plugin::setState (const std::string& blob)
{
    const auto lock = lockForUse();
    const size_t dataAt = checkedStateData (blob);   // before anything changes
    // Values set since the last run travel to a patch-parameter plugin in the next one: deliver
    // them first, or they would land after the restored state and override it.
    flushParameterMessages();
    {
        std::unique_lock<std::recursive_mutex> world (host->worldMutex(), std::defer_lock);
        if (isLv2())
            world.lock();
        live().setStateInformation (blob.data() + dataAt, (int) (blob.size() - dataAt));
    }
    pendingParameters.clear();   // the state's values replace those set before
    flushParameterMessages();
    refreshParameterCache();
}

void Plugin::flushParameterMessages() const
{
    // Parameters that travel as LV2 patch messages move in run(), both ways; a run of zero
    // frames delivers them without touching the audio.
    if (! messageParameters)
        return;
    juce::AudioBuffer<float> empty (buffer.getArrayOfWritePointers(), bufferChannels, 0);
    live().processBlock (empty, midi);
    midi.clear();
}

int Plugin::latencySamples() const
{
    const auto lock = lockForUse();
    return live().getLatencySamples();
}

} // namespace fxgrad
