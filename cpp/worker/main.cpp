// fxgrad-worker: the process that isolated lanes run in (cpp/fxgrad/IsolatedLanes.h). Started by
// the rack with three inherited descriptors (ipc::workerSocketFd and the others, Ipc.h): the
// control socket (start-up message, and the lifeline: it closes when the parent dies), the
// control region and the data region (both shared memory). It builds its share of the lanes from the chain's spec, answers "ready",
// then executes commands until it is killed or its parent goes away.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

#include "fxgrad/ChainSpec.h"
#include "fxgrad/Errors.h"
#include "fxgrad/Ipc.h"
#include "fxgrad/Lanes.h"
#include "fxgrad/Wire.h"
#include "Sandbox.h"

using namespace fxgrad;

namespace {
using ipc::workerSocketFd;

void reply (int32_t status, int32_t kind, const std::string& text)
{
    wire::Writer message;
    message.put (status);
    message.put (kind);
    message.put (text);
    if (! ipc::sendMessage (workerSocketFd, message.bytes))
        _exit (0);   // the parent is gone
}

/** The private temporary folder the parent made for this worker (its TMPDIR); empty if none. */
std::string temporaryFolder()
{
    const char* folder = std::getenv ("TMPDIR");
    if (folder == nullptr || std::filesystem::path (folder).filename().string().rfind ("fxgrad-worker-", 0) != 0)
        return {};
    return folder;
}

/** Exits as soon as the parent is gone: its end of the socket closes with it, however it ended.
    The parent removes the worker's temporary folder when it stops the worker; a parent that was
    killed cannot, so the worker empties it on its way out, and removes it too where it can (in
    the sandbox the folder is a mount point in a read-only /tmp, so the empty folder stays). */
void watchParent (const std::string& folder)
{
    std::thread ([folder] {
        pollfd p { workerSocketFd, POLLRDHUP, 0 };
        for (;;) {
            p.revents = 0;
            if (poll (&p, 1, -1) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0) {
                std::error_code ignored;
                if (! folder.empty())
                    for (const auto& entry : std::filesystem::directory_iterator (folder, ignored))
                        std::filesystem::remove_all (entry.path(), ignored);
                if (! folder.empty())
                    std::filesystem::remove (folder, ignored);
                _exit (0);
            }
        }
    }).detach();
}

/** A failed command: the parent raises `kind` with `what` (cut to the message field). */
void reportFailure (ipc::Control& c, ErrorKind kind, const char* what)
{
    c.status = 1;
    c.errorKind = (int32_t) kind;
    const size_t n = std::min (std::strlen (what), sizeof c.message);
    std::memcpy (c.message, what, n);
    c.messageBytes = n;
}

void execute (ipc::Control& c, ipc::SharedMemory& data, const LaneLayout& layout, Lanes& lanes)
{
    c.status = 0;
    c.messageBytes = 0;
    std::vector<LaneFault> faults;
    try {
        data.ensure (c.dataBytes, false);
        const auto d = ipc::DataLayout::of (layout, c.numSamples, c.prerollSamples);
        auto* base = static_cast<char*> (data.data());
        auto floats = [base] (size_t offset) { return reinterpret_cast<float*> (base + offset); };
        auto doubles = [base] (size_t offset) { return reinterpret_cast<double*> (base + offset); };
        auto bytes = [base] (size_t offset) { return reinterpret_cast<uint8_t*> (base + offset); };
        switch ((ipc::Command) c.command) {
            case ipc::Command::Forward:
                lanes.forward (floats (d.theta), floats (d.x), floats (d.y), c.numSamples, c.flag != 0, faults);
                break;
            case ipc::Command::Evaluate:
                lanes.evaluate (floats (d.thetas), floats (d.gradY), bytes (d.mask), doubles (d.dots),
                                c.flag != 0 ? doubles (d.centreDots) : nullptr, faults);
                break;
            case ipc::Command::Reset:
                lanes.reset (bytes (d.mask), c.prerollSamples > 0 ? floats (d.preroll) : nullptr, c.prerollSamples, faults);
                break;
            default:
                fail (ErrorKind::Value, "fxgrad-worker: unknown command " + std::to_string (c.command));
        }
        if (! faults.empty()) {
            const auto text = ipc::serializeFaults (faults);
            if (text.size() > sizeof c.message)
                fail (ErrorKind::Value, "fxgrad-worker: too many faults in one call to report");
            std::memcpy (c.message, text.data(), text.size());
            c.messageBytes = text.size();
        }
    } catch (const Error& e) {
        reportFailure (c, e.kind, e.what());
    } catch (const std::exception& e) {
        reportFailure (c, ErrorKind::Value, e.what());
    }
    c.stats = lanes.stats();
}
} // namespace

int main (int argc, char** argv)
{
    if (argc < 2 || std::strcmp (argv[1], "--fxgrad-lanes") != 0) {
        std::fprintf (stderr, "fxgrad-worker runs isolated plugin lanes for fxgrad; it is started by fxgrad, not by hand\n");
        return 2;
    }
    // A crashing plugin should cost a restart, not the time and disk of a core dump.
    rlimit noCore { 0, 0 };
    setrlimit (RLIMIT_CORE, &noCore);
    // The sandbox first: namespaces can be entered only while this process has one thread.
    const bool sandboxed = argc > 2 && std::strcmp (argv[2], "--sandbox") == 0;
    const auto folder = temporaryFolder();
    const std::string sandboxFailure = sandboxed ? worker::enterSandbox (folder) : std::string();
    watchParent (folder);

    std::string message;
    if (ipc::receiveMessage (workerSocketFd, message, SIZE_MAX) != ipc::Received::Message)
        return 0;
    if (! sandboxFailure.empty()) {
        reply (1, (int32_t) ErrorKind::Value, "a worker process cannot enter its sandbox (isolation 'sandbox'): " + sandboxFailure);
        return 1;
    }

    ipc::SharedMemory control, data;
    LaneLayout layout;
    std::unique_ptr<Chain> prototype;
    std::unique_ptr<LocalLanes> lanes;
    try {
        wire::Reader r (message);
        layout = r.get<LaneLayout>();
        const int threads = r.get<int>();
        const auto controlBytes = r.get<uint64_t>();
        const auto dataBytes = r.get<uint64_t>();
        const auto spec = ChainSpec::deserialize (r.get<std::string>());
        control = ipc::SharedMemory::adopt (ipc::workerControlFd, controlBytes);
        data = ipc::SharedMemory::adopt (ipc::workerDataFd, dataBytes);
        auto& c = *static_cast<ipc::Control*> (control.data());
        prototype = spec.build (&c.loadingPlugin);
        lanes = std::make_unique<LocalLanes> (*prototype, layout, threads, c.activity());
        c.loadingPlugin = -1;
    } catch (const Error& e) {
        reply (1, (int32_t) e.kind, e.what());
        return 1;
    } catch (const std::exception& e) {
        reply (1, (int32_t) ErrorKind::Value, e.what());
        return 1;
    }
    reply (0, 0, {});

    auto& c = *static_cast<ipc::Control*> (control.data());
    uint32_t last = 0;
    for (;;) {
        uint32_t request;
        ipc::spinWhile (c.request, last, ipc::spinSeconds);
        while ((request = c.request.load (std::memory_order_acquire)) == last)
            ipc::futexWait (c.request, last, 1.0);
        last = request;
        execute (c, data, layout, *lanes);
        c.response.store (request, std::memory_order_release);
        ipc::futexWake (c.response);
    }
}
