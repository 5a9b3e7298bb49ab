#include "IsolatedLanes.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstring>
#include <dlfcn.h>
#include <fcntl.h>
#include <filesystem>
#include <mutex>
#include <poll.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ChainSpec.h"
#include "Errors.h"
#include "Wire.h"

extern char** environ;

namespace fxgrad {

namespace {
using Clock = std::chrono::steady_clock;

// Loading a chain's plugins for a share of the lanes; generous, since only a hang at load hits it.
constexpr double startSeconds = 300.0;
// How often a waiting parent looks whether a worker died (the futex is not woken by a death).
constexpr double livenessSlice = 0.01;

double secondsSince (Clock::time_point start)
{
    return std::chrono::duration<double> (Clock::now() - start).count();
}

std::string signalName (int sig)
{
    switch (sig) {
        case SIGSEGV: return "SIGSEGV";
        case SIGABRT: return "SIGABRT";
        case SIGBUS: return "SIGBUS";
        case SIGFPE: return "SIGFPE";
        case SIGILL: return "SIGILL";
        case SIGKILL: return "SIGKILL";
        case SIGTERM: return "SIGTERM";
        case SIGINT: return "SIGINT";
        case SIGPIPE: return "SIGPIPE";
        case SIGTRAP: return "SIGTRAP";
        case SIGSYS: return "SIGSYS";
        default: return "signal " + std::to_string (sig);
    }
}

/** A death as a fault: which kind, and how it is described. */
std::pair<FaultKind, std::string> describeExit (int status)
{
    if (WIFSIGNALED (status))
        return { FaultKind::Crashed, signalName (WTERMSIG (status)) };
    return { FaultKind::Exited, "exit status " + std::to_string (WEXITSTATUS (status)) };
}

std::string locateWorker()
{
    if (const char* path = std::getenv ("FXGRAD_WORKER"))
        return path;
    Dl_info info {};
    std::filesystem::path candidate = "fxgrad-worker";
    if (dladdr (reinterpret_cast<void*> (&locateWorker), &info) != 0 && info.dli_fname != nullptr)
        candidate = std::filesystem::path (info.dli_fname).parent_path() / "fxgrad-worker";
    if (access (candidate.c_str(), X_OK) != 0)
        fail (ErrorKind::FileNotFound, "fxgrad's worker executable is missing (looked for " + candidate.string()
              + "); rebuild with `make build`, or set FXGRAD_WORKER to its path");
    return candidate.string();
}

constexpr const char* folderPrefix = "fxgrad-worker-";

/** Removes the empty sandboxed workers' folders in /tmp whose parent is gone: a parent killed by
    SIGKILL cannot remove them, and a sandboxed worker cannot either (inside, its folder is a
    mount point in a read-only /tmp). Their names hold the parent's PID; rmdir never removes a
    folder with anything in it. Once per process, before its first sandboxed worker. */
void removeOrphanedFolders()
{
    std::error_code ignored;
    const std::string prefix = folderPrefix;
    for (const auto& entry : std::filesystem::directory_iterator ("/tmp", ignored)) {
        const auto name = entry.path().filename().string();
        const auto dash = name.find ('-', prefix.size());
        if (name.rfind (prefix, 0) != 0 || dash == std::string::npos || dash == prefix.size())
            continue;
        const auto pid = name.substr (prefix.size(), dash - prefix.size());
        if (pid.find_first_not_of ("0123456789") != std::string::npos || pid.size() > 9)
            continue;
        if (kill ((pid_t) std::stol (pid), 0) == 0 || errno != ESRCH)
            continue;  // its parent lives (or is another user's)
        rmdir (entry.path().c_str());
    }
}

/** A private folder for one worker's temporary files, in the parent's TMPDIR (or /tmp), named
    after this process. A sandboxed worker's is in /tmp itself: it reaches the folder by its path,
    and as `nobody` (under root) it could not pass through a TMPDIR only its owner may enter. */
std::string makeTemporaryFolder (bool sandbox)
{
    if (sandbox) {
        static std::once_flag swept;
        std::call_once (swept, removeOrphanedFolders);
    }
    const char* base = sandbox ? nullptr : std::getenv ("TMPDIR");
    std::string pattern = std::string (base != nullptr && *base != '\0' ? base : "/tmp") + "/" + folderPrefix
                        + std::to_string (getpid()) + "-XXXXXX";
    if (mkdtemp (pattern.data()) == nullptr)
        fail (ErrorKind::Value, "cannot create a worker's temporary folder in " + pattern.substr (0, pattern.rfind ('/'))
              + ": " + std::strerror (errno));
    return pattern;
}

/** The parent's environment with TMPDIR naming the worker's own folder; in the sandbox, only
    the variables that say where plugins are and how text is encoded (not the parent's secrets). */
std::vector<std::string> workerEnvironment (const std::string& temporaryFolder, bool sandbox)
{
    static const char* const kept[] = { "LV2_PATH=", "VST3_PATH=", "VST_PATH=", "LXVST_PATH=", "LADSPA_PATH=",
                                        "HOME=", "LANG=", "LC_ALL=", "LC_NUMERIC=" };
    std::vector<std::string> variables;
    for (char** v = environ; *v != nullptr; ++v) {
        if (std::strncmp (*v, "TMPDIR=", 7) == 0)
            continue;
        if (! sandbox || std::any_of (std::begin (kept), std::end (kept), [v] (const char* k) { return std::strncmp (*v, k, std::strlen (k)) == 0; }))
            variables.emplace_back (*v);
    }
    variables.push_back ("TMPDIR=" + temporaryFolder);
    return variables;
}

/** A descriptor numbered 10 or above (CLOEXEC), so that dup2 onto 3..5 in the child always makes
    a copy without CLOEXEC. */
int highCopy (int fd)
{
    const int copy = fcntl (fd, F_DUPFD_CLOEXEC, 10);
    if (copy < 0)
        fail (ErrorKind::Value, std::string ("cannot start a worker process: ") + std::strerror (errno));
    return copy;
}
} // namespace

struct IsolatedLanes::Worker {
    int firstLane = 0;
    LaneLayout layout;            // lanes: this worker's share
    pid_t pid = -1;
    int socket = -1;
    ipc::SharedMemory control, data;
    uint32_t sequence = 0;
    bool lost = false;            // stopped by an interrupted call: restarted by the next one
    std::string temporaryFolder;  // its TMPDIR, removed when it ends

