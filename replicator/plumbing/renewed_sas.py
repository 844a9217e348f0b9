"""A SAS URL that is granted again before it expires and after the service refused it: one rule for
every grant the tool holds while it copies.

Why: ARM grants a SAS for `durationInSeconds` ("Disks - Grant Access"; its older reference: "If the SAS
expires, you can call the operation again to get a new SAS"), and a copy may outlast it. A snapshot's
read SAS (source.grants) and an upload disk's Write SAS (target.upload_disk) are both granted again
REGRANT_MARGIN_SECONDS before they expire (at most a quarter of their lifetime), so requests in flight
never carry a SAS that expires under them, and after a data-plane refusal (`invalidate`), which also
covers a grant that ended sooner than asked (a revoke, a shorter lifetime). The lock makes the first
caller grant and the others wait for its URL; `invalidate(stale_url)` forgets only the SAS the refused
request carried, so many requests refused with one SAS cause one grant, not one each.

Secrets: the URL is never in a log line, an event, an exception or a repr.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from replicator.observe.jsonlog import event
from replicator.plumbing import credentials

REGRANT_MARGIN_SECONDS = 300.0
"""Grant again this long before the SAS expires (at most a quarter of its lifetime)."""


def renew_at(granted_at: float, duration: float) -> float:
    """When a SAS asked for at `granted_at` for `duration` seconds is granted again."""
    return granted_at + duration - min(REGRANT_MARGIN_SECONDS, duration / 4)


class RenewedSas:
    """The SAS URL of one grant, kept usable; a subclass says how to grant (`_grant`).

    `what` names the resource in events ("snapshot s1", "disk big"), `access` the grant's (Read, Write),
    `fields` are the events' own fields (the resource's ID or name); `clock` is time.monotonic (a test
    passes its own)."""

    def __init__(
        self,
        what: str,
        access: str,
        duration: int,
        *,
        allow_http: bool,
        fields: dict[str, str],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.what, self.access, self.duration = what, access, duration
        self._allow_http, self._fields, self._clock = allow_http, fields, clock
        self._url: str | None = None
        self._renew_at = 0.0
        self._granted = False  # a grant was made: the next is a re-grant
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:  # never show the SAS
        return f"{type(self).__name__}({self.what!r}, {self.access}, active={self._url is not None})"

    async def _grant(self) -> str:
        """Ask for a SAS of `access` for `duration` seconds; its URL."""
        raise NotImplementedError

    async def url(self) -> str:
        """The SAS URL; granted on first use, again when it is close to expiry or after `invalidate()`."""
        async with self._lock:
            if self._url is None or self._clock() >= self._renew_at:
                self._url = None  # a failed grant leaves no stale URL behind
                started, again = self._clock(), self._granted
                url = await self._grant()
                credentials.check_url(url, f"SAS URL of {self.what}", allow_http=self._allow_http)
                self._url, self._renew_at, self._granted = url, renew_at(started, self.duration), True
                event(
                    "sas_granted",
                    logging.DEBUG,
                    message=f"{'re-granted' if again else 'granted'} a {self.access.lower()} SAS on "
                    f"{self.what} for {self.duration} s",
                    regrant=again,
                    duration_seconds=self.duration,
                    **self._fields,
                )
            return self._url

    def invalidate(self, stale_url: str | None = None) -> None:
        """Forget the SAS (a data-plane call with it was refused); the next `url()` grants again.

        With `stale_url`, only if that is still the current SAS: many requests failing with the same
        expired SAS cause one grant, not one each."""
        if stale_url is None or stale_url == self._url:
            if self._url is not None:
                event(
                    "sas_invalidated",
                    logging.DEBUG,
                    message=f"the SAS of {self.what} was refused; the next request re-grants it",
                    **self._fields,
                )
            self._url = None
