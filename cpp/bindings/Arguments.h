#pragma once
// Python arguments checked before they reach the core, with errors that name the argument and
// the problem: float32 arrays of an expected shape, integers, bytes; and a (channels, samples)
// array rendered through a plugin or a chain.
#include <pybind11/numpy.h>

#include <cstdint>
#include <string>
#include <vector>

#include "Bindings.h"
#include "ReleaseGil.h"

namespace fxgrad::bindings {

namespace py = pybind11;

using FloatArray = py::array_t<float, py::array::c_style>;

/** A (channels, samples) float32 C-contiguous view of `audio`, with errors that name the problem. */
FloatArray audioArgument (const py::handle& audio, int channels, const std::string& what);

/** A float32 C-contiguous array of the given shape (-1: any length), with errors that name it. */
FloatArray checkedArray (const py::handle& value, const std::string& name, std::vector<int64_t> shape,
                         const std::string& layout);

/** An integer argument (Python int, NumPy integer: anything with __index__ but a bool) as
    int64; beyond int64 it saturates, which every range check then refuses. */
int64_t integerArgument (const py::handle& value, const std::string& name);

/** The bytes of a bytes-like object (bytes, bytearray, memoryview). */
std::string bytesArgument (const py::handle& value, const std::string& name);

inline py::bytes toBytes (const std::string& s) { return py::bytes (s.data(), s.size()); }

/** `audio` (channels, samples) through `processor` (a Plugin or a Chain of that many channels),
    without the GIL. */
template <typename Processor>
FloatArray processAudio (Processor& processor, int channels, const py::handle& audio)
{
    auto in = audioArgument (audio, channels, "audio");
    const auto samples = in.shape (1);
    FloatArray out ({ in.shape (0), samples });
    {
        ReleaseGil release;
        processor.process (in.data(), samples, out.mutable_data(), samples, samples);
    }
    return out;
}

} // namespace fxgrad::bindings