    ipc::Control& ctl() const { return *static_cast<ipc::Control*> (control.data()); }
};

IsolatedLanes::IsolatedLanes (const Chain& prototype, const LaneLayout& layoutIn, const IsolationOptions& optionsIn)
    : layout (layoutIn), options (optionsIn)
{
    specBytes = ChainSpec::of (prototype).serialize();
    workerPath = locateWorker();
    if (! options.workerLog.empty()) {
        // Never through a link: a run folder's plugins.log that is a symbolic link is refused.
        const int fd = open (options.workerLog.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd < 0)
            fail (errno == ELOOP ? ErrorKind::Value : ErrorKind::FileNotFound,
                  "cannot open the workers' log " + options.workerLog + ": "
                  + (errno == ELOOP ? std::string ("it is a symbolic link, which fxgrad does not follow") : std::strerror (errno)));
        logFd = highCopy (fd);
        close (fd);
    }
    const int threadCount = std::max (1, options.threads);
    // Four render threads per worker by default: on 16 cores that came closest to in-process speed
    // (bench/isolation_bench.py --workers): one single-threaded worker per core oversubscribes
    // the cores with the parent and splits the lanes into many small static shares, while a few
    // workers balance their lanes dynamically on their own threads. A fault costs a worker's
    // lanes for one step, so fewer workers lose more lanes per fault.
    const int automatic = std::max (1, (int) std::lround (threadCount / 4.0));
    const int count = std::max (1, std::min (layout.lanes, options.workers > 0 ? options.workers : automatic));
    threadsPerWorker = std::max (1, threadCount / count);
    for (int w = 0; w < count; ++w) {
        auto worker = std::make_unique<Worker>();
        worker->firstLane = (int) ((int64_t) w * layout.lanes / count);
        worker->layout = layout;
        worker->layout.lanes = (int) ((int64_t) (w + 1) * layout.lanes / count) - worker->firstLane;
        workers.push_back (std::move (worker));
    }
    try {
        // All start at once: each loads its share of the instances in parallel.
        for (auto& w : workers)
            spawn (*w);
        for (auto& w : workers)
            awaitStart (*w);
    } catch (...) {
        for (auto& w : workers)
            stop (*w);
        if (logFd >= 0)
            close (logFd);
        throw;
    }
}

IsolatedLanes::~IsolatedLanes()
{
    for (auto& w : workers)
        stop (*w);
    if (logFd >= 0)
        close (logFd);
}

double IsolatedLanes::callSeconds() const
{
    return options.timeoutSeconds > 0.0 ? options.timeoutSeconds : defaultCallSeconds;
}

void IsolatedLanes::interrupt()
{
    const auto now = std::chrono::duration_cast<std::chrono::nanoseconds> (Clock::now().time_since_epoch()).count();
    int64_t none = 0;
    interruptAt.compare_exchange_strong (none, std::max<int64_t> (1, now));
}

bool IsolatedLanes::pastInterruptGrace() const
{
    const int64_t at = interruptAt.load();
    return at != 0 && std::chrono::duration_cast<std::chrono::nanoseconds> (Clock::now().time_since_epoch()).count() - at
                          >= (int64_t) (interruptGraceSeconds * 1e9);
}

bool IsolatedLanes::shouldAbandon() const
{
    return pastInterruptGrace() || (options.interrupted && options.interrupted());
}

void IsolatedLanes::abandon (size_t firstUnanswered)
{
    for (size_t i = firstUnanswered; i < workers.size(); ++i) {
        auto& w = *workers[i];
        if (w.pid > 0 && w.ctl().response.load (std::memory_order_acquire) == w.sequence)
            continue;   // it answered: its lanes are intact
        stop (w);
        w.lost = true;
    }
    fail (ErrorKind::Interrupted, "interrupted while waiting for the plugins' worker processes; the workers still busy were "
          "stopped (their lanes restart from the preset state on the next call)");
}

void IsolatedLanes::trustworthy (LaneFault& f, const Worker& w) const
{
    // What a worker reports, and its activity records, lie in memory its plugins can write: a
    // plugin in the sandbox must not make the rack index out of bounds with them.
    std::vector<int> lanes;
    for (int m : f.lanes)
        if (m >= 0 && m < w.layout.lanes)
            lanes.push_back (w.firstLane + m);
    f.lanes = std::move (lanes);
    const bool known = f.lane >= 0 && f.lane < w.layout.lanes && f.phase > ChainActivity::Idle && f.phase <= ChainActivity::Reset;
    f.lane = known ? w.firstLane + f.lane : -1;
    if (! known)
        f.phase = ChainActivity::Idle;
    if (f.evaluation < 0 || f.evaluation >= w.layout.evaluations)
        f.evaluation = -1;
}

void IsolatedLanes::restartLost (std::vector<LaneFault>& faults)
{
    for (auto& worker : workers) {
        auto& w = *worker;
        if (! w.lost)
            continue;
        spawn (w);
        awaitStart (w);
        w.lost = false;
        ++restartCount;
        LaneFault fault;
        fault.kind = FaultKind::Interrupted;
        fault.detail = "restarted after an interrupted call";
        for (int m = 0; m < w.layout.lanes; ++m)
            fault.lanes.push_back (w.firstLane + m);
        faults.push_back (std::move (fault));
    }
}

std::vector<pid_t> IsolatedLanes::workerPids() const
{
    std::vector<pid_t> pids;
    for (const auto& w : workers)
        pids.push_back (w->pid);
    return pids;
}

void IsolatedLanes::spawn (Worker& w)
{
    const size_t controlBytes = ipc::Control::bytesFor (w.layout);
    if (w.control.data() == nullptr)
        w.control = ipc::SharedMemory::create ("fxgrad-lanes-control", controlBytes);
    std::memset (w.control.data(), 0, controlBytes);
    new (w.control.data()) ipc::Control();
    for (int i = 0; i < w.layout.lanes * w.layout.chainsPerLane(); ++i)
        new (w.ctl().activity() + i) ChainActivity();
    if (w.data.data() == nullptr)
        w.data = ipc::SharedMemory::create ("fxgrad-lanes-data", ipc::DataLayout::of (w.layout, w.layout.blockSize, 0).bytes);
    w.sequence = 0;
    w.temporaryFolder = makeTemporaryFolder (options.sandbox);

    int pair[2];
    if (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0)
        fail (ErrorKind::Value, std::string ("cannot start a worker process: ") + std::strerror (errno));
    const int sources[3] = { highCopy (pair[1]), highCopy (w.control.fd()), highCopy (w.data.fd()) };
    close (pair[1]);

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init (&actions);
    posix_spawn_file_actions_adddup2 (&actions, sources[0], ipc::workerSocketFd);
    posix_spawn_file_actions_adddup2 (&actions, sources[1], ipc::workerControlFd);
    posix_spawn_file_actions_adddup2 (&actions, sources[2], ipc::workerDataFd);
    posix_spawn_file_actions_addopen (&actions, 0, "/dev/null", O_RDONLY, 0);
    if (logFd >= 0) {
        posix_spawn_file_actions_adddup2 (&actions, logFd, 1);
        posix_spawn_file_actions_adddup2 (&actions, logFd, 2);
    }
    posix_spawnattr_t attributes;
    posix_spawnattr_init (&attributes);
    // Its own process group: a Ctrl-C in the terminal reaches the parent, which checkpoints,
    // and not the workers. Default signal handling and no blocked signals, whatever the parent's
    // threads had, so that a plugin's fault ends the worker in the way it reports.
    sigset_t none, all;
    sigemptyset (&none);
    sigfillset (&all);
    posix_spawnattr_setflags (&attributes, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    posix_spawnattr_setpgroup (&attributes, 0);
    posix_spawnattr_setsigmask (&attributes, &none);
    posix_spawnattr_setsigdefault (&attributes, &all);

    char* argv[] = { const_cast<char*> (workerPath.c_str()), const_cast<char*> ("--fxgrad-lanes"),
                     options.sandbox ? const_cast<char*> ("--sandbox") : nullptr, nullptr };
    auto variables = workerEnvironment (w.temporaryFolder, options.sandbox);
    std::vector<char*> envp;
    for (auto& v : variables)
        envp.push_back (v.data());
    envp.push_back (nullptr);
    pid_t pid = -1;
    const int rc = posix_spawn (&pid, workerPath.c_str(), &actions, &attributes, argv, envp.data());
    posix_spawn_file_actions_destroy (&actions);
    posix_spawnattr_destroy (&attributes);
    for (int fd : sources)
        close (fd);
    if (rc != 0) {
        close (pair[0]);
        std::error_code ignored;
        std::filesystem::remove_all (w.temporaryFolder, ignored);
        w.temporaryFolder.clear();
        fail (ErrorKind::Value, std::string ("cannot start a worker process for isolated lanes: ") + std::strerror (rc)
              + (rc == EAGAIN ? " (the system's limit on processes or threads was reached)" : ""));
    }
    w.pid = pid;
    w.socket = pair[0];

    wire::Writer message;
    message.put (w.layout);
    message.put (threadsPerWorker);
    message.put ((uint64_t) w.control.size());
    message.put ((uint64_t) w.data.size());
    message.put (specBytes);
    ipc::sendMessage (w.socket, message.bytes);   // if it fails, awaitStart() reports how the worker died
}

void IsolatedLanes::awaitStart (Worker& w)
{
    const auto until = Clock::now() + std::chrono::duration_cast<Clock::duration> (std::chrono::duration<double> (startSeconds));
    // Loading may take long (or hang): wait in slices, honouring interrupts, until the reply starts.
    for (pollfd p { w.socket, POLLIN, 0 }; Clock::now() < until; p.revents = 0) {
        if (poll (&p, 1, (int) (livenessSlice * 1000)) > 0)
            break;
        if (shouldAbandon()) {
            stop (w);
            w.lost = true;
            fail (ErrorKind::Interrupted, "interrupted while a worker process was loading the chain");
        }
    }
    std::string reply;
    const auto received = ipc::receiveMessage (w.socket, reply, 1u << 20, until);
    const int loading = w.ctl().loadingPlugin.load();
    const std::string where = loading >= 0 ? " while loading plugin " + std::to_string (loading) + " of the chain" : " while starting";
    if (received != ipc::Received::Message) {
        if (received == ipc::Received::TimedOut) {
            stop (w);
            fail (ErrorKind::PluginTimeout, "a worker process gave no sign of life for " + std::to_string ((int) startSeconds) + " s" + where);
        }
        int status = 0;
        waitpid (w.pid, &status, 0);
        w.pid = -1;
        const auto death = describeExit (status);
        stop (w);
        fail (ErrorKind::PluginCrashed, "a worker process died (" + death.second + ")" + where
              + ": the plugin crashes when it is loaded; `fxgrad check` probes it on its own");
    }
    wire::Reader r (reply);
    const auto status = r.get<int32_t>();
    const auto kind = r.get<int32_t>();
    const auto text = r.get<std::string>();
    if (status != 0) {
        stop (w);
        fail ((ErrorKind) kind, text);
    }
}

void IsolatedLanes::stop (Worker& w)
{
    if (w.pid > 0) {
        kill (w.pid, SIGKILL);
        while (waitpid (w.pid, nullptr, 0) < 0 && errno == EINTR) {}
        w.pid = -1;
    }
    if (w.socket >= 0) {
        close (w.socket);
        w.socket = -1;
    }
    if (! w.temporaryFolder.empty()) {
        // What the worker wrote there; remove_all removes links, never what they point to.
        std::error_code ignored;
        std::filesystem::remove_all (w.temporaryFolder, ignored);
        w.temporaryFolder.clear();
    }
}

double IsolatedLanes::deadline (ipc::Command command, int64_t prerollSamples) const
{
    double seconds = callSeconds();
    if (command == ipc::Command::Reset && prerollSamples > 0)
        seconds *= 1.0 + (double) layout.chainsPerLane() * (double) prerollSamples / (double) std::max<int64_t> (frameSamples, layout.blockSize);
    return seconds;
}

LaneStats IsolatedLanes::stats() const
{
    LaneStats total = retired;
    for (const auto& w : workers) {
        total.dspSeconds += w->ctl().stats.dspSeconds;
        total.evaluations += w->ctl().stats.evaluations;
    }
    return total;
}

template <typename Fill, typename Collect>
void IsolatedLanes::call (ipc::Command command, uint32_t flag, int64_t numSamples, int64_t prerollSamples, Fill fill,
                          Collect collect, std::vector<LaneFault>& faults)
{
    if (pastInterruptGrace())
        fail (ErrorKind::Interrupted, "the plugins' workers were interrupted (a stop was requested)");
    restartLost (faults);
    const auto start = Clock::now();
    const double limit = deadline (command, prerollSamples);
    for (auto& worker : workers) {
        auto& w = *worker;
        const auto d = ipc::DataLayout::of (w.layout, numSamples, prerollSamples);
        w.data.ensure (d.bytes, true);
        auto& c = w.ctl();
        fill (w, d, static_cast<char*> (w.data.data()));
        c.command = (uint32_t) command;
        c.flag = flag;
        c.numSamples = numSamples;
        c.prerollSamples = prerollSamples;
        c.dataBytes = w.data.size();
        c.request.store (++w.sequence, std::memory_order_release);
        ipc::futexWake (c.request);
    }

    std::string errorText;
    int errorKind = -1;
    for (size_t index = 0; index < workers.size(); ++index) {
        auto& w = *workers[index];
        auto& c = w.ctl();
        const auto d = ipc::DataLayout::of (w.layout, numSamples, prerollSamples);
        bool done = false, dead = false;
        int status = 0;
        ipc::spinWhile (c.response, w.sequence - 1, ipc::spinSeconds);
        while (! done) {
            if (c.response.load (std::memory_order_acquire) == w.sequence) {
                done = true;
                break;
            }
            const double left = limit - secondsSince (start);
            if (left <= 0.0)
                break;
            ipc::futexWait (c.response, w.sequence - 1, std::min (left, livenessSlice));
            if (c.response.load (std::memory_order_acquire) == w.sequence)
                continue;
            if (waitpid (w.pid, &status, WNOHANG) == w.pid) {
                dead = true;
                w.pid = -1;
                break;
            }
            if (shouldAbandon())
                abandon (index);
        }
        if (done) {
            if (c.status != 0) {
                if (errorKind < 0) {
                    errorKind = c.errorKind;
                    errorText.assign (c.message, std::min<uint64_t> (c.messageBytes, sizeof c.message));
                }
                continue;
            }
            collect (w, d, static_cast<char*> (w.data.data()), true);
            if (c.messageBytes > 0)
                for (auto& f : ipc::deserializeFaults (std::string (c.message, std::min<uint64_t> (c.messageBytes, sizeof c.message)))) {
                    f.kind = FaultKind::NonFinite;   // the only kind a worker reports itself
                    trustworthy (f, w);
                    faults.push_back (std::move (f));
                }
            continue;
        }

        // Dead or late: the worker's lanes are lost for this call. What was rendering is in the
        // activity records, which outlive the process.
        LaneFault fault;
        if (dead) {
            std::tie (fault.kind, fault.detail) = describeExit (status);
        } else {
            fault.kind = FaultKind::TimedOut;
            char text[64];
            std::snprintf (text, sizeof text, "no answer within %.3g s", limit);
            fault.detail = text;
        }
        for (int m = 0; m < w.layout.lanes; ++m)
            fault.lanes.push_back (m);   // the worker's own numbering, until trustworthy()
        int inFlight = 0;
        for (int m = 0; m < w.layout.lanes; ++m)
            for (int k = 0; k < w.layout.chainsPerLane(); ++k) {
                const auto& a = w.ctl().activity()[(size_t) m * (size_t) w.layout.chainsPerLane() + (size_t) k];
                const int phase = a.phase.load();
                if (phase == ChainActivity::Idle)
                    continue;
                if (inFlight++ == 0) {
                    fault.lane = m;
                    fault.phase = phase;
                    fault.evaluation = phase == ChainActivity::Evaluate || phase == ChainActivity::Replay ? a.evaluation.load() : -1;
                    fault.plugin = a.plugin.load();
                }
            }
        trustworthy (fault, w);
        if (inFlight > 1)
            fault.detail += "; " + std::to_string (inFlight - 1) + " other render(s) of the worker were in flight";
        collect (w, d, static_cast<char*> (w.data.data()), false);

        const auto restartStart = Clock::now();
        retired.dspSeconds += c.stats.dspSeconds;
        retired.evaluations += c.stats.evaluations;
        stop (w);
        spawn (w);
        awaitStart (w);
        ++restartCount;
        recoveryTime += secondsSince (restartStart);
        faults.push_back (std::move (fault));
    }
    if (errorKind >= 0)   // a kind the worker wrote: one of ErrorKind's, or a ValueError
        fail (errorKind <= (int) ErrorKind::Interrupted ? (ErrorKind) errorKind : ErrorKind::Value, errorText);
}

void IsolatedLanes::forward (const float* theta, const float* x, float* y, int64_t numSamples, bool record,
                             std::vector<LaneFault>& faults)
{
    frameSamples = numSamples;
    const size_t P = (size_t) layout.parameters;
    const size_t frame = (size_t) layout.channels * (size_t) numSamples;
    call (ipc::Command::Forward, record ? 1u : 0u, numSamples, 0,
          [&] (Worker& w, const ipc::DataLayout& d, char* base) {
              std::memcpy (base + d.theta, theta + (size_t) w.firstLane * P, (size_t) w.layout.lanes * P * sizeof (float));
              std::memcpy (base + d.x, x + (size_t) w.firstLane * frame, (size_t) w.layout.lanes * frame * sizeof (float));
          },
          [&] (Worker& w, const ipc::DataLayout& d, char* base, bool ok) {
              float* out = y + (size_t) w.firstLane * frame;
              const size_t n = (size_t) w.layout.lanes * frame;
              if (ok)
                  std::memcpy (out, base + d.y, n * sizeof (float));
              else
                  std::fill (out, out + n, 0.0f);
          },
          faults);
}

void IsolatedLanes::evaluate (const float* thetas, const float* gradY, const uint8_t* skip, double* dots,
                              double* centreDots, std::vector<LaneFault>& faults)
{
    const size_t P = (size_t) layout.parameters, E = (size_t) layout.evaluations;
    const size_t frame = (size_t) layout.channels * (size_t) frameSamples;
    call (ipc::Command::Evaluate, centreDots != nullptr ? 1u : 0u, frameSamples, 0,
          [&] (Worker& w, const ipc::DataLayout& d, char* base) {
              const size_t M = (size_t) w.layout.lanes, first = (size_t) w.firstLane;
              std::memcpy (base + d.thetas, thetas + first * E * P, M * E * P * sizeof (float));
              std::memcpy (base + d.gradY, gradY + first * frame, M * frame * sizeof (float));
              std::memcpy (base + d.mask, skip + first, M);
          },
          [&] (Worker& w, const ipc::DataLayout& d, char* base, bool ok) {
              if (! ok)
                  return;   // the lanes are faulted: the rack ignores their dots
              const size_t M = (size_t) w.layout.lanes, first = (size_t) w.firstLane;
              std::memcpy (dots + first * E, base + d.dots, M * E * sizeof (double));
              if (centreDots != nullptr)
                  std::memcpy (centreDots + first, base + d.centreDots, M * sizeof (double));
          },
          faults);
}

void IsolatedLanes::reset (const uint8_t* mask, const float* preroll, int64_t prerollSamples, std::vector<LaneFault>& faults)
{
    const size_t prerollFrame = (size_t) layout.channels * (size_t) prerollSamples;
    call (ipc::Command::Reset, 0u, std::max<int64_t> (frameSamples, layout.blockSize), preroll != nullptr ? prerollSamples : 0,
          [&] (Worker& w, const ipc::DataLayout& d, char* base) {
              const size_t M = (size_t) w.layout.lanes, first = (size_t) w.firstLane;
              std::memcpy (base + d.mask, mask + first, M);
              if (preroll != nullptr && prerollSamples > 0)
                  std::memcpy (base + d.preroll, preroll + first * prerollFrame, M * prerollFrame * sizeof (float));
          },
          [] (Worker&, const ipc::DataLayout&, char*, bool) {},
          faults);
}

} // namespace fxgrad
