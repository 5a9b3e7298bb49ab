#include "ParameterDiscovery.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "ParameterText.h"

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

/** A parameter that can only be on or off: what a bypass or enable switch is. */
bool isSwitch (const ParameterInfo& info)
{
    return info.isToggle || info.steps == 2 || info.choices.size() == 2
        || (info.isInteger && info.minimum == 0.0f && info.maximum == 1.0f);
}

/** Bypass and enable switches by name: "bypass" anywhere; "enable", "power", "on/off" within
    the name of a switch (caps' AmpVTS "power" is a continuous knob, no bypass). VST2 declares no
    switches, so there a name that is exactly one of those words counts whatever the range. */
bool looksLikeBypass (const ParameterInfo& info, bool vst2)
{
    const auto id = snakeCase (info.id), name = snakeCase (info.name);
    if (id.find ("bypass") != std::string::npos || name.find ("bypass") != std::string::npos)
        return true;
    for (const char* word : { "enable", "enabled", "on_off", "power" })
        if ((vst2 && (id == word || name == word))
            || (isSwitch (info) && (id.find (word) != std::string::npos || name.find (word) != std::string::npos)))
            return true;
    return false;
}

/** VST3 plugins built with DPF (Zam's, Dragonfly's...) show the host's buffer size and sample
    rate as read-only parameters: reports of the host's settings, not settings of the plugin. */
bool isHostReport (const juce::AudioProcessorParameter& p)
{
    const auto name = p.getName (256).toStdString();
    return ! p.isAutomatable() && (name == "Buffer Size" || name == "Sample Rate");
}

/** A VST3 program selector (DPF's "Current Program", kIsProgramChange): it loads presets,
    which a host does through the plugin's programs, never by moving it as a setting. */
bool isProgramSelector (const juce::AudioProcessorParameter& p)
{
    const auto name = p.getName (256).toStdString();
    return name == "Current Program";
}

/** A parameter whose range the plugin declares (LV2, LADSPA). */
ParameterInfo fromDeclaration (ParameterInfo info)
{
    if (info.id.empty())
        info.id = snakeCase (info.name);
    info.defaultNormalized = info.toNormalized (info.defaultValue);
    return info;
}

/** A parameter the plugin describes only to JUCE: its range and default read from its text. */
ParameterInfo fromDisplay (juce::AudioProcessorParameter& p, bool vst2)
{
    ParameterInfo info;
    info.name = p.getName (256).toStdString();
    info.id = snakeCase (info.name);
    info.unit = p.getLabel().toStdString();
    info.plainFromText = true;
    info.isToggle = p.isBoolean();
    info.steps = p.isDiscrete() || p.isBoolean() ? p.getNumSteps() : 0;
    // VST2 declares no defaults (JUCE reads them from VSTXML files only): a fresh instance's
    // values are its defaults.
    info.defaultNormalized = vst2 ? p.getValue() : p.getDefaultValue();
    const auto labels = p.getAllValueStrings();
    if (p.isDiscrete() && labels.size() > 1)
        for (int k = 0; k < labels.size(); ++k)
            info.choices.emplace_back ((float) k, labels[k].toStdString());
    const float low = parseLeadingNumber (displayText (p, 0.0f, vst2));
    const float high = parseLeadingNumber (displayText (p, 1.0f, vst2));
    if (std::isfinite (low) && std::isfinite (high)) {
        info.minimum = std::min (low, high);
        info.maximum = std::max (low, high);
        const float shown = parseLeadingNumber (displayText (p, info.defaultNormalized, vst2));
        info.defaultValue = std::isnan (shown) ? info.defaultNormalized : shown;
    } else if (std::isnan (low) && std::isnan (high)) {
        // No number shown (choices, switches): the plain value is the normalised one.
        info.minimum = 0.0f, info.maximum = 1.0f;
        info.defaultValue = info.defaultNormalized;
    } else {
        // A number at one end only, or an infinite one ("-inf dB"): no plain range to speak of,
        // so the parameter is set in its normalised units.
        info.plainFromText = false;
        info.unit.clear();
        info.minimum = 0.0f, info.maximum = 1.0f;
        info.defaultValue = info.defaultNormalized;
    }
    return info;
}
} // namespace

DiscoveredParameters discoverParameters (juce::AudioPluginInstance& instance, const juce::String& format,
                                         const std::map<std::string, ParameterInfo>& declared)
{
    const bool lv2 = format == "LV2", vst2 = format == "VST";
    const auto* bypass = instance.getBypassParameter();
    std::set<std::string> usedIds;
    DiscoveredParameters found;

    for (auto* p : instance.getParameters()) {
        const auto* hosted = dynamic_cast<juce::HostedAudioProcessorParameter*> (p);
        const auto juceId = hosted != nullptr ? hosted->getParameterID().toStdString() : std::string();
        const auto port = declared.find (juceId);
        if (format == "LADSPA" && port == declared.end())
            continue;   // an output control port (LadspaPorts keeps only the inputs)
        if (format == "VST3" && isHostReport (*p))
            continue;
        // LV2 patch parameters and VST3 parameter changes reach the plugin inside a process call.
        if (juceId.rfind ("des:", 0) == 0 || format == "VST3")
            found.messageParameters = true;
        ParameterInfo info = port != declared.end() ? fromDeclaration (port->second) : fromDisplay (*p, vst2);
        info.index = (int) found.infos.size();
        info.automatable = info.automatable && p->isAutomatable() && ! (format == "VST3" && isProgramSelector (*p));
        info.isBypass = info.isBypass || p == bypass || looksLikeBypass (info, vst2);
        if (lv2 && p == bypass && port != declared.end())
            found.invertedParameter = info.index;
        while (! usedIds.insert (info.id).second)
            info.id += "_";
        found.infos.push_back (std::move (info));
        found.handles.push_back (p);
    }
    return found;
}

} // namespace fxgrad
