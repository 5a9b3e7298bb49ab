// Gain: multiplies every sample by 10^(gain_db / 20), computed in double and rounded once to float,
// so that x * float32(10 ** (gain_db / 20)) is its exact ground truth. Stateless.
#pragma once

#include "Effect.h"

namespace fxgrad::dsp
{

class Gain final : public Effect
{
public:
    const std::vector<ParamSpec>& parameters() const override;
    void prepare (double sampleRate, int numChannels) override;
    void reset() override {}
    void setParameters (const float* plainValues) override;
    void process (float* const* channels, int numSamples) override;
    void serialize (StateArchive&) override {}

private:
    int channelCount = 0;
    float gain = 1.0f;
};

} // namespace fxgrad::dsp
