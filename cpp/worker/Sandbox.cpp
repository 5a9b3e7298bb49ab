#include "Sandbox.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/mount.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifdef FXGRAD_HAVE_SECCOMP
#include <seccomp.h>
#endif

namespace fxgrad::worker {

namespace {
std::string failure (const std::string& what)
{
    return what + ": " + std::strerror (errno);
}

bool writeFile (const char* path, const std::string& text)
{
    const int fd = open (path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    const bool ok = write (fd, text.data(), text.size()) == (ssize_t) text.size();
    close (fd);
    return ok;
}

/** Inside, the worker is root of namespaces that own nothing outside; outside, the user it was. */
std::string mapUser (uid_t uid, gid_t gid)
{
    if (! writeFile ("/proc/self/setgroups", "deny"))
        return failure ("writing /proc/self/setgroups");
    if (! writeFile ("/proc/self/uid_map", "0 " + std::to_string (uid) + " 1"))
        return failure ("writing /proc/self/uid_map");
    if (! writeFile ("/proc/self/gid_map", "0 " + std::to_string (gid) + " 1"))
        return failure ("writing /proc/self/gid_map");
    return {};
}

int setMountAttributes (const char* path, unsigned flags, uint64_t set, uint64_t clear)
{
    mount_attr attributes {};
    attributes.attr_set = set;
    attributes.attr_clr = clear;
    return (int) syscall (SYS_mount_setattr, AT_FDCWD, path, flags, &attributes, sizeof attributes);
}

/** Every mount read-only (and nosuid), but the worker's private folder, bound onto itself so
    that it can stay writable. Every path stays what it is outside: plugins (and fxgrad itself)
    may lie anywhere, under /tmp too. */
std::string readOnlyFilesystem (const std::string& writableFolder)
{
    if (mount (nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
        return failure ("making the mounts private");
    if (! writableFolder.empty() && mount (writableFolder.c_str(), writableFolder.c_str(), nullptr, MS_BIND, nullptr) != 0)
        return failure ("binding " + writableFolder + " onto itself");
    if (setMountAttributes ("/", AT_RECURSIVE, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID, 0) != 0)
        return failure ("making the file system read-only");
    if (! writableFolder.empty() && setMountAttributes (writableFolder.c_str(), 0, 0, MOUNT_ATTR_RDONLY) != 0)
        return failure ("making " + writableFolder + " writable");
    // /proc itself stays writable: the worker writes its own uid_map there (a process's files
    // in it are its own; what lies below, /proc/sys among them, stays read-only).
    if (setMountAttributes ("/proc", 0, 0, MOUNT_ATTR_RDONLY) != 0)
        return failure ("keeping /proc writable");
    return {};
}

std::string dropCapabilities()
{
    __user_cap_header_struct header { _LINUX_CAPABILITY_VERSION_3, 0 };
    __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] {};
    if (syscall (SYS_capset, &header, data) != 0)
        return failure ("dropping capabilities");
    if (prctl (PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return failure ("setting no_new_privs");
    return {};
}

#ifdef FXGRAD_HAVE_SECCOMP
std::string installFilter()
{
    scmp_filter_ctx filter = seccomp_init (SCMP_ACT_ALLOW);
    if (filter == nullptr)
        return "seccomp_init failed";
    const auto refuse = SCMP_ACT_ERRNO (EPERM);
    int rc = 0;
    for (const int call : { SCMP_SYS (execve), SCMP_SYS (execveat), SCMP_SYS (ptrace), SCMP_SYS (process_vm_readv),
                            SCMP_SYS (process_vm_writev), SCMP_SYS (socket), SCMP_SYS (mount),
                            SCMP_SYS (umount2), SCMP_SYS (mount_setattr), SCMP_SYS (move_mount), SCMP_SYS (open_tree),
                            SCMP_SYS (fsopen), SCMP_SYS (fsmount), SCMP_SYS (fsconfig), SCMP_SYS (fspick),
                            SCMP_SYS (pivot_root), SCMP_SYS (chroot), SCMP_SYS (unshare), SCMP_SYS (setns),
                            SCMP_SYS (bpf), SCMP_SYS (perf_event_open), SCMP_SYS (keyctl), SCMP_SYS (add_key),
                            SCMP_SYS (request_key), SCMP_SYS (tkill), SCMP_SYS (kexec_load), SCMP_SYS (init_module),
                            SCMP_SYS (finit_module), SCMP_SYS (userfaultfd) })
        rc = rc != 0 ? rc : seccomp_rule_add (filter, refuse, call, 0);
    // A socket pair of its own, AF_UNIX only: JUCE's message queue is one (refused, its message
    // thread polled a failed pair at 100 % CPU), and it connects to nothing outside the process.
    rc = rc != 0 ? rc : seccomp_rule_add (filter, refuse, SCMP_SYS (socketpair), 1, SCMP_A0 (SCMP_CMP_NE, AF_UNIX));
    // Signals to itself only: abort() and raise() send them with kill/tgkill to this process.
    const auto self = (scmp_datum_t) getpid();
    rc = rc != 0 ? rc : seccomp_rule_add (filter, refuse, SCMP_SYS (kill), 1, SCMP_A0 (SCMP_CMP_NE, self));
    rc = rc != 0 ? rc : seccomp_rule_add (filter, refuse, SCMP_SYS (tgkill), 1, SCMP_A0 (SCMP_CMP_NE, self));
    rc = rc != 0 ? rc : seccomp_load (filter);
    seccomp_release (filter);
    if (rc != 0) {
        errno = -rc;
        return failure ("installing the seccomp filter");
    }
    return {};
}
#else
std::string installFilter()
{
    return "this fxgrad-worker was built without libseccomp (install libseccomp-dev and rebuild)";
}
#endif
} // namespace

std::string enterSandbox (const std::string& writableFolder)
{
    // As root: the mounts are made while still root of the machine's namespaces (so that nothing
    // inside can undo them), then the worker becomes the unprivileged "nobody", since root, even
    // in namespaces of its own, would still be the parent's user (read its /proc files, signal
    // it). As any other user: namespaces first, then the mounts inside them.
    const bool root = getuid() == 0;
    constexpr uid_t nobody = 65534;
    if (root) {
        if (! writableFolder.empty() && chown (writableFolder.c_str(), nobody, nobody) != 0)
            return failure ("giving " + writableFolder + " to nobody");
        if (unshare (CLONE_NEWNS | CLONE_NEWNET) != 0)
            return failure ("creating the mount and network namespaces");
        if (auto why = readOnlyFilesystem (writableFolder); ! why.empty())
            return why;
        if (setgroups (0, nullptr) != 0 || setresgid (nobody, nobody, nobody) != 0 || setresuid (nobody, nobody, nobody) != 0)
            return failure ("becoming nobody");
        prctl (PR_SET_DUMPABLE, 1, 0, 0, 0);   // the change of user cleared it, and /proc/self/uid_map's owner with it
    }
    const uid_t uid = getuid();
    const gid_t gid = getgid();
    if (unshare (CLONE_NEWUSER | (root ? 0 : CLONE_NEWNS | CLONE_NEWNET)) != 0)
        return failure ("creating a user namespace (are unprivileged user namespaces disabled?)");
    if (auto why = mapUser (uid, gid); ! why.empty())
        return why;
    if (! root)
        if (auto why = readOnlyFilesystem (writableFolder); ! why.empty())
            return why;
    // The parent's working folder may be closed to nobody; the chain names its plugins by
    // absolute paths or URIs.
    if (chdir ("/") != 0)
        return failure ("changing to /");
    if (auto why = dropCapabilities(); ! why.empty())
        return why;
    return installFilter();
}

} // namespace fxgrad::worker
