#pragma once
// The aligned match loss of many rendered outputs against one reference, on native threads
// (fxgrad.match.loss.MatchLoss's CPU path): per STFT resolution, spectral convergence
// (||Y - X|| / ||Y|| of the magnitudes) plus the mean absolute log-magnitude difference, averaged
// over the resolutions, plus 0.1 x the difference of BS.1770 gated loudness (LU) taken from the
// first resolution's frames. The Python side defines the resolutions, hops, windows, magnitude
// floor and loudness weighting and hands them over, so they have one definition. Each output is
// computed whole by one thread in a fixed order: the losses are the same whatever the threads.
#include <cstdint>
#include <memory>
#include <vector>

namespace fxgrad {

class ThreadPool;

struct SpectralResolution {
    int fftSize = 0;             // even
    int64_t hop = 0;             // frame f is centred on sample f * hop (zero padded past either end)
    std::vector<float> window;   // fftSize values
};

class SpectralDistance {
public:
    /** reference: planar (channels, samples) float32. loudnessWeighting: per rfft bin of the first
        resolution, what a bin's squared magnitude adds to its frame's K-weighted mean square.
        Throws ErrorKind::Value for shapes that do not fit and non-finite input. */
    SpectralDistance (const float* reference, int channels, int64_t samples, std::vector<SpectralResolution> resolutions,
                      std::vector<float> loudnessWeighting, float floorMagnitude, int threads);
    ~SpectralDistance();
    SpectralDistance (const SpectralDistance&) = delete;
    SpectralDistance& operator= (const SpectralDistance&) = delete;

    int channels() const { return numChannels; }
    int64_t samples() const { return numSamples; }
    int threads() const;
    double referenceLoudness() const { return reference.loudness; }

    /** outputs: `count` planar (channels, samples) clips, contiguous; losses: `count` values.
        Throws ErrorKind::Value where an output holds NaN or Inf. */
    void evaluate (const float* outputs, int count, double* losses);

private:
    struct Plans;
    struct Reference {
        std::vector<std::vector<float>> magnitude, logMagnitude;   // per resolution: (C, frames, bins)
        std::vector<double> norm;                                  // per resolution: ||Y||
        double loudness = 0.0;
    };
    struct Scratch;

    int frames (size_t resolution) const;
    /** Loss of one clip against the reference; with `into`, the clip's spectra are stored there
        instead (the reference's own). Returns false for a non-finite sample. */
    bool analyse (const float* clip, Scratch& scratch, Reference* into, double& loss) const;

    int numChannels;
    int64_t numSamples;
    std::vector<SpectralResolution> sizes;
    std::vector<float> weighting;
    float floor;
    std::unique_ptr<Plans> plans;
    std::unique_ptr<ThreadPool> pool;
    Reference reference;
};

} // namespace fxgrad
