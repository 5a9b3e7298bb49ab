#pragma once
// Bytes on fxgrad's worker control channel: fixed-size values in native byte order (both ends are
// the same build on the same machine) and length-prefixed strings. A Reader that runs out fails
// with a clear error instead of reading past the end.
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "Errors.h"

namespace fxgrad::wire {

class Writer {
public:
    template <typename T>
    void put (const T& value)
    {
        static_assert (std::is_trivially_copyable_v<T>);
        const auto* p = reinterpret_cast<const char*> (&value);
        bytes.append (p, sizeof (T));
    }
    void put (const std::string& text)
    {
        put ((uint64_t) text.size());
        bytes += text;
    }
    template <typename T>
    void put (const std::vector<T>& values)
    {
        put ((uint64_t) values.size());
        for (const auto& v : values)
            put (v);
    }
    std::string bytes;
};

class Reader {
public:
    explicit Reader (const std::string& data) : bytes (data) {}

    template <typename T>
    T get()
    {
        T value {};
        if constexpr (std::is_same_v<T, std::string>) {
            const auto n = get<uint64_t>();
            need (n);
            value.assign (bytes, position, n);
            position += n;
        } else {
            static_assert (std::is_trivially_copyable_v<T>);
            need (sizeof (T));
            std::memcpy (&value, bytes.data() + position, sizeof (T));
            position += sizeof (T);
        }
        return value;
    }
    template <typename T>
    std::vector<T> getVector()
    {
        const auto n = get<uint64_t>();
        need (n);   // at least one byte per element: a corrupt count fails here, not in an allocation
        std::vector<T> values;
        values.reserve (n);
        for (uint64_t i = 0; i < n; ++i)
            values.push_back (get<T>());
        return values;
    }

private:
    void need (uint64_t n) const
    {
        if (n > bytes.size() - position)
            fail (ErrorKind::Value, "truncated message on fxgrad's worker channel");
    }
    const std::string& bytes;
    size_t position = 0;
};

} // namespace fxgrad::wire
