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
// a name in the file system.
#include <sys/types.h>

#include "Ipc.h"
#include "Lanes.h"

namespace fxgrad {

struct IsolationOptions {
    int threads = 1;              // render threads over all workers
    int workers = 0;              // 0: one per four threads (at least one, at most one per lane)
    // Deadline per call; 0: automatic, max(10 s, 20x the slowest call so far), 60 s before the
    // first has been measured.
    double timeoutSeconds = 0.0;
    std::string workerLog;        // the workers' stdout and stderr; empty: the parent's
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
    double slowestCall = 0.0;
    int64_t restartCount = 0;
    double recoveryTime = 0.0;
    LaneStats retired;            // totals of workers that were replaced
};

} // namespace fxgrad
