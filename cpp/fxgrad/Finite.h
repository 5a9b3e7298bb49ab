#pragma once
// Whether float samples hold NaN or +-Inf: the one check that plugin input and output, and the
// match loss's reference and outputs, go through.
#include <cstdint>
#include <cstring>

namespace fxgrad {

/** True when any of the n values is NaN or +-Inf. Works on the exponent bits so that it vectorises. */
inline bool hasNonFinite (const float* data, int64_t n)
{
    uint32_t any = 0;
    for (int64_t i = 0; i < n; ++i) {
        uint32_t bits;
        std::memcpy (&bits, data + i, sizeof bits);
        any |= (uint32_t) ((bits & 0x7f800000u) == 0x7f800000u);
    }
    return any != 0;
}

} // namespace fxgrad
