#include "ParameterText.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace fxgrad {

std::string formatNumber (float v)
{
    char text[32];
    std::snprintf (text, sizeof text, "%.9g", (double) v);
    return text;
}

float parseLeadingNumber (const juce::String& text)
{
    const auto s = text.trim().toStdString();
    char* end = nullptr;
    const float v = std::strtof (s.c_str(), &end);
    return end == s.c_str() ? std::nanf ("") : v;
}

juce::String displayText (juce::AudioProcessorParameter& p, float normalized, bool currentOnly)
{
    if (! currentOnly)
        return p.getText (normalized, 256);
    const float current = p.getValue();
    p.setValue (normalized);
    const auto text = p.getCurrentValueAsText();
    p.setValue (current);
    return text;
}

// The display is taken to be monotonic, as parameter displays are: the linear guess (exact for
// linear parameters), else bisection to the closest reading.
float invertDisplay (juce::AudioProcessorParameter& p, float plain)
{
    const auto at = [&p] (float v) { return parseLeadingNumber (displayText (p, v, true)); };
    const float low = at (0.0f), high = at (1.0f);
    if (std::isnan (low) || std::isnan (high) || low == high)
        return std::clamp (plain, 0.0f, 1.0f);   // no number shown: the value is the normalised one
    const auto error = [&] (float v) { const float shown = at (v); return std::isnan (shown) ? INFINITY : std::abs (shown - plain); };
    const float guess = std::clamp ((plain - low) / (high - low), 0.0f, 1.0f);
    if (error (guess) == 0.0f)
        return guess;
    const bool rising = high > low;
    float lo = 0.0f, hi = 1.0f;
    for (int i = 0; i < 40 && hi - lo > 1e-7f; ++i) {
        const float mid = 0.5f * (lo + hi);
        ((at (mid) < plain) == rising ? lo : hi) = mid;
    }
    float best = guess;
    for (const float v : { lo, hi })
        if (error (v) < error (best))
            best = v;
    return best;
}

} // namespace fxgrad
