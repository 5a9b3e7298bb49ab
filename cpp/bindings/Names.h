#pragma once
// The names Python spells the rack's options with (strategy, estimator, directions, isolation): one table per
// C++ enum, the only list of them. The bindings parse strings by it and export it as tuples
// (_native.STRATEGIES, ...), from which fxgrad.torch and fxgrad.config take their choices.
#include <pybind11/pybind11.h>

#include <string>

#include "fxgrad/Errors.h"
#include "fxgrad/Rack.h"

namespace fxgrad::bindings {

namespace py = pybind11;

template <typename Enum>
struct Named {
    Enum value;
    const char* name;
};

inline constexpr Named<Strategy> strategyNames[] = {
    { Strategy::Lockstep, "lockstep" },
    { Strategy::Replay, "replay" },
    { Strategy::Snapshot, "snapshot" },
};

inline constexpr Named<Estimator> estimatorNames[] = {
    { Estimator::TwoSided, "two-sided" },
    { Estimator::OneSided, "one-sided" },
    { Estimator::FiniteDifference, "fd" },
};

inline constexpr Named<Directions> directionNames[] = {
    { Directions::Rademacher, "rademacher" },
    { Directions::Orthogonal, "orthogonal" },
    { Directions::Guided, "guided" },
};

inline constexpr Named<Isolation> isolationNames[] = {
    { Isolation::None, "none" },
    { Isolation::Process, "process" },
    { Isolation::Sandbox, "sandbox" },
};

/** The value named `text`; ErrorKind::Value naming `what` and the choices ("strategy must be
    'lockstep', 'replay' or 'snapshot', got 'fast'") for any other. */
template <typename Enum, size_t N>
Enum parseName (const Named<Enum> (&table)[N], const char* what, const std::string& text)
{
    std::string choices;
    for (size_t i = 0; i < N; ++i) {
        if (text == table[i].name)
            return table[i].value;
        choices += (i == 0 ? "'" : i + 1 == N ? " or '" : ", '") + std::string (table[i].name) + "'";
    }
    fail (ErrorKind::Value, std::string (what) + " must be " + choices + ", got '" + text + "'");
}

/** The names of a table, in its order. */
template <typename Enum, size_t N>
py::tuple namesOf (const Named<Enum> (&table)[N])
{
    py::tuple names (N);
    for (size_t i = 0; i < N; ++i)
        names[i] = py::str (table[i].name);
    return names;
}

} // namespace fxgrad::bindings
