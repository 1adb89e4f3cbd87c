"""Operating-system confinement of the processes that render templates: defence in depth.

Templates are untrusted code. Jinja's sandbox is what keeps a template from reading files, opening
sockets or running programs; this module is what still holds if that sandbox were ever escaped. A
template process (pressrun.templating.isolation) confines itself once, after its imports and before
it reads its first request, for the rest of its life:

- Landlock (Linux 5.13+; network rules 6.7+, signal and abstract-socket scoping 6.12+): files and
  folders may be read only beneath Python's own installation (the standard library, site-packages,
  pressrun itself) and the time-zone database; nothing may be written, created, removed or
  executed anywhere; no TCP connection or listening port; no signal or abstract UNIX socket to any
  process outside the confined ones.
- seccomp (with libseccomp): no new sockets of any kind (UDP and UNIX sockets are beyond
  Landlock's network rules), no programs run, no debugging of other processes, and none of the
  administrative system calls a process running as root could otherwise make (modules, mounts,
  namespaces, clocks, reboot, BPF, io_uring).

Both are best effort: an older kernel or a machine without libseccomp gets what it supports, and
:func:`confine` says what was applied (the parent logs it). Landlock applies to the calling thread
only, so a process with more than one thread is not confined by it; template processes have one.
"""

from __future__ import annotations

import errno
import logging
import os
import sys
import sysconfig
from dataclasses import dataclass, field
from types import ModuleType

log = logging.getLogger(__name__)

# Refused with EPERM. Not an allow-list: a new Python may make system calls an old list lacks,
# and a refused harmless call would fail every row.
DENIED_SYSCALLS = (
    # new sockets, programs, other processes' memory
    "socket", "execve", "execveat", "ptrace", "process_vm_readv", "process_vm_writev", "kcmp",
    # what only root could do, but template processes of a server running as root are root too
    "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load", "reboot",
    "mount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree", "fsopen", "fsmount",
    "fsconfig", "fspick", "mount_setattr", "swapon", "swapoff", "unshare", "setns",
    "open_by_handle_at", "name_to_handle_at", "iopl", "ioperm", "acct", "quotactl", "syslog",
    "vhangup", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "sethostname",
    "setdomainname", "bpf", "perf_event_open", "userfaultfd", "keyctl", "add_key", "request_key",
    "fanotify_init",
    # io_uring runs file and socket operations that seccomp never sees
    "io_uring_setup", "io_uring_enter", "io_uring_register",
)


@dataclass
class Confinement:
    """What :func:`confine` applied to this process."""

    landlock_abi: int | None = None  # the kernel's Landlock ABI version, when a ruleset was applied
    seccomp: bool = False
    notes: list[str] = field(default_factory=list)  # why a layer was not applied


def readable_paths() -> list[str]:
    """What a template process may read: Python's installation and import path, and time-zone data.

    The working directory is not among them: template processes start with ``python -P``, which
    keeps it off ``sys.path`` (a ``jinja2.py`` in the folder a run started from must not be imported).
    """
    candidates = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, *sys.path}
    candidates.update(sysconfig.get_paths().values())
    tzpath = sysconfig.get_config_var("TZPATH") or ""
    candidates.update(part for part in tzpath.split(os.pathsep) if part)
    return sorted(path for path in candidates if path and os.path.isabs(path) and os.path.exists(path))


def confine() -> Confinement:
    """Confine the calling process for the rest of its life (see the module's docstring)."""
    result = Confinement()
    if not sys.platform.startswith("linux"):
        result.notes.append(f"no confinement on {sys.platform} (Linux only)")
        return result
    # Both libraries find their C libraries at first use (running ldconfig): before anything is denied.
    seccomp = load_seccomp(result)
    threads = len(os.listdir("/proc/self/task"))
    if threads != 1:
        result.notes.append(f"Landlock not applied: the process has {threads} threads, not 1")
    else:
        apply_landlock(result)
    if seccomp is not None:
        apply_seccomp(seccomp, result)
    return result


def apply_landlock(result: Confinement) -> None:
    try:
        from py_landlock import Landlock, LandlockError
    except ImportError as exc:  # pragma: no cover - a dependency on Linux
        result.notes.append(f"Landlock not applied: {exc}")
        return
    try:
        # Not strict: a kernel without network rules or scoping still gets the file rules. Every
        # right the kernel knows is handled (denied), except reading beneath the allowed paths.
        ruleset = Landlock(strict=False)
        ruleset.allow_read(*readable_paths())
        ruleset.apply()
        result.landlock_abi = int(ruleset.abi_version)
    except (LandlockError, OSError) as exc:
        result.notes.append(f"Landlock not applied: {exc}")


def load_seccomp(result: Confinement) -> ModuleType | None:
    try:
        import pyseccomp
    except (ImportError, RuntimeError) as exc:  # RuntimeError: libseccomp is not installed
        result.notes.append(f"seccomp not applied: {exc}")
        return None
    return pyseccomp


def apply_seccomp(pyseccomp: ModuleType, result: Confinement) -> None:
    try:
        syscall_filter = pyseccomp.SyscallFilter(defaction=pyseccomp.ALLOW)
        for name in DENIED_SYSCALLS:
            try:
                syscall_filter.add_rule(pyseccomp.ERRNO(errno.EPERM), name)
            except (OSError, ValueError, RuntimeError):
                continue  # not a system call on this architecture or libseccomp version
        syscall_filter.load()
        result.seccomp = True
    except (OSError, RuntimeError) as exc:
        result.notes.append(f"seccomp not applied: {exc}")
