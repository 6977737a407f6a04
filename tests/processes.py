"""What Linux's ``/proc`` says about processes: which run, and with what command line."""

from __future__ import annotations

from pathlib import Path


def read_or_empty(path: Path) -> str:
    """The text of ``path``, or ``""`` if it is not there (yet) or its process just ended."""
    try:
        return path.read_bytes().decode(errors="replace")
    except OSError:
        return ""


def running(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for its parent to reap it has ended)."""
    stat = read_or_empty(Path(f"/proc/{pid}/stat"))
    return bool(stat) and stat.rsplit(")", 1)[1].split()[0] != "Z"


def pids_running(command_part: str) -> list[int]:
    """The processes that run with ``command_part`` in their command line."""
    return [
        int(entry.name)
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit()
        and command_part in read_or_empty(entry / "cmdline")
        and running(int(entry.name))
    ]
