#pragma once
// A workaround for JUCE's LV2 host, which saves a plugin's state as a Turtle preset of its control
// ports (lilv_state_to_string): a port receives a value set through JUCE only in the next
// processBlock, so a state taken before that run still holds the old value (and so would every
// clone made from it); and lilv writes port values with 8 decimals, which keeps 4 significant
// digits of 2.974e-05. fxgrad writes the port values into the preset's text itself, in full
// float precision. The text is what lilv writes: `lv2:symbol "ID" ; pset:value VALUE`.
#include <string>
#include <vector>

namespace fxgrad {

struct PortValue {
    std::string symbol;
    float value;
    bool pending;   // set since the last run: always written; otherwise only where the text is off
};

/** `preset` with the pset:value of each port replaced: a pending value always, another where
    the text's number is more than two float steps from it (lilv's 8 decimals); a
    port the preset does not hold, or holds in another form, is left as it is. */
std::string withPortValues (std::string preset, const std::vector<PortValue>& values);

} // namespace fxgrad
