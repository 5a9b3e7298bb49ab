#include "ThreadPool.h"

#include <algorithm>
#include <chrono>
#include <pthread.h>
#include <system_error>

#include "Errors.h"
#include "Process.h"

namespace fxgrad {

namespace {
// How long an idle thread (or the caller, waiting for the last task) polls before it sleeps.
// Phases of a step follow each other within this time, so their hand-offs cost no system call
// and no scheduler wake-up; past it, a thread sleeps and costs nothing.
constexpr auto spinTime = std::chrono::microseconds (50);

inline void relax()
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

template <typename Done>
bool spinUntil (Done done)
{
    const auto until = std::chrono::steady_clock::now() + spinTime;
    for (int i = 0;; ++i) {
        if (done())
            return true;
        relax();
        if ((i & 63) == 63 && std::chrono::steady_clock::now() >= until)
            return false;
    }
}
} // namespace

ThreadPool::ThreadPool (int numThreads) : ownerProcess (processGeneration())
{
    const int wanted = std::max (1, numThreads);
    try {
        for (int i = 1; i < wanted; ++i)
            workers.emplace_back ([this] { workerLoop(); });
    } catch (const std::system_error& error) {
        const auto started = workers.size();
        stop();
        fail (ErrorKind::Resource, "out of threads: the OS refused worker thread " + std::to_string (started + 1) + " of "
              + std::to_string (wanted - 1) + " (" + error.code().message() + "); use fewer threads");
    }
}

ThreadPool::~ThreadPool()
{
    if (ownerProcess != processGeneration()) {
        // A forked child: the workers are the parent's. Joining them, or destroying condition
        // variables that still count them as waiting, would wait for ever; the threads are
        // left (leaked) and the condition variables start afresh.
        new std::vector<std::thread> (std::move (workers));
        pthread_cond_init (wake.native_handle(), nullptr);
        pthread_cond_init (done.native_handle(), nullptr);
        return;
    }
    stop();
}

void ThreadPool::stop()
{
    {
        std::lock_guard<std::mutex> lock (mutex);
        stopping = true;
        ++generation;
    }
    wake.notify_all();
    for (auto& w : workers)
        w.join();
    workers.clear();
}

void ThreadPool::drain()
{
    for (int i = nextTask.fetch_add (1); i < taskCount; i = nextTask.fetch_add (1)) {
        try {
            (*current) (i);
        } catch (...) {
            std::lock_guard<std::mutex> lock (errorMutex);
            if (! firstError)
                firstError = std::current_exception();
        }
    }
}

void ThreadPool::workerLoop()
{
    uint64_t seen = 0;
    for (;;) {
        // A new generation: spin briefly, then sleep until run() or stop() publishes one.
        if (! spinUntil ([&] { return generation.load (std::memory_order_acquire) != seen; })) {
            std::unique_lock<std::mutex> lock (mutex);
            wake.wait (lock, [&] { return generation.load (std::memory_order_acquire) != seen; });
        }
        seen = generation.load (std::memory_order_acquire);
        if (stopping.load (std::memory_order_acquire))
            return;
        drain();
        // run() waits for every worker to finish each generation, so no worker can still be
        // looking at this generation's task when the next one is set up.
        if (finishedWorkers.fetch_add (1, std::memory_order_acq_rel) + 1 == workers.size()) {
            std::lock_guard<std::mutex> lock (mutex);   // pairs with the caller's sleep in run()
            done.notify_one();
        }
    }
}

void ThreadPool::run (int numTasks, const std::function<void (int)>& task)
{
    requireProcess (ownerProcess, "this rack's thread pool");
    if (numTasks <= 0)
        return;
    firstError = nullptr;
    current = &task;
    taskCount = numTasks;
    nextTask = 0;
    if (workers.empty() || numTasks == 1) {
        drain();
    } else {
        finishedWorkers.store (0, std::memory_order_relaxed);
        {
            std::lock_guard<std::mutex> lock (mutex);   // a worker about to sleep sees it or is woken
            generation.fetch_add (1, std::memory_order_release);
        }
        wake.notify_all();
        drain();
        const auto all = [&] { return finishedWorkers.load (std::memory_order_acquire) == workers.size(); };
        if (! spinUntil (all)) {
            std::unique_lock<std::mutex> lock (mutex);
            done.wait (lock, all);
        }
    }
    if (firstError)
        std::rethrow_exception (firstError);
}

} // namespace fxgrad
