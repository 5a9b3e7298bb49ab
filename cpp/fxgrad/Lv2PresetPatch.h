#pragma once
// A workaround for JUCE's LV2 host, which saves a plugin's state as a Turtle preset of its control
// ports: a port receives a value set through JUCE only in the next processBlock, so a state taken
// before that run still holds the old value (and so would every clone made from it). fxgrad
// writes the values set since the last run into the preset's text itself, as the port values JUCE
// will give the plugin. The text is what lilv writes: `lv2:symbol "ID" ; pset:value VALUE`.
#include <string>
#include <utility>
#include <vector>

namespace fxgrad {

/** `preset` with the pset:value of each (port symbol, value) replaced; a port the preset does not
    hold, or holds in another form, is left as it is. */
std::string withPortValues (std::string preset, const std::vector<std::pair<std::string, float>>& values);

} // namespace fxgrad
