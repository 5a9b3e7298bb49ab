#include "Chain.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <set>

#include "Errors.h"

namespace fxgrad {

Chain::Chain (std::vector<std::shared_ptr<Plugin>> plugins, const std::vector<std::string>& learned, bool learnAll,
              const std::vector<std::pair<std::string, float>>& pinned)
    : chainPlugins (std::move (plugins))
{
    if (chainPlugins.empty())
        fail (ErrorKind::Value, "a chain needs at least one plugin");
    const auto& first = chainPlugins.front()->options();
    for (size_t k = 0; k < chainPlugins.size(); ++k) {
        if (chainPlugins[k] == nullptr)
            fail (ErrorKind::Type, "chain entry " + std::to_string (k) + " is not a plugin");
        const auto& o = chainPlugins[k]->options();
        if (o.sampleRate != first.sampleRate || o.blockSize != first.blockSize || o.channels != first.channels)
            fail (ErrorKind::Value, "every plugin of a chain must share sample_rate, block_size and channels; plugin "
                  + std::to_string (k) + " ('" + chainPlugins[k]->info().name + "') differs from plugin 0");
        for (size_t j = 0; j < k; ++j)
            if (chainPlugins[j] == chainPlugins[k])
                fail (ErrorKind::Value, "plugin " + std::to_string (k) + " appears twice in the chain; load it twice");
    }

    std::set<std::pair<int, int>> pinnedSet;
    for (const auto& [name, value] : pinned) {
        const auto ref = resolve (name);
        const auto& info = chainPlugins[(size_t) ref.plugin]->parameters()[(size_t) ref.parameter];
        if (! info.inRange (value))
            fail (ErrorKind::Value, "pinned value " + std::to_string (value) + " for '" + name + "' is outside its range ["
                  + std::to_string (info.minimum) + ", " + std::to_string (info.maximum) + "]");
        pinnedValues.emplace_back (ref, value);
        pinnedSet.insert ({ ref.plugin, ref.parameter });
    }

    std::set<std::pair<int, int>> learnedSet;
    if (learnAll) {
        // Switches (toggles, triggers) have no gradient to follow: a perturbation of eps moves
        // them only where it crosses 0.5. Meters are outputs and never parameters (LV2 output
        // ports are not parameters; LADSPA outputs and read-only VST3 ones are not automatable).
        for (int k = 0; k < (int) chainPlugins.size(); ++k)
            for (const auto& p : chainPlugins[(size_t) k]->parameters())
                if (p.automatable && ! p.isBypass && ! p.isToggle && ! p.isTrigger && ! pinnedSet.count ({ k, p.index }))
                    learnedRefs.push_back ({ k, p.index });
    } else {
        for (const auto& name : learned) {
            const auto ref = resolve (name);
            if (pinnedSet.count ({ ref.plugin, ref.parameter }))
                fail (ErrorKind::Value, "parameter '" + name + "' is both learned and pinned");
            if (! learnedSet.insert ({ ref.plugin, ref.parameter }).second)
                fail (ErrorKind::Value, "parameter '" + name + "' is listed twice in learned");
            learnedRefs.push_back (ref);
        }
    }
    applyPinned();
}

std::unique_ptr<Chain> Chain::clone() const
{
    std::unique_ptr<Chain> copy (new Chain());
    for (const auto& p : chainPlugins)
        copy->chainPlugins.push_back (p->clone());
    copy->learnedRefs = learnedRefs;
    copy->pinnedValues = pinnedValues;
    return copy;
}

std::unique_ptr<Chain> Chain::assemble (std::vector<std::shared_ptr<Plugin>> plugins, std::vector<ParameterRef> learned,
                                        std::vector<std::pair<ParameterRef, float>> pinned)
{
    std::unique_ptr<Chain> chain (new Chain());
    chain->chainPlugins = std::move (plugins);
    for (const auto& ref : learned)
        if (ref.plugin < 0 || ref.plugin >= (int) chain->chainPlugins.size()
            || ref.parameter < 0 || ref.parameter >= chain->chainPlugins[(size_t) ref.plugin]->numParameters())
            fail (ErrorKind::Value, "a learned parameter refers to no parameter of the chain");
    chain->learnedRefs = std::move (learned);
    chain->pinnedValues = std::move (pinned);
    return chain;
}

std::string Chain::qualifiedName (const ParameterRef& ref) const
{
    return std::to_string (ref.plugin) + "." + chainPlugins[(size_t) ref.plugin]->parameters()[(size_t) ref.parameter].id;
}

ParameterRef Chain::resolve (const std::string& name) const
{
    const auto dot = name.find ('.');
    if (dot != std::string::npos && dot > 0) {
        const auto prefix = name.substr (0, dot);
        if (std::all_of (prefix.begin(), prefix.end(), [] (unsigned char c) { return std::isdigit (c); })) {
            const int k = std::stoi (prefix);
            if (k >= (int) chainPlugins.size())
                fail (ErrorKind::Key, "'" + name + "': the chain has " + std::to_string (chainPlugins.size()) + " plugins (0-"
                      + std::to_string (chainPlugins.size() - 1) + ")");
            return { k, chainPlugins[(size_t) k]->findParameter (name.substr (dot + 1)) };
        }
    }
    std::vector<ParameterRef> found;
    for (int k = 0; k < (int) chainPlugins.size(); ++k)
        for (const auto& p : chainPlugins[(size_t) k]->parameters())
            if (p.id == name || p.name == name) {
                found.push_back ({ k, p.index });
                break;
            }
    if (found.size() == 1)
        return found.front();
    if (found.size() > 1) {
        std::string where;
        for (const auto& r : found)
            where += (where.empty() ? "" : ", ") + qualifiedName (r);
        fail (ErrorKind::Key, "'" + name + "' is ambiguous in this chain; write one of: " + where);
    }
    // Scored against the bare ids and names (a typo of "LSgain" is two edits from it, four from
    // "0.LSgain") and offered as "INDEX.ID", best first.
    std::vector<std::string> keys;
    std::map<std::string, std::vector<std::string>> owners;   // key -> "INDEX.ID" holding it
    for (int k = 0; k < (int) chainPlugins.size(); ++k)
        for (const auto& p : chainPlugins[(size_t) k]->parameters())
            for (const auto& key : { p.id, p.name }) {
                auto& holders = owners[key];
                if (holders.empty())
                    keys.push_back (key);
                const auto qualified = std::to_string (k) + "." + p.id;
                if (std::find (holders.begin(), holders.end(), qualified) == holders.end())
                    holders.push_back (qualified);
            }
    std::vector<std::string> close;
    for (const auto& key : closeMatches (name, keys, (int) keys.size()))
        for (const auto& qualified : owners[key])
            if (close.size() < 5 && std::find (close.begin(), close.end(), qualified) == close.end())
                close.push_back (qualified);
    std::string message = "no parameter '" + name + "' in the chain";
    if (! close.empty()) {
        message += "; close matches: ";
        for (size_t i = 0; i < close.size(); ++i)
            message += (i ? ", " : "") + close[i];
    } else {
        message += "; `fxgrad info PLUGIN` lists a plugin's parameters";
    }
    fail (ErrorKind::Key, message);
}

int Chain::latencySamples() const
{
    int total = 0;
    for (const auto& p : chainPlugins)
        total += p->latencySamples();
    return total;
}

bool Chain::hasDspSnapshot() const
{
    return std::all_of (chainPlugins.begin(), chainPlugins.end(), [] (const auto& p) { return p->hasDspSnapshot(); });
}

void Chain::setLearned (const float* normalized)
{
    for (size_t i = 0; i < learnedRefs.size(); ++i)
        chainPlugins[(size_t) learnedRefs[i].plugin]->setNormalized (learnedRefs[i].parameter, normalized[i]);
}

void Chain::getLearned (float* normalized) const
{
    for (size_t i = 0; i < learnedRefs.size(); ++i)
        normalized[i] = chainPlugins[(size_t) learnedRefs[i].plugin]->getNormalized (learnedRefs[i].parameter);
}

void Chain::applyPinned()
{
    for (const auto& [ref, value] : pinnedValues)
        chainPlugins[(size_t) ref.plugin]->setPlain (ref.parameter, value);
}

void Chain::process (const float* input, int64_t inputStride, float* output, int64_t outputStride, int64_t numSamples)
{
    for (size_t k = 0; k < chainPlugins.size(); ++k) {
        if (progress != nullptr)
            progress->store ((int32_t) k, std::memory_order_relaxed);
        if (k == 0)
            chainPlugins[k]->process (input, inputStride, output, outputStride, numSamples);
        else
            chainPlugins[k]->process (output, outputStride, output, outputStride, numSamples);
    }
}

void Chain::reset()
{
    for (auto& p : chainPlugins)
        p->reset();
}

std::vector<std::string> Chain::getStates() const
{
    std::vector<std::string> states;
    for (const auto& p : chainPlugins)
        states.push_back (p->getState());
    return states;
}

void Chain::setStates (const std::vector<std::string>& states)
{
    if (states.size() != chainPlugins.size())
        fail (ErrorKind::Value, "expected " + std::to_string (chainPlugins.size()) + " plugin states, got " + std::to_string (states.size()));
    for (size_t k = 0; k < states.size(); ++k)
        chainPlugins[k]->setState (states[k]);
}

} // namespace fxgrad
