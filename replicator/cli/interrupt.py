"""Run a command's coroutine so that SIGINT and SIGTERM end it the clean way.

`timeout` (cron), `systemctl stop` and `docker stop` send SIGTERM, whose default action kills the
process at once: SAS grants stay active until they expire and the target's lease stays held until it
lapses. Here the first SIGTERM, like the first Ctrl-C (asyncio.run's own SIGINT handling), cancels
the main task, so every cleanup registered on the way in runs (revoke the grants, save the
checkpoint, release the lease), and then `Interrupted` says which signal it was. A second signal of
the same kind gets the default action back: an operator who insists is not kept waiting.

A command that stops more gently than by cancelling (the worker: finish the current job's cleanups,
re-queue it, then exit 0) says so with `calling_on_signals` around that part of its work. This module
is the only place that installs a signal handler (the demo, a developer tool, keeps its own).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from replicator.core.errors import Interrupted

T = TypeVar("T")


async def _terminable(work: Coroutine[Any, Any, T]) -> T:
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    assert main is not None
    terminated: list[int] = []

    def on_sigterm() -> None:
        terminated.append(signal.SIGTERM)
        loop.remove_signal_handler(signal.SIGTERM)  # back to the default: a second SIGTERM kills
        main.cancel()

    loop.add_signal_handler(signal.SIGTERM, on_sigterm)
    try:
        return await work
    except asyncio.CancelledError:
        if terminated and main.uncancel() == 0:
            raise Interrupted(signal.SIGTERM) from None
        raise
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


def run(work: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(work)`, except that SIGINT and SIGTERM raise `Interrupted` after cleanups ran."""
    try:
        return asyncio.run(_terminable(work))
    except KeyboardInterrupt:
        raise Interrupted(signal.SIGINT) from None


@contextmanager
def calling_on_signals(stop: Callable[[str], None]) -> Iterator[None]:
    """Inside: SIGTERM and SIGINT call `stop(signal name)` instead of cancelling the command, each time.

    Outside again, both have their default action back: the stop was asked for, and is under way."""
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT)
    for sig in signals:
        loop.add_signal_handler(sig, stop, sig.name)
    try:
        yield
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
