#pragma once
// Lanes in sandboxed worker processes, like a DAW's plugin bridges: each worker is the small
// native executable `fxgrad-worker` (cpp/worker/), running LocalLanes over its share of the
// lanes. Audio, parameters and results cross in shared memory (Ipc.h), commands and completions
// are futex wake-ups, and the control socket carries only the start-up message (the chain's
// spec). Nothing is allocated per call in the steady state.
//
// A worker that dies (signal, abort, exit) or misses its deadline (a hang) is killed and
// restarted; its lanes restart from the preset state and are reported as faulted (Lanes.h), with
// what was rendering when it happened (the activity records live in shared memory, so they
// survive the crash). Workers die with their parent: each watches the control socket, which the
// kernel closes when the parent exits in any way (kill -9 included), and nothing they share has
// a name in the file system. Each worker gets a private temporary folder (its TMPDIR, where the
// plugin host writes its scratch files), removed when the worker ends however it ends.
//
// The deadline of a call is absolute: the configured limit (defaultCallSeconds unless set), the
// same for every call whatever earlier calls took, so a run with n hangs loses at most n times
// the limit. While it waits the caller can be interrupted (IsolationOptions::interrupted, and
// interrupt()): the workers still busy are stopped, and restart on the next call.
#include <sys/types.h>

#include <atomic>
#include <functional>

#include "Ipc.h"
#include "Lanes.h"

namespace fxgrad {

/** A worker's deadline per call when none is configured, in seconds. */
constexpr double defaultCallSeconds = 30.0;
/** How long a call may still wait after interrupt() before it is abandoned, in seconds. */
constexpr double interruptGraceSeconds = 0.3;

struct IsolationOptions {
    int threads = 1;              // render threads over all workers
    int workers = 0;              // 0: one per four threads (at least one, at most one per lane)
    double timeoutSeconds = 0.0;  // deadline per call; 0: defaultCallSeconds
    std::string workerLog;        // the workers' stdout and stderr, opened without following a link; empty: the parent's
    bool sandbox = false;         // workers in namespaces and a seccomp filter (cpp/worker/Sandbox.h)
    // Polled by the waiting thread about every 10 ms: true abandons the wait at once (the caller
    // raises ErrorKind::Interrupted). Python's bindings run the interpreter's signal handlers here.
    std::function<bool()> interrupted;
};

class IsolatedLanes final : public Lanes {
public:
    IsolatedLanes (const Chain& prototype, const LaneLayout&, const IsolationOptions&);
    ~IsolatedLanes() override;

    int threads() const override { return threadsPerWorker * (int) workers.size(); }
    int numWorkers() const { return (int) workers.size(); }
    std::vector<pid_t> workerPids() const;
    int64_t restarts() const { return restartCount; }
    double recoverySeconds() const { return recoveryTime; }
    /** The deadline of a call, in seconds (a reset with a preroll gets it in proportion to the
        preroll's length on top). */
    double callSeconds() const;
    /** From any thread: calls still waiting interruptGraceSeconds from now, and every later one,
        are abandoned with ErrorKind::Interrupted (a stop requested by a signal). */
    void interrupt();

    void forward (const float* theta, const float* x, float* y, int64_t numSamples, bool record,
                  std::vector<LaneFault>& faults) override;
    void evaluate (const float* thetas, const float* gradY, const uint8_t* skip, double* dots, double* centreDots,
                   std::vector<LaneFault>& faults) override;
    void reset (const uint8_t* mask, const float* preroll, int64_t prerollSamples,
                std::vector<LaneFault>& faults) override;
    LaneStats stats() const override;

private:
    struct Worker;
    void spawn (Worker&);
    void awaitStart (Worker&);
    void stop (Worker&);
    void restartLost (std::vector<LaneFault>& faults);
    void trustworthy (LaneFault&, const Worker&) const;
    bool pastInterruptGrace() const;
    bool shouldAbandon() const;
    [[noreturn]] void abandon (size_t firstUnanswered);
    template <typename Fill, typename Collect>
    void call (ipc::Command, uint32_t flag, int64_t numSamples, int64_t prerollSamples, Fill fill, Collect collect,
               std::vector<LaneFault>& faults);
    double deadline (ipc::Command, int64_t prerollSamples) const;

    LaneLayout layout;
    IsolationOptions options;
    std::string specBytes;
    std::string workerPath;
    int threadsPerWorker = 1;
    std::vector<std::unique_ptr<Worker>> workers;
    int64_t frameSamples = 0;
    int logFd = -1;               // options.workerLog, opened once
    std::atomic<int64_t> interruptAt { 0 };   // steady-clock nanoseconds of interrupt(); 0: none
    int64_t restartCount = 0;
    double recoveryTime = 0.0;
    LaneStats retired;            // totals of workers that were replaced
};

} // namespace fxgrad
