#pragma once
// A hosted plugin's parameters in fxgrad's terms (ParameterInfo): ids, plain ranges, defaults,
// choices and switches, from what the plugin declares outside JUCE (LV2 and LADSPA ranges) or,
// where it declares nothing to a JUCE host (VST3, VST2), from its display text.
#include <map>
#include <string>
#include <vector>

#include <juce_audio_processors/juce_audio_processors.h>

#include "Parameter.h"

namespace fxgrad {

struct DiscoveredParameters {
    std::vector<ParameterInfo> infos;                      // index i: JUCE's parameter i
    std::vector<juce::AudioProcessorParameter*> handles;
    bool messageParameters = false;   // values travel inside process calls (LV2 patch, VST3)
    int invertedParameter = -1;       // JUCE's LV2 host shows lv2:enabled as "bypass" = 1 - enabled
};

/** The parameters of `instance`, a plugin of JUCE's format `format` ("LV2", "VST3", "VST",
    "LADSPA"). `declared`: the ranges the plugin declares, by JUCE's parameter id. Ids are unique
    (a repeated one gets trailing underscores). */
DiscoveredParameters discoverParameters (juce::AudioPluginInstance& instance, const juce::String& format,
                                         const std::map<std::string, ParameterInfo>& declared);

} // namespace fxgrad
