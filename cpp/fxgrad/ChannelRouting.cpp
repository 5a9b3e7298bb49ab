#include "ChannelRouting.h"

#include <algorithm>

namespace fxgrad {

ChannelRouting ChannelRouting::plan (int streamChannels, const std::vector<int>& mainInputs,
                                     const std::vector<int>& sideInputs, int totalInputs, int mainOutputs)
{
    const int c = streamChannels;
    const int numMain = (int) mainInputs.size();
    ChannelRouting routing;
    auto& inputs = routing.inputSources;
    inputs.assign ((size_t) totalInputs, {});
    for (int k = 0; k < numMain; ++k) {
        auto& sources = inputs[(size_t) mainInputs[(size_t) k]];
        if (numMain == 1 && c > 1)
            for (int s = 0; s < c; ++s)
                sources.push_back (s);
        else
            sources.push_back (k % c);
    }
    for (size_t k = 0; k < sideInputs.size(); ++k)
        inputs[(size_t) sideInputs[k]] = numMain > 0 ? inputs[(size_t) mainInputs[k % (size_t) numMain]]
                                                     : std::vector<int> { (int) k % c };

    auto& outputs = routing.outputSources;
    outputs.assign ((size_t) c, {});
    for (int s = 0; s < c; ++s) {
        if (c == 1 && mainOutputs > 1)
            for (int o = 0; o < mainOutputs; ++o)
                outputs[0].push_back (o);
        else
            outputs[(size_t) s].push_back (s % mainOutputs);
    }
    return routing;
}

void mixChannels (const std::vector<std::vector<int>>& sources, const float* const* from, float* const* to,
                  int numTo, int n)
{
    for (int j = 0; j < numTo; ++j) {
        float* dest = to[j];
        if (j >= (int) sources.size()) {
            std::fill (dest, dest + n, 0.0f);
            continue;
        }
        const auto& mine = sources[(size_t) j];
        std::copy_n (from[mine[0]], n, dest);
        if (mine.size() > 1) {
            for (size_t k = 1; k < mine.size(); ++k) {
                const float* src = from[mine[k]];
                for (int i = 0; i < n; ++i)
                    dest[i] += src[i];
            }
            const float scale = 1.0f / (float) mine.size();
            for (int i = 0; i < n; ++i)
                dest[i] *= scale;
        }
    }
}

} // namespace fxgrad
