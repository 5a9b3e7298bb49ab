// Plugin's state: read with every value set before it included, restored, and the preset files
// of VST3 (Steinberg's reader and writer, as JUCE's host calls them), VST2 (JUCE's .fxp) and LV2
// (lilv's preset bundles).
#include "Plugin.h"

#include <cstring>
#include <functional>

#include "Errors.h"
#include "Lv2PresetFile.h"
#include "Lv2PresetPatch.h"
#include "StateHeader.h"

namespace fxgrad {

namespace {
using Vst3Client = juce::ExtensionsVisitor::VST3Client;

/** Calls `use` with a VST3 instance's client extensions (Steinberg's PresetFile, through JUCE). */
void withVst3Client (juce::AudioPluginInstance& instance, const std::function<void (const Vst3Client&)>& use)
{
    struct Visitor : juce::ExtensionsVisitor {
        const std::function<void (const Vst3Client&)>* use = nullptr;
        void visitVST3Client (const Vst3Client& client) override { (*use) (client); }
    } visitor;
    visitor.use = &use;
    instance.getExtensions (visitor);
}

std::string toString (const juce::MemoryBlock& block)
{
    return std::string (static_cast<const char*> (block.getData()), block.getSize());
}

std::string stateInformation (juce::AudioPluginInstance& instance)
{
    juce::MemoryBlock block;
    instance.getStateInformation (block);
    return toString (block);
}
} // namespace

bool Plugin::changesNeedAudio() const
{
    // JUCE's VST3 host hands parameter changes to the processor inside its next process call.
    // A call of zero frames is the VST3 "parameter flush", which plugins built with JUCE (fxgrad's
    // own) honour; DPF's (Zam's) read the changes only in a call with audio, and a zero-frame call
    // makes JUCE forget them. So for any VST3 but fxgrad's own, values set since the last process
    // call are not in the processor, and must not be flushed with zero frames.
    return description.pluginFormatName == "VST3" && ! hasDspSnapshot();
}

InstancePtr Plugin::instanceWithPendingChanges() const
{
    // The live instance's state, the values set since its last process call, and one silent
    // frame to deliver them: the state a host would save after its next block, read without
    // dropping those values from the live instance or moving its DSP state on.
    juce::MemoryBlock state;
    live().getStateInformation (state);
    auto copy = host->instantiate (description, opts.sampleRate, opts.blockSize);
    copy->enableAllBuses();
    prepareOffline (*copy, opts);
    copy->setStateInformation (state.getData(), (int) state.getSize());
    // fxgrad's parameters are a subset of JUCE's (host reports such as DPF's "Buffer Size" are
    // left out): each is found in the copy by its JUCE index.
    const auto& copyParameters = copy->getParameters();
    if (copyParameters.size() != live().getParameters().size())
        fail (ErrorKind::PluginLoad, "'" + pluginInfo.name + "' has " + std::to_string (copyParameters.size())
              + " parameters in a second instance, " + std::to_string (live().getParameters().size()) + " in this one");
    for (const int index : pendingParameters)
        copyParameters[juceParams[(size_t) index]->getParameterIndex()]->setValue (juceTarget (index));
    juce::AudioBuffer<float> silence (std::max (1, bufferChannels), 1);
    silence.clear();
    juce::MidiBuffer events;
    copy->processBlock (silence, events);
    copy->releaseResources();
    return copy;
}

std::string Plugin::readCurrent (const std::function<std::string (juce::AudioPluginInstance&)>& read) const
{
    if (changesNeedAudio() && ! pendingParameters.empty())
        return read (*instanceWithPendingChanges());
    // Values set since the last run have not reached a patch-parameter LV2 plugin or one of
    // fxgrad's own VST3s yet: a run of zero frames delivers them.
    flushParameterMessages();
    std::unique_lock<std::recursive_mutex> world (host->worldMutex(), std::defer_lock);
    if (isLv2())
        world.lock();
    return read (live());
}

std::string Plugin::getState() const
{
    return wrapState (stateOwner (description, pluginInfo), pluginData());
}

std::string Plugin::pluginData() const
{
    const auto lock = lockForUse();
    std::string state = readCurrent (stateInformation);
    // JUCE's LV2 host gives port values set since the last run to the plugin in its next one,
    // and lilv writes the others with 8 decimals: fxgrad writes them in full (Lv2PresetPatch.h).
    if (isLv2())
        state = withPortValues (std::move (state), portValues());
    if (isVst2())
        state = withValuesSet (std::move (state));
    return state;
}

std::string Plugin::withValuesSet (std::string data) const
{
    // A VST2 host reads a parameter back through the plugin's getParameter(); DPF's plugins
    // answer normalise (plain (x)), for some parameters (ZamEQ2's gains) a float step away from
    // the x that was set, so a program loaded elsewhere rendered a little otherwise (1.8e-7).
    // A parameter-form program (FxCk, or the current one of an FxBk bank) carries the values
    // set; one further off (a switch the plugin snapped) stays the plugin's.
    const auto readInt = [&] (size_t at) {
        uint32_t v;
        std::memcpy (&v, data.data() + at, 4);
        return juce::ByteOrder::swapIfLittleEndian (v);
    };
    const auto magic = data.size() >= 12 ? data.substr (8, 4) : std::string();
    size_t valuesAt = 56;   // fxProgram: seven int32 fields, a 28-byte name, the values
    if (magic == "FxBk") {   // fxSet: seven int32 fields, 128 bytes reserved, the programs
        if (data.size() < 156 + 56)
            return data;
        const size_t programBytes = 56 + 4 * (size_t) readInt (156 + 24);
        valuesAt = 156 + programBytes * (size_t) std::max (0, live().getCurrentProgram()) + 56;
    } else if (magic != "FxCk") {
        return data;
    }
    for (size_t i = 0; i < params.size(); ++i) {
        const auto at = valuesAt + 4 * (size_t) juceParams[i]->getParameterIndex();
        if (at + 4 > data.size())
            continue;
        const uint32_t bits = readInt (at);
        float written, target = juceTarget ((int) i);
        std::memcpy (&written, &bits, 4);
        if (written != target && std::abs (written - target) <= 1.0e-6f) {
            uint32_t swapped;
            std::memcpy (&swapped, &target, 4);
            swapped = juce::ByteOrder::swapIfLittleEndian (swapped);
            std::memcpy (data.data() + at, &swapped, 4);
        }
    }
    return data;
}

void Plugin::loadPluginData (const std::string& data)
{
    setState (wrapState (stateOwner (description, pluginInfo), data));
}

size_t Plugin::checkedStateData (const std::string& blob) const
{
    const auto plugin = "'" + pluginInfo.name + "' (" + pluginInfo.identifier + ")";
    const size_t dataAt = checkStateHeader (blob, stateOwner (description, pluginInfo), plugin);
    // JUCE's LADSPA host reads one float per control port (outputs too, which are no parameter
    // of fxgrad's), whatever the size it is given.
    const auto actual = blob.size() - dataAt;
    const auto ports = (size_t) live().getParameters().size();
    if (description.pluginFormatName == "LADSPA" && actual != ports * sizeof (float))
        fail (ErrorKind::Value, "load_state: a LADSPA state for " + plugin + " holds " + std::to_string (ports)
              + " floats, this one " + std::to_string (actual) + " bytes");
    return dataAt;
}

void Plugin::setState (const std::string& blob)
{
    const auto lock = lockForUse();
    const size_t dataAt = checkedStateData (blob);   // before anything changes
    // Values set since the last run travel to a patch-parameter plugin in the next one: deliver
    // them first (or, for a VST3 that takes them only with audio, drop them), or they would land
    // after the restored state and override it.
    flushParameterMessages();
    {
        std::unique_lock<std::recursive_mutex> world (host->worldMutex(), std::defer_lock);
        if (isLv2())
            world.lock();
        live().setStateInformation (blob.data() + dataAt, (int) (blob.size() - dataAt));
    }
    pendingParameters.clear();   // the state's values replace those set before
    flushParameterMessages();
    settleMessages();
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

std::string Plugin::vst3Preset() const
{
    const auto lock = lockForUse();
    if (description.pluginFormatName != "VST3")
        fail (ErrorKind::Value, "'" + pluginInfo.name + "' is " + pluginInfo.format + ", not VST3: no .vstpreset");
    const auto file = readCurrent ([] (juce::AudioPluginInstance& p) {
        std::string bytes;
        withVst3Client (p, [&] (const Vst3Client& client) { bytes = toString (client.getPreset()); });
        return bytes;
    });
    if (file.empty())
        fail (ErrorKind::PluginOutput, "'" + pluginInfo.name + "' saved no VST3 preset (Steinberg's PresetFile::savePreset failed)");
    return file;
}

void Plugin::loadVst3Preset (const std::string& file)
{
    const auto lock = lockForUse();
    if (description.pluginFormatName != "VST3")
        fail (ErrorKind::Value, "'" + pluginInfo.name + "' is " + pluginInfo.format + ": a .vstpreset is for VST3 plugins");
    flushParameterMessages();   // the preset replaces the values set before it
    bool loaded = false;
    auto& p = live();
    withVst3Client (p, [&] (const Vst3Client& client) { loaded = client.setPreset (juce::MemoryBlock (file.data(), file.size())); });
    if (! loaded)
        fail (ErrorKind::Value, "Steinberg's preset reader refused this .vstpreset for '" + pluginInfo.name
              + "' (a preset of another plugin, or a damaged file)");
    // The reader sets the component's and controller's states but not JUCE's copy of the
    // parameter values; taking JUCE's state and restoring it reads them from the controller.
    const auto state = stateInformation (p);
    p.setStateInformation (state.data(), (int) state.size());
    pendingParameters.clear();
    refreshParameterCache();
}

std::string Plugin::vst2Program() const
{
    const auto lock = lockForUse();
    if (! isVst2())
        fail (ErrorKind::Value, "'" + pluginInfo.name + "' is " + pluginInfo.format + ", not VST2: no .fxp");
    juce::MemoryBlock block;
    live().getCurrentProgramStateInformation (block);
    return withValuesSet (toString (block));
}

std::string Plugin::lv2Preset (const std::string& fileUri, const std::string& label) const
{
    if (! isLv2())
        fail (ErrorKind::Value, "'" + pluginInfo.name + "' is " + pluginInfo.format + ", not LV2: no LV2 preset");
    const auto lock = lockForUse();
    const auto state = pluginData();
    std::lock_guard<std::recursive_mutex> world (host->worldMutex());   // serd and sord, as JUCE's world uses them
    // lilv's serialisation keeps 8 decimals of each port value: the full values go back in.
    return withPortValues (lv2PresetFile (state, label, fileUri), portValues());
}

void Plugin::loadLv2Preset (const std::string& path)
{
    if (! isLv2())
        fail (ErrorKind::Value, "'" + pluginInfo.name + "' is " + pluginInfo.format + ": an LV2 preset is for LV2 plugins");
    Lv2Preset preset;
    {
        std::lock_guard<std::recursive_mutex> world (host->worldMutex());
        preset = readLv2Preset (path);
    }
    // JUCE's LV2 host identifies a plugin by its URI.
    if (preset.pluginUri != pluginInfo.identifier)
        fail (ErrorKind::Value, path + " applies to " + (preset.pluginUri.empty() ? "no plugin" : preset.pluginUri)
              + ", not to " + pluginInfo.identifier);
    loadPluginData (preset.state);
}

} // namespace fxgrad
