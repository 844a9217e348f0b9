"""The snapshot data plane through a SAS: page-range listing (valid ranges or a diff) and the blob size.

Why the listing calls the generated operation itself: the SDK's
`BlobClient.get_page_range_diff_for_managed_disk` makes one request and returns only the range
lists, dropping `NextMarker`. The service answers at most 10,000 ranges per call (fewer with
`maxresults`), so calling it once silently loses every range after the first page. `list_changes`
calls `page_blob.get_page_ranges_diff` / `get_page_ranges` with `marker` and follows the
`NextMarker`s of every offset window, holding one page of results at a time. The windows adapt
(core.listwindows, docs/architecture.md "How listing adapts"): the whole disk first, then sized from
the answers.

Who retries what: the storage pipeline of the listing clients (`recovery.storage_retry`) retries
connection errors, 408 and 5xx (ServerBusy, OperationTimedOut) with exponential backoff: 5 retries,
about half a minute in all. This module retries what only it can fix: a 403 AuthenticationFailed
(the SAS expired or another run revoked it: re-grant and repeat the request, twice at most;
`_SasCaller`), and a 500 OperationTimedOut of a window (too fragmented to answer in the service's
time: `ListingTimedOut`), which is listed again in halves; while a window can still be split its
first attempt goes without the SDK's retries, so a timeout splits at once instead of waiting out
five more (`_ranges_request`). Anything else surfaces as a ReplicatorError.

Entra-ID-protected snapshots (source.disk_auth builds every client here, so each request carries the
disk token when its snapshots need it). A refusal of a request that carried the token is the
identity's, not the SAS's (`disk_auth.refused_identity`): a full listing or a size ends the run with
the UserError naming the role; a refused diff (Azure documents nothing for a diff whose previous
snapshot is protected) becomes DiffNotPossible, a full copy with the reason stated, whose own
listing then shows whether the identity may read the current snapshot at all.
"""

from __future__ import annotations

