#include "Limiter.h"

namespace fxgrad::dsp
{

const std::vector<ParamSpec>& Limiter::parameters() const
{
    static const std::vector<ParamSpec> specs {
        { "input_gain_db", "Input Gain (dB)", "dB", -24.0f, 24.0f, 0.0f, Scale::linear },
        { "ceiling_db", "Ceiling (dB)", "dB", -24.0f, 0.0f, -1.0f, Scale::linear },
        { "release_ms", "Release (ms)", "ms", 1.0f, 1000.0f, 50.0f, Scale::logLike },
    };
    return specs;
}

void Limiter::prepare (double sampleRate, int numChannels)
{
    rate = sampleRate;
    channelCount = numChannels;
    lookahead = std::max (1, (int) std::lround (lookaheadMs * 0.001 * sampleRate));
    window = lookahead + 1;
    delay.assign ((size_t) (numChannels * lookahead), 0.0);
    dequeValue.assign ((size_t) window, 0.0);
    dequeTime.assign ((size_t) window, 0);
    ramp.assign ((size_t) window, 1.0);
    scratch.assign ((size_t) numChannels, 0.0);
    reset();
}

void Limiter::reset()
{
    std::fill (delay.begin(), delay.end(), 0.0);
    std::fill (ramp.begin(), ramp.end(), 1.0);
    now = 0;
    delayPos = rampPos = dequeHead = dequeCount = 0;
    envelope = 1.0;
    rampSum = (double) window;
}

void Limiter::setParameters (const float* p)
{
    inputGain = dbToGain (p[0]);
    ceiling = dbToGain (p[1]);
    releaseCoef = timeCoefficient (p[2], rate);
}

void Limiter::process (float* const* channels, int numSamples)
{
    for (int n = 0; n < numSamples; ++n)
    {
        double peak = 0.0, delayedPeak = 0.0;

        for (int c = 0; c < channelCount; ++c)
        {
            const double x = channels[c][n] * inputGain;
            double& slot = delay[(size_t) (c * lookahead + delayPos)];
            scratch[(size_t) c] = slot;
            delayedPeak = std::max (delayedPeak, std::abs (slot));
            slot = x;
            peak = std::max (peak, std::abs (x));
        }

        if (++delayPos == lookahead)
            delayPos = 0;

        const double required = peak > ceiling ? ceiling / peak : 1.0;

        // Sliding minimum over the last `window` samples: drop expired entries, then entries that
        // can never be the minimum again, then append.
        if (dequeCount > 0 && dequeTime[(size_t) dequeHead] + window <= now)
        {
            dequeHead = (dequeHead + 1) % window;
            --dequeCount;
        }

        while (dequeCount > 0 && dequeValue[(size_t) ((dequeHead + dequeCount - 1) % window)] >= required)
            --dequeCount;

        const auto tail = (size_t) ((dequeHead + dequeCount) % window);
        dequeValue[tail] = required;
        dequeTime[tail] = now;
        ++dequeCount;
        ++now;

        const double minimum = dequeValue[(size_t) dequeHead];
        envelope = minimum < envelope ? minimum : minimum + releaseCoef * (envelope - minimum);

        rampSum += envelope - ramp[(size_t) rampPos];
        ramp[(size_t) rampPos] = envelope;

        if (++rampPos == window)
        {
            // Re-add from scratch once per window so rounding in the running sum cannot accumulate.
            rampPos = 0;
            rampSum = 0.0;

            for (double v : ramp)
                rampSum += v;
        }

        // The ramp alone keeps a steady ceiling; the cap keeps a changed one (see Limiter.h).
        const double gain = std::min (rampSum / window, delayedPeak > ceiling ? ceiling / delayedPeak : 1.0);

        for (int c = 0; c < channelCount; ++c)
            channels[c][n] = (float) (scratch[(size_t) c] * gain);
    }
}

void Limiter::serialize (StateArchive& archive)
{
    archive (delay);
    archive (dequeValue);
    archive (dequeTime);
    archive (ramp);
    archive (now);
    archive (delayPos);
    archive (rampPos);
    archive (dequeHead);
    archive (dequeCount);
    archive (envelope);
    archive (rampSum);
}

} // namespace fxgrad::dsp
