"""A bridge from synchronous code (Hypothesis tests, pytest fixtures) to asyncio."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

CLEAN_UP_SECONDS = 60.0
"""How long :meth:`EventLoopThread.run` lets a timed-out coroutine handle its cancellation."""


class EventLoopThread:
    """An asyncio event loop running forever in a daemon thread.

    Temporal clients, workers and environments live on this loop; synchronous
    code (a ``@given`` test, a ``RuleBasedStateMachine`` rule) drives them with
    :meth:`run`, which blocks until the coroutine finishes on the loop.
    """

    def __init__(self, name: str = "faults-event-loop") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = 600.0) -> T:
        """Run ``coro`` on the loop and return its result (or raise its exception).

        Past ``timeout`` seconds (ten minutes unless given; ``None`` waits for ever)
        the coroutine is cancelled and :class:`TimeoutError` raised, once the
        coroutine has handled its cancellation (at most :data:`CLEAN_UP_SECONDS`
        more): nothing hangs, and nothing the coroutine cleans up overlaps what
        the caller does next.
        """
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError(
                "EventLoopThread.run() was called from its own loop; await the coroutine instead"
            )
        finished = threading.Event()

        async def watched() -> T:
            try:
                return await coro
            finally:
                finished.set()

        future = asyncio.run_coroutine_threadsafe(watched(), self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            if future.done():  # the coroutine itself raised TimeoutError
                raise
            future.cancel()
            # Let the coroutine's own clean-up (its ``finally`` and ``except
            # CancelledError`` blocks) finish before the caller goes on.
            finished.wait(CLEAN_UP_SECONDS)
            raise TimeoutError(f"coroutine did not finish within {timeout} s; cancelled") from None

    def close(self) -> None:
        """Cancel what still runs on the loop, stop it and join the thread."""
        if not self.loop.is_running():
            return

        async def _cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(_cancel_all(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(30)
        self.loop.close()

    def __enter__(self) -> EventLoopThread:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
