#include "Lv2PresetPatch.h"

#include <cmath>
#include <cstdlib>
#include <cstring>

#include "ParameterText.h"

namespace fxgrad {

std::string withPortValues (std::string preset, const std::vector<PortValue>& values)
{
    for (const auto& [symbol, portValue, pending] : values) {
        const std::string key = "lv2:symbol \"" + symbol + "\"";
        const auto at = preset.find (key);
        auto value = at == std::string::npos ? at : preset.find ("pset:value", at);
        if (value == std::string::npos || preset.find ("lv2:symbol", at + key.size()) < value)
            continue;
        value = preset.find_first_not_of (" \t\r\n", value + std::strlen ("pset:value"));
        const auto end = preset.find_first_of (" \t\r\n;],", value);
        if (value == std::string::npos || end == std::string::npos)
            continue;
        const float written = std::strtof (preset.substr (value, end - value).c_str(), nullptr);
        // Within two float steps the text holds the value JUCE gave (fxgrad's copy of it can be
        // a step off); further away it is lilv's rounding to 8 decimals.
        const float step = std::nextafter (std::abs (portValue), INFINITY) - std::abs (portValue);
        if (! pending && std::abs (written - portValue) <= 2.0f * step)
            continue;
        // A Turtle number without '.' or an exponent is an xsd:integer; port values are floats.
        auto text = formatNumber (portValue);
        if (text.find_first_of (".en") == std::string::npos)
            text += ".0";
        preset.replace (value, end - value, text);
    }
    return preset;
}

} // namespace fxgrad
