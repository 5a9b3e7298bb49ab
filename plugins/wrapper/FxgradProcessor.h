// The AudioProcessor glue shared by all of fxgrad's reference effects: parameters, bus layouts, and the state chunk that carries the DSP state.
// Each plugin is this class around one dsp::Effect (see PluginEntry.cpp).
#pragma once

#include <juce_audio_processors/juce_audio_processors.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "Effect.h"

namespace fxgrad::plugins
{

// A float parameter whose normalised value is the stored truth. JUCE's AudioParameterFloat stores
// the plain value and converts on every get/set, so saving and restoring it can move the value by
// one ulp; storing the normalised value makes a state round trip exact, which bit-identical
// continuation after a DSP snapshot needs. Its text is the shortest string that reads back to the
// same float, so hosts can map plain values exactly through getText / getValueForText.
class FxParameter final : public juce::RangedAudioParameter
{
public:
    explicit FxParameter (const dsp::ParamSpec& spec);

    float plainValue() const { return range.convertFrom0to1 (value.load (std::memory_order_relaxed)); }

    float getValue() const override { return value.load (std::memory_order_relaxed); }
    void setValue (float newValue) override { value.store (juce::jlimit (0.0f, 1.0f, newValue), std::memory_order_relaxed); }
    float getDefaultValue() const override { return defaultValue; }
    juce::String getText (float normalisedValue, int maximumStringLength) const override;
    float getValueForText (const juce::String& text) const override;
    const juce::NormalisableRange<float>& getNormalisableRange() const override { return range; }

private:
    juce::NormalisableRange<float> range;
    float defaultValue;
    std::atomic<float> value;
};

class FxgradProcessor final : public juce::AudioProcessor
{
public:
    FxgradProcessor (std::unique_ptr<dsp::Effect> effect, const juce::String& name);

    const juce::String getName() const override { return name; }

    void prepareToPlay (double sampleRate, int maximumExpectedSamplesPerBlock) override;
    void releaseResources() override {}
    void reset() override;
    bool isBusesLayoutSupported (const BusesLayout& layouts) const override;
    void processBlock (juce::AudioBuffer<float>& buffer, juce::MidiBuffer& midi) override;
    using AudioProcessor::processBlock;

    double getTailLengthSeconds() const override { return 0.0; }
    bool acceptsMidi() const override { return false; }
    bool producesMidi() const override { return false; }

    bool hasEditor() const override { return false; }
    juce::AudioProcessorEditor* createEditor() override { return nullptr; }

    int getNumPrograms() override { return 1; }
    int getCurrentProgram() override { return 0; }
    void setCurrentProgram (int) override {}
    const juce::String getProgramName (int) override { return "Default"; }
    void changeProgramName (int, const juce::String&) override {}

    void getStateInformation (juce::MemoryBlock& destData) override;
    void setStateInformation (const void* data, int sizeInBytes) override;

private:
    std::size_t dspStateSize();

    const std::unique_ptr<dsp::Effect> effect;
    const juce::String name;
    std::vector<FxParameter*> parameters; // in the effect's parameter order
    std::vector<float> plainValues;
    std::uint32_t layoutHash = 0;
    double preparedRate = 0.0; // 0 until prepareToPlay: there is no DSP state to save or restore
    int preparedChannels = 0;
};

} // namespace fxgrad::plugins
