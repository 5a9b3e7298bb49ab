#include "Gain.h"

#include <cmath>

namespace fxgrad::dsp
{

const std::vector<ParamSpec>& Gain::parameters() const
{
    static const std::vector<ParamSpec> specs {
        { "gain_db", "Gain (dB)", "dB", -24.0f, 24.0f, 0.0f, Scale::linear },
    };
    return specs;
}

void Gain::prepare (double, int numChannels)
{
    channelCount = numChannels;
}

void Gain::setParameters (const float* plainValues)
{
    gain = (float) std::pow (10.0, (double) plainValues[0] / 20.0);
}

void Gain::process (float* const* channels, int numSamples)
{
    for (int c = 0; c < channelCount; ++c)
        for (int n = 0; n < numSamples; ++n)
            channels[c][n] *= gain;
}

} // namespace fxgrad::dsp
