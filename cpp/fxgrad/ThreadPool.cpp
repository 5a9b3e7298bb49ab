#include "ThreadPool.h"

#include <algorithm>
#include <pthread.h>
#include <system_error>

#include "Errors.h"
#include "Process.h"

namespace fxgrad {

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
    std::unique_lock<std::mutex> lock (mutex);
    for (;;) {
        wake.wait (lock, [&] { return stopping || generation != seen; });
        if (stopping)
            return;
        seen = generation;
        lock.unlock();
        drain();
        lock.lock();
        // run() waits for every worker to finish each generation, so no worker can still be
        // looking at this generation's task when the next one is set up.
        if (++finishedWorkers == workers.size())
            done.notify_one();
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
        {
            std::lock_guard<std::mutex> lock (mutex);
            finishedWorkers = 0;
            ++generation;
        }
        wake.notify_all();
        drain();
        std::unique_lock<std::mutex> lock (mutex);
        done.wait (lock, [&] { return finishedWorkers == workers.size(); });
    }
    if (firstError)
        std::rethrow_exception (firstError);
}

} // namespace fxgrad
