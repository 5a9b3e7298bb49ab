#include "Lv2PresetPatch.h"

#include <cstring>

#include "ParameterText.h"

namespace fxgrad {

std::string withPortValues (std::string preset, const std::vector<std::pair<std::string, float>>& values)
{
    for (const auto& [symbol, portValue] : values) {
        const std::string key = "lv2:symbol \"" + symbol + "\"";
        const auto at = preset.find (key);
        auto value = at == std::string::npos ? at : preset.find ("pset:value", at);
        if (value == std::string::npos || preset.find ("lv2:symbol", at + key.size()) < value)
            continue;
        value = preset.find_first_not_of (" \t\r\n", value + std::strlen ("pset:value"));
        const auto end = preset.find_first_of (" \t\r\n;],", value);
        if (value == std::string::npos || end == std::string::npos)
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
