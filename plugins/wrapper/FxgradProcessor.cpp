#include "FxgradProcessor.h"

#include <charconv>
#include <cmath>
#include <cstring>

namespace fxgrad::plugins
{

namespace
{

// State chunk layout, version 1 (host byte order: little-endian on every platform fxgrad targets):
//   char[4] "FXGS" | u32 version | u32 parameter-layout hash | u32 parameter count
//   f32 normalised value of each parameter, in the effect's order
//   f64 sample rate of the DSP state (0: none) | u32 channel count | u32 DSP byte count
//   DSP state: the bytes written by Effect::serialize
constexpr char stateMagic[4] = { 'F', 'X', 'G', 'S' };
constexpr std::uint32_t stateVersion = 1;
constexpr std::size_t headerBytes = 16, dspHeaderBytes = 16;

juce::NormalisableRange<float> makeRange (const dsp::ParamSpec& spec)
{
    juce::NormalisableRange<float> range (spec.minimum, spec.maximum);

    if (spec.scale == dsp::Scale::logLike)
        range.setSkewForCentre (std::sqrt (spec.minimum * spec.maximum));

    return range;
}

// FNV-1a over the parameter IDs: a chunk from another effect, or from a version with a different
// parameter set, is recognised and ignored.
std::uint32_t hashLayout (const dsp::Effect& effect)
{
    std::uint32_t hash = 2166136261u;

    for (const auto& spec : effect.parameters())
        for (const char ch : spec.id + '\n')
            hash = (hash ^ (unsigned char) ch) * 16777619u;

    return hash;
}

struct Writer
{
    char* cursor;

    template <typename T>
    void operator() (const T& value)
    {
        std::memcpy (cursor, &value, sizeof (T));
        cursor += sizeof (T);
    }
};

struct Reader
{
    const char* cursor;
    std::size_t remaining;

