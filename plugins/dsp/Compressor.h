// Compressor: feed-forward, stereo-linked (the peak of all channels drives one gain), log-domain
// design of Giannoulis, Massberg & Reiss (2012); see GainComputer in Blocks.h.
#pragma once

#include "Blocks.h"

namespace fxgrad::dsp
{

class Compressor final : public Effect
{
public:
    const std::vector<ParamSpec>& parameters() const override;
    void prepare (double sampleRate, int numChannels) override;
    void reset() override;
    void setParameters (const float* plainValues) override;
    void process (float* const* channels, int numSamples) override;
    void serialize (StateArchive& archive) override;

private:
    double rate = 44100.0;
    int channelCount = 0;
    GainComputer computer;
};

} // namespace fxgrad::dsp
