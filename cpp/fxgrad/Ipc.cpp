#include "Ipc.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstring>
#include <linux/futex.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "Errors.h"
#include "Wire.h"

namespace fxgrad::ipc {

namespace {
[[noreturn]] void failErrno (const std::string& what)
{
    fail (ErrorKind::Value, what + ": " + std::strerror (errno));
}

/** Moves `n` bytes by calls of `step (done)` (a send or recv of what is left after `done`),
    again when a signal interrupts one; false when the other end is gone or `step` gives 0. */
template <typename Step>
bool transferAll (size_t n, Step step)
{
    size_t done = 0;
    while (done < n) {
        const auto r = step (done);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return false;
        done += (size_t) r;
    }
    return true;
}

size_t pageRound (size_t bytes)
{
    const size_t page = (size_t) sysconf (_SC_PAGESIZE);
    return (bytes + page - 1) / page * page;
}
} // namespace

SharedMemory SharedMemory::create (const char* name, size_t bytes)
{
    SharedMemory region;
    region.handle = (int) syscall (SYS_memfd_create, name, MFD_CLOEXEC);
    if (region.handle < 0)
        failErrno ("cannot create shared memory for isolated lanes");
    region.ensure (bytes, true);
    return region;
}

SharedMemory SharedMemory::adopt (int fd, size_t bytes)
{
    SharedMemory region;
    region.handle = fd;
    region.ensure (bytes, false);
    return region;
}

SharedMemory::SharedMemory (SharedMemory&& other) noexcept { *this = std::move (other); }

SharedMemory& SharedMemory::operator= (SharedMemory&& other) noexcept
{
    if (this != &other) {
        unmap();
        if (handle >= 0)
            close (handle);
        handle = other.handle;
        mapping = other.mapping;
        length = other.length;
        other.handle = -1;
        other.mapping = nullptr;
        other.length = 0;
    }
    return *this;
}

SharedMemory::~SharedMemory()
{
    unmap();
    if (handle >= 0)
        close (handle);
}

void SharedMemory::unmap()
{
    if (mapping != nullptr)
        munmap (mapping, length);
    mapping = nullptr;
    length = 0;
}

void SharedMemory::ensure (size_t bytes, bool grow)
{
    bytes = pageRound (std::max<size_t> (bytes, 1));
    if (mapping != nullptr && bytes <= length)
        return;
    if (grow && ftruncate (handle, (off_t) bytes) != 0)
        failErrno ("cannot size shared memory for isolated lanes (" + std::to_string (bytes) + " bytes)");
    unmap();
    void* p = mmap (nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, handle, 0);
    if (p == MAP_FAILED)
        failErrno ("cannot map shared memory for isolated lanes (" + std::to_string (bytes) + " bytes)");
    mapping = p;
    length = bytes;
}

void futexWait (std::atomic<uint32_t>& word, uint32_t expected, double seconds)
{
    static_assert (sizeof (std::atomic<uint32_t>) == sizeof (uint32_t) && std::atomic<uint32_t>::is_always_lock_free);
    seconds = std::max (seconds, 0.0);
    timespec timeout { (time_t) seconds, (long) ((seconds - std::floor (seconds)) * 1e9) };
    // Not FUTEX_PRIVATE: the word lives in memory shared between processes.
    syscall (SYS_futex, reinterpret_cast<uint32_t*> (&word), FUTEX_WAIT, expected, &timeout, nullptr, 0);
}

void futexWake (std::atomic<uint32_t>& word)
{
    syscall (SYS_futex, reinterpret_cast<uint32_t*> (&word), FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0);
}

bool spinWhile (const std::atomic<uint32_t>& word, uint32_t expected, double seconds)
{
    const auto until = std::chrono::steady_clock::now() + std::chrono::duration_cast<std::chrono::steady_clock::duration> (
                           std::chrono::duration<double> (seconds));
    do {
        for (int i = 0; i < 32; ++i) {
            if (word.load (std::memory_order_acquire) != expected)
                return true;
#if defined(__x86_64__) || defined(__i386__)
            __builtin_ia32_pause();
#endif
        }
    } while (std::chrono::steady_clock::now() < until);
    return word.load (std::memory_order_acquire) != expected;
}

bool sendMessage (int fd, const std::string& message)
{
    wire::Writer framed;
    framed.put (message);
    const auto& bytes = framed.bytes;
    return transferAll (bytes.size(), [&] (size_t sent) {
        return send (fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    });
}

Received receiveMessage (int fd, std::string& message, size_t maxBytes, std::chrono::steady_clock::time_point until)
{
    using Clock = std::chrono::steady_clock;
    bool timedOut = false;
    // Waits until there is something to read; false once the deadline has passed. Polls in
    // slices of a second at most, so that a far deadline needs no care about overflow.
    const auto readable = [&] {
        for (;;) {
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds> (until - Clock::now()).count();
            if (left <= 0) {
                timedOut = true;
                return false;
            }
            pollfd p { fd, POLLIN, 0 };
            if (poll (&p, 1, (int) std::min<long long> (left, 1000)) > 0)
                return true;
        }
    };
    const auto receive = [&] (char* out, size_t n) {
        return transferAll (n, [&] (size_t got) -> ssize_t { return readable() ? recv (fd, out + got, n - got, 0) : 0; });
    };
    uint64_t length = 0;
    if (! receive (reinterpret_cast<char*> (&length), sizeof length))
        return timedOut ? Received::TimedOut : Received::Closed;
    if (length > maxBytes)
        fail (ErrorKind::Value, "a message of " + std::to_string (length) + " bytes on fxgrad's worker channel (at most "
              + std::to_string (maxBytes) + " expected)");
    message.assign (length, '\0');
    if (! receive (message.data(), length))
        return timedOut ? Received::TimedOut : Received::Closed;
    return Received::Message;
}

size_t Control::bytesFor (const LaneLayout& layout)
{
    return sizeof (Control) + sizeof (ChainActivity) * (size_t) layout.lanes * (size_t) layout.chainsPerLane();
}

DataLayout DataLayout::of (const LaneLayout& layout, int64_t numSamples, int64_t prerollSamples)
{
    DataLayout d;
    const size_t M = (size_t) layout.lanes, P = (size_t) layout.parameters, E = (size_t) layout.evaluations;
    const size_t frame = M * (size_t) layout.channels * (size_t) numSamples;
    size_t at = 0;
    auto place = [&at] (size_t bytes) {
        const size_t here = at;
        at = (at + bytes + 63) / 64 * 64;   // cache-line aligned, so lanes' buffers never share a line
        return here;
    };
    d.theta = place (M * P * sizeof (float));
    d.x = place (frame * sizeof (float));
    d.y = place (frame * sizeof (float));
    d.thetas = place (M * E * P * sizeof (float));
    d.gradY = place (frame * sizeof (float));
    d.mask = place (M);
    d.dots = place (M * E * sizeof (double));
    d.centreDots = place (M * sizeof (double));
    d.preroll = place (M * (size_t) layout.channels * (size_t) prerollSamples * sizeof (float));
    d.bytes = at;
    return d;
}

std::string serializeFaults (const std::vector<LaneFault>& faults)
{
    wire::Writer w;
    w.put ((uint64_t) faults.size());
    for (const auto& f : faults) {
        w.put (f.kind);
        w.put (f.lanes);
        w.put (f.lane);
        w.put (f.phase);
        w.put (f.evaluation);
        w.put (f.plugin);
        w.put (f.detail);
    }
    return std::move (w.bytes);
}

std::vector<LaneFault> deserializeFaults (const std::string& bytes)
{
    wire::Reader r (bytes);
    const auto count = r.get<uint64_t>();
    if (count > bytes.size())
        fail (ErrorKind::Value, "corrupt fault list on fxgrad's worker channel");
    std::vector<LaneFault> faults ((size_t) count);
    for (auto& f : faults) {
        f.kind = r.get<FaultKind>();
        f.lanes = r.getVector<int>();
        f.lane = r.get<int>();
        f.phase = r.get<int>();
        f.evaluation = r.get<int>();
        f.plugin = r.get<int>();
        f.detail = r.get<std::string>();
    }
    return faults;
}

} // namespace fxgrad::ipc
