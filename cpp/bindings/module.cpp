// The fxgrad._native module: fxgrad's core bound by concept (Bindings.h), a thin layer that
// checks arguments (Arguments.h), releases the GIL around plugin work (ReleaseGil.h) and turns
// core errors into Python exceptions (ErrorBindings.cpp).
#include "Bindings.h"

PYBIND11_MODULE (_native, m)
{
    using namespace fxgrad::bindings;
    m.doc() = "fxgrad's native plugin host (JUCE). Use the fxgrad package rather than this module.";
    bindErrors (m);
    bindPlugin (m);
    bindChain (m);
    bindRack (m);
    bindBatchRenderer (m);
    bindSpectralDistance (m);
    bindHost (m);
}
