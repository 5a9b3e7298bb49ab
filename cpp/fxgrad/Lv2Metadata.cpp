#include "Lv2Metadata.h"

#include <lilv/lilv.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>

namespace fxgrad {

namespace {
constexpr const char* kLv2Core = "http://lv2plug.in/ns/lv2core#";
constexpr const char* kPortProps = "http://lv2plug.in/ns/ext/port-props#";
constexpr const char* kUnits = "http://lv2plug.in/ns/extensions/units#";
constexpr const char* kPortGroups = "http://lv2plug.in/ns/ext/port-groups#";

std::string unitLabel (const std::string& unitUri)
{
    static const std::map<std::string, std::string> labels {
        { "db", "dB" }, { "hz", "Hz" }, { "khz", "kHz" }, { "mhz", "MHz" }, { "ms", "ms" },
        { "s", "s" }, { "min", "min" }, { "pc", "%" }, { "bpm", "BPM" }, { "cent", "cents" },
        { "semitone12TET", "semitones" }, { "oct", "octaves" }, { "degree", "degrees" },
        { "coef", "" }, { "frame", "samples" }, { "m", "m" }, { "cm", "cm" }, { "mm", "mm" },
    };
    const auto hash = unitUri.rfind ('#');
    const auto key = hash == std::string::npos ? unitUri : unitUri.substr (hash + 1);
    const auto it = labels.find (key);
    return it != labels.end() ? it->second : key;
}
} // namespace

struct Lv2Metadata::World {
    LilvWorld* lilv = lilv_world_new();
    LilvNode* controlPort = uri (std::string (kLv2Core) + "ControlPort");
    LilvNode* inputPort = uri (std::string (kLv2Core) + "InputPort");
    LilvNode* outputPort = uri (std::string (kLv2Core) + "OutputPort");
    LilvNode* integer = uri (std::string (kLv2Core) + "integer");
    LilvNode* toggled = uri (std::string (kLv2Core) + "toggled");
    LilvNode* enumeration = uri (std::string (kLv2Core) + "enumeration");
    LilvNode* designation = uri (std::string (kLv2Core) + "designation");
    LilvNode* enabled = uri (std::string (kLv2Core) + "enabled");
    LilvNode* logarithmic = uri (std::string (kPortProps) + "logarithmic");
    LilvNode* notAutomatic = uri (std::string (kPortProps) + "notAutomatic");
    LilvNode* expensive = uri (std::string (kPortProps) + "expensive");
    LilvNode* trigger = uri (std::string (kPortProps) + "trigger");
    LilvNode* unit = uri (std::string (kUnits) + "unit");
    LilvNode* unitSymbol = uri (std::string (kUnits) + "symbol");
    LilvNode* writable = uri ("http://lv2plug.in/ns/ext/patch#writable");
    LilvNode* label = uri ("http://www.w3.org/2000/01/rdf-schema#label");
    LilvNode* minimum = uri (std::string (kLv2Core) + "minimum");
    LilvNode* maximum = uri (std::string (kLv2Core) + "maximum");
    LilvNode* defaultValue = uri (std::string (kLv2Core) + "default");
    LilvNode* portProperty = uri (std::string (kLv2Core) + "portProperty");
    LilvNode* audioPort = uri (std::string (kLv2Core) + "AudioPort");
    LilvNode* isSideChain = uri (std::string (kLv2Core) + "isSideChain");
    LilvNode* connectionOptional = uri (std::string (kLv2Core) + "connectionOptional");
    LilvNode* portGroup = uri (std::string (kPortGroups) + "group");

    LilvNode* uri (const std::string& s) { return lilv_new_uri (lilv, s.c_str()); }

    ~World()
    {
        for (auto* n : { controlPort, inputPort, outputPort, integer, toggled, enumeration, designation, enabled,
                         logarithmic, notAutomatic, expensive, trigger, unit, unitSymbol, audioPort, isSideChain,
                         connectionOptional, portGroup })
            lilv_node_free (n);
        lilv_world_free (lilv);
    }

