#include "ParametricEQ.h"

namespace fxgrad::dsp
{

namespace
{
struct BandInfo
{
    const char* id;
    const char* name;
    Biquad::Type type;
    float minHz, maxHz, defaultHz, defaultQ;
};

constexpr BandInfo bandInfo[ParametricEQ::numBands] = {
    { "low_shelf", "Low Shelf", Biquad::Type::lowShelf, 20.0f, 1000.0f, 100.0f, 0.707f },
    { "peak1", "Peak1", Biquad::Type::peaking, 20.0f, 20000.0f, 250.0f, 1.0f },
    { "peak2", "Peak2", Biquad::Type::peaking, 20.0f, 20000.0f, 1000.0f, 1.0f },
    { "peak3", "Peak3", Biquad::Type::peaking, 20.0f, 20000.0f, 4000.0f, 1.0f },
    { "high_shelf", "High Shelf", Biquad::Type::highShelf, 1000.0f, 20000.0f, 8000.0f, 0.707f },
};
} // namespace

const std::vector<ParamSpec>& ParametricEQ::parameters() const
{
    static const std::vector<ParamSpec> specs = []
    {
        std::vector<ParamSpec> s;

        for (const auto& band : bandInfo)
        {
            const std::string id = band.id, name = band.name;
            s.push_back ({ id + "_gain_db", name + " Gain (dB)", "dB", -18.0f, 18.0f, 0.0f, Scale::linear });
            s.push_back ({ id + "_freq_hz", name + " Freq (Hz)", "Hz", band.minHz, band.maxHz, band.defaultHz, Scale::logLike });
            s.push_back ({ id + "_q", name + " Q", "", 0.1f, 10.0f, band.defaultQ, Scale::logLike });
        }

        return s;
    }();
    return specs;
}

void ParametricEQ::prepare (double sampleRate, int numChannels)
{
    rate = sampleRate;
    channelCount = numChannels;
    states.assign ((size_t) (numChannels * numBands), {});
}

void ParametricEQ::reset()
{
    std::fill (states.begin(), states.end(), BiquadState {});
}

void ParametricEQ::setParameters (const float* p)
{
    for (int b = 0; b < numBands; ++b)
        filters[b] = Biquad::design (bandInfo[b].type, p[3 * b + 1], p[3 * b + 2], p[3 * b], rate);
}

void ParametricEQ::process (float* const* channels, int numSamples)
{
    for (int c = 0; c < channelCount; ++c)
    {
        BiquadState* s = &states[(size_t) (c * numBands)];

        for (int n = 0; n < numSamples; ++n)
        {
            double x = channels[c][n];

            for (int b = 0; b < numBands; ++b)
                x = s[b].process (filters[b], x);

            channels[c][n] = (float) x;
        }
    }
}

void ParametricEQ::serialize (StateArchive& archive)
{
    archive (states);
}

} // namespace fxgrad::dsp
