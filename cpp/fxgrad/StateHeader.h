#pragma once
// The header of a plugin state as fxgrad hands it out (Plugin::getState): a magic line and a
// version, a line naming the plugin, and the size and checksum of the plugin's own data, which
// follows. JUCE's hosts apply whatever they are given (an LV2 plugin resets to its defaults on
// garbage and crashes on Turtle that is not a preset; a LADSPA one reads as many floats as it has
// parameters, whatever the size), so a state is checked against its header before it is applied.
#include <cstddef>
#include <string>

#include "Host.h"

namespace fxgrad {

/** The line that names a plugin in its states: LV2 plugins are their URI wherever the bundle
    lies; others their format, name and unique id. */
std::string stateOwner (const juce::PluginDescription&, const PluginInfo&);

/** `data` (the plugin's own state) behind a header naming `owner`. */
std::string wrapState (const std::string& owner, const std::string& data);

/** Where the plugin's data starts in `blob`, a state from wrapState() for `owner`. Throws
    ErrorKind::Value, naming `plugin` and what is wrong, for anything else: arbitrary bytes, a
    state of another plugin or format version, a damaged header, truncated or corrupted data. */
size_t checkStateHeader (const std::string& blob, const std::string& owner, const std::string& plugin);

} // namespace fxgrad
