"""Worker processes: ``python -m faults worker``, started and stopped from Python.

A worker in a process of its own runs on a core of its own: the chaos command
uses one to keep its orders and checks off the worker's core, and the crash
tests kill one mid-call. Its output goes to a file, never to a pipe nobody
reads, so a chatty worker cannot block on a full pipe.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

WORKER_READY = "worker ready on"
"""What ``python -m faults worker`` prints once its worker is polling its task queue."""


class WorkerProcessError(RuntimeError):
    """A worker process ended, or said nothing, before it was ready; its output says why."""


class WorkerProcess:
    """A running ``python -m faults worker`` process (see :func:`start_worker_process`).

    Use it as a context manager, or call :meth:`stop`: the worker shuts down
    cleanly on SIGTERM. :attr:`process` is the :class:`subprocess.Popen` itself,
    for tests that signal or kill it; :attr:`output` is the file its standard
    output and error go to.
    """

    def __init__(self, process: subprocess.Popen[bytes], output: Path) -> None:
        self.process = process
        self.output = output

    @property
    def pid(self) -> int:
        """The process id."""
        return self.process.pid

    def tail(self, chars: int = 2000) -> str:
        """The last ``chars`` characters the process wrote."""
        try:
            return self.output.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, then SIGKILL if it has not exited within ``timeout`` s; its exit status."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                return self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait()

    def __enter__(self) -> WorkerProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def start_worker_process(
    address: str,
    task_queue: str,
    setup: str,
    *,
    namespace: str | None = None,
    log: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    output: str | Path | None = None,
    cwd: str | Path | None = None,
    ready_timeout: float = 60.0,
    environment_config: bool = True,
    exit_with_parent: bool = True,
) -> WorkerProcess:
    """Start ``python -m faults worker`` and return once its worker polls ``task_queue``.

    ``setup``, ``namespace`` and ``log`` are the command's ``--setup``,
    ``--namespace`` and ``--log``; without ``environment_config`` it connects to
    ``address`` as given (``--no-environment-config``: no TLS, API key or profile
    from the environment, as an embedded server on this machine needs). With
    ``exit_with_parent`` it shuts down once this process has ended, however it
    ended (``--parent-pid``), so no worker outlives its program. ``env`` is
    added to this process's environment (put ``FAULTS_PLAN_KEY`` there, never on a
    command line). The process's output goes to ``output`` (default: a new
    temporary file). If it exits, or is not ready within ``ready_timeout``
    seconds, it is killed and :class:`WorkerProcessError` says so with the end
    of its output.
    """
    if ready_timeout <= 0:
        raise ValueError(f"ready_timeout={ready_timeout!r} must be > 0 seconds")
    command = [sys.executable, "-m", "faults", "worker", "--address", address]
    command += ["--task-queue", task_queue, "--setup", setup]
    if namespace is not None:
        command += ["--namespace", namespace]
    if log is not None:
        command += ["--log", str(log)]
    if not environment_config:
        command.append("--no-environment-config")
    if exit_with_parent:
        command += ["--parent-pid", str(os.getpid())]
    if output is None:
        handle, name = tempfile.mkstemp(prefix="faults-worker-", suffix=".log")
        os.close(handle)
        output = name
    path = Path(output)
    with path.open("wb") as sink:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env={**os.environ, **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    worker = WorkerProcess(process, path)
    deadline = time.monotonic() + ready_timeout
    while WORKER_READY not in path.read_text(errors="replace"):  # a few lines until it is ready
        if process.poll() is not None:
            raise WorkerProcessError(
                f"the worker process for task queue {task_queue!r} exited with status "
                f"{process.returncode} before it was ready; its output ends:\n{worker.tail()}"
            )
        if time.monotonic() > deadline:
            worker.stop(timeout=5)
            raise WorkerProcessError(
                f"the worker process for task queue {task_queue!r} was not ready within "
                f"{ready_timeout:g} s; its output ends:\n{worker.tail()}"
            )
        time.sleep(0.02)
    return worker
