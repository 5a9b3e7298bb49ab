#pragma once
// How the C channels of fxgrad's audio feed a plugin's input channels, and how its output
// channels make C channels again, whatever the plugin's own channel counts: each destination
// channel is the mean of a list of source channels.
#include <vector>

namespace fxgrad {

struct ChannelRouting {
    std::vector<std::vector<int>> inputSources;    // per plugin input: stream channels averaged
    std::vector<std::vector<int>> outputSources;   // per stream channel: plugin outputs averaged

    /** The routing for `streamChannels` channels into a plugin with `totalInputs` input channels,
        of which `mainInputs` are main and `sideInputs` sidechains, and `mainOutputs` main outputs.
        Main inputs: one-to-one when the counts match, a mono input takes the average of the
        stream, otherwise channels repeat cyclically; sidechains get the main input. Outputs:
        one-to-one, a mono output feeds every stream channel, a mono stream takes the average of
        the plugin's outputs, otherwise outputs repeat cyclically. */
    static ChannelRouting plan (int streamChannels, const std::vector<int>& mainInputs,
                                const std::vector<int>& sideInputs, int totalInputs, int mainOutputs);
};

/** to[j] = the mean of from[k] for k in sources[j], `n` samples each, for j < numTo; a channel
    j without sources (j >= sources.size()) gets silence. */
void mixChannels (const std::vector<std::vector<int>>& sources, const float* const* from, float* const* to,
                  int numTo, int n);

} // namespace fxgrad
