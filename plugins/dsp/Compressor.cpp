#include "Compressor.h"

namespace fxgrad::dsp
{

const std::vector<ParamSpec>& Compressor::parameters() const
{
    static const std::vector<ParamSpec> specs {
        { "threshold_db", "Threshold (dB)", "dB", -60.0f, 0.0f, -20.0f, Scale::linear },
        { "ratio", "Ratio", "", 1.0f, 20.0f, 4.0f, Scale::logLike },
        { "knee_db", "Knee (dB)", "dB", 0.0f, 24.0f, 6.0f, Scale::linear },
        { "attack_ms", "Attack (ms)", "ms", 0.1f, 200.0f, 10.0f, Scale::logLike },
        { "release_ms", "Release (ms)", "ms", 5.0f, 2000.0f, 100.0f, Scale::logLike },
        { "makeup_db", "Makeup (dB)", "dB", 0.0f, 24.0f, 0.0f, Scale::linear },
    };
    return specs;
}

void Compressor::prepare (double sampleRate, int numChannels)
{
    rate = sampleRate;
    channelCount = numChannels;
    reset();
}

void Compressor::reset()
{
    computer.reset();
}

void Compressor::setParameters (const float* p)
{
    computer.setParameters (p[0], p[1], p[2], p[3], p[4], p[5], rate);
}

void Compressor::process (float* const* channels, int numSamples)
{
    for (int n = 0; n < numSamples; ++n)
    {
        double peak = 0.0;

        for (int c = 0; c < channelCount; ++c)
            peak = std::max (peak, std::abs ((double) channels[c][n]));

        const double gain = computer.process (peak);

        for (int c = 0; c < channelCount; ++c)
            channels[c][n] = (float) (channels[c][n] * gain);
    }
}

void Compressor::serialize (StateArchive& archive)
{
    computer.serialize (archive);
}

} // namespace fxgrad::dsp
