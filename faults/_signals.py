"""Waiting for a stop signal in an asyncio program that runs Temporal's SDK."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterable


async def until_interrupted(
    signals: Iterable[signal.Signals] = (signal.SIGINT,),
) -> signal.Signals:
    """The first of ``signals`` the process receives, whichever thread the kernel hands it to.

    Python runs signal handlers on the main thread only, and the kernel may hand a
    process-wide signal to any thread, such as one of the SDK's runtime threads.
    Under ``asyncio.run``'s own SIGINT handler such a signal leaves an idle event
    loop asleep until something else wakes it; the loop's own handlers, installed
    here, wake it through its wakeup socket, and are removed when it returns or
    is cancelled. Unix only; await it on the main thread's event loop (the one
    ``asyncio.run`` runs).
    """
    loop = asyncio.get_running_loop()
    received: asyncio.Future[signal.Signals] = loop.create_future()
    wanted = tuple(signals)

    def receive(sig: signal.Signals) -> None:
        if not received.done():
            received.set_result(sig)

    for sig in wanted:
        loop.add_signal_handler(sig, receive, sig)
    try:
        return await received
    finally:
        for sig in wanted:
            loop.remove_signal_handler(sig)
