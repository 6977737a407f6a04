"""Keep the Java test server on the loopback interface.

The time-skipping test server (a native image of Temporal's Java test server)
binds its gRPC port on every interface and has no option to choose one. On
Linux, a small library loaded ahead of libc (``LD_PRELOAD``) turns that wildcard
bind into a loopback bind. The library is built from ``_loopback_bind.c``,
shipped beside this module, with the machine's C compiler (``$CC``, else
``cc``), into a private directory (mode 0700, so no other user can swap it)
that only has to live until the server has started.

Where the library cannot be built the start is refused (fail closed), unless the
caller opts in to every interface with ``allow_all_interfaces`` or the
environment variable :data:`ALL_INTERFACES_VARIABLE`.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

_SOURCE = Path(__file__).with_name("_loopback_bind.c")


ALL_INTERFACES_VARIABLE = "FAULTS_TEST_SERVER_ALL_INTERFACES"
"""Set to ``1`` to let the Java test server listen on every interface where it must."""


class LoopbackUnavailable(RuntimeError):
    """The Java test server cannot be kept on 127.0.0.1 here, and nobody allowed more.

    The message says why and names the three ways on: a C compiler, the
    loopback-only ``dev-time-skipping`` environment, or the opt-in.
    """


def all_interfaces_allowed() -> bool:
    """Whether :data:`ALL_INTERFACES_VARIABLE` opts in to a server on every interface."""
    return os.environ.get(ALL_INTERFACES_VARIABLE, "").strip().lower() in ("1", "true", "yes")


def _exposed(reason: str, allowed: bool) -> None:
    if not allowed:
        raise LoopbackUnavailable(
            f"the Java test server cannot be kept on 127.0.0.1: {reason}. Install a C compiler "
            "(cc, or name one in $CC); or use the 'dev-time-skipping' environment "
            "(--temporal-env=dev-time-skipping), which always listens on 127.0.0.1; or allow "
            f"every interface with {ALL_INTERFACES_VARIABLE}=1 "
            "(start_environment(..., allow_all_interfaces=True))"
        )
    warnings.warn(
        f"the Java test server will listen on all interfaces, as allowed: {reason}",
        RuntimeWarning,
        stacklevel=3,
    )


def c_compiler() -> list[str] | None:
    """The command that runs this machine's C compiler (``$CC``, else ``cc``), or ``None``.

    ``$CC`` may carry flags or a wrapper (``ccache gcc``): it is split as a shell would.
    """
    command = shlex.split(os.environ.get("CC") or "cc")
    found = shutil.which(command[0]) if command else None
    return None if found is None else [found, *command[1:]]


def loopback_launcher(binary: str, directory: str, *, allow_all_interfaces: bool = False) -> str:
    """A path that starts ``binary`` listening on 127.0.0.1 only, built in ``directory``.

    ``directory`` must be private to this user. Where the library cannot be
    built (not Linux, no C compiler, a failed compile), raises
    :class:`LoopbackUnavailable`; with ``allow_all_interfaces`` it warns that the
    server will listen on all interfaces and returns ``binary`` itself.
    """
    if not sys.platform.startswith("linux"):
        _exposed(f"LD_PRELOAD is Linux-only and this is {sys.platform}", allow_all_interfaces)
        return binary
    named = os.environ.get("CC") or "cc"
    compiler = c_compiler()
    if compiler is None:
        _exposed(f"no C compiler {named!r} on PATH", allow_all_interfaces)
        return binary
    library = Path(directory, "loopback_bind.so")
    try:
        built = subprocess.run(
            [*compiler, "-shared", "-fPIC", "-O2", "-o", str(library), str(_SOURCE), "-ldl"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        _exposed(f"{named!r} could not build the loopback library ({err})", allow_all_interfaces)
        return binary
    if built.returncode != 0 or not library.is_file():
        lines = (built.stderr or built.stdout).strip().splitlines() or ["no output"]
        _exposed(
            f"{named!r} could not build the loopback library ({lines[-1]})", allow_all_interfaces
        )
        return binary
    launcher = Path(directory, "temporal-test-server")
    launcher.write_text(
        "#!/bin/sh\n"
        f'LD_PRELOAD={shlex.quote(str(library))}${{LD_PRELOAD:+" $LD_PRELOAD"}}\n'
        "export LD_PRELOAD\n"
        f'exec {shlex.quote(binary)} "$@"\n'
    )
    launcher.chmod(0o700)
    return str(launcher)
