#pragma once
// What plugins print while fxgrad scans, creates or frees them: their writes to this process's
// stdout and stderr (file descriptors 1 and 2), captured for the duration and kept for the
// caller to read, so that a DAW-style chatter ("DPF warning: asked to delete component...",
// "convolution: samplerate mismatch...") never lands on the user's terminal or glued to a
// command's output. Python sends what is kept to the "fxgrad.plugins" logger (`fxgrad -v` shows
// it); processes whose output already goes to a log (fxgrad-worker, fxgrad check's workers)
// leave capturing off, the default.
#include <string>
#include <vector>

namespace fxgrad {

/** Points fds 1 and 2 at a temporary file while alive (when capturing is on), and keeps what was
    written there when the outermost capture ends. Nests, and serialises captures across threads
    (the file descriptors are the process's); never take one on JUCE's message thread, where the
    code a capture wraps waits for work to run. */
class OutputCapture {
public:
    OutputCapture();
    ~OutputCapture();
    OutputCapture (const OutputCapture&) = delete;
    OutputCapture& operator= (const OutputCapture&) = delete;

private:
    bool active = false;
};

/** Turns capturing on or off for the whole process (off by default). */
void setOutputCapture (bool enabled);

/** The lines captured since the last call (at most the last few thousand), oldest first. */
std::vector<std::string> takeCapturedOutput();

} // namespace fxgrad
