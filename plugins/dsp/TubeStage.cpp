#include "TubeStage.h"

namespace fxgrad::dsp
{

const std::vector<ParamSpec>& TubeStage::parameters() const
{
    static const std::vector<ParamSpec> specs {
        { "drive_db", "Drive (dB)", "dB", 0.0f, 36.0f, 12.0f, Scale::linear },
        { "bias", "Bias", "", -1.0f, 1.0f, 0.2f, Scale::linear },
        { "bias_follow", "Bias Follow (%)", "%", 0.0f, 100.0f, 30.0f, Scale::linear },
        { "recovery_ms", "Recovery (ms)", "ms", 1.0f, 1000.0f, 50.0f, Scale::logLike },
        { "tone", "Tone (%)", "%", -100.0f, 100.0f, 0.0f, Scale::linear },
        { "output_db", "Output (dB)", "dB", -24.0f, 24.0f, 0.0f, Scale::linear },
    };
    return specs;
}

void TubeStage::prepare (double sampleRate, int numChannels)
{
    rate = sampleRate;
    channelCount = numChannels;
    states.assign ((size_t) numChannels, {});
    attackCoef = timeCoefficient (envelopeAttackMs, rate);
    dcCoef = std::exp (-2.0 * pi * dcBlockerHz / rate);
    toneCoef = std::exp (-2.0 * pi * tiltPivotHz / rate);
}

void TubeStage::reset()
{
    std::fill (states.begin(), states.end(), ChannelState {});
}

void TubeStage::setParameters (const float* p)
{
    drive = dbToGain (p[0]);
    bias = p[1];
    follow = p[2] * 0.01;
    recoveryCoef = timeCoefficient (p[3], rate);
    highGain = dbToGain (p[4] * 0.01 * tiltRangeDb);
    lowGain = 1.0 / highGain;
    outputGain = dbToGain (p[5]);
}

void TubeStage::process (float* const* channels, int numSamples)
{
    for (int c = 0; c < channelCount; ++c)
    {
        ChannelState& s = states[(size_t) c];
        float* data = channels[c];

        for (int n = 0; n < numSamples; ++n)
        {
            const double u = data[n] * drive;
            s.envelope = u > s.envelope ? u + attackCoef * (s.envelope - u) : recoveryCoef * s.envelope;

            const double b = bias - follow * s.envelope;
            const double shaped = std::tanh (u + b) - std::tanh (b);

            const double blocked = shaped - s.dcIn + dcCoef * s.dcOut;
            s.dcIn = shaped;
            s.dcOut = blocked;

            s.toneLow = blocked + toneCoef * (s.toneLow - blocked);
            const double tilted = lowGain * s.toneLow + highGain * (blocked - s.toneLow);

            data[n] = (float) (tilted * outputGain);
        }
    }
}

void TubeStage::serialize (StateArchive& archive)
{
    archive (states);
}

} // namespace fxgrad::dsp
