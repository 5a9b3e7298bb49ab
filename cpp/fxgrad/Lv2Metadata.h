#pragma once
// What an LV2 plugin declares in its Turtle files (port ranges, scales, units, scale points),
// read through a lilv world of fxgrad's own: JUCE's LV2 host keeps its world private and does
// not expose logarithmic scales or units.
#include <map>
#include <string>
#include <vector>

#include "Parameter.h"

namespace fxgrad {

class Lv2Metadata {
public:
    Lv2Metadata();
    ~Lv2Metadata();
    Lv2Metadata (const Lv2Metadata&) = delete;
    Lv2Metadata& operator= (const Lv2Metadata&) = delete;

    /** Loads the bundles found under the default LV2 locations and `searchPath` (separated by ':'). */
    void loadAll (const std::string& searchPath);

    /** Loads one bundle folder and returns the URIs of the plugins it holds. */
    std::vector<std::string> loadBundle (const std::string& bundleFolder);

    bool knows (const std::string& uri) const;

    /** The folder of the bundle the plugin is loaded from (lilv keeps the first bundle that
        declares a URI), or empty when the URI is unknown. */
    std::string bundleOf (const std::string& uri) const;

    /** When JUCE's LV2 host forms the main input bus from ungrouped ports (it does when no audio
        input has a port group), whether each of that bus's channels is a sidechain port
        (lv2:isSideChain); empty otherwise. */
    std::vector<bool> mainBusSideChains (const std::string& uri) const;

    /** Why JUCE's LV2 host would connect none of the plugin's audio inputs (or outputs), or empty.
        Without port groups it forms one bus of the ungrouped audio ports by their channel
        designations, and where two of them share one (x42's xfade: inputs A and B both pg:left,
        pg:right) its port map comes out empty: every port gets a null buffer, which the plugin
        reads in its first run() and crashes on. */
    std::string unconnectedPorts (const std::string& uri) const;

    /** The plugin's parameters keyed as JUCE's LV2 host names them: control input ports as
        "sym:SYMBOL", patch parameters (lv2:Parameter, patch:writable) as "des:URI". */
    std::map<std::string, ParameterInfo> parameters (const std::string& uri) const;

private:
    struct World;
    World* world;
};

} // namespace fxgrad
