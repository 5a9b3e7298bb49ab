// TubeStage: a driven, biased, asymmetric tanh stage whose bias shifts with the signal, like the
// grid bias of a tube stage charged by grid conduction. Per channel:
//   u    = x * drive
//   env  follows max(u, 0): rises with a fixed 0.5 ms time constant, decays with recovery_ms
//   b    = bias - bias_follow * env                 the bias the stage sees now (history-dependent)
//   y    = tanh(u + b) - tanh(b)                    asymmetric; silence stays silence
//   y    -> DC blocker (one-pole high-pass, 10 Hz)
//   tone: tilt around 800 Hz, the band above a one-pole low-pass gets +tone*6 dB, below -tone*6 dB
//   out  = y * output gain
#pragma once

#include "Blocks.h"

namespace fxgrad::dsp
{

class TubeStage final : public Effect
{
public:
    static constexpr double envelopeAttackMs = 0.5;
    static constexpr double dcBlockerHz = 10.0;
    static constexpr double tiltPivotHz = 800.0;
    static constexpr double tiltRangeDb = 6.0;

    const std::vector<ParamSpec>& parameters() const override;
    void prepare (double sampleRate, int numChannels) override;
    void reset() override;
    void setParameters (const float* plainValues) override;
    void process (float* const* channels, int numSamples) override;
    void serialize (StateArchive& archive) override;

private:
    struct ChannelState
    {
        double envelope = 0.0, dcIn = 0.0, dcOut = 0.0, toneLow = 0.0;
    };

    double rate = 44100.0;
    int channelCount = 0;
    double drive = 1.0, bias = 0.0, follow = 0.0, attackCoef = 0.0, recoveryCoef = 0.0;
    double dcCoef = 0.0, toneCoef = 0.0, lowGain = 1.0, highGain = 1.0, outputGain = 1.0;
    std::vector<ChannelState> states;
};

} // namespace fxgrad::dsp
