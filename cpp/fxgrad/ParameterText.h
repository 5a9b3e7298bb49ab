#pragma once
// A parameter through the plugin's own display text: VST3, VST2 and LADSPA declare no plain range
// to a JUCE host, so plain values are read from the text a plugin shows for a normalised value,
// and set by inverting it. Also the one way fxgrad writes a number as text.
#include <string>

#include <juce_audio_processors/juce_audio_processors.h>

namespace fxgrad {

/** A value as text, exactly enough to read back the same float ("%.9g"). */
std::string formatNumber (float);

/** The leading number of a plugin's display text ("-12.0 dB" -> -12); NaN when there is none. */
float parseLeadingNumber (const juce::String& text);

/** A plugin's own text for a normalised value. `currentOnly` (VST2): the plugin displays only
    its current value (effGetParamDisplay; JUCE's getText formats the number itself), so the
    value is set for the question and put back. */
juce::String displayText (juce::AudioProcessorParameter&, float normalized, bool currentOnly);

/** The normalised value whose display reads `plain`, for VST2, which has no text-to-value call
    that JUCE makes. */
float invertDisplay (juce::AudioProcessorParameter&, float plain);

} // namespace fxgrad
