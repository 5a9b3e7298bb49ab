#include "MultibandCompressor.h"

namespace fxgrad::dsp
{

namespace
{
constexpr const char* bandIds[] = { "low", "mid", "high" };
constexpr const char* bandNames[] = { "Low", "Mid", "High" };
constexpr int bandParams = 5; // threshold, ratio, attack, release, makeup
constexpr int firstBandParam = 2; // after the two crossover frequencies
constexpr double butterworthQ = 0.70710678118654752440;
} // namespace

const std::vector<ParamSpec>& MultibandCompressor::parameters() const
{
    static const std::vector<ParamSpec> specs = []
    {
        std::vector<ParamSpec> s {
            { "xover_low_hz", "Xover Low (Hz)", "Hz", 40.0f, 1000.0f, 200.0f, Scale::logLike },
            { "xover_high_hz", "Xover High (Hz)", "Hz", 1000.0f, 12000.0f, 3000.0f, Scale::logLike },
        };

        for (int b = 0; b < numBands; ++b)
        {
            const std::string id = bandIds[b], name = std::string (", ") + bandNames[b];
            s.push_back ({ "threshold_db_" + id, "Threshold dB" + name, "dB", -60.0f, 0.0f, -20.0f, Scale::linear });
            s.push_back ({ "ratio_" + id, "Ratio" + name, "", 1.0f, 20.0f, 2.0f, Scale::logLike });
            s.push_back ({ "attack_ms_" + id, "Attack ms" + name, "ms", 0.1f, 200.0f, 10.0f, Scale::logLike });
            s.push_back ({ "release_ms_" + id, "Release ms" + name, "ms", 5.0f, 2000.0f, 100.0f, Scale::logLike });
            s.push_back ({ "makeup_db_" + id, "Makeup dB" + name, "dB", 0.0f, 24.0f, 0.0f, Scale::linear });
        }

        return s;
    }();
    return specs;
}

void MultibandCompressor::prepare (double sampleRate, int numChannels)
{
    rate = sampleRate;
    channelCount = numChannels;
    states.assign ((size_t) (numChannels * numStages), {});
    bands.assign ((size_t) (numChannels * numBands), 0.0);
    reset();
}

void MultibandCompressor::reset()
{
    std::fill (states.begin(), states.end(), BiquadState {});

    for (auto& computer : computers)
        computer.reset();
}

void MultibandCompressor::setParameters (const float* p)
{
    using T = Biquad::Type;
    lowPassLow = Biquad::design (T::lowPass, p[0], butterworthQ, 0.0, rate);
    highPassLow = Biquad::design (T::highPass, p[0], butterworthQ, 0.0, rate);
    lowPassHigh = Biquad::design (T::lowPass, p[1], butterworthQ, 0.0, rate);
    highPassHigh = Biquad::design (T::highPass, p[1], butterworthQ, 0.0, rate);
    allPassHigh = Biquad::design (T::allPass, p[1], butterworthQ, 0.0, rate);

    for (int b = 0; b < numBands; ++b)
    {
        const float* q = p + firstBandParam + b * bandParams;
        computers[b].setParameters (q[0], q[1], kneeDb, q[2], q[3], q[4], rate);
    }
}

void MultibandCompressor::process (float* const* channels, int numSamples)
{
    for (int n = 0; n < numSamples; ++n)
    {
        double peaks[numBands] = {};

        for (int c = 0; c < channelCount; ++c)
        {
            BiquadState* s = &states[(size_t) (c * numStages)];
            double* band = &bands[(size_t) (c * numBands)];
            const double x = channels[c][n];

            const double low = s[lowLp2].process (lowPassLow, s[lowLp1].process (lowPassLow, x));
            const double rest = s[restHp2].process (highPassLow, s[restHp1].process (highPassLow, x));
            band[0] = s[lowAp].process (allPassHigh, low);
            band[1] = s[midLp2].process (lowPassHigh, s[midLp1].process (lowPassHigh, rest));
            band[2] = s[highHp2].process (highPassHigh, s[highHp1].process (highPassHigh, rest));

            for (int b = 0; b < numBands; ++b)
                peaks[b] = std::max (peaks[b], std::abs (band[b]));
        }

        double gains[numBands];

        for (int b = 0; b < numBands; ++b)
            gains[b] = computers[b].process (peaks[b]);

        for (int c = 0; c < channelCount; ++c)
        {
            const double* band = &bands[(size_t) (c * numBands)];
            channels[c][n] = (float) (band[0] * gains[0] + band[1] * gains[1] + band[2] * gains[2]);
        }
    }
}

void MultibandCompressor::serialize (StateArchive& archive)
{
    archive (states);

    for (auto& computer : computers)
        computer.serialize (archive);
}

} // namespace fxgrad::dsp
