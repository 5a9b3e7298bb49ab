#pragma once
// The pieces of the fxgrad._native module, one per concept of the core; module.cpp calls them in
// order (errors first: the others raise them). Each lives in the file of its name.
// stl.h in every file of the module: its casters must be the same in all of them (ODR).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

namespace fxgrad::bindings {

namespace py = pybind11;

void bindErrors (py::module_&);         // ErrorBindings.cpp: the exception classes and the one translator
void bindPlugin (py::module_&);         // PluginBindings.cpp: Plugin, PluginInfo, ParameterInfo
void bindChain (py::module_&);          // ChainBindings.cpp
void bindRack (py::module_&);           // RackBindings.cpp: the SPSA engine and its option names
void bindBatchRenderer (py::module_&);  // BatchRendererBindings.cpp
void bindSpectralDistance (py::module_&); // SpectralDistanceBindings.cpp: the aligned match loss
void bindHost (py::module_&);           // HostBindings.cpp: scan and shutdown

/** Puts back the exception a signal handler raised while a rack waited on its workers
    (RackBindings.cpp); false when there is none. For ErrorKind::Interrupted's translation. */
bool restorePendingInterrupt();

} // namespace fxgrad::bindings
