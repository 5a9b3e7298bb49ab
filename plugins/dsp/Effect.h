// The interface every fxgrad reference effect implements. Plain C++17, no JUCE: the DSP can be
// tested and reused without a plugin wrapper (plugins/wrapper/ holds the JUCE glue).
#pragma once

#include <cstddef>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

namespace fxgrad::dsp
{

// How a parameter's plain value maps onto [0, 1]. logLike puts the geometric mean of the range at
// the centre (a power-law skew, close to a log mapping) for frequencies, times, ratios and Q.
enum class Scale { linear, logLike };

struct ParamSpec
{
    std::string id;   // lower-case snake_case symbol; hosts address the parameter by it
    // Human-readable, and it snake-cases to the id ("Attack (ms)" -> attack_ms): VST3 carries
    // only a hash of the id, so a host that sees names alone can still recover the id.
    std::string name;
    std::string unit; // "dB", "ms", "Hz", "%" or ""
    float minimum, maximum, defaultValue;
    Scale scale;
};

// Walks an effect's DSP state as raw bytes. Each effect has one serialize() that visits its state
// members in a fixed order, and the same walk measures, saves or loads them, so the three cannot
// drift apart. Vector sizes are not stored: they follow from the sample rate and channel count,
// which the caller checks (together with the measured size) before loading.
class StateArchive
{
public:
    static StateArchive measuring() { return { Mode::measure, nullptr, 0 }; }
    static StateArchive saving (void* destination, std::size_t capacity) { return { Mode::save, destination, capacity }; }
    static StateArchive loading (const void* source, std::size_t size) { return { Mode::load, const_cast<void*> (source), size }; }

    template <typename T>
    void operator() (T& value)
    {
        static_assert (std::is_trivially_copyable_v<T>);
        raw (&value, sizeof (T));
    }

    template <typename T>
    void operator() (std::vector<T>& values)
    {
        static_assert (std::is_trivially_copyable_v<T>);
        raw (values.data(), values.size() * sizeof (T));
    }

    std::size_t size() const { return position; }
    bool ok() const { return ! overrun; }

private:
    enum class Mode { measure, save, load };

    StateArchive (Mode m, void* d, std::size_t c) : mode (m), data (static_cast<unsigned char*> (d)), capacity (c) {}

    void raw (void* bytes, std::size_t count)
    {
        if (mode != Mode::measure)
        {
            if (overrun || position + count > capacity)
            {
                overrun = true;
                return;
            }

            if (count > 0)
            {
                if (mode == Mode::save)
                    std::memcpy (data + position, bytes, count);
                else
                    std::memcpy (bytes, data + position, count);
            }
        }

        position += count;
    }

    Mode mode;
    unsigned char* data;
    std::size_t capacity;
    std::size_t position = 0;
    bool overrun = false;
};

class Effect
{
public:
    virtual ~Effect() = default;

    // The parameter set, in the order setParameters() expects.
    virtual const std::vector<ParamSpec>& parameters() const = 0;

    // Sizes the state for this rate and channel count (the only place that allocates), then clears it.
    virtual void prepare (double sampleRate, int numChannels) = 0;

    // Clears all DSP state (envelopes, filter memories, delay lines) to its initial value.
    virtual void reset() = 0;

    // Plain (not normalised) values, in parameters() order. They apply exactly from the next sample
    // processed: there is no smoothing, so SPSA perturbations act instantly and deterministically.
    virtual void setParameters (const float* plainValues) = 0;

    // Processes in place, sample by sample, so the result does not depend on how a stream is split
    // into blocks. channels holds the numChannels given to prepare().
    virtual void process (float* const* channels, int numSamples) = 0;

    // Visits the complete DSP state (see StateArchive).
    virtual void serialize (StateArchive& archive) = 0;

    virtual int latencySamples() const { return 0; }
};

} // namespace fxgrad::dsp
