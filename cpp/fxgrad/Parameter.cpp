#include "Parameter.h"

#include <algorithm>
#include <cctype>
#include <cmath>

namespace fxgrad {

namespace {
bool usesLogScale (const ParameterInfo& p)
{
    return p.scale == Scale::Logarithmic && p.minimum > 0.0f && p.maximum > p.minimum;
}
} // namespace

float ParameterInfo::toNormalized (float plain) const
{
    if (maximum <= minimum)
        return 0.0f;

    if (! choices.empty() && steps > 1) {
        // Enumerations: evenly spaced positions in the order of their plain values.
        size_t nearest = 0;
        for (size_t i = 1; i < choices.size(); ++i)
            if (std::abs (choices[i].first - plain) < std::abs (choices[nearest].first - plain))
                nearest = i;
        return (float) nearest / (float) (choices.size() - 1);
    }

    double n;
    if (usesLogScale (*this))
        n = (std::log ((double) std::max (plain, minimum)) - std::log ((double) minimum))
            / (std::log ((double) maximum) - std::log ((double) minimum));
    else
        n = ((double) plain - minimum) / ((double) maximum - minimum);
    return (float) std::clamp (n, 0.0, 1.0);
}

float ParameterInfo::toPlain (float normalized) const
{
    const double n = std::clamp ((double) normalized, 0.0, 1.0);

    if (! choices.empty() && steps > 1)
        return choices[(size_t) std::lround (n * (double) (choices.size() - 1))].first;

    double plain;
    if (usesLogScale (*this))
        plain = std::exp (std::log ((double) minimum) + n * (std::log ((double) maximum) - std::log ((double) minimum)));
    else
        plain = (double) minimum + n * ((double) maximum - minimum);
    return quantize ((float) plain);
}

float ParameterInfo::quantize (float plain) const
{
    if (isToggle)
        return plain > 0.5f * (minimum + maximum) ? maximum : minimum;
    if (isInteger)
        return std::round (plain);
    return plain;
}

bool ParameterInfo::inRange (float plain) const
{
    const float tolerance = 1e-6f * std::max (1.0f, std::abs (maximum - minimum));
    return plain >= minimum - tolerance && plain <= maximum + tolerance;
}

namespace {
std::string lower (std::string s)
{
    std::transform (s.begin(), s.end(), s.begin(), [] (unsigned char c) { return (char) std::tolower (c); });
    return s;
}

size_t editDistance (const std::string& a, const std::string& b)
{
    std::vector<size_t> row (b.size() + 1);
    for (size_t j = 0; j <= b.size(); ++j)
        row[j] = j;
    for (size_t i = 1; i <= a.size(); ++i) {
        size_t diagonal = row[0];
        row[0] = i;
        for (size_t j = 1; j <= b.size(); ++j) {
            const size_t above = row[j];
            row[j] = std::min ({ row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0u : 1u) });
            diagonal = above;
        }
    }
    return row[b.size()];
}
} // namespace

std::vector<std::string> closeMatches (const std::string& name, const std::vector<std::string>& candidates, int maxResults)
{
    const auto key = lower (name);
    std::vector<std::pair<size_t, std::string>> scored;
    for (const auto& c : candidates) {
        const auto lc = lower (c);
        size_t d = editDistance (key, lc);
        if (lc.find (key) != std::string::npos || key.find (lc) != std::string::npos)
            d = std::min (d, (size_t) 1);
        if (d <= std::max<size_t> (2, key.size() / 3))
            scored.emplace_back (d, c);
    }
    std::stable_sort (scored.begin(), scored.end(), [] (auto& x, auto& y) { return x.first < y.first; });
    std::vector<std::string> result;
    for (size_t i = 0; i < scored.size() && (int) i < maxResults; ++i)
        result.push_back (scored[i].second);
    return result;
}

} // namespace fxgrad
