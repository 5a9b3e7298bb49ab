// Small DSP building blocks shared by the effects: RBJ biquads in double precision, dB helpers and
// the log-domain compressor gain computer.
#pragma once

#include <algorithm>
#include <cmath>

#include "Effect.h"

namespace fxgrad::dsp
{

constexpr double pi = 3.14159265358979323846;

inline double dbToGain (double db) { return std::pow (10.0, db / 20.0); }

// Floor of the level detectors: -240 dB, far below any threshold, so silence maps to a finite level.
inline double gainToDb (double gain) { return 20.0 * std::log10 (std::max (gain, 1.0e-12)); }

// One-pole smoothing coefficient for a time constant in ms: a step response reaches 1 - 1/e of the
// step after timeMs (timeMs * 0.001 * sampleRate samples).
inline double timeCoefficient (double timeMs, double sampleRate)
{
    return std::exp (-1.0 / (timeMs * 0.001 * sampleRate));
}

// Biquad coefficients normalised so that a0 = 1.
struct Biquad
{
    double b0 = 1.0, b1 = 0.0, b2 = 0.0, a1 = 0.0, a2 = 0.0;

    // Robert Bristow-Johnson's "Audio EQ Cookbook" designs. The frequency is clamped below 0.49 of
    // the sample rate so that every setting stays a stable filter at low sample rates.
    enum class Type { lowPass, highPass, allPass, peaking, lowShelf, highShelf };
    static Biquad design (Type type, double freqHz, double q, double gainDb, double sampleRate);
};

// Transposed direct form II memory of one biquad on one channel.
struct BiquadState
{
    double s1 = 0.0, s2 = 0.0;

    double process (const Biquad& c, double x)
    {
        const double y = c.b0 * x + s1;
        s1 = c.b1 * x - c.a1 * y + s2;
        s2 = c.b2 * x - c.a2 * y;
        return y;
    }
};

// Feed-forward log-domain gain computer after Giannoulis, Massberg & Reiss, "Digital Dynamic Range
// Compressor Design - A Tutorial and Analysis" (JAES 2012): the peak level in dB goes through the
// soft-knee static curve; the gain reduction it asks for is smoothed by the branching one-pole peak
// detector (attack coefficient while the reduction grows, release while it shrinks), then makeup
// gain is added. Attack and release are time constants: a step in the requested reduction (in dB)
// is followed to 1 - 1/e of its size after attack_ms / release_ms.
class GainComputer
{
public:
    void setParameters (double thresholdDb, double ratio, double kneeDb,
                        double attackMs, double releaseMs, double makeupDb, double sampleRate)
    {
        threshold = thresholdDb;
        slope = 1.0 / ratio - 1.0;
        knee = kneeDb;
        attackCoef = timeCoefficient (attackMs, sampleRate);
        releaseCoef = timeCoefficient (releaseMs, sampleRate);
        makeup = makeupDb;
    }

    // The static curve's output level for an input level, both in dB.
    double staticCurveDb (double levelDb) const
    {
        const double over = levelDb - threshold;

        if (2.0 * over < -knee)
            return levelDb;

        if (2.0 * std::abs (over) <= knee && knee > 0.0)
        {
            const double d = over + 0.5 * knee;
            return levelDb + slope * d * d / (2.0 * knee);
        }

        return levelDb + slope * over;
    }

    // Linear gain to apply for a linked peak magnitude; advances the detector by one sample.
    double process (double peak)
    {
        const double levelDb = gainToDb (peak);
        const double target = levelDb - staticCurveDb (levelDb);
        const double coef = target > reductionDb ? attackCoef : releaseCoef;
        reductionDb = coef * reductionDb + (1.0 - coef) * target;
        return dbToGain (makeup - reductionDb);
    }

    void reset() { reductionDb = 0.0; }
    void serialize (StateArchive& archive) { archive (reductionDb); }

private:
    double threshold = 0.0, slope = 0.0, knee = 0.0, attackCoef = 0.0, releaseCoef = 0.0, makeup = 0.0;
    double reductionDb = 0.0; // smoothed gain reduction, >= 0
};

} // namespace fxgrad::dsp