    const LilvPlugin* find (const std::string& pluginUri) const
    {
        LilvNode* node = lilv_new_uri (lilv, pluginUri.c_str());
        const LilvPlugin* plugin = lilv_plugins_get_by_uri (lilv_world_get_all_plugins (lilv), node);
        lilv_node_free (node);
        return plugin;
    }
};

Lv2Metadata::Lv2Metadata() : world (new World) {}
Lv2Metadata::~Lv2Metadata() { delete world; }

void Lv2Metadata::loadAll (const std::string& searchPath)
{
    // lilv's default path follows LV2_PATH; fxgrad adds the standard folders and its own.
    std::string path = searchPath;
    for (const char* folder : { "~/.lv2", "/usr/lib/lv2", "/usr/local/lib/lv2", "/usr/lib64/lv2",
                                "/usr/local/lib64/lv2", "/usr/lib/x86_64-linux-gnu/lv2" })
        path += (path.empty() ? "" : ":") + std::string (folder);
    LilvNode* node = lilv_new_string (world->lilv, path.c_str());
    lilv_world_set_option (world->lilv, LILV_OPTION_LV2_PATH, node);
    lilv_node_free (node);
    lilv_world_load_all (world->lilv);
}

std::vector<std::string> Lv2Metadata::loadBundle (const std::string& bundleFolder)
{
    std::string folder = bundleFolder;
    if (folder.empty() || folder.back() != '/')
        folder += '/';
    LilvNode* bundle = lilv_new_file_uri (world->lilv, nullptr, folder.c_str());
    lilv_world_load_bundle (world->lilv, bundle);

    const auto declaredIn = [] (LilvWorld* w, const LilvNode* bundleUri) {
        std::vector<std::string> found;
        const LilvPlugins* plugins = lilv_world_get_all_plugins (w);
        LILV_FOREACH (plugins, it, plugins) {
            const LilvPlugin* plugin = lilv_plugins_get (plugins, it);
            if (lilv_node_equals (lilv_plugin_get_bundle_uri (plugin), bundleUri))
                found.emplace_back (lilv_node_as_uri (lilv_plugin_get_uri (plugin)));
        }
        return found;
    };
    auto uris = declaredIn (world->lilv, bundle);
    lilv_node_free (bundle);

    if (uris.empty()) {
        // lilv ignores a plugin whose URI is already known from another bundle (a copy of an
        // installed bundle): read the manifest in a world of its own to learn what it declares.
        LilvWorld* own = lilv_world_new();
        LilvNode* ownBundle = lilv_new_file_uri (own, nullptr, folder.c_str());
        lilv_world_load_bundle (own, ownBundle);
        uris = declaredIn (own, ownBundle);
        lilv_node_free (ownBundle);
        lilv_world_free (own);
    }
    return uris;
}

bool Lv2Metadata::knows (const std::string& uri) const { return world->find (uri) != nullptr; }

std::string Lv2Metadata::bundleOf (const std::string& uri) const
{
    const LilvPlugin* plugin = world->find (uri);
    if (plugin == nullptr)
        return {};
    char* path = lilv_file_uri_parse (lilv_node_as_uri (lilv_plugin_get_bundle_uri (plugin)), nullptr);
    std::string folder = path != nullptr ? path : "";
    lilv_free (path);
    while (folder.size() > 1 && folder.back() == '/')
        folder.pop_back();
    return folder;
}

std::vector<bool> Lv2Metadata::mainBusSideChains (const std::string& uri) const
{
    std::vector<bool> sideChains;
    const LilvPlugin* plugin = world->find (uri);
    if (plugin == nullptr)
        return {};
    for (uint32_t i = 0, n = lilv_plugin_get_num_ports (plugin); i < n; ++i) {
        const LilvPort* port = lilv_plugin_get_port_by_index (plugin, i);
        if (! lilv_port_is_a (plugin, port, world->audioPort) || ! lilv_port_is_a (plugin, port, world->inputPort))
            continue;
        if (LilvNodes* groups = lilv_port_get_value (plugin, port, world->portGroup)) {
            const bool grouped = lilv_nodes_size (groups) > 0;
            lilv_nodes_free (groups);
            if (grouped)
                return {};   // JUCE builds the buses from the groups instead
        }
        // JUCE gives each optional ungrouped port a bus of its own.
        if (! lilv_port_has_property (plugin, port, world->connectionOptional))
            sideChains.push_back (lilv_port_has_property (plugin, port, world->isSideChain));
    }
    return sideChains;
}

std::string Lv2Metadata::unconnectedPorts (const std::string& uri) const
{
    const LilvPlugin* plugin = world->find (uri);
    if (plugin == nullptr)
        return {};
    for (LilvNode* direction : { world->inputPort, world->outputPort }) {
        std::map<std::string, std::string> portOf;   // designation -> port symbol
        bool grouped = false;
        std::string clash;
        for (uint32_t i = 0, n = lilv_plugin_get_num_ports (plugin); i < n; ++i) {
            const LilvPort* port = lilv_plugin_get_port_by_index (plugin, i);
            if (! lilv_port_is_a (plugin, port, world->audioPort) || ! lilv_port_is_a (plugin, port, direction))
                continue;
            if (LilvNodes* groups = lilv_port_get_value (plugin, port, world->portGroup)) {
                grouped = grouped || lilv_nodes_size (groups) > 0;
                lilv_nodes_free (groups);
            }
            if (lilv_port_has_property (plugin, port, world->connectionOptional))
                continue;   // a bus of its own
            LilvNodes* designations = lilv_port_get_value (plugin, port, world->designation);
            if (designations == nullptr)
                continue;
            const std::string symbol = lilv_node_as_string (lilv_port_get_symbol (plugin, port));
            LILV_FOREACH (nodes, it, designations) {
                const LilvNode* d = lilv_nodes_get (designations, it);
                // JUCE maps the port-groups channel designations (pg:left, pg:right, ...) to channels.
                if (! lilv_node_is_uri (d) || std::string (lilv_node_as_uri (d)).rfind (kPortGroups, 0) != 0)
                    continue;
                const auto [other, fresh] = portOf.emplace (lilv_node_as_uri (d), symbol);
                if (! fresh && clash.empty())
                    clash = "its audio " + std::string (direction == world->inputPort ? "inputs" : "outputs") + " '"
                            + other->second + "' and '" + symbol + "' are both designated "
                            + other->first.substr (std::strlen (kPortGroups));
            }
            lilv_nodes_free (designations);
        }
        if (! grouped && ! clash.empty())
            return clash + " and belong to no port group: JUCE's LV2 host, which fxgrad uses, then connects "
                           "none of its audio ports";
    }
    return {};
}

std::map<std::string, ParameterInfo> Lv2Metadata::parameters (const std::string& uri) const
{
    std::map<std::string, ParameterInfo> result;
    const LilvPlugin* plugin = world->find (uri);
    if (plugin == nullptr)
        return result;

    const uint32_t numPorts = lilv_plugin_get_num_ports (plugin);
    std::vector<float> minimum (numPorts), maximum (numPorts), defaults (numPorts);
    lilv_plugin_get_port_ranges_float (plugin, minimum.data(), maximum.data(), defaults.data());

    for (uint32_t i = 0; i < numPorts; ++i) {
        const LilvPort* port = lilv_plugin_get_port_by_index (plugin, i);
        if (! lilv_port_is_a (plugin, port, world->controlPort) || ! lilv_port_is_a (plugin, port, world->inputPort))
            continue;

        ParameterInfo info;
        info.index = (int) i;   // port index; the plugin maps it to its own parameter index
        info.id = lilv_node_as_string (lilv_port_get_symbol (plugin, port));
        LilvNode* name = lilv_port_get_name (plugin, port);
        info.name = name != nullptr ? lilv_node_as_string (name) : info.id;
        lilv_node_free (name);

        info.minimum = std::isnan (minimum[i]) ? 0.0f : minimum[i];
        info.maximum = std::isnan (maximum[i]) ? 1.0f : maximum[i];
        info.defaultValue = std::isnan (defaults[i]) ? info.minimum : defaults[i];
        info.isToggle = lilv_port_has_property (plugin, port, world->toggled);
        info.isInteger = info.isToggle || lilv_port_has_property (plugin, port, world->integer);
        info.isTrigger = lilv_port_has_property (plugin, port, world->trigger);
        info.scale = lilv_port_has_property (plugin, port, world->logarithmic) ? Scale::Logarithmic : Scale::Linear;
        info.automatable = ! lilv_port_has_property (plugin, port, world->notAutomatic)
                           && ! lilv_port_has_property (plugin, port, world->expensive);

        if (LilvNodes* units = lilv_port_get_value (plugin, port, world->unit)) {
            if (lilv_nodes_size (units) > 0) {
                const LilvNode* unitNode = lilv_nodes_get_first (units);
                if (lilv_node_is_uri (unitNode))
                    info.unit = unitLabel (lilv_node_as_uri (unitNode));
            }
            lilv_nodes_free (units);
        }

        if (lilv_port_has_property (plugin, port, world->enumeration)) {
            if (LilvScalePoints* points = lilv_port_get_scale_points (plugin, port)) {
                LILV_FOREACH (scale_points, it, points) {
                    const LilvScalePoint* point = lilv_scale_points_get (points, it);
                    info.choices.emplace_back (lilv_node_as_float (lilv_scale_point_get_value (point)),
                                               lilv_node_as_string (lilv_scale_point_get_label (point)));
                }
                lilv_scale_points_free (points);
            }
            std::sort (info.choices.begin(), info.choices.end());
            info.steps = (int) info.choices.size();
        } else if (info.isInteger) {
            info.steps = (int) std::lround (info.maximum - info.minimum) + 1;
        }

        if (LilvNodes* designations = lilv_port_get_value (plugin, port, world->designation)) {
            LILV_FOREACH (nodes, it, designations)
                if (lilv_node_equals (lilv_nodes_get (designations, it), world->enabled))
                    info.isBypass = true;
            lilv_nodes_free (designations);
        }
        result.emplace ("sym:" + info.id, std::move (info));
    }

    // Patch parameters, as JUCE's own LV2 plugins declare theirs.
    if (LilvNodes* properties = lilv_plugin_get_value (plugin, world->writable)) {
        LILV_FOREACH (nodes, it, properties) {
            const LilvNode* property = lilv_nodes_get (properties, it);
            if (! lilv_node_is_uri (property))
                continue;
            const auto get = [&] (LilvNode* predicate) { return lilv_world_get (world->lilv, property, predicate, nullptr); };
            const auto number = [&] (LilvNode* predicate, float fallback) {
                LilvNode* node = get (predicate);
                const float value = node != nullptr && (lilv_node_is_float (node) || lilv_node_is_int (node)) ? lilv_node_as_float (node) : fallback;
                lilv_node_free (node);
                return value;
            };
            const auto has = [&] (LilvNode* value) { return lilv_world_ask (world->lilv, property, world->portProperty, value); };

            ParameterInfo info;
            const std::string propertyUri = lilv_node_as_uri (property);
            const auto cut = propertyUri.find_last_of (":#/");
            info.id = cut == std::string::npos ? propertyUri : propertyUri.substr (cut + 1);
            LilvNode* name = get (world->label);
            info.name = name != nullptr ? lilv_node_as_string (name) : info.id;
            lilv_node_free (name);
            info.minimum = number (world->minimum, 0.0f);
            info.maximum = number (world->maximum, 1.0f);
            info.defaultValue = number (world->defaultValue, 0.5f * (info.minimum + info.maximum));
            info.isToggle = has (world->toggled);
            info.isTrigger = has (world->trigger);
            info.isInteger = info.isToggle || has (world->integer);
            info.scale = has (world->logarithmic) ? Scale::Logarithmic : Scale::Linear;
            if (LilvNode* unitNode = get (world->unit)) {
                if (lilv_node_is_uri (unitNode))
                    info.unit = unitLabel (lilv_node_as_uri (unitNode));
                lilv_node_free (unitNode);
            }
            if (info.isInteger)
                info.steps = (int) std::lround (info.maximum - info.minimum) + 1;
            result.emplace ("des:" + propertyUri, std::move (info));
        }
        lilv_nodes_free (properties);
    }
    return result;
}

} // namespace fxgrad
