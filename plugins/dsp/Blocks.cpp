#include "Blocks.h"

namespace fxgrad::dsp
{

Biquad Biquad::design (Type type, double freqHz, double q, double gainDb, double sampleRate)
{
    const double w0 = 2.0 * pi * std::min (freqHz, 0.49 * sampleRate) / sampleRate;
    const double cw = std::cos (w0);
    const double alpha = std::sin (w0) / (2.0 * q);
    const double a = std::pow (10.0, gainDb / 40.0);
    const double shelf = 2.0 * std::sqrt (a) * alpha;

    double b0 = 1.0, b1 = 0.0, b2 = 0.0, a0 = 1.0, a1 = 0.0, a2 = 0.0;

    switch (type)
    {
        case Type::lowPass:
            b0 = b2 = 0.5 * (1.0 - cw); b1 = 1.0 - cw;
            a0 = 1.0 + alpha; a1 = -2.0 * cw; a2 = 1.0 - alpha;
            break;
        case Type::highPass:
            b0 = b2 = 0.5 * (1.0 + cw); b1 = -(1.0 + cw);
            a0 = 1.0 + alpha; a1 = -2.0 * cw; a2 = 1.0 - alpha;
            break;
        case Type::allPass:
            b0 = 1.0 - alpha; b1 = -2.0 * cw; b2 = 1.0 + alpha;
            a0 = 1.0 + alpha; a1 = -2.0 * cw; a2 = 1.0 - alpha;
            break;
        case Type::peaking:
            b0 = 1.0 + alpha * a; b1 = -2.0 * cw; b2 = 1.0 - alpha * a;
            a0 = 1.0 + alpha / a; a1 = -2.0 * cw; a2 = 1.0 - alpha / a;
            break;
        case Type::lowShelf:
            b0 = a * ((a + 1.0) - (a - 1.0) * cw + shelf);
            b1 = 2.0 * a * ((a - 1.0) - (a + 1.0) * cw);
            b2 = a * ((a + 1.0) - (a - 1.0) * cw - shelf);
            a0 = (a + 1.0) + (a - 1.0) * cw + shelf;
            a1 = -2.0 * ((a - 1.0) + (a + 1.0) * cw);
            a2 = (a + 1.0) + (a - 1.0) * cw - shelf;
            break;
        case Type::highShelf:
            b0 = a * ((a + 1.0) + (a - 1.0) * cw + shelf);
            b1 = -2.0 * a * ((a - 1.0) + (a + 1.0) * cw);
            b2 = a * ((a + 1.0) + (a - 1.0) * cw - shelf);
            a0 = (a + 1.0) - (a - 1.0) * cw + shelf;
            a1 = 2.0 * ((a - 1.0) - (a + 1.0) * cw);
            a2 = (a + 1.0) - (a - 1.0) * cw - shelf;
            break;
    }

    return { b0 / a0, b1 / a0, b2 / a0, a1 / a0, a2 / a0 };
}

} // namespace fxgrad::dsp
