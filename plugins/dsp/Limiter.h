// Limiter: lookahead brick-wall peak limiter. The audio is delayed by L = round(5 ms * rate)
// samples (the reported latency). For every input sample the gain that would bring its linked peak
// down to the ceiling is r[n] = min(1, ceiling / peak[n]); then
//   m[n] = min(r[n-L .. n])                            sliding minimum (monotonic deque)
//   e[n] = m[n] if m[n] < e[n-1], else m[n] + c_rel * (e[n-1] - m[n])   instant fall, slow release
//   g[n] = mean(e[n-L .. n])                           an L-sample linear attack ramp
// Each e[j] in the mean is <= m[j] <= r[n-L], so the delayed sample x[n-L] * g[n] never exceeds
// the ceiling. Samples already in the delay line when the settings change were planned for the
// old ones, so g[n] is also capped at ceiling / |x[n-L]| (inactive otherwise): a new ceiling holds
// at once. Everything runs sample by sample, so block size does not change the output.
#pragma once

#include <cstdint>

#include "Blocks.h"

namespace fxgrad::dsp
{

class Limiter final : public Effect
{
public:
    static constexpr double lookaheadMs = 5.0;

    const std::vector<ParamSpec>& parameters() const override;
    void prepare (double sampleRate, int numChannels) override;
    void reset() override;
    void setParameters (const float* plainValues) override;
    void process (float* const* channels, int numSamples) override;
    void serialize (StateArchive& archive) override;
    int latencySamples() const override { return lookahead; }

private:
    double rate = 44100.0;
    int channelCount = 0;
    int lookahead = 1;   // L
    int window = 2;      // L + 1
    double inputGain = 1.0, ceiling = 1.0, releaseCoef = 0.0;

    std::vector<double> delay;       // L per channel: input (after input gain) waiting for its gain
    std::vector<double> dequeValue;  // sliding-minimum deque as a ring of `window` entries
    std::vector<std::int64_t> dequeTime;
    std::vector<double> ramp;        // last `window` values of e, for the mean
    std::vector<double> scratch;     // delayed sample of each channel, within one sample step
    std::int64_t now = 0;
    std::int32_t delayPos = 0, rampPos = 0, dequeHead = 0, dequeCount = 0;
    double envelope = 1.0, rampSum = 0.0;
};

} // namespace fxgrad::dsp
