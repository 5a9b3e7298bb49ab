#pragma once
// The process-wide plugin host: JUCE's runtime, a message thread, the plugin formats and the
// lookup of a plugin by identifier or path. Every loaded plugin keeps the host alive.
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <juce_audio_processors/juce_audio_processors.h>

namespace fxgrad {

class Lv2Metadata;

/** What a scan or a load reports about a plugin, before any parameter is read. */
struct PluginInfo {
    std::string format;       // "LV2", "VST3", "VST2" or "LADSPA"
    std::string name;
    std::string vendor;
    // What load() takes to load this plugin: an LV2 URI (an LV2 bundle folder outside the LV2
    // search path), the path of a VST3 bundle / VST2 or LADSPA library, and PATH#SELECTOR where a
    // file holds several plugins (a LADSPA label, a VST2 shell's unique ID, a VST3 class name,
    // an LV2 URI).
    std::string identifier;
    std::string uniqueId;     // JUCE's own identifier string (several plugins may share a file)
    int numInputs = 0;        // audio inputs, all buses
    int numOutputs = 0;       // audio outputs, all buses
    std::string unsupported;  // why fxgrad cannot host it (no audio output); empty when it can
};

/** Implemented by everything that owns plugin instances, so that shutdown can release them
    while JUCE is still alive (at interpreter exit, whatever order Python frees objects in). */
class InstanceOwner {
public:
    virtual ~InstanceOwner() = default;
    virtual void releaseInstances() = 0;
};

/** Deletes a plugin instance on JUCE's message thread. JUCE's VST3 instance runs a 60 Hz timer
    there (its parameter dispatcher, which flushes values into the edit controller), its VST2 and
    LV2 instances async updaters (LV2 also a timer that the last instance frees). Deleted on another thread,
    an instance terminates its controller on the message thread and then frees those members on
    the deleting thread while their callback may be running on the message thread (JUCE unlocks
    its timer list around each callback): a crash now and then, in a thread Python does not
    know, some time after a plugin was freed. On the message thread no callback runs meanwhile. */
struct InstanceDeleter {
    void operator() (juce::AudioPluginInstance*) const;
};
using InstancePtr = std::unique_ptr<juce::AudioPluginInstance, InstanceDeleter>;

class Host {
public:
    /** The live host, created on first use. Throws ErrorKind::Closed after shutdown(), and
        ErrorKind::Forked in a process forked from the one that created it. */
    static std::shared_ptr<Host> get();

    /** Releases every instance, stops the message thread and frees JUCE's formats. */
    static void shutdown();

    ~Host();

    /** Installed plugins: the formats' standard locations, LV2_PATH / LADSPA_PATH / VST3_PATH /
        VST_PATH / LXVST_PATH, and `extraPaths` (folders searched recursively, or plugin files). */
    std::vector<PluginInfo> scan (const std::vector<std::string>& extraPaths);

    /** Resolves an LV2 URI, an LV2 bundle folder (from any location), a VST3 bundle, a VST2 or
        LADSPA library, or PATH#SELECTOR, to a plugin description. `hint` (or the SELECTOR) picks
        among several plugins in one file or bundle: an LV2 URI, a LADSPA label or unique ID, a
        VST2 shell plugin's unique ID, or a plugin's name. */
    juce::PluginDescription resolve (const std::string& identifierOrPath, const std::string& hint);

    /** A new instance, prepared for processing. Thread-safe. */
    InstancePtr instantiate (const juce::PluginDescription&, double sampleRate, int blockSize);

    Lv2Metadata& lv2Metadata() { return *lv2; }

    /** Whether instances of the plugin behind `key` keep DSP state through a deactivation (so
        that resetting one takes a new instance): `probe`'s answer, asked once per key. */
    bool resetKeepsState (const std::string& key, const std::function<bool()>& probe);

    /** Held around everything that touches JUCE's LV2 world (lilv and sord are not
        thread-safe): loading, and an LV2 instance's state save/restore and re-creation. */
    std::recursive_mutex& worldMutex() { return loadMutex; }

    void registerOwner (InstanceOwner*);
    void unregisterOwner (InstanceOwner*);

    static PluginInfo describe (const juce::PluginDescription&);

    /** Whether this is the process that created the host (not a child forked from it). */
    bool inCreatingProcess() const;
    /** Throws ErrorKind::Forked unless inCreatingProcess(). */
    void requireCreatingProcess() const;

private:
    Host();
    void releaseAllInstances();
    juce::PluginDescription resolveLv2 (const std::string& identifier, const std::string& hint);
    juce::PluginDescription resolveFile (const std::string& path, const std::string& hint);
    static juce::FileSearchPath vst2Locations();
    std::vector<std::string> loadLv2Bundle (const std::filesystem::path& bundle);

    uint64_t generation;              // the process that created the host (Process.h)
    std::thread messageThread;
    std::unique_ptr<juce::Logger> logger;
    std::unique_ptr<juce::AudioPluginFormatManager> formats;
    juce::LV2PluginFormat* lv2Format = nullptr;
    std::unique_ptr<Lv2Metadata> lv2;
    std::recursive_mutex loadMutex; // JUCE's formats and lilv worlds are not thread-safe
    std::mutex ownersMutex;
    std::mutex resetProbesMutex;
    std::map<std::string, bool> resetProbes;
    std::set<InstanceOwner*> owners;
    // JUCE's LV2 host loads bundles only by scanning folders; each bundle from outside the
    // standard locations is linked into a folder of its own here and that folder scanned.
    juce::File lv2LinkRoot;
    std::set<std::string> linkedBundles;
    std::map<std::string, std::vector<std::string>> bundleUris;   // plugins of each loaded bundle
};

} // namespace fxgrad
