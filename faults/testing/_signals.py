"""Waiting for a stop signal in an asyncio program that runs Temporal's SDK."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterable
from typing import Any


async def until_interrupted(
    signals: Iterable[signal.Signals | int] = (signal.SIGINT,),
) -> signal.Signals:
    """The first of ``signals`` the process receives, whichever thread the kernel hands it to.

    Python runs signal handlers on the main thread only, and the kernel may hand a
    process-wide signal to any thread, such as one of the SDK's runtime threads.
    Under ``asyncio.run``'s own SIGINT handler such a signal leaves an idle event
    loop asleep until something else wakes it. This installs the loop's own handlers,
    which wake it through its wakeup socket, and when it returns or is cancelled puts
    back the handlers the signals had before (``asyncio.run``'s Ctrl-C handler
    included). One wait at a time per signal: it replaces any handler the loop itself
    holds for these signals. Await it on the main thread's event loop (the one
    ``asyncio.run`` runs): elsewhere the loop raises ``RuntimeError``, and on Windows
    ``NotImplementedError``.
    """
    loop = asyncio.get_running_loop()
    received: asyncio.Future[signal.Signals] = loop.create_future()

    def receive(sig: signal.Signals) -> None:
        if not received.done():
            received.set_result(sig)

    previous: dict[signal.Signals, Any] = {}
    try:
        for sig in map(signal.Signals, signals):
            handler = signal.getsignal(sig)
            loop.add_signal_handler(sig, receive, sig)
            previous[sig] = handler
        return await received
    finally:
        for sig, handler in previous.items():
            loop.remove_signal_handler(sig)
            signal.signal(sig, handler)
