#include "LadspaMetadata.h"

#include <ladspa.h>

#include <algorithm>
#include <cmath>

#include <juce_core/juce_core.h>

#include "Errors.h"

namespace fxgrad {

namespace {
// A library opened for as long as its descriptors are read (JUCE's host opens it on its own).
struct Library {
    explicit Library (const std::string& path)
    {
        if (library.open (path))
            entry = (LADSPA_Descriptor_Function) library.getFunction ("ladspa_descriptor");
    }
    const LADSPA_Descriptor* descriptor (int index) const
    {
        return entry != nullptr && index >= 0 ? entry ((unsigned long) index) : nullptr;
    }
    juce::DynamicLibrary library;
    LADSPA_Descriptor_Function entry = nullptr;
};

std::string text (const char* s) { return s != nullptr ? juce::String (s).trim().toStdString() : std::string(); }

// JUCE's LADSPA host: the port value for its coordinate u (LADSPAParameter::getNewParamScaled).
float juceScaled (int hints, float lowerBound, float upperBound, float sampleRate, float u)
{
    if (LADSPA_IS_HINT_TOGGLED (hints))
        return u < 0.5f ? 0.0f : 1.0f;
    const float scale = LADSPA_IS_HINT_SAMPLE_RATE (hints) ? sampleRate : 1.0f;
    const float lower = lowerBound * scale, upper = upperBound * scale;
    const auto toInt = [hints] (float v) { return LADSPA_IS_HINT_INTEGER (hints) ? (float) (int) v : v; };
    if (LADSPA_IS_HINT_BOUNDED_BELOW (hints) && LADSPA_IS_HINT_BOUNDED_ABOVE (hints)) {
        if (LADSPA_IS_HINT_LOGARITHMIC (hints) && lower > 0 && upper > 0)
            return toInt (std::exp (std::log (lower) * (1.0f - u) + std::log (upper) * u));
        return toInt (lower + (upper - lower) * u);
    }
    if (LADSPA_IS_HINT_BOUNDED_BELOW (hints))
        return toInt (u);
    if (LADSPA_IS_HINT_BOUNDED_ABOVE (hints))
        return toInt (u * upper);
    return 0.0f;
}
} // namespace

std::vector<LadspaPluginEntry> ladspaPlugins (const std::string& library)
{
    std::vector<LadspaPluginEntry> result;
    const Library lib (library);
    for (int i = 0;; ++i) {
        const auto* d = lib.descriptor (i);
        if (d == nullptr)
            break;
        LadspaPluginEntry entry { i, d->UniqueID, text (d->Label), text (d->Name) };
        for (unsigned long port = 0; port < d->PortCount; ++port)
            if (LADSPA_IS_PORT_AUDIO (d->PortDescriptors[port]))
                ++(LADSPA_IS_PORT_INPUT (d->PortDescriptors[port]) ? entry.audioInputs : entry.audioOutputs);
        result.push_back (entry);
    }
    return result;
}

LadspaPorts::LadspaPorts (const std::string& library, int pluginIndex, double sampleRateIn)
    : sampleRate (sampleRateIn)
{
    const Library lib (library);
    const auto* d = lib.descriptor (pluginIndex);
    if (d == nullptr)
        fail (ErrorKind::PluginLoad, "'" + library + "' holds no LADSPA plugin number " + std::to_string (pluginIndex));
    for (unsigned long i = 0; i < d->PortCount; ++i) {
        const auto kind = d->PortDescriptors[i];
        // Output control ports (meters, a compressor's gain reduction, latency) are the plugin's
        // to write: no parameter of fxgrad's (discoverParameters leaves JUCE's out too).
        if (! LADSPA_IS_PORT_CONTROL (kind) || ! LADSPA_IS_PORT_INPUT (kind))
            continue;
        const auto& hint = d->PortRangeHints[i];
        ports.push_back ({ (int) i, text (d->PortNames[i]), (int) hint.HintDescriptor, hint.LowerBound, hint.UpperBound });
    }
}

const LadspaPorts::Port& LadspaPorts::port (int parameterIndex) const
{
    if (parameterIndex < 0 || parameterIndex >= (int) ports.size())
        fail (ErrorKind::Value, "LADSPA control port " + std::to_string (parameterIndex) + " does not exist");
    return ports[(size_t) parameterIndex];
}

std::map<std::string, ParameterInfo> LadspaPorts::parameters() const
{
    std::map<std::string, ParameterInfo> result;
    for (const auto& p : ports) {
        const int h = p.hints;
        const float scale = LADSPA_IS_HINT_SAMPLE_RATE (h) ? (float) sampleRate : 1.0f;
        const bool below = LADSPA_IS_HINT_BOUNDED_BELOW (h), above = LADSPA_IS_HINT_BOUNDED_ABOVE (h);
        const float lower = p.lower * scale, upper = p.upper * scale;

        ParameterInfo info;
        info.name = p.name;             // the id is left to the host (the snake_case of the name)
        info.isToggle = LADSPA_IS_HINT_TOGGLED (h);
        info.isInteger = info.isToggle || LADSPA_IS_HINT_INTEGER (h);
        info.scale = LADSPA_IS_HINT_LOGARITHMIC (h) ? Scale::Logarithmic : Scale::Linear;
        // The range is what JUCE's host can give the port: the declared bounds when there are both;
        // with one bound JUCE passes its coordinate (times the upper bound), with none always 0.
        if (info.isToggle) {
            info.minimum = 0.0f, info.maximum = 1.0f;
        } else if (below && above) {
            info.minimum = lower, info.maximum = upper;
        } else if (below) {
            info.minimum = std::clamp (lower, 0.0f, 1.0f), info.maximum = 1.0f;
        } else if (above) {
            info.minimum = std::min (0.0f, upper), info.maximum = std::max (0.0f, upper);
        }
        if (info.maximum < info.minimum)
            std::swap (info.minimum, info.maximum);
        info.automatable = info.maximum > info.minimum;
        if (info.isInteger)
            info.steps = (int) std::lround (info.maximum - info.minimum) + 1;

        // LADSPA_HINT_DEFAULT_*: LOW/MIDDLE/HIGH lie a quarter/half/three quarters of the way,
        // geometrically on logarithmic ports.
        const auto between = [&] (float a) {
            if (LADSPA_IS_HINT_LOGARITHMIC (h) && lower > 0 && upper > 0)
                return std::exp (std::log (lower) * (1.0f - a) + std::log (upper) * a);
            return lower * (1.0f - a) + upper * a;
        };
        float fallback = 0.0f;
        switch (h & LADSPA_HINT_DEFAULT_MASK) {
            case LADSPA_HINT_DEFAULT_MINIMUM: fallback = lower; break;
            case LADSPA_HINT_DEFAULT_LOW:     fallback = between (0.25f); break;
            case LADSPA_HINT_DEFAULT_MIDDLE:  fallback = between (0.5f); break;
            case LADSPA_HINT_DEFAULT_HIGH:    fallback = between (0.75f); break;
            case LADSPA_HINT_DEFAULT_MAXIMUM: fallback = upper; break;
            case LADSPA_HINT_DEFAULT_1:       fallback = 1.0f; break;
            case LADSPA_HINT_DEFAULT_100:     fallback = 100.0f; break;
            case LADSPA_HINT_DEFAULT_440:     fallback = 440.0f; break;
            default:                          fallback = 0.0f; break;   // DEFAULT_0, or none declared
        }
        info.defaultValue = info.quantize (std::clamp (fallback, info.minimum, info.maximum));
        result.emplace (std::to_string (p.number), std::move (info));
    }
    return result;
}

float LadspaPorts::plainValue (int parameterIndex, float hostValue) const
{
    const auto& p = port (parameterIndex);
    return juceScaled (p.hints, p.lower, p.upper, (float) sampleRate, hostValue);
}

float LadspaPorts::hostValue (int parameterIndex, float plain) const
{
    const auto& p = port (parameterIndex);
    const int h = p.hints;
    const auto f = [&] (float u) { return juceScaled (h, p.lower, p.upper, (float) sampleRate, u); };
    const auto error = [&] (float u) { return std::abs (f (u) - plain); };
    if (LADSPA_IS_HINT_TOGGLED (h))
        return plain > 0.5f ? 1.0f : 0.0f;
    const float at0 = f (0.0f), at1 = f (1.0f);
    if (at0 == at1)
        return 0.0f;

    // The analytic inverse, then a few float steps to the coordinate JUCE maps closest (exactly
    // onto an integer port's value, which JUCE truncates); bisection where that does not reach it.
    float u;
    const float scale = LADSPA_IS_HINT_SAMPLE_RATE (h) ? (float) sampleRate : 1.0f;
    const float lower = p.lower * scale, upper = p.upper * scale;
    if (LADSPA_IS_HINT_BOUNDED_BELOW (h) && LADSPA_IS_HINT_BOUNDED_ABOVE (h))
        u = LADSPA_IS_HINT_LOGARITHMIC (h) && lower > 0 && upper > 0 && plain > 0
                ? (std::log (plain) - std::log (lower)) / (std::log (upper) - std::log (lower))
                : (plain - lower) / (upper - lower);
    else if (LADSPA_IS_HINT_BOUNDED_BELOW (h))
        u = plain;
    else
        u = plain / upper;
    u = std::clamp (u, 0.0f, 1.0f);
    const bool rising = at1 > at0;
    for (int step = 0; step < 8 && error (u) > 0.0f; ++step) {
        const float towards = (f (u) < plain) == rising ? 1.0f : 0.0f;
        const float next = std::nextafter (u, towards);
        if (next == u || error (next) > error (u))
            break;
        u = next;
    }
    if (error (u) == 0.0f)
        return u;
    float lo = 0.0f, hi = 1.0f;
    for (int i = 0; i < 200; ++i) {
        const float mid = lo + 0.5f * (hi - lo);
        if (mid <= lo || mid >= hi)
            break;
        ((f (mid) < plain) == rising ? lo : hi) = mid;
    }
    const float best = error (lo) <= error (hi) ? lo : hi;
    return error (best) < error (u) ? best : u;
}

} // namespace fxgrad