    template <typename T>
    bool operator() (T& value)
    {
        if (remaining < sizeof (T))
            return false;

        std::memcpy (&value, cursor, sizeof (T));
        cursor += sizeof (T);
        remaining -= sizeof (T);
        return true;
    }
};

} // namespace

//==================================================================================================
FxParameter::FxParameter (const dsp::ParamSpec& spec)
    : RangedAudioParameter (juce::ParameterID { spec.id, 1 }, spec.name,
                            juce::AudioProcessorParameterWithIDAttributes().withLabel (spec.unit)),
      range (makeRange (spec)),
      defaultValue (range.convertTo0to1 (spec.defaultValue)),
      value (defaultValue)
{
}

juce::String FxParameter::getText (float normalisedValue, int maximumStringLength) const
{
    char text[32];
    const auto end = std::to_chars (text, text + sizeof (text), range.convertFrom0to1 (normalisedValue)).ptr;
    const juce::String result (text, (size_t) (end - text));
    return maximumStringLength > 0 ? result.substring (0, maximumStringLength) : result;
}

float FxParameter::getValueForText (const juce::String& text) const
{
    // from_chars is locale-independent and correctly rounded; it reads the leading number only,
    // so "6.5 dB" works too.
    const auto utf8 = text.trimStart().trimCharactersAtStart ("+");
    const char* begin = utf8.toRawUTF8();
    float plain = 0.0f;

    if (std::from_chars (begin, begin + utf8.getNumBytesAsUTF8(), plain).ec != std::errc())
        return defaultValue;

    return range.convertTo0to1 (plain);
}

//==================================================================================================
FxgradProcessor::FxgradProcessor (std::unique_ptr<dsp::Effect> effectIn, const juce::String& nameIn)
    : AudioProcessor (BusesProperties().withInput ("Input", juce::AudioChannelSet::stereo(), true)
                                       .withOutput ("Output", juce::AudioChannelSet::stereo(), true)),
      effect (std::move (effectIn)),
      name (nameIn),
      layoutHash (hashLayout (*effect))
{
    // Plain AudioProcessor-owned parameters: an AudioProcessorValueTreeState would run a timer
    // on the plugin's message thread, which races with hosts that destroy instances elsewhere.
    for (const auto& spec : effect->parameters())
    {
        auto parameter = std::make_unique<FxParameter> (spec);
        parameters.push_back (parameter.get());
        addParameter (parameter.release());
    }

    plainValues.resize (parameters.size());
}

void FxgradProcessor::prepareToPlay (double sampleRate, int)
{
    preparedChannels = getTotalNumInputChannels();
    effect->prepare (sampleRate, preparedChannels);
    preparedRate = sampleRate;
    setLatencySamples (effect->latencySamples());
}

void FxgradProcessor::reset()
{
    effect->reset();
}

bool FxgradProcessor::isBusesLayoutSupported (const BusesLayout& layouts) const
{
    const auto& in = layouts.getMainInputChannelSet();
    return in == layouts.getMainOutputChannelSet()
        && (in == juce::AudioChannelSet::mono() || in == juce::AudioChannelSet::stereo());
}

void FxgradProcessor::processBlock (juce::AudioBuffer<float>& buffer, juce::MidiBuffer&)
{
    const juce::ScopedNoDenormals noDenormals;

    // Without prepareToPlay the effect has no state to run on; pass the audio through.
    if (preparedRate <= 0.0 || buffer.getNumChannels() < preparedChannels)
    {
        jassertfalse;
        return;
    }

    // Parameter values are read once per block and hold for all of it: no smoothing, so a value
    // applies exactly from the block's first sample and the result is independent of block size.
    for (std::size_t i = 0; i < parameters.size(); ++i)
        plainValues[i] = parameters[i]->plainValue();

    effect->setParameters (plainValues.data());
    effect->process (buffer.getArrayOfWritePointers(), buffer.getNumSamples());
}

std::size_t FxgradProcessor::dspStateSize()
{
    auto archive = dsp::StateArchive::measuring();
    effect->serialize (archive);
    return archive.size();
}

void FxgradProcessor::getStateInformation (juce::MemoryBlock& destData)
{
    const juce::ScopedLock lock (getCallbackLock());

    const std::size_t dspBytes = preparedRate > 0.0 ? dspStateSize() : 0;
    destData.setSize (headerBytes + parameters.size() * sizeof (float) + dspHeaderBytes + dspBytes);

    Writer write { static_cast<char*> (destData.getData()) };
    write (stateMagic);
    write (stateVersion);
    write (layoutHash);
    write ((std::uint32_t) parameters.size());

    for (auto* parameter : parameters)
        write (parameter->getValue());

    write (preparedRate);
    write ((std::uint32_t) preparedChannels);
    write ((std::uint32_t) dspBytes);

    auto archive = dsp::StateArchive::saving (write.cursor, dspBytes);
    effect->serialize (archive);
    jassert (archive.ok());
}

void FxgradProcessor::setStateInformation (const void* data, int sizeInBytes)
{
    const juce::ScopedLock lock (getCallbackLock());

    Reader read { static_cast<const char*> (data), (std::size_t) juce::jmax (0, sizeInBytes) };
    char magic[4];
    std::uint32_t version = 0, hash = 0, count = 0;

    if (! (read (magic) && read (version) && read (hash) && read (count))
        || std::memcmp (magic, stateMagic, sizeof (magic)) != 0
        || version != stateVersion || hash != layoutHash || count != parameters.size()
        || read.remaining < count * sizeof (float))
        return;

    for (auto* parameter : parameters)
    {
        float normalised = 0.0f;
        read (normalised);

        if (normalised != parameter->getValue())
            parameter->setValueNotifyingHost (normalised);
    }

    // The DSP state is restored only into an instance prepared like the one that saved it; a chunk
    // without one (or from another rate or channel count) restores the parameters alone.
    double rate = 0.0;
    std::uint32_t channels = 0, dspBytes = 0;

    if (read (rate) && read (channels) && read (dspBytes)
        && preparedRate > 0.0 && rate == preparedRate && channels == (std::uint32_t) preparedChannels
        && dspBytes == dspStateSize() && read.remaining >= dspBytes)
    {
        auto archive = dsp::StateArchive::loading (read.cursor, dspBytes);
        effect->serialize (archive);
        jassert (archive.ok());
    }
}

} // namespace fxgrad::plugins
