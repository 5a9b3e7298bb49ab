#include "Binary.h"

#include <elf.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

namespace fxgrad {

namespace fs = std::filesystem;

namespace {
template <typename Header, typename Program>
std::string checkElf (std::ifstream& in, uint64_t size, const std::string& path)
{
    Header h {};
    in.seekg (0);
    if (size < sizeof h || ! in.read (reinterpret_cast<char*> (&h), sizeof h))
        return path + " is truncated: " + std::to_string (size) + " bytes, less than an ELF header";
    const auto beyond = [&] (uint64_t offset, uint64_t bytes, const char* what) -> std::string {
        if (offset <= size && bytes <= size - offset)
            return {};
        return path + " is truncated: its " + what + " end at byte " + std::to_string (offset + bytes) + ", the file has "
               + std::to_string (size) + " (a copy or download cut short?)";
    };
    if (auto why = beyond (h.e_phoff, (uint64_t) h.e_phnum * h.e_phentsize, "program headers"); ! why.empty())
        return why;
    if (auto why = beyond (h.e_shoff, (uint64_t) h.e_shnum * h.e_shentsize, "section headers"); ! why.empty())
        return why;
    if (h.e_phentsize != sizeof (Program))
        return h.e_phnum == 0 ? std::string() : path + " is damaged: its program headers have an unexpected size";
    std::vector<Program> programs (h.e_phnum);
    in.seekg ((std::streamoff) h.e_phoff);
    if (! in.read (reinterpret_cast<char*> (programs.data()), (std::streamsize) (programs.size() * sizeof (Program))))
        return path + " cannot be read";
    for (const auto& p : programs)
        if (p.p_type == PT_LOAD || p.p_type == PT_DYNAMIC)
            if (auto why = beyond (p.p_offset, p.p_filesz, "segments"); ! why.empty())
                return why;
    return {};
}

std::string checkFile (const fs::path& file)
{
    std::error_code error;
    const auto size = fs::file_size (file, error);
    if (error)
        return {};   // not a regular file: the formats report it
    std::ifstream in (file, std::ios::binary);
    unsigned char ident[EI_NIDENT] {};
    if (! in.read (reinterpret_cast<char*> (ident), sizeof ident))
        return std::memcmp (ident, ELFMAG, std::min<size_t> (SELFMAG, (size_t) in.gcount())) == 0 && in.gcount() > 0
                   ? file.string() + " is truncated: " + std::to_string (size) + " bytes, less than an ELF header"
                   : std::string();
    if (std::memcmp (ident, ELFMAG, SELFMAG) != 0)
        return {};
    if (ident[EI_CLASS] == ELFCLASS64)
        return checkElf<Elf64_Ehdr, Elf64_Phdr> (in, size, file.string());
    if (ident[EI_CLASS] == ELFCLASS32)
        return checkElf<Elf32_Ehdr, Elf32_Phdr> (in, size, file.string());
    return file.string() + " is damaged: an ELF file of unknown class";
}
} // namespace

std::string damagedBinary (const std::string& path)
{
    std::error_code error;
    const fs::path p (path);
    if (! fs::is_directory (p, error))
        return checkFile (p);
    for (auto it = fs::recursive_directory_iterator (p, fs::directory_options::skip_permission_denied, error);
         ! error && it != fs::recursive_directory_iterator(); it.increment (error))
        if (it->path().extension() == ".so" && it->is_regular_file (error))
            if (auto why = checkFile (it->path()); ! why.empty())
                return why;
    return {};
}

} // namespace fxgrad
