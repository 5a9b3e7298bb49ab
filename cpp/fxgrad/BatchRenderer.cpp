#include "BatchRenderer.h"

#include <algorithm>
#include <chrono>
#include <thread>

#include "Errors.h"

namespace fxgrad {

namespace {
using Clock = std::chrono::steady_clock;

double secondsSince (Clock::time_point start)
{
    return std::chrono::duration<double> (Clock::now() - start).count();
}
} // namespace

BatchRenderer::BatchRenderer (std::shared_ptr<Chain> prototype, int threads) : proto (std::move (prototype))
{
    if (proto == nullptr)
        fail (ErrorKind::Type, "render_batch needs a chain");
    const int count = threads > 0 ? threads : (int) std::max (1u, std::thread::hardware_concurrency());
    pool = std::make_unique<ThreadPool> (count);
}

BatchRenderer::~BatchRenderer() = default;

void BatchRenderer::render (const float* theta, bool sharedTheta, const float* audio, bool sharedAudio, int count,
                            int64_t numSamples, float* out)
{
    std::lock_guard<std::mutex> call (callMutex);
    const auto start = Clock::now();
    const int numParams = proto->numLearned();
    if (count < 1)
        fail (ErrorKind::Value, "render_batch needs at least one setting or clip");
    if (numSamples < 1)
        fail (ErrorKind::Value, "render_batch needs audio of at least one sample");
    const size_t rows = sharedTheta ? 1 : (size_t) count;
    for (size_t i = 0; i < rows * (size_t) numParams; ++i)
        if (! (theta[i] >= 0.0f && theta[i] <= 1.0f))
            fail (ErrorKind::Value, "theta must lie in [0, 1] (normalised) and be finite; row " + std::to_string (i / (size_t) numParams)
                  + ", parameter " + std::to_string (i % (size_t) numParams) + " ('" + proto->qualifiedName (proto->learned()[i % (size_t) numParams])
                  + "') is " + std::to_string (theta[i]));

    // Every render starts from the prototype's preset state as it is now; the state travels
    // once per call, not once per render.
    const auto presetStates = proto->getStates();
    const int wanted = std::min (count, pool->size());
    while ((int) workers.size() < wanted) {
        workers.push_back (proto->clone());
        idle.push_back ((int) workers.size() - 1);
    }

    const size_t clip = (size_t) proto->channels() * (size_t) numSamples;
    std::vector<double> dsp ((size_t) count, 0.0);
    pool->run (count, [&] (int k) {
        int slot;
        {
            std::lock_guard<std::mutex> lock (idleMutex);
            slot = idle.back();
            idle.pop_back();
        }
        struct Release {
            BatchRenderer& owner;
            int slot;
            ~Release()
            {
                std::lock_guard<std::mutex> lock (owner.idleMutex);
                owner.idle.push_back (slot);
            }
        } release { *this, slot };

        auto& chain = *workers[(size_t) slot];
        // A fresh clone holds the preset state with clear DSP state; so does this copy after
        // restoring the preset and resetting, whatever it rendered before.
        chain.setStates (presetStates);
        chain.reset();
        chain.setLearned (theta + (sharedTheta ? 0 : (size_t) k * (size_t) numParams));
        const float* input = audio + (sharedAudio ? 0 : (size_t) k * clip);
        const auto t0 = Clock::now();
        chain.process (input, numSamples, out + (size_t) k * clip, numSamples, numSamples);
        dsp[(size_t) k] = secondsSince (t0);
    });

    for (double d : dsp)
        totals.dspSeconds += d;
    totals.renders += count;
    totals.wallSeconds += secondsSince (start);
}

} // namespace fxgrad
