#pragma once
// A fixed pool of worker threads that runs numbered tasks. The caller's thread works too, so a
// pool of size T keeps T-1 threads. Tasks are handed out dynamically; callers make results
// deterministic by writing each task's result to its own slot. Idle threads poll for the next
// run for a few tens of microseconds before they sleep, so that runs in quick succession (a
// step's phases) are handed over without system calls or scheduler wake-ups.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace fxgrad {

class ThreadPool {
public:
    /** Throws ErrorKind::Resource, having stopped the threads it started, when the OS refuses one. */
    explicit ThreadPool (int numThreads);
    ~ThreadPool();
    ThreadPool (const ThreadPool&) = delete;
    ThreadPool& operator= (const ThreadPool&) = delete;

    int size() const { return (int) workers.size() + 1; }

    /** Runs task(i) for i in [0, numTasks) and returns when all are done. The first exception
        thrown by a task is rethrown here, after every task has finished. Not reentrant.
        Throws ErrorKind::Forked in a process forked from the pool's: its workers are not there. */
    void run (int numTasks, const std::function<void (int)>& task);

private:
    void workerLoop();
    void drain();
    void stop();

    std::vector<std::thread> workers;
    uint64_t ownerProcess;   // processGeneration() when the workers started
    std::mutex mutex;
    std::condition_variable wake, done;
    const std::function<void (int)>* current = nullptr;   // guarded by the generation handshake
    int taskCount = 0;
    std::atomic<int> nextTask { 0 };
    std::atomic<uint64_t> generation { 0 };      // written under `mutex`, polled without it
    std::atomic<size_t> finishedWorkers { 0 };   // workers done with the current generation
    std::atomic<bool> stopping { false };
    std::exception_ptr firstError;
    std::mutex errorMutex;
};

} // namespace fxgrad
