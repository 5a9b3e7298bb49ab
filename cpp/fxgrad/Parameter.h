#pragma once
// A plugin parameter as fxgrad presents it: plain units, the plugin's declared range and scale,
// and fxgrad's normalised [0,1] coordinate, which follows the declared scale (log ranges map
// logarithmically) so that SPSA's eps means the same relative step across the range.
#include <string>
#include <utility>
#include <vector>

namespace fxgrad {

enum class Scale { Linear, Logarithmic };

struct ParameterInfo {
    int index = 0;                 // index in the host's parameter list
    std::string id;                // LV2 port symbol, VST3 parameter id, LADSPA port name
    std::string name;
    std::string unit;
    float minimum = 0.0f;          // plain units
    float maximum = 1.0f;
    float defaultValue = 0.0f;     // plain units
    float defaultNormalized = 0.0f;
    Scale scale = Scale::Linear;
    int steps = 0;                 // 0: continuous; otherwise the number of distinct values
    bool isToggle = false;
    bool isInteger = false;
    bool automatable = true;
    bool isBypass = false;         // bypass/enable switches: never learned by default
    bool isTrigger = false;        // momentary buttons (LV2 pprops:trigger): never learned by default
    // VST3 and LADSPA declare no plain range to a JUCE host: the normalised value is the
    // plugin's own, and plain values are read from and written as the plugin's own text.
    bool plainFromText = false;
    std::vector<std::pair<float, std::string>> choices; // enumerations: (plain value, label)

    /** Declared-scale mapping; only for parameters whose range is declared (not plainFromText). */
    float toNormalized (float plain) const;
    float toPlain (float normalized) const;
    /** Plain value snapped to what the parameter can take (integers, choices). */
    float quantize (float plain) const;
    bool inRange (float plain) const;
};

/** Names within `candidates` close to `name` (case-insensitive edit distance), best first. */
std::vector<std::string> closeMatches (const std::string& name, const std::vector<std::string>& candidates,
                                       int maxResults = 5);

} // namespace fxgrad
