// The entry point JUCE's plugin wrappers call. Each plugin target compiles this file with
// FXGRAD_EFFECT_HEADER and FXGRAD_EFFECT_CLASS naming its effect (see plugins/CMakeLists.txt).
#include "FxgradProcessor.h"

#include FXGRAD_EFFECT_HEADER

juce::AudioProcessor* JUCE_CALLTYPE createPluginFilter()
{
    return new fxgrad::plugins::FxgradProcessor (std::make_unique<FXGRAD_EFFECT_CLASS>(), JucePlugin_Name);
}
