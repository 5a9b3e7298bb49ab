// ParametricEQ: low shelf, three peaking bands and a high shelf (RBJ cookbook biquads in double
// precision), in series. A peaking band's magnitude at its centre frequency is exactly its gain; a
// low shelf reaches its gain at DC, a high shelf at Nyquist.
#pragma once

#include "Blocks.h"

namespace fxgrad::dsp
{

class ParametricEQ final : public Effect
{
public:
    static constexpr int numBands = 5;

    const std::vector<ParamSpec>& parameters() const override;
    void prepare (double sampleRate, int numChannels) override;
    void reset() override;
    void setParameters (const float* plainValues) override;
    void process (float* const* channels, int numSamples) override;
    void serialize (StateArchive& archive) override;

private:
    double rate = 44100.0;
    int channelCount = 0;
    Biquad filters[numBands];
    std::vector<BiquadState> states; // numBands per channel
};

} // namespace fxgrad::dsp
