#include "Host.h"

#include <cstdlib>
#include <cctype>
#include <filesystem>
#include <future>
#include <optional>
#include <unistd.h>

#include <set>

#include "Binary.h"
#include "Errors.h"
#include "LadspaMetadata.h"
#include "Lv2Metadata.h"
#include "PluginOutput.h"
#include "Process.h"

namespace fxgrad {

namespace fs = std::filesystem;

namespace {
std::mutex hostMutex;
std::shared_ptr<Host> liveHost;
bool hostClosed = false;

bool looksLikeUri (const std::string& s)
{
    const auto colon = s.find (':');
    if (colon == std::string::npos || colon == 0 || s[0] == '/' || s[0] == '.')
        return false;
    for (size_t i = 0; i < colon; ++i)
        if (! (std::isalnum ((unsigned char) s[i]) || s[i] == '+' || s[i] == '-' || s[i] == '.'))
            return false;
    return ! fs::exists (s);
}

bool isLv2Bundle (const fs::path& p) { return fs::is_directory (p) && fs::exists (p / "manifest.ttl"); }

// Plugins are read (dlopen, lilv) only from regular files: opening a FIFO waits for a writer for
// ever, a device never ends. The first file of a plugin file or bundle folder that is not
// regular (symbolic links followed), or an empty path.
fs::path firstIrregularFile (const fs::path& p)
{
    std::error_code error;
    if (! fs::is_directory (p, error))
        return fs::is_regular_file (p, error) ? fs::path() : p;
    if (! isLv2Bundle (p) && p.extension() != ".vst3")
        return {};   // not a bundle: nothing in it is opened
    const auto options = fs::directory_options::skip_permission_denied | fs::directory_options::follow_directory_symlink;
    for (fs::recursive_directory_iterator it (p, options, error), end; ! error && it != end; it.increment (error))
        if (! it->is_directory (error) && ! it->is_regular_file (error))
            return it->path();
    return {};
}

void requireRegularFiles (const fs::path& p)
{
    const auto irregular = firstIrregularFile (p);
    if (! irregular.empty())
        fail (ErrorKind::PluginLoad, "'" + irregular.string() + "' is not a regular file (a FIFO, device, socket or "
              "broken link): fxgrad opens plugins only from regular files and folders");
}

void requireNoNul (const std::string& text, const std::string& what)
{
    const auto at = text.find ('\0');
    if (at != std::string::npos)
        fail (ErrorKind::Value, what + " contains a NUL character at position " + std::to_string (at) + ": '"
              + text.substr (0, at) + "\\0...'");
}

std::string envOr (const char* name) { const char* v = std::getenv (name); return v != nullptr ? v : ""; }

juce::FileSearchPath searchPathFromEnv (const char* variable)
{
    juce::FileSearchPath path;
    for (const auto& entry : juce::StringArray::fromTokens (juce::String (envOr (variable)), ":", ""))
        if (entry.isNotEmpty() && juce::File::isAbsolutePath (entry))
            path.add (juce::File (entry));
    return path;
}

// What a LADSPA library's descriptor says about the plugin JUCE describes: JUCE numbers a
// library's plugins by position (in uniqueId) and copies the first one's details to the others.
std::optional<LadspaPluginEntry> ladspaEntry (const juce::PluginDescription& d)
{
    if (d.pluginFormatName != "LADSPA")
        return std::nullopt;
    const auto entries = ladspaPlugins (d.fileOrIdentifier.toStdString());
    const auto index = (size_t) (d.uniqueId != 0 ? d.uniqueId : d.deprecatedUid);
    return index < entries.size() ? std::optional<LadspaPluginEntry> (entries[index]) : std::nullopt;
}

// The part of PATH#SELECTOR after '#' that names one plugin of a file holding several.
std::string selectorOf (const juce::PluginDescription& d)
{
    if (const auto entry = ladspaEntry (d))
        return entry->label;
    if (d.pluginFormatName == "VST")
        return std::to_string (d.uniqueId);   // a shell plugin's sub-plugin
    return d.name.toStdString();
}

// Several plugins in one file: each is named by PATH#SELECTOR (JUCE marks VST2 shells itself).
void markShared (juce::OwnedArray<juce::PluginDescription>& found)
{
    if (found.size() > 1)
        for (auto* d : found)
            d->hasSharedContainer = true;
}

bool selects (const juce::PluginDescription& d, const std::string& hint)
{
    if (hint.empty())
        return false;
    if (d.name.toStdString() == hint || d.descriptiveName.toStdString() == hint || d.createIdentifierString().toStdString() == hint)
        return true;
    if (d.pluginFormatName == "LADSPA") {
        // LADSPA names a library's plugins by label and unique ID, not JUCE's position.
        const auto entry = ladspaEntry (d);
        return entry && (entry->label == hint || std::to_string (entry->uniqueId) == hint);
    }
    return std::to_string (d.uniqueId) == hint;
}

std::string joinSelectors (const juce::OwnedArray<juce::PluginDescription>& found)
{
    std::string names;
    for (auto* d : found) {
        const auto selector = selectorOf (*d);
        names += (names.empty() ? "" : ", ") + selector + (selector != d->name.toStdString() ? " (" + d->name.toStdString() + ")" : "");
    }
    return names;
}

// JUCE's VST2 and LADSPA hosts log every file they open or try ("Attempting to load VST: ...",
// for LADSPA libraries too): lines for JUCE's developers, not fxgrad's users.
class SilentLogger : public juce::Logger {
    void logMessage (const juce::String&) override {}
};
} // namespace

std::shared_ptr<Host> Host::get()
{
    std::lock_guard<std::mutex> lock (hostMutex);
    if (hostClosed)
        fail (ErrorKind::Closed, "the fxgrad plugin host has been shut down (interpreter exit)");
    if (liveHost != nullptr)
        liveHost->requireCreatingProcess();
    if (liveHost == nullptr) {
        OutputCapture capture;   // lilv reports on the installed bundles as it loads them
        liveHost.reset (new Host());
    }
    return liveHost;
}

void Host::shutdown()
{
    std::shared_ptr<Host> host;
    {
        std::lock_guard<std::mutex> lock (hostMutex);
        hostClosed = true;
        host = std::move (liveHost);
    }
    // A forked child leaves the parent's instances alone (~Host keeps the rest).
    if (host != nullptr && host->inCreatingProcess())
        host->releaseAllInstances();
}

bool Host::inCreatingProcess() const { return generation == processGeneration(); }

void Host::requireCreatingProcess() const { requireProcess (generation, "the fxgrad plugin host"); }

Host::Host() : generation (processGeneration())
{
    // JUCE's VST3 host and its synchronous plugin creation post work to the message thread and
    // wait for it; a thread of fxgrad's own runs that loop so callers on any thread can load.
    std::promise<void> ready;
    auto started = ready.get_future();
    messageThread = std::thread ([&ready] {
        juce::initialiseJuce_GUI();
        juce::MessageManager::getInstance()->setCurrentThreadAsMessageThread();
        ready.set_value();
        juce::MessageManager::getInstance()->runDispatchLoop();
    });
    started.wait();
    logger = std::make_unique<SilentLogger>();
    juce::Logger::setCurrentLogger (logger.get());

    formats = std::make_unique<juce::AudioPluginFormatManager>();
    auto lv2Owned = std::make_unique<juce::LV2PluginFormat>();
    lv2Format = lv2Owned.get();
    formats->addFormat (lv2Owned.release());
    formats->addFormat (new juce::VST3PluginFormat());
    formats->addFormat (new juce::LADSPAPluginFormat());
    formats->addFormat (new juce::VSTPluginFormat());

    lv2 = std::make_unique<Lv2Metadata>();
    lv2->loadAll (envOr ("LV2_PATH"));
    lv2LinkRoot = juce::File::getSpecialLocation (juce::File::tempDirectory)
                      .getChildFile ("fxgrad-lv2-" + juce::String ((int) getpid()))
                      .getNonexistentSibling();

    // JUCE's LV2 host searches only the standard folders; LV2_PATH is honoured here.
    const auto defaults = lv2Format->getDefaultLocationsToSearch();
    const auto extra = searchPathFromEnv ("LV2_PATH");
    juce::FileSearchPath unseen;
    for (int i = 0; i < extra.getNumPaths(); ++i)
        if (! defaults.isFileInPath (extra[i], false) && extra[i].isDirectory())
            unseen.add (extra[i]);
    if (unseen.getNumPaths() > 0)
        lv2Format->searchPathsForPlugins (unseen, true, false);
}

Host::~Host()
{
    if (! inCreatingProcess()) {
        // A forked child: the message thread, JUCE's formats and the linked LV2 bundles are the
        // parent's; stopping or deleting them from here would hang or break the parent.
        new std::thread (std::move (messageThread));
        (void) formats.release();
        (void) lv2.release();
        return;
    }
    releaseAllInstances();
    formats.reset();
    lv2.reset();
    lv2LinkRoot.deleteRecursively();
    juce::Logger::setCurrentLogger (nullptr);
    juce::MessageManager::getInstance()->stopDispatchLoop();
    if (messageThread.joinable())
        messageThread.join();
}

void Host::registerOwner (InstanceOwner* owner)
{
    std::lock_guard<std::mutex> lock (ownersMutex);
    owners.insert (owner);
}

void Host::unregisterOwner (InstanceOwner* owner)
{
    std::lock_guard<std::mutex> lock (ownersMutex);
    owners.erase (owner);
}

bool Host::resetKeepsState (const std::string& key, const std::function<bool()>& probe)
{
    {
        std::lock_guard<std::mutex> lock (resetProbesMutex);
        if (const auto found = resetProbes.find (key); found != resetProbes.end())
            return found->second;
    }
    const bool keeps = probe();   // unlocked: it renders; two first instances may both probe
    std::lock_guard<std::mutex> lock (resetProbesMutex);
    return resetProbes.emplace (key, keeps).first->second;
}

void Host::releaseAllInstances()
{
    std::set<InstanceOwner*> current;
    {
        std::lock_guard<std::mutex> lock (ownersMutex);
        current = owners;
    }
    for (auto* owner : current)
        owner->releaseInstances();
}

PluginInfo Host::describe (const juce::PluginDescription& d)
{
    PluginInfo info;
    info.format = d.pluginFormatName == "VST" ? "VST2" : d.pluginFormatName.toStdString();
    // JUCE names a VST2 plugin after its file; the plugin's own name is its effect name.
    const bool vst2Named = d.pluginFormatName == "VST" && ! d.hasSharedContainer && d.descriptiveName.isNotEmpty();
    info.name = (vst2Named ? d.descriptiveName : d.name).toStdString();
    info.vendor = d.manufacturerName.toStdString();
    info.identifier = d.fileOrIdentifier.toStdString();
    if (d.hasSharedContainer && d.pluginFormatName != "LV2")
        info.identifier += "#" + selectorOf (d);
    info.uniqueId = d.createIdentifierString().toStdString();
    info.numInputs = d.numInputChannels;
    info.numOutputs = d.numOutputChannels;
    if (const auto entry = ladspaEntry (d))
        info.numInputs = entry->audioInputs, info.numOutputs = entry->audioOutputs;
    // The same two tests Plugin::configureChannels makes at load, so that what scan lists loads.
    if (info.numOutputs < 1)
        info.unsupported = "no audio output (a MIDI or control plugin): fxgrad hosts audio effects";
    else if (info.numInputs < 1)
        info.unsupported = "no audio input (an instrument or a generator): fxgrad hosts audio effects, "
                           "which process the audio they are given";
    return info;
}

juce::FileSearchPath Host::vst2Locations()
{
    // Linux VST2 plugins live in vst/ and lxvst/ folders (Debian puts some in each); JUCE's own
    // list lets VST_PATH replace the standard folders instead of adding to them.
    juce::FileSearchPath paths ("~/.vst;~/.lxvst;/usr/lib/vst;/usr/local/lib/vst;/usr/lib/lxvst;/usr/local/lib/lxvst");
    paths.addPath (searchPathFromEnv ("VST_PATH"));
    paths.addPath (searchPathFromEnv ("LXVST_PATH"));
    paths.removeNonExistentPaths();
    return paths;
}

std::vector<std::string> Host::loadLv2Bundle (const fs::path& bundle)
{
    const auto canonical = fs::weakly_canonical (bundle);
    const auto known = bundleUris.find (canonical.string());
    if (known != bundleUris.end())
        return known->second;
    const auto uris = lv2->loadBundle (canonical.string());
    bundleUris.emplace (canonical.string(), uris);
    const auto inDefaultLocation = lv2Format->getDefaultLocationsToSearch().isFileInPath (juce::File (canonical.string()), true);
    if (! inDefaultLocation && linkedBundles.insert (canonical.string()).second) {
        const auto folder = lv2LinkRoot.getChildFile (juce::String ((int) linkedBundles.size()));
        folder.createDirectory();
        std::error_code error;
        fs::create_directory_symlink (canonical, fs::path (folder.getFullPathName().toStdString()) / canonical.filename(), error);
        if (error)
            fail (ErrorKind::PluginLoad, "could not register the LV2 bundle '" + canonical.string() + "': " + error.message());
        lv2Format->searchPathsForPlugins (juce::FileSearchPath (folder.getFullPathName()), true, false);
    }
    return uris;
}

std::vector<PluginInfo> Host::scan (const std::vector<std::string>& extraPaths)
{
    OutputCapture capture;   // taken before loadMutex, always: one order, no deadlock
    std::lock_guard<std::recursive_mutex> lock (loadMutex);
    std::vector<PluginInfo> result;
    juce::FileSearchPath vst3Paths, ladspaPaths;
    std::set<std::string> damagedFiles;
    std::map<std::string, std::string> outsideBundles;   // LV2 URI -> its bundle, outside the LV2 path
    const auto noteBundle = [&] (const fs::path& bundle) {
        const auto uris = loadLv2Bundle (bundle);
        const auto canonical = fs::weakly_canonical (bundle).string();
        if (linkedBundles.count (canonical) > 0)
            for (const auto& uri : uris)
                if (fs::weakly_canonical (lv2->bundleOf (uri)) == canonical)   // not a copy of an installed one
                    outsideBundles.emplace (uri, uris.size() == 1 ? canonical : canonical + "#" + uri);
    };

    for (const auto& extra : extraPaths) {
        requireNoNul (extra, "scan path");
        const fs::path p (extra);
        if (! fs::exists (p))
            fail (ErrorKind::FileNotFound, "scan path does not exist: " + extra);
        const auto absolute = fs::absolute (p);
        requireRegularFiles (absolute);
        if (isLv2Bundle (absolute)) {
            noteBundle (absolute);
        } else if (fs::is_directory (absolute)) {
            for (const auto& entry : fs::recursive_directory_iterator (absolute, fs::directory_options::skip_permission_denied))
                if (entry.path().extension() == ".lv2" && isLv2Bundle (entry.path()) && firstIrregularFile (entry.path()).empty())
                    noteBundle (entry.path());
            vst3Paths.add (juce::File (absolute.string()));
            ladspaPaths.add (juce::File (absolute.string()));
        } else if (absolute.extension() == ".vst3") {
            vst3Paths.add (juce::File (absolute.parent_path().string()));
        } else {
            ladspaPaths.add (juce::File (absolute.parent_path().string()));
        }
    }

    // Describing a plugin loads all of its data into the LV2 world that describes it, for good,
    // and JUCE 7's LV2 host builds each new instance's parameter groups from every port group of
    // its world: after a scan in the host's own world, every instance cost ~8x as much to create
    // (a rack built after `fxgrad.scan()`, or late in the test suite). LV2 plugins are described
    // by a world of the scan's own, dropped after it: the host's world keeps the data of the
    // plugins actually loaded. It sees what the host's does: the standard folders, LV2_PATH and
    // every bundle loaded from elsewhere so far (linked under lv2LinkRoot).
    juce::LV2PluginFormat lv2Scanner;
    juce::FileSearchPath lv2Paths;
    const auto lv2Defaults = lv2Scanner.getDefaultLocationsToSearch();
    const auto lv2Extra = searchPathFromEnv ("LV2_PATH");
    for (int i = 0; i < lv2Extra.getNumPaths(); ++i)
        if (! lv2Defaults.isFileInPath (lv2Extra[i], false) && lv2Extra[i].isDirectory())
            lv2Paths.add (lv2Extra[i]);
    for (const auto& folder : lv2LinkRoot.findChildFiles (juce::File::findDirectories, false))
        lv2Paths.add (folder);

    for (auto* format : formats->getFormats()) {
        juce::FileSearchPath paths = format->getDefaultLocationsToSearch();
        if (format->getName() == "VST3") {
            paths.addPath (searchPathFromEnv ("VST3_PATH"));
            paths.addPath (vst3Paths);
        } else if (format->getName() == "LADSPA") {
            paths.addPath (ladspaPaths);
        } else if (format->getName() == "VST") {
            paths = vst2Locations();
            paths.addPath (ladspaPaths);   // the plugin files given, and the folders given
        }
        const bool isLv2 = format == lv2Format;
        auto& describer = isLv2 ? static_cast<juce::AudioPluginFormat&> (lv2Scanner) : *format;
        for (const auto& file : describer.searchPathsForPlugins (isLv2 ? lv2Paths : paths, true, false)) {
            if (! isLv2 && ! firstIrregularFile (file.toStdString()).empty())
                continue;   // found by its name, but not a file that can be opened
            // Describing a VST3/VST2/LADSPA plugin opens its library (LV2's come from its Turtle):
            // a truncated one would end this process, so it is listed as unloadable instead.
            if (const auto damage = isLv2 ? std::string() : damagedBinary (file.toStdString()); ! damage.empty()) {
                if (! damagedFiles.insert (file.toStdString()).second)
                    continue;   // listed already, by another format that looks at such files
                PluginInfo info;
                info.format = format->getName() == "VST" ? "VST2" : format->getName().toStdString();
                info.name = fs::path (file.toStdString()).filename().string();
                info.identifier = file.toStdString();
                info.uniqueId = info.format + ":" + info.identifier;
                info.unsupported = "unloadable: " + damage;
                result.push_back (std::move (info));
                continue;
            }
            juce::OwnedArray<juce::PluginDescription> found;
            describer.findAllTypesForFile (found, file);
            markShared (found);
            for (auto* d : found) {
                auto info = describe (*d);
                // A URI loads only where its bundle is on the LV2 path; elsewhere the bundle does.
                const auto outside = outsideBundles.find (info.identifier);
                if (isLv2 && outside != outsideBundles.end())
                    info.identifier = outside->second;
                if (isLv2 && info.unsupported.empty())
                    info.unsupported = lv2->unconnectedPorts (d->fileOrIdentifier.toStdString());
                result.push_back (std::move (info));
            }
        }
    }
    return result;
}

juce::PluginDescription Host::resolve (const std::string& identifierOrPath, const std::string& hint)
{
    OutputCapture capture;   // describing a VST2 or VST3 file opens it; before loadMutex, always
    std::lock_guard<std::recursive_mutex> lock (loadMutex);
    if (identifierOrPath.empty())
        fail (ErrorKind::Value, "empty plugin identifier");
    requireNoNul (identifierOrPath, "plugin identifier");
    requireNoNul (hint, "plugin choice");
    if (looksLikeUri (identifierOrPath))
        return resolveLv2 (identifierOrPath, hint);
    // PATH#SELECTOR, as scan names one plugin of a file holding several: the first '#' that
    // ends an existing path (an LV2 URI after it may hold '#' too).
    if (! fs::exists (identifierOrPath)) {
        for (auto at = identifierOrPath.find ('#'); at != std::string::npos; at = identifierOrPath.find ('#', at + 1)) {
            const auto path = identifierOrPath.substr (0, at), selector = identifierOrPath.substr (at + 1);
            if (at == 0 || ! fs::exists (path))
                continue;
            if (! hint.empty() && hint != selector)
                fail (ErrorKind::Value, "'" + identifierOrPath + "' names plugin '" + selector + "' and plugin= names '" + hint
                      + "': give one of them");
            return resolveFile (path, selector);
        }
    }
    return resolveFile (identifierOrPath, hint);
}

juce::PluginDescription Host::resolveLv2 (const std::string& uri, const std::string& hint)
{
    juce::ignoreUnused (hint);
    juce::OwnedArray<juce::PluginDescription> found;
    lv2Format->findAllTypesForFile (found, uri);
    if (found.isEmpty() || ! lv2->knows (uri))
        fail (ErrorKind::PluginLoad,
              "no LV2 plugin with URI '" + uri + "' is installed (searched ~/.lv2, /usr/lib/lv2, "
              "/usr/local/lib/lv2 and LV2_PATH; `fxgrad scan` lists what is there, and a bundle "
              "folder can be loaded by its path)");
    return *found[0];
}

namespace {
/** PluginLoadError when a plugin's library is truncated: opening it would end this process. */
void requireIntact (const std::string& fileOrBundle)
{
    if (fileOrBundle.empty())
        return;
    if (const auto damage = damagedBinary (fileOrBundle); ! damage.empty())
        fail (ErrorKind::PluginLoad, "cannot load '" + fileOrBundle + "': " + damage
              + "; fxgrad does not open it (it would end this process with SIGBUS): reinstall the plugin");
}
} // namespace

juce::PluginDescription Host::resolveFile (const std::string& path, const std::string& hint)
{
    fs::path p (path);
    if (! fs::exists (p))
        fail (ErrorKind::FileNotFound, "no such plugin file or folder: '" + path + "'");
    p = fs::absolute (p);

    // An LV2 binary inside its bundle stands for the bundle.
    if (! fs::is_directory (p) && isLv2Bundle (p.parent_path()))
        p = p.parent_path();
    requireRegularFiles (p);
    requireIntact (p.string());

    if (isLv2Bundle (p)) {
        const auto uris = loadLv2Bundle (p);
        if (uris.empty())
            fail (ErrorKind::PluginLoad, "the LV2 bundle '" + p.string() + "' declares no plugin in its manifest.ttl");
        std::string chosen;
        if (uris.size() == 1 && hint.empty()) {
            chosen = uris.front();
        } else {
            std::string all;
            for (const auto& u : uris) {
                all += (all.empty() ? "" : ", ") + u;
                if (! hint.empty() && (u == hint || u.size() >= hint.size() && u.compare (u.size() - hint.size(), hint.size(), hint) == 0))
                    chosen = u;
            }
            if (chosen.empty())
                fail (ErrorKind::PluginLoad, "the LV2 bundle '" + p.string() + "' holds " + (hint.empty() ? "several plugins" : "no plugin '" + hint + "'")
                      + "; name one as BUNDLE#URI, or with plugin=URI (--select on the command line): " + all);
        }
        return resolveLv2 (chosen, {});
    }

    std::string tried;
    for (auto* format : formats->getFormats()) {
        if (format == lv2Format)
            continue;
        tried += (tried.empty() ? "" : ", ") + (format->getName() == "VST" ? std::string ("VST2") : format->getName().toStdString());
        if (! format->fileMightContainThisPluginType (p.string()))
            continue;
        juce::OwnedArray<juce::PluginDescription> found;
        format->findAllTypesForFile (found, p.string());
        if (found.isEmpty())
            continue;
        markShared (found);
        if (found.size() == 1 && hint.empty())
            return *found[0];
        for (auto* d : found)
            if (selects (*d, hint))
                return *d;
        const std::string how = "; name one as PATH#" + std::string (format->getName() == "LADSPA" ? "LABEL" : "NAME")
                                + ", or with plugin= (--select on the command line): ";
        if (hint.empty())
            fail (ErrorKind::PluginLoad, "'" + p.string() + "' holds several plugins" + how + joinSelectors (found));
        fail (ErrorKind::PluginLoad, "'" + p.string() + "' holds no plugin '" + hint + "'" + how + joinSelectors (found));
    }
    fail (ErrorKind::PluginLoad, "'" + p.string() + "' is not a plugin that fxgrad can load (tried " + tried
          + ", and LV2 bundles: a folder with a manifest.ttl)");
}

void InstanceDeleter::operator() (juce::AudioPluginInstance* instance) const
{
    struct Deletion {
        juce::AudioPluginInstance* instance;
        bool done = false;
    } deletion { instance };
    OutputCapture capture;   // DPF-built VST3s complain as JUCE releases their parts
    if (auto* messages = juce::MessageManager::getInstanceWithoutCreating())
        messages->callFunctionOnMessageThread (
            [] (void* context) -> void* {
                auto* d = static_cast<Deletion*> (context);
                delete d->instance;
                d->done = true;
                return nullptr;
            },
            &deletion);
    // A message loop that has quit runs nothing (interpreter exit, after shutdown()).
    if (! deletion.done)
        delete instance;
}

InstancePtr Host::instantiate (const juce::PluginDescription& description, double sampleRate, int blockSize)
{
    OutputCapture capture;   // taken before loadMutex, always: one order, no deadlock
    std::lock_guard<std::recursive_mutex> lock (loadMutex);
    // JUCE's LADSPA host instantiates every plugin at 44100 Hz, whatever rate is asked for (its
    // instance has no sample rate yet when it calls instantiate()): another rate would run wrong.
    if (description.pluginFormatName == "LADSPA" && sampleRate != 44100.0)
        fail (ErrorKind::Value, "LADSPA plugins run at 44100 Hz only in fxgrad (JUCE's LADSPA host instantiates them "
              "at that rate whatever is asked for): load '" + description.name.toStdString() + "' with sample_rate=44100, "
              "or use its LV2 build");
    if (description.pluginFormatName == "LV2") {
        requireIntact (lv2->bundleOf (description.fileOrIdentifier.toStdString()));
        const auto reason = lv2->unconnectedPorts (description.fileOrIdentifier.toStdString());
        if (! reason.empty())
            fail (ErrorKind::PluginLoad, "fxgrad cannot host the LV2 plugin '" + description.name.toStdString() + "' ("
                  + description.fileOrIdentifier.toStdString() + "): " + reason);
    }
    juce::String error;
    auto instance = InstancePtr (formats->createPluginInstance (description, sampleRate, blockSize, error).release());
    if (instance == nullptr)
        fail (ErrorKind::PluginLoad, "could not instantiate " + description.pluginFormatName.toStdString() + " plugin '"
              + description.name.toStdString() + "' (" + description.fileOrIdentifier.toStdString() + "): "
              + (error.isEmpty() ? std::string ("the plugin gave no reason") : error.toStdString()));
    return instance;
}

} // namespace fxgrad
