#pragma once
// What a rack and its worker processes share (IsolatedLanes.h, cpp/worker/): anonymous shared
// memory (memfd: nothing to leak in /dev/shm, gone with the last process that maps it), futex
// wake-ups on words inside it, and the layout of the control block and of the audio buffers.
// Linux only, like the rest of fxgrad's sandbox.
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

#include "Lanes.h"

namespace fxgrad::ipc {

/** A memfd and its mapping. The creating side grows it; the other side maps what it is told. */
class SharedMemory {
public:
    SharedMemory() = default;
    /** A new region of `bytes` (zeroed). */
    static SharedMemory create (const char* name, size_t bytes);
    /** Maps an inherited memfd. */
    static SharedMemory adopt (int fd, size_t bytes);
    SharedMemory (SharedMemory&&) noexcept;
    SharedMemory& operator= (SharedMemory&&) noexcept;
    SharedMemory (const SharedMemory&) = delete;
    ~SharedMemory();

    /** Makes the region at least `bytes` long (creator: grows the file) and maps all of it. */
    void ensure (size_t bytes, bool grow);

    int fd() const { return handle; }
    void* data() const { return mapping; }
    size_t size() const { return length; }

private:
    void unmap();
    int handle = -1;
    void* mapping = nullptr;
    size_t length = 0;
};

/** Sleeps while `word` == `expected`, at most `seconds`. Spurious wake-ups are the caller's loop. */
void futexWait (std::atomic<uint32_t>& word, uint32_t expected, double seconds);
void futexWake (std::atomic<uint32_t>& word);

/** Busy-waits up to `seconds` for `word` to differ from `expected`; true if it did. The next
    command of a training step usually follows within microseconds, and a sleeping process takes
    tens of microseconds to wake (far more under a sandboxed kernel), so both sides spin this
    long before they sleep. */
bool spinWhile (const std::atomic<uint32_t>& word, uint32_t expected, double seconds);
constexpr double spinSeconds = 50e-6;

/** The descriptors a worker inherits: the control socket (the start-up messages, and the
    lifeline: it closes when the parent dies), the control region and the data region. */
constexpr int workerSocketFd = 3, workerControlFd = 4, workerDataFd = 5;

/** Writes `message`, length first, to a socket (no SIGPIPE); false when the other end is gone. */
bool sendMessage (int fd, const std::string& message);

enum class Received { Message, Closed, TimedOut };

/** Reads one message that sendMessage() wrote before `until`: Closed on EOF or error, TimedOut
    when the deadline passed. A message over `maxBytes` fails with ErrorKind::Value. */
Received receiveMessage (int fd, std::string& message, size_t maxBytes,
                         std::chrono::steady_clock::time_point until = std::chrono::steady_clock::time_point::max());

enum class Command : uint32_t { Forward = 1, Evaluate, Reset };

/** The start of a worker's control region; ChainActivity records (lanes x chains) follow it. */
struct Control {
    std::atomic<uint32_t> request { 0 };    // the parent posts command number n by storing n
    std::atomic<uint32_t> response { 0 };   // the worker stores n when command n is done
    std::atomic<int32_t> loadingPlugin { -1 }; // chain index being loaded (start-up crash reports)
    uint32_t command = 0;
    uint32_t flag = 0;                      // Forward: record; Evaluate: centre dots wanted
    int64_t numSamples = 0;
    int64_t prerollSamples = 0;
    uint64_t dataBytes = 0;                 // the data region's size for this command
    int32_t status = 0;                     // 0 done, 1 failed (errorKind + message)
    int32_t errorKind = 0;
    LaneStats stats;                        // the worker's totals after the command
    uint64_t messageBytes = 0;              // failed: the error; done: serialised NaN faults
    char message[1 << 16];

    static size_t bytesFor (const LaneLayout&);
    ChainActivity* activity() { return reinterpret_cast<ChainActivity*> (this + 1); }
};

/** Where each buffer of a command lies in the data region (lanes: the worker's own). */
struct DataLayout {
    size_t theta = 0, x = 0, y = 0, thetas = 0, gradY = 0, mask = 0, dots = 0, centreDots = 0, preroll = 0;
    size_t bytes = 0;
    static DataLayout of (const LaneLayout&, int64_t numSamples, int64_t prerollSamples);
};

/** Faults cross the channel as bytes. */
std::string serializeFaults (const std::vector<LaneFault>&);
std::vector<LaneFault> deserializeFaults (const std::string&);

} // namespace fxgrad::ipc
