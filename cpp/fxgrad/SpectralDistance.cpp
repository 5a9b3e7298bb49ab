#include "SpectralDistance.h"

#include <fftw3.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <mutex>
#include <string>

#include "Errors.h"
#include "Finite.h"
#include "ThreadPool.h"

namespace fxgrad {

namespace {
// FFTW's planner is not thread-safe; executing a plan on new arrays is.
std::mutex plannerMutex;

constexpr int lanes = 16;   // partial sums kept apart so that the compiler vectorises the loops

/** Sum of term(0) ... term(n - 1) in float partial sums per lane, added up in a fixed order. */
template <typename Term>
double laneSum (int n, Term term)
{
    float partial[lanes] = {};
    int i = 0;
    for (; i + lanes <= n; i += lanes)
        for (int l = 0; l < lanes; ++l)
            partial[l] += term (i + l);
    double sum = 0.0;
    for (float p : partial)
        sum += p;
    for (; i < n; ++i)
        sum += term (i);
    return sum;
}

/** Natural log of a positive, finite, normal float (Cephes' logf polynomial: within 2 ulp of
    libm's), without branches so that a loop over it vectorises at the baseline instruction set:
    libm's logf is scalar and would take most of the loss's time. x = 2^e * (1 + m), with
    1 + m in [sqrt(1/2), sqrt(2)) found from the bits alone. */
inline float logOfPositive (float x)
{
    int32_t bits;
    std::memcpy (&bits, &x, sizeof bits);
    const int32_t exponent = (bits - 0x3f3504f3) >> 23;   // 0x3f3504f3: sqrt(1/2)'s bits
    bits -= exponent * (1 << 23);
    float m;
    std::memcpy (&m, &bits, sizeof m);
    m -= 1.0f;
    const float z = m * m;
    float y = 7.0376836292e-2f;
    y = y * m - 1.1514610310e-1f;
    y = y * m + 1.1676998740e-1f;
    y = y * m - 1.2420140846e-1f;
    y = y * m + 1.4249322787e-1f;
    y = y * m - 1.6668057665e-1f;
    y = y * m + 2.0000714765e-1f;
    y = y * m - 2.4999993993e-1f;
    y = y * m + 3.3333331174e-1f;
    y = y * m * z;
    const float e = (float) exponent;
    y += -2.12194440e-4f * e;
    y += -0.5f * z;
    return m + y + 0.693359375f * e;
}

/** BS.1770's gated loudness (LUFS) of per-frame K-weighted mean squares: the absolute gate at
    -70 LUFS, then the relative gate 10 LU under the loudness of the frames above it; -70 where
    no frame passes. */
double gatedLoudness (const std::vector<double>& power)
{
    const auto lufs = [] (double p) { return -0.691 + 10.0 * std::log10 (std::max (p, 1e-12)); };
    double loudSum = 0.0;
    int loudCount = 0;
    for (double p : power)
        if (lufs (p) > -70.0) {
            loudSum += p;
            ++loudCount;
        }
    const double relative = lufs (loudSum / std::max (loudCount, 1)) - 10.0;
    double keptSum = 0.0;
    int keptCount = 0;
    for (double p : power)
        if (lufs (p) > -70.0 && lufs (p) > relative) {
            keptSum += p;
            ++keptCount;
        }
    return keptCount > 0 ? lufs (keptSum / keptCount) : -70.0;
}
} // namespace

struct SpectralDistance::Plans {
    std::vector<fftwf_plan> forward;   // one per resolution

    ~Plans()
    {
        std::lock_guard<std::mutex> lock (plannerMutex);
        for (auto plan : forward)
            fftwf_destroy_plan (plan);
    }
};

/** One thread's buffers for one resolution at a time: FFTW's input and output, aligned as FFTW
    allocates them (the plans were made on such arrays). */
struct SpectralDistance::Scratch {
    float* frame = nullptr;
    fftwf_complex* spectrum = nullptr;
    std::vector<float> magnitude, logMagnitude;
    std::vector<double> power;

