#include "StateHeader.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <utility>

#include "Errors.h"

namespace fxgrad {

namespace {
const std::string stateMagic = "fxgrad-state ";
constexpr int stateVersion = 1;

uint64_t fnv1a (const std::string& data, size_t from)
{
    uint64_t hash = 0xcbf29ce484222325ull;
    for (size_t i = from; i < data.size(); ++i)
        hash = (hash ^ (unsigned char) data[i]) * 0x100000001b3ull;
    return hash;
}

std::string hex (uint64_t value)
{
    char text[24];
    std::snprintf (text, sizeof text, "%016llx", (unsigned long long) value);
    return text;
}

// The start of bytes from a blob, printable ASCII (messages become Python str: UTF-8 only).
std::string preview (const std::string& blob, size_t length = 24)
{
    std::string text;
    for (size_t i = 0; i < std::min (blob.size(), length); ++i) {
        const unsigned char c = (unsigned char) blob[i];
        if (c >= 32 && c < 127 && c != '\\') {
            text += (char) c;
        } else {
            char escaped[8];
            std::snprintf (escaped, sizeof escaped, "\\x%02x", c);
            text += escaped;
        }
    }
    return text + (blob.size() > length ? "..." : "");
}
} // namespace

std::string stateOwner (const juce::PluginDescription& description, const PluginInfo& info)
{
    const bool lv2 = description.pluginFormatName == "LV2";
    std::string owner = description.pluginFormatName.toStdString() + " "
                        + (lv2 ? info.identifier : info.name + " " + hex ((uint32_t) description.uniqueId));
    std::replace (owner.begin(), owner.end(), '\n', ' ');
    return owner;
}

std::string wrapState (const std::string& owner, const std::string& data)
{
    return stateMagic + std::to_string (stateVersion) + "\n" + owner + "\n" + std::to_string (data.size()) + " "
           + hex (fnv1a (data, 0)) + "\n" + data;
}

size_t checkStateHeader (const std::string& blob, const std::string& owner, const std::string& plugin)
{
    if (blob.compare (0, stateMagic.size(), stateMagic) != 0)
        fail (ErrorKind::Value, "load_state: not a plugin state from fxgrad (Plugin.state gives one): "
              + std::to_string (blob.size()) + " bytes starting '" + preview (blob) + "'");
    const auto line = [&] (size_t from) {
        const auto end = blob.find ('\n', from);
        if (end == std::string::npos)
            fail (ErrorKind::Value, "load_state: the state's header is cut short (" + std::to_string (blob.size()) + " bytes)");
        return std::make_pair (blob.substr (from, end - from), end + 1);
    };
    const auto [version, ownerAt] = line (stateMagic.size());
    if (version != std::to_string (stateVersion))
        fail (ErrorKind::Value, "load_state: state format version '" + preview (version) + "'; this fxgrad reads version "
              + std::to_string (stateVersion));
    const auto [stateOwnerLine, sizeAt] = line (ownerAt);
    if (stateOwnerLine != owner)
        fail (ErrorKind::Value, "load_state: the state belongs to another plugin (" + preview (stateOwnerLine, 200) + "), not to "
              + plugin);
    const auto [sizeAndSum, dataAt] = line (sizeAt);
    unsigned long long declared = 0;
    char checksum[17] = {};
    if (std::sscanf (sizeAndSum.c_str(), "%llu %16[0-9a-f]", &declared, checksum) != 2
        || sizeAndSum != std::to_string (declared) + " " + checksum)
        fail (ErrorKind::Value, "load_state: the state's header is damaged ('" + preview (sizeAndSum) + "')");
    const auto actual = blob.size() - dataAt;
    if (actual != declared)
        fail (ErrorKind::Value, "load_state: the state for " + plugin + " is " + (actual < declared ? "truncated" : "too long")
              + ": its header declares " + std::to_string (declared) + " bytes of plugin data, " + std::to_string (actual)
              + " follow");
    if (hex (fnv1a (blob, dataAt)) != checksum)
        fail (ErrorKind::Value, "load_state: the state for " + plugin + " is corrupted: its data do not match its checksum");
    return dataAt;
}

} // namespace fxgrad
