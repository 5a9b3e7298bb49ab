#include "ThreadPool.h"

#include <algorithm>

namespace fxgrad {

ThreadPool::ThreadPool (int numThreads)
{
    for (int i = 1; i < std::max (1, numThreads); ++i)
        workers.emplace_back ([this] { workerLoop(); });
}

ThreadPool::~ThreadPool()
{
    {
        std::lock_guard<std::mutex> lock (mutex);
        stopping = true;
    }
    wake.notify_all();
    for (auto& w : workers)
        w.join();
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
