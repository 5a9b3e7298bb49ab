#pragma once
// LV2 presets as lilv writes and reads them: from and to the state strings JUCE's LV2 host gives
// and takes (a pset:Preset in Turtle, as lilv_state_to_string writes it, its prefixes left out).
#include <string>

namespace fxgrad {

/** The preset file for `stateTurtle` (a plugin state from JUCE's LV2 host) labelled `label`, to
    be written at `fileUri` (file:///.../NAME.ttl): lilv's serialisation of the state with the
    preset as the file itself (<>), behind the prefixes lilv declares in the files it saves.
    (Not lilv_state_save: in the lilv JUCE bundles it dereferences a null path map for a state
    read from a string.) Throws ErrorKind::Value when lilv cannot read the state. */
std::string lv2PresetFile (const std::string& stateTurtle, const std::string& label, const std::string& fileUri);

struct Lv2Preset {
    std::string pluginUri;   // lv2:appliesTo
    std::string label;       // rdfs:label, or empty
    std::string state;       // the preset as a state string JUCE's LV2 host restores
};

/** The preset in the Turtle file `path`, as lilv reads it. Throws ErrorKind::Value when lilv
    finds no preset there. */
Lv2Preset readLv2Preset (const std::string& path);

} // namespace fxgrad
