"""A run's private work folders, and the removal of those a killed run left behind.

A batch run spools its valid rows (e-mail addresses included) into a folder of the worker's temp dir, and a sync
run keeps its diff there. A run removes its folder when it ends, even on an error or a SIGTERM; a SIGKILL (the
OOM killer, or Airflow's kill after the grace period) gives it no chance to. So each folder's name says who owns
it (a hash of the host name and pid namespace, the process id and the process's start time), and creating a
folder first removes the folders of the same family whose owner is gone: the next try of the task, or any later
run on that worker, cleans up after a killed one.

A folder is removed only if it was made on this host and in this pid namespace, by this user, by a process that
no longer runs (or whose process id now belongs to a process started at another time). Folders of live
processes, concurrent runs of mapped tasks on the same worker included, are never touched; neither are folders
of other hosts or containers sharing a folder (their processes cannot be seen from here).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import socket
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)


def process_space() -> str:
    """Return the id of this process's pid namespace (``""`` where ``/proc`` cannot tell).

    Two containers may share a host name (``--network host``) and a mounted folder, yet not see each other's
    processes: a process id is only judged within its own namespace.
    """
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def _host() -> str:
    """Return a short hash of the host name and the pid namespace: whose process ids a folder's name holds."""
    seen = f"{socket.gethostname()}/{process_space()}"
    return hashlib.sha1(seen.encode("utf-8"), usedforsecurity=False).hexdigest()[:8]


def _stat(pid: int) -> tuple[str, str] | None:
    """Return ``(state, start time in clock ticks)`` of a process from ``/proc`` (Linux), or ``None``."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    fields = text[text.rfind(")") + 2 :].split()  # the command name may hold spaces and parentheses
    if len(fields) < 20:
        return None
    return fields[0], fields[19]


def process_start(pid: int | None = None) -> str:
    """Return a process's start time in clock ticks since boot (``"0"`` where ``/proc`` cannot tell).

    :param pid: the process (``None``: this one).
    """
    found = _stat(os.getpid() if pid is None else pid)
    return found[1] if found else "0"


def _owner() -> str:
    return f"{_host()}-{os.getpid()}-{process_start()}"


def process_gone(pid: int, start: str = "0") -> bool:
    """Tell whether a process of this host has ended: no such pid, a zombie, or a pid now used by another process.

    :param pid: the process id.
    :param start: its start time as :func:`process_start` gave it (``"0"``: unknown, the pid alone counts).
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # it exists, run by another user
        return False
    found = _stat(pid)
    if found is None:  # no /proc: the pid is taken, assume it is the owner
        return False
    state, started = found
    return state == "Z" or (start != "0" and started != start)


def sweep(prefix: str, directory: str | None = None) -> list[Path]:
    """Remove this host's and user's folders ``<prefix><owner>-*`` whose owner process is gone.

    :param prefix: the family of folders (``"hubcomm-spool-"``).
    :param directory: the folder to look in (``None``: the system temp dir).
    :return: the folders removed.
    """
    parent = directory or tempfile.gettempdir()
    host = _host()
    uid = os.getuid()
    removed: list[Path] = []
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(prefix):
            continue
        parts = entry.name[len(prefix) :].split("-")
        if len(parts) != 4 or parts[0] != host or not parts[1].isdigit():
            continue
        try:
            if not entry.is_dir(follow_symlinks=False) or entry.stat(follow_symlinks=False).st_uid != uid:
                continue
        except OSError:
            continue
        if process_gone(int(parts[1]), parts[2]):
            shutil.rmtree(entry.path, ignore_errors=True)
            if not os.path.exists(entry.path):
                removed.append(Path(entry.path))
    if removed:
        log.info(
            "Removed %d work folder(s) left by runs whose process ended without removing them (killed): %s",
            len(removed),
            ", ".join(str(p) for p in removed),
        )
    return removed


def private_folder(prefix: str, directory: str | None = None) -> Path:
    """Create a private (0700) work folder named after its owner, after removing those of ended owners.

    :param prefix: the family of folders (``"hubcomm-spool-"``); it must end with ``-``.
    :param directory: where to create it (``None``: the system temp dir).
    :return: the new folder; the caller removes it when the run ends.
    """
    sweep(prefix, directory)
    return Path(tempfile.mkdtemp(prefix=f"{prefix}{_owner()}-", dir=directory))
