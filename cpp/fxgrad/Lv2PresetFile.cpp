#include "Lv2PresetFile.h"

#include <lilv/lilv.h>
#include <lv2/atom/atom.h>

#include <map>
#include <memory>
#include <vector>

#include "Errors.h"
#include "Lv2PresetPatch.h"

namespace fxgrad {

namespace {
/** A URID map and unmap of their own: the state's URIs only pass through lilv here. */
struct Urids {
    std::map<std::string, LV2_URID> ids;
    std::vector<std::string> uris;
    LV2_URID_Map map { this, [] (LV2_URID_Map_Handle h, const char* uri) { return static_cast<Urids*> (h)->id (uri); } };
    LV2_URID_Unmap unmap { this, [] (LV2_URID_Unmap_Handle h, LV2_URID id) { return static_cast<Urids*> (h)->uri (id); } };

    LV2_URID id (const char* uri)
    {
        const auto [it, added] = ids.emplace (uri, (LV2_URID) uris.size() + 1);
        if (added)
            uris.push_back (uri);
        return it->second;
    }
    const char* uri (LV2_URID id) const { return id >= 1 && id <= uris.size() ? uris[id - 1].c_str() : nullptr; }
};

struct WorldDeleter { void operator() (LilvWorld* w) const { lilv_world_free (w); } };
struct StateDeleter { void operator() (LilvState* s) const { lilv_state_free (s); } };
using World = std::unique_ptr<LilvWorld, WorldDeleter>;
using State = std::unique_ptr<LilvState, StateDeleter>;
} // namespace

std::string lv2PresetFile (const std::string& stateTurtle, const std::string& label, const std::string& fileUri)
{
    // A world of its own (no bundle loaded): the state carries everything lilv writes.
    World world (lilv_world_new());
    Urids urids;
    State state (lilv_state_new_from_string (world.get(), &urids.map, stateTurtle.c_str()));
    if (state == nullptr)
        fail (ErrorKind::Value, "lilv could not read the plugin's state as an LV2 preset");
    lilv_state_set_label (state.get(), label.c_str());
    char* body = lilv_state_to_string (world.get(), &urids.map, &urids.unmap, state.get(), fileUri.c_str(), fileUri.c_str());
    if (body == nullptr)
        fail (ErrorKind::Value, "lilv could not write the plugin's state as an LV2 preset");
    // The prefixes lilv's writer abbreviates to (state.c, set_prefixes), which a file must declare.
    std::string file;
    for (const auto& [prefix, uri] : { std::pair<const char*, const char*> { "atom", "http://lv2plug.in/ns/ext/atom#" },
                                       { "lv2", "http://lv2plug.in/ns/lv2core#" },
                                       { "pset", "http://lv2plug.in/ns/ext/presets#" },
                                       { "rdf", "http://www.w3.org/1999/02/22-rdf-syntax-ns#" },
                                       { "rdfs", "http://www.w3.org/2000/01/rdf-schema#" },
                                       { "state", "http://lv2plug.in/ns/ext/state#" },
                                       { "xsd", "http://www.w3.org/2001/XMLSchema#" } })
        file += std::string ("@prefix ") + prefix + ": <" + uri + "> .\n";
    file += "\n";
    file += body;
    lilv_free (body);
    return file;
}

Lv2Preset readLv2Preset (const std::string& path)
{
    World world (lilv_world_new());
    Urids urids;
    State state (lilv_state_new_from_file (world.get(), &urids.map, nullptr, path.c_str()));
    if (state == nullptr)
        fail (ErrorKind::Value, path + ": lilv finds no LV2 preset in it");
    Lv2Preset preset;
    if (const LilvNode* plugin = lilv_state_get_plugin_uri (state.get()))
        preset.pluginUri = lilv_node_as_uri (plugin);
    if (const char* label = lilv_state_get_label (state.get()))
        preset.label = label;
    const LilvNode* subject = lilv_state_get_uri (state.get());
    char* text = lilv_state_to_string (world.get(), &urids.map, &urids.unmap, state.get(),
                                       subject != nullptr ? lilv_node_as_uri (subject) : "urn:fxgrad:preset", nullptr);
    if (text == nullptr)
        fail (ErrorKind::Value, path + ": lilv could not write its preset as a state string");
    preset.state = text;
    lilv_free (text);
    // lilv wrote the port values it read with 8 decimals; they go back in full (Lv2PresetPatch.h).
    struct Read {
        LV2_URID floatType;
        std::vector<PortValue> values;
    } read { urids.id (LV2_ATOM__Float), {} };
    lilv_state_emit_port_values (state.get(), [] (const char* symbol, void* user, const void* value, uint32_t size, uint32_t type) {
        auto* r = static_cast<Read*> (user);
        if (type == r->floatType && size == sizeof (float))
            r->values.push_back ({ symbol, *static_cast<const float*> (value), true });
    }, &read);
    preset.state = withPortValues (std::move (preset.state), read.values);
    return preset;
}

} // namespace fxgrad
