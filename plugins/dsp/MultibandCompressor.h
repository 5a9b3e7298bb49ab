// MultibandCompressor: three bands split by Linkwitz-Riley 4th-order crossovers (each LR4 = two
// cascaded Butterworth biquads), one stereo-linked GainComputer per band, bands summed.
//
//   low  = AP_high(LP4_low(x))      the allpass matches the phase of the high crossover, so that
//   mid  = LP4_high(HP4_low(x))     with neutral bands the sum is AP_high(AP_low(x)): an allpass,
//   high = HP4_high(HP4_low(x))     flat in magnitude, with the crossovers' real group delay.
#pragma once

#include "Blocks.h"

namespace fxgrad::dsp
{

class MultibandCompressor final : public Effect
{
public:
    static constexpr int numBands = 3;
    // Fixed soft knee of every band's static curve.
    static constexpr double kneeDb = 6.0;

    const std::vector<ParamSpec>& parameters() const override;
    void prepare (double sampleRate, int numChannels) override;
    void reset() override;
    void setParameters (const float* plainValues) override;
    void process (float* const* channels, int numSamples) override;
    void serialize (StateArchive& archive) override;

private:
    // Biquad states of one channel, in the order of process().
    enum Stage { lowLp1, lowLp2, lowAp, restHp1, restHp2, midLp1, midLp2, highHp1, highHp2, numStages };

    double rate = 44100.0;
    int channelCount = 0;
    Biquad lowPassLow, highPassLow, lowPassHigh, highPassHigh, allPassHigh;
    GainComputer computers[numBands];
    std::vector<BiquadState> states; // numStages per channel
    std::vector<double> bands;       // scratch: numBands per channel for the current sample
};

} // namespace fxgrad::dsp