    explicit Scratch (int largestFft)
    {
        frame = fftwf_alloc_real ((size_t) largestFft);
        spectrum = fftwf_alloc_complex ((size_t) largestFft / 2 + 1);
        if (frame == nullptr || spectrum == nullptr) {
            release();
            fail (ErrorKind::Resource, "the match loss could not allocate its FFT buffers");
        }
        magnitude.resize ((size_t) largestFft / 2 + 1);
        logMagnitude.resize ((size_t) largestFft / 2 + 1);
    }
    ~Scratch() { release(); }
    Scratch (const Scratch&) = delete;
    Scratch& operator= (const Scratch&) = delete;

    void release()
    {
        fftwf_free (frame);
        fftwf_free (spectrum);
        frame = nullptr;
        spectrum = nullptr;
    }
};

SpectralDistance::SpectralDistance (const float* referenceAudio, int channels, int64_t samples,
                                    std::vector<SpectralResolution> resolutions, std::vector<float> loudnessWeighting,
                                    float floorMagnitude, int threads)
    : numChannels (channels), numSamples (samples), sizes (std::move (resolutions)), weighting (std::move (loudnessWeighting)),
      floor (floorMagnitude), plans (std::make_unique<Plans>())
{
    if (channels < 1 || samples < 1)
        fail (ErrorKind::Value, "the reference must hold at least one channel and one sample");
    if (sizes.empty())
        fail (ErrorKind::Value, "the match loss needs at least one STFT resolution");
    if (! (floor > 0.0f) || ! std::isfinite (floor))
        fail (ErrorKind::Value, "the magnitude floor must be positive and finite");
    int largest = 0;
    for (const auto& r : sizes) {
        if (r.fftSize < 2 || r.fftSize % 2 != 0 || r.hop < 1 || (int) r.window.size() != r.fftSize)
            fail (ErrorKind::Value, "an STFT resolution needs an even FFT size, a hop >= 1 and a window of the FFT's size");
        largest = std::max (largest, r.fftSize);
    }
    if ((int) weighting.size() != sizes[0].fftSize / 2 + 1)
        fail (ErrorKind::Value, "the loudness weighting needs one value per rfft bin of the first resolution");
    if (hasNonFinite (referenceAudio, (int64_t) channels * samples))
        fail (ErrorKind::Value, "the reference holds NaN or infinite samples");

    {
        std::lock_guard<std::mutex> lock (plannerMutex);
        Scratch probe (largest);
        // FFTW_ESTIMATE: the same plan on every run (measured plans can differ from run to run).
        for (const auto& r : sizes) {
            auto plan = fftwf_plan_dft_r2c_1d (r.fftSize, probe.frame, probe.spectrum, FFTW_ESTIMATE);
            if (plan == nullptr)
                fail (ErrorKind::Resource, "FFTW could not plan a " + std::to_string (r.fftSize) + "-point transform");
            plans->forward.push_back (plan);
        }
    }
    pool = std::make_unique<ThreadPool> (std::max (1, threads));

    Scratch scratch (largest);
    double unused = 0.0;
    analyse (referenceAudio, scratch, &reference, unused);
}

SpectralDistance::~SpectralDistance() = default;

int SpectralDistance::threads() const { return pool->size(); }

int SpectralDistance::frames (size_t resolution) const { return (int) (numSamples / sizes[resolution].hop + 1); }

bool SpectralDistance::analyse (const float* clip, Scratch& s, Reference* into, double& loss) const
{
    if (hasNonFinite (clip, (int64_t) numChannels * numSamples))
        return false;
    double spectral = 0.0;
    s.power.assign ((size_t) frames (0), 0.0);
    for (size_t r = 0; r < sizes.size(); ++r) {
        const int n = sizes[r].fftSize, bins = n / 2 + 1, count = frames (r);
        const int64_t hop = sizes[r].hop, half = n / 2;
        const float* window = sizes[r].window.data();
        const float* weights = weighting.data();
        if (into != nullptr) {
            into->magnitude.emplace_back ((size_t) numChannels * (size_t) count * (size_t) bins);
            into->logMagnitude.emplace_back ((size_t) numChannels * (size_t) count * (size_t) bins);
        }
        const Reference& ref = into != nullptr ? *into : reference;
        double squares = 0.0, logs = 0.0;
        for (int c = 0; c < numChannels; ++c) {
            const float* x = clip + (size_t) c * (size_t) numSamples;
            for (int f = 0; f < count; ++f) {
                const int64_t begin = (int64_t) f * hop - half;
                const int64_t from = std::max<int64_t> (0, -begin), to = std::min<int64_t> (n, numSamples - begin);
                std::fill (s.frame, s.frame + n, 0.0f);
                for (int64_t i = from; i < to; ++i)
                    s.frame[i] = x[begin + i] * window[i];
                fftwf_execute_dft_r2c (plans->forward[r], s.frame, s.spectrum);
                float* mag = s.magnitude.data();
                float* lg = s.logMagnitude.data();
                for (int b = 0; b < bins; ++b) {
                    const float re = s.spectrum[b][0], im = s.spectrum[b][1];
                    mag[b] = std::max (std::sqrt (re * re + im * im), floor);
                }
                for (int b = 0; b < bins; ++b)
                    lg[b] = logOfPositive (mag[b]);
                if (r == 0)
                    s.power[(size_t) f] += laneSum (bins, [&] (int b) { return mag[b] * mag[b] * weights[b]; });
                const size_t at = ((size_t) c * (size_t) count + (size_t) f) * (size_t) bins;
                if (into != nullptr) {
                    std::copy (mag, mag + bins, into->magnitude[r].data() + at);
                    std::copy (lg, lg + bins, into->logMagnitude[r].data() + at);
                    continue;
                }
                const float* refMag = ref.magnitude[r].data() + at;
                const float* refLog = ref.logMagnitude[r].data() + at;
                float sq[lanes] = {}, ab[lanes] = {};
                int b = 0;
                for (; b + lanes <= bins; b += lanes)
                    for (int l = 0; l < lanes; ++l) {
                        const float d = mag[b + l] - refMag[b + l];
                        sq[l] += d * d;
                        ab[l] += std::fabs (lg[b + l] - refLog[b + l]);
                    }
                double frameSquares = 0.0, frameLogs = 0.0;
                for (int l = 0; l < lanes; ++l) {
                    frameSquares += sq[l];
                    frameLogs += ab[l];
                }
                for (; b < bins; ++b) {
                    const float d = mag[b] - refMag[b];
                    frameSquares += d * d;
                    frameLogs += std::fabs (lg[b] - refLog[b]);
                }
                squares += frameSquares;
                logs += frameLogs;
            }
        }
        if (into != nullptr) {
            double total = 0.0;
            for (float m : into->magnitude[r])
                total += (double) m * (double) m;
            into->norm.push_back (std::sqrt (total));
            continue;
        }
        spectral += std::sqrt (squares) / ref.norm[r] + logs / ((double) numChannels * (double) count * (double) bins);
    }
    const double loudness = gatedLoudness (s.power);
    if (into != nullptr) {
        into->loudness = loudness;
        return true;
    }
    loss = spectral / (double) sizes.size() + 0.1 * std::fabs (loudness - reference.loudness);
    return true;
}

void SpectralDistance::evaluate (const float* outputs, int count, double* losses)
{
    if (count < 0)
        fail (ErrorKind::Value, "the match loss needs a count of outputs >= 0");
    const size_t clip = (size_t) numChannels * (size_t) numSamples;
    int largest = 0;
    for (const auto& r : sizes)
        largest = std::max (largest, r.fftSize);
    std::vector<char> finite ((size_t) count, 1);
    pool->run (count, [&] (int k) {
        Scratch scratch (largest);
        finite[(size_t) k] = analyse (outputs + (size_t) k * clip, scratch, nullptr, losses[k]) ? 1 : 0;
    });
    for (int k = 0; k < count; ++k)
        if (! finite[(size_t) k])
            fail (ErrorKind::Value, "output " + std::to_string (k) + " holds NaN or infinite samples");
}

} // namespace fxgrad
