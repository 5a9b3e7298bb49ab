// JUCE's VST2 host includes <pluginterfaces/vst2.x/aeffect.h> and <.../aeffectx.h>, the names of
// Steinberg's VST2 SDK, which fxgrad does not use: both stand for FST (Debian's fst-dev), a free
// reverse-engineered implementation of the same interface.
#pragma once
#include "aeffectx.h"
