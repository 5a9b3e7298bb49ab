#pragma once
// A plugin's shared objects looked at before anything maps them: dlopen maps an ELF file's
// segments as its headers declare them, so a truncated file ends the process that opens it with
// SIGBUS at the first touch of a page past its end (a download cut short, a full disk). Reading
// the headers finds that without loading a byte of code.
#include <string>

namespace fxgrad {

/** Why a plugin's ELF shared object(s) at `path` cannot be loaded whole: for a file, the file;
    for a folder (a VST3 or LV2 bundle), every `.so` inside it. Empty when nothing is wrong or
    a file is no ELF object at all (the plugin formats say what that is). */
std::string damagedBinary (const std::string& path);

} // namespace fxgrad
