// FST (Debian's fst-dev) in place of the VST2 SDK's header; see aeffect.h.
#pragma once

// FST declares VstSpeakerArrangement with a flexible array `speakers[]` (sizeof 8 bytes); JUCE,
// like the SDK, takes its size to include 8 speakers and writes them, overrunning the heap on
// every plugin it opens. The declaration here has the 8 (each 112 bytes, as in FST).
#define VstSpeakerArrangement FxgradFstFlexibleSpeakerArrangement
#define FST2VST 1
#include <fst.h>
#undef VstSpeakerArrangement

typedef struct {
    int type;
    int numChannels;
    t_fstSpeakerProperties speakers[8];
} VstSpeakerArrangement;
