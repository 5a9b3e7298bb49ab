#pragma once
// Counter-based random numbers: the value for a key depends on the key alone, never on which
// thread asks or in what order, so SPSA perturbations are identical for any thread count.
#include <cstdint>

namespace fxgrad {

inline uint64_t mix64 (uint64_t z)
{
    // splitmix64's finaliser: a bijection with full avalanche.
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/** 64 random bits for (seed, step, lane, perturbation, word). */
inline uint64_t randomBits (uint64_t seed, uint64_t step, uint64_t lane, uint64_t perturbation, uint64_t word)
{
    uint64_t h = mix64 (seed);
    h = mix64 (h ^ step);
    h = mix64 (h ^ (lane * 0x100000001b3ull));
    h = mix64 (h ^ (perturbation + 0x632be59bd9b4e019ull));
    return mix64 (h ^ (word * 0xd6e8feb86659fd93ull));
}

/** Rademacher sign (+1 or -1) of coordinate i. */
inline float rademacher (uint64_t seed, uint64_t step, uint64_t lane, uint64_t perturbation, uint64_t i)
{
    return (randomBits (seed, step, lane, perturbation, i / 64) >> (i % 64)) & 1u ? 1.0f : -1.0f;
}

} // namespace fxgrad
