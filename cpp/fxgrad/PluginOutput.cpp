#include "PluginOutput.h"

#include <atomic>
#include <cstdio>
#include <deque>
#include <iostream>
#include <mutex>

#include <unistd.h>

namespace fxgrad {
namespace {

// Enough lines for a scan of every installed plugin; older ones go first.
constexpr size_t maxKeptLines = 4000;

std::atomic<bool> capturing { false };
std::recursive_mutex captureMutex;   // held for a capture's lifetime: fds 1 and 2 are global
int depth = 0;
int savedOut = -1, savedErr = -1;
std::FILE* sink = nullptr;

std::mutex keptMutex;
std::deque<std::string> kept;

void flushStreams()
{
    std::cout.flush();
    std::cerr.flush();
    std::fflush (nullptr);   // every C stream: a plugin's buffered printf must land in the sink
}

void keep (const std::string& text)
{
    std::lock_guard<std::mutex> lock (keptMutex);
    size_t start = 0;
    while (start < text.size()) {
        auto end = text.find ('\n', start);
        if (end == std::string::npos)
            end = text.size();
        auto line = text.substr (start, end - start);
        while (! line.empty() && (line.back() == '\r' || line.back() == ' '))
            line.pop_back();
        if (! line.empty())
            kept.push_back (std::move (line));
        start = end + 1;
    }
    while (kept.size() > maxKeptLines)
        kept.pop_front();
}

} // namespace

OutputCapture::OutputCapture()
{
    if (! capturing.load())
        return;
    captureMutex.lock();
    active = true;
    if (depth++ > 0)
        return;
    flushStreams();
    sink = std::tmpfile();
    if (sink == nullptr)   // no temporary file: the output goes where it went
        return;
    savedOut = ::dup (1);
    savedErr = ::dup (2);
    ::dup2 (::fileno (sink), 1);
    ::dup2 (::fileno (sink), 2);
}

OutputCapture::~OutputCapture()
{
    if (! active)
        return;
    if (--depth == 0 && sink != nullptr) {
        flushStreams();
        ::dup2 (savedOut, 1);
        ::dup2 (savedErr, 2);
        ::close (savedOut);
        ::close (savedErr);
        std::string text;
        std::rewind (sink);
        char buffer[4096];
        for (size_t n; (n = std::fread (buffer, 1, sizeof buffer, sink)) > 0;)
            text.append (buffer, n);
        std::fclose (sink);
        sink = nullptr;
        keep (text);
    }
    captureMutex.unlock();
}

void setOutputCapture (bool enabled) { capturing.store (enabled); }

std::vector<std::string> takeCapturedOutput()
{
    std::lock_guard<std::mutex> lock (keptMutex);
    std::vector<std::string> lines (kept.begin(), kept.end());
    kept.clear();
    return lines;
}

} // namespace fxgrad