import asyncio
import collections
import heapq
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from azure.core.exceptions import (
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.storage.blob.aio import BlobClient

from replicator.core import messages
from replicator.core.errors import ReplicationError
from replicator.core.listwindows import SERVICE_PAGE, Answer, WindowPlanner
from replicator.core.messages import clip
from replicator.core.output import plural
from replicator.core.ranges import (
    LIST_PREFETCH,
    PAGE,
    Change,
    Range,
    from_azure,
    to_http_range,
)
from replicator.observe.jsonlog import event
from replicator.plumbing import credentials, recovery, retry
from replicator.source.disk_auth import DATA_ROLE, refused_identity, refused_sas
from replicator.source.grants import Grant

log = logging.getLogger(__name__)

T = TypeVar("T")

DATA_PLANE_AUTH_RETRIES = 2
"""Re-grants after a data-plane 403 before giving up (an expired or revoked SAS needs one)."""

RESIZE_REFUSAL_CODE = "SnapshotDiffAcrossResizeNotSupported"
"""The emulator's code for a diff across a 4 TiB resize (Azure documents the restriction, not its code)."""

TIMED_OUT_CODE = "OperationTimedOut"
"""Azure's 500 when it could not build an answer in time: a Get Page Ranges window too fragmented."""

_RESIZE_TEXT = re.compile(r"resiz|4\s*(tb|tib)\b", re.IGNORECASE)


class DiffNotPossible(ReplicationError):
    """Azure refused the diff of these two snapshots: copy in full. `why` says why, in a few words.

    Three refusals: a resize across the 4 TiB boundary (documented for snapshots), the diff of a
    protected snapshot refused to the disk token, and any refusal of a diff between two disk restore
    points, which Azure does not document at all (they are incremental snapshots underneath, so the
    diff is tried; replicator.source.grants).
    """

    def __init__(self, message: str, why: str) -> None:
        super().__init__(message)
        self.why = why


class ListingTimedOut(ReplicationError):
    """A request answered 500 OperationTimedOut (after the SDK's retries, if it had any); a listing
    window splits."""


# --- data plane ------------------------------------------------------------------------------------


def _code(err: HttpResponseError) -> str:
    """The service's error code, else the status: what a sentence names the refusal by."""
    return messages.error_code(err) or str(err.status_code or "")


def _timed_out(err: HttpResponseError) -> bool:
    return err.status_code == 500 and _code(err) == TIMED_OUT_CODE


def is_diff_refusal(err: HttpResponseError) -> bool:
    """The service refused a diff request as such (not our SAS: a 403 re-grants; not its health: 5xx)."""
    return err.status_code in (400, 404, 409)


def is_resize_refusal(err: HttpResponseError) -> bool:
    """The diff was refused because the disk was resized across the 4 TiB boundary between the snapshots."""
    if _code(err) == RESIZE_REFUSAL_CODE:
        return True
    return err.status_code in (400, 409) and bool(_RESIZE_TEXT.search(messages.service_answer(err)))


class _SasCaller:
    """Runs data-plane requests against the SAS URLs of grants, re-granting after a 403.

    Keeps one BlobClient (one connection pool) for the current SAS URL; a re-grant replaces it.
    """

    def __init__(self, current: Grant, base: Grant | None = None) -> None:
        self._grants = [g for g in (current, base) if g is not None]
        # A diff between two disk restore points: any refusal of it is DiffNotPossible (see there).
        self._restore_points = base is not None and base.snapshot.noun == "disk restore point"
        self._client: BlobClient | None = None
        self._client_url: str | None = None

    async def close(self) -> None:
        client, self._client, self._client_url = self._client, None, None
        if client is not None:
            await client.close()

    async def _client_for(self, url: str) -> BlobClient:
        if self._client_url != url:
            await self.close()
            self._client = self._grants[0].disk_auth.client(
                url,
                *(g.snapshot for g in self._grants),
                retry_policy=recovery.storage_retry(recovery.LISTING_RETRIES),
                **credentials.transport_kwargs(),
            )
            self._client_url = url
        assert self._client is not None
        return self._client

    async def call(self, what: str, request: Callable[[BlobClient, list[str]], Awaitable[T]]) -> T:
        """`request(client of current's SAS, [current URL, base URL])`, with a 403 of the SAS → re-grant
        → repeat (disk_auth.refused_sas; a refusal of the disk token is the identity's: the module docstring).

        Which SAS a 403 refused: a request on one grant (a full listing, a size) re-grants that one.
        A diff carries both URLs (the base's in `x-ms-previous-snapshot-url`) and Azure's answer
        (AuthenticationFailed, the same code for either) does not say which was refused, so both are
        re-granted; `Grant.invalidate(url)` makes that one re-grant each however many requests failed.
        """
        urls: list[str] = []

        def regrant(attempt: int, delay: float, err: BaseException) -> None:
            assert isinstance(err, HttpResponseError)
            log.info("%s answered 403 %s; re-granting the SAS and retrying.", what, _code(err))
            for grant, url in zip(self._grants, urls, strict=True):
                grant.invalidate(url)

        policy = retry.retrying(  # no wait: the re-grant is what the next attempt needed
            first=0.0, cap=0.0, attempts=DATA_PLANE_AUTH_RETRIES + 1, retry_on=refused_sas, on_retry=regrant
        )
        try:
            async for attempt in policy:
                with attempt:
                    urls[:] = [await g.url() for g in self._grants]
                    return await request(await self._client_for(urls[0]), urls)
        except HttpResponseError as err:
            if is_resize_refusal(err):
                raise DiffNotPossible(
                    f"{what} was refused because the disk was resized across the 4 TiB boundary between "
                    f"the two snapshots ({_code(err)}); a full copy is needed.",
                    "resize across 4 TiB",
                ) from None
            if self._restore_points and is_diff_refusal(err):
                answer = f"{err.status_code} {messages.service_answer(err)}"
                raise DiffNotPossible(
                    f"{what} was refused ({answer}); Azure does not document diffs between disk restore "
                    "points, so a full copy is needed.",
                    f"it answered {clip(answer, 160)}; Azure does not document diffs between disk "
                    "restore points",
                ) from None
            if refused_identity(err):
                # Azure documents no answer for a diff whose previous snapshot is protected: a refusal
                # of the pair (401 or 403) is a full copy, never a failure; the current snapshot's
                # own reads were checked before (engine.pipeline's probe) and are again by the copy.
                if len(self._grants) > 1:
                    raise DiffNotPossible(
                        f"{what} was refused to the disk token ({_code(err)}); a full copy is needed "
                        f"(if the identity lacks the role {DATA_ROLE} on the previous snapshot, assign it "
                        "so that the next runs copy only the changes).",
                        f"{_code(err)} to the Entra ID token",
                    ) from None
                current = self._grants[0]
                raise current.disk_auth.refusal(err, current.snapshot) from None
            failed = f"{what} failed: HTTP {err.status_code} {messages.service_answer(err)}."
            if _timed_out(err):
                raise ListingTimedOut(failed) from None
            raise ReplicationError(failed) from None
        except (ServiceRequestError, ServiceResponseError) as err:
            raise ReplicationError(f"{what} failed after retries: {messages.describe(err)}.") from None
        raise AssertionError("unreachable: tenacity returns or reraises")


def _page_changes(page: Any, window: Range) -> Iterator[Change]:
    """The PageRange and ClearRange elements of one answer, merged in offset order, clipped to `window`."""
    data = ((r.start, r.end, False) for r in page.page_range or ())
    cleared = ((r.start, r.end, True) for r in page.clear_range or ())
    for start, end_inclusive, clear in heapq.merge(data, cleared):
        r = from_azure(start, end_inclusive)
        low, high = max(r.start, window.start), min(r.end, window.end)
        if low < high:
            yield Change(Range(low, high), clear)


async def list_changes(
    current: Grant, base: Grant | None, *, start: int, end: int, window: int, page_size: int | None
) -> AsyncIterator[Change]:
    """The changes of `current` over `[start, end)`, in offset order: its diff against `base`, or its
    valid ranges (all `clear=False`) when `base` is None.

    Lists window by window, windows sized by `listwindows.WindowPlanner` from the answers (at most
    `window` bytes, 512-aligned; the first is as large as allowed), and follows the NextMarkers of
    each window with at most `page_size` ranges per answer (None: the service's maximum). Up to
    LIST_PREFETCH windows are listed at once and yielded in offset order; each holds at most one
    answer waiting, so memory is LIST_PREFETCH answers. A window that times out (500
    OperationTimedOut) is listed again in halves. Raises DiffNotPossible when
    Azure refuses the diff because of a resize across 4 TiB, ReplicationError if the service answers
    out of order or a window of SMALLEST_WINDOW still times out.
    """
    # One caller (client and connection pool) per prefetch slot: a slot lists one window at a time,
    # so a re-grant in one window never closes a client that another window is using.
    callers = [_SasCaller(current, base) for _ in range(LIST_PREFETCH)]
    name = current.snapshot.name
    against = f" against {base.snapshot.name}" if base else ""
    listing: collections.deque[tuple[str, asyncio.Queue[Any], asyncio.Task[None]]] = collections.deque()
    planner = WindowPlanner(start, end, largest=window, page=page_size or SERVICE_PAGE)
    listed = 0

    def prefetch() -> None:
        nonlocal listed
        while len(listing) < LIST_PREFETCH and (win := planner.next()) is not None:
            request = _WindowRequest(
                callers[listed % LIST_PREFETCH],
                name,
                against,
                planner,
                page_size,
                diff=base is not None,
            )
            answers: asyncio.Queue[Any] = asyncio.Queue(maxsize=1)
            listing.append((request.what(win), answers, asyncio.create_task(request.run(win, answers))))
            listed += 1

    previous_end = start
    try:
        prefetch()
        while listing:
            what, answers, task = listing[0]
            while (answer := await answers.get()) is not None:
                if isinstance(answer, BaseException):
                    raise answer
                for change in _page_changes(answer.page, answer.window):
                    if change.range.start < previous_end:
                        raise ReplicationError(f"{what} returned {change.range} after offset {previous_end}.")
                    previous_end = change.range.end
                    yield change
            await task
            listing.popleft()
            prefetch()
    finally:
        for _, _, task in listing:
            task.cancel()
        await asyncio.gather(*(task for _, _, task in listing), return_exceptions=True)
        for caller in callers:
            await caller.close()


@dataclass(frozen=True)
class _Answer:
    """One Get Page Ranges answer and the window it was asked for (answers are clipped to it)."""

    page: Any
    window: Range


def _listed_to(page: Any, win: Range) -> int:
    """Where an answer with a NextMarker stopped: the end of its last range (clipped), else `win.start`."""
    last = [r.end + 1 for r in (*(page.page_range or ()), *(page.clear_range or ()))]
    return min(max(last, default=win.start), win.end)


@dataclass(frozen=True)
class _WindowRequest:
    """How one prefetch slot lists one window: the slot's caller, the planner, the request's shape."""

    caller: _SasCaller
    name: str
    against: str
    planner: WindowPlanner
    page_size: int | None
    diff: bool

    def what(self, win: Range) -> str:
        return f"Get Page Ranges of snapshot {self.name} over {win}{self.against}"

    async def run(self, win: Range, answers: asyncio.Queue[Any]) -> None:
        """Every answer of `win`, NextMarker after NextMarker, into `answers`; then None (or the error).

        Stops early when the planner takes the rest of the window back (WindowPlanner.observe, and
        after a 500 OperationTimedOut while no later window was handed out); otherwise lists the rest
        of a timed-out window in halves (WindowPlanner.timed_out), one piece at a time so the answers
        stay in offset order.
        """
        pieces = [win]  # the window, or what is left of it in pieces after a timeout, in offset order
        pages = ranges_listed = 0
        try:
            while pieces:
                piece = pieces.pop(0)
                marker: str | None = None
                at = piece.start
                while True:
                    began = time.monotonic()
                    rest = Range(at, piece.end)
                    request = _ranges_request(
                        piece, marker, self.page_size, diff=self.diff, split=self.planner.can_split(rest)
                    )
                    try:
                        page = await self.caller.call(self.what(piece), request)
                    except ListingTimedOut:
                        instead = self.planner.timed_out(piece, rest)
                        if instead is None:
                            raise
                        log.info("%s timed out; listing it in smaller windows.", self.what(rest))
                        pieces[:0] = instead
                        break
                    seconds = time.monotonic() - began  # before the put, which waits for the consumer
                    count = len(page.page_range or ()) + len(page.clear_range or ())
                    pages += 1
                    ranges_listed += count
                    more = bool(page.next_marker)
                    listed_to = _listed_to(page, piece) if more else piece.end
                    gave_back = self.planner.observe(
                        piece, Answer(Range(at, max(listed_to, at + PAGE)), count, more, seconds)
                    )
                    await answers.put(_Answer(page, piece))
                    if not more or gave_back:
                        break
                    if page.next_marker == marker:
                        what = self.what(piece)
                        raise ReplicationError(
                            f"{what} returned the same NextMarker twice; it would not end."
                        )
                    marker, at = page.next_marker, listed_to
            event(
                "list_window",
                logging.DEBUG,
                message=f"{self.what(win)}: {plural(ranges_listed, 'range')} in {plural(pages, 'answer')}",
                window_start=win.start,
                window_end=win.end,
                answers=pages,
                ranges=ranges_listed,
            )
        except Exception as exc:  # handed to the consumer, which raises it in offset order
            await answers.put(exc)
            return
        await answers.put(None)


def _ranges_request(
    win: Range, marker: str | None, page_size: int | None, *, diff: bool, split: bool
) -> Callable[[BlobClient, list[str]], Awaitable[Any]]:
    """One Get Page Ranges (diff) request of `win` from `marker`.

    With `split` (the window can still be split), the first attempt goes without the SDK's retries
    and a 500 OperationTimedOut surfaces at once: repeating a window too fragmented to answer in time
    only waits the timeout again (AzCopy lists page ranges with retries off for this reason:
    `withNoRetryForBlob` in `ste/sender-pageBlobFromURL.go`). Any other transient failure of that
    attempt (5xx, 408, a connection error) is sent again with the SDK's retries, as without `split`.
    """

    async def request(client: BlobClient, urls: list[str]) -> Any:
        operations = client._client.page_blob
        asked: dict[str, Any] = {"range": to_http_range(win), "marker": marker, "maxresults": page_size}

        async def send(**options: Any) -> Any:
            if diff:
                return await operations.get_page_ranges_diff(prev_snapshot_url=urls[1], **asked, **options)
            return await operations.get_page_ranges(**asked, **options)

        if split:
            try:
                return await send(retry_total=0)
            except HttpResponseError as err:
                if _timed_out(err) or not (err.status_code == 408 or (err.status_code or 0) >= 500):
                    raise
            except (ServiceRequestError, ServiceResponseError):
                pass
        return await send()

    return request


async def snapshot_blob_size(grant: Grant) -> int:
    """The size of the snapshot's exported blob, read through its SAS.

    Not always `size_bytes`: a 512-byte-sector disk exports a fixed VHD, one 512-byte footer longer
    than the disk; a 4096-byte-sector disk exports without a footer. The blob is the truth.
    """
    caller = _SasCaller(grant)
    try:

        async def request(client: BlobClient, urls: list[str]) -> int:
            return (await client.get_blob_properties()).size

        return await caller.call(f"Reading the size of snapshot {grant.snapshot.name}", request)
    finally:
        await caller.close()
