#pragma once
// What a LADSPA plugin declares in its descriptor (port bounds, defaults, logarithmic, integer,
// toggled, bounds relative to the sample rate), read from the library itself: JUCE's LADSPA host
// shows every control port as a [0, 1] parameter with none of these, and its [0, 1] coordinate
// starts out disagreeing with the port value for several kinds of default.
#include <map>
#include <string>
#include <vector>

#include "Parameter.h"

namespace fxgrad {

/** One plugin of a LADSPA library, as its descriptor names it. */
struct LadspaPluginEntry {
    int index = 0;                 // position in the library (what JUCE's LADSPA host calls uniqueId)
    unsigned long uniqueId = 0;    // the LADSPA unique ID
    std::string label;             // unique within the library; with the path it names the plugin
    std::string name;
    int audioInputs = 0, audioOutputs = 0;
};

/** The plugins a library holds, in index order; empty when it is not a LADSPA library. */
std::vector<LadspaPluginEntry> ladspaPlugins (const std::string& library);

/** The control ports of one LADSPA plugin and the mapping between their values and JUCE's
    [0, 1] parameter coordinate, replicating JUCE's LADSPA host exactly so that a plain value set
    is the value the port receives. Ports are addressed by fxgrad's parameter index: JUCE makes
    one parameter per control port, in port order, and fxgrad keeps those of the input ports. */
class LadspaPorts {
public:
    LadspaPorts (const std::string& library, int pluginIndex, double sampleRate);

    /** Control input ports keyed as JUCE's LADSPA host names them (the port number), in plain
        units with their declared bounds, defaults and hints. */
    std::map<std::string, ParameterInfo> parameters() const;

    /** JUCE's coordinate that gives control port `parameterIndex` the plain value nearest `plain`. */
    float hostValue (int parameterIndex, float plain) const;

    /** The plain value JUCE's host gives the port for its coordinate `hostValue`. */
    float plainValue (int parameterIndex, float hostValue) const;

private:
    struct Port {
        int number = 0;            // LADSPA port index
        std::string name;
        int hints = 0;             // LADSPA_PortRangeHintDescriptor
        float lower = 0.0f, upper = 0.0f;
    };
    Port const& port (int parameterIndex) const;

    std::vector<Port> ports;       // control input ports, in port order
    double sampleRate;
};

} // namespace fxgrad
