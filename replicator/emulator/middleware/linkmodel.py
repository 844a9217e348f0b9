"""Link model and per-blob limits: what makes the emulator behave like a cross-region Azure account.

Why: a local emulator answers in microseconds, so any client looks fast and a client that issues one
request at a time looks as good as one that keeps the link busy. Benchmarks need the costs that
shape the real design (docs/emulator.md, "Link model and limits"): a round trip per request, and a page blob's
scalability targets (about 500 requests/s and 60 MiB/s per blob), beyond which Azure answers
503 ServerBusy.

How (one aiohttp middleware, independent of any other):
- **Latency**: every data-plane request (not ARM, not `/_emulator/`) sleeps `latency_ms` first:
  one round trip of the modelled link.
- **Per-blob limits** (`blob_limits`): each blob has two virtual clocks, one for requests
  (1 / `blob_iops` s each) and one for bytes (`blob_mibps`); a blob of a premium page-blob account
  runs at its size tier's requests/s and MB/s instead (`tier_limits`, blob/accounts.py). A request
  reserves its cost on the clocks of every blob it touches: the blob it names and, for Put Page
  From URL, the copy source (its snapshot reads count against the source blob, as in Azure). It
  then waits until its
  reservation is served, so a client at or below the limits sees the limits as throughput. When
  the backlog of a blob would exceed `burst_seconds`, the request is refused with 503 ServerBusy
  and `Retry-After` (whole seconds, as Azure sends), without reserving anything.
- **Account limits** (`account_limits`): each storage account (the first segment of the path) has three
  virtual clocks: requests (1 / `account_iops` s each), ingress (`account_ingress_mibps`: the bytes a
  write puts into it, a Put Page From URL's range included, since Azure's ingress is "all data sent to a
  storage account") and egress (`account_egress_mibps`: the bytes a ranged read takes out, and the range
  a Put Page From URL copies out of its source's account). They are checked before the blob's and
  reserved with them; a backlog beyond `burst_seconds` is refused with 503 ServerBusy and Azure's
  account-level message for the clock that is over ("Operations per second is over the account
  limit.", "Ingress is over the account limit.", "Egress is over the account limit.": "Common REST API
  error codes", learn.microsoft.com/rest/api/storageservices/common-rest-api-error-codes), which is how
  a client tells an account's limit from a blob's. Defaults: a standard account's targets ("Scalability
  and performance targets for standard storage accounts", learn.microsoft.com/azure/storage/common/
  scalability-targets-standard-account: 20,000 requests/s, 25 Gbps ingress and 50 Gbps egress outside
  the regions listed there with 40,000, 60 and 200).
- **Link bandwidth** (`link_mibps`): request and response bodies of the data plane share one
  virtual clock: the cap of the client's own link (client-streamed bytes; server-side copies do
  not cross it).
- **Stats**: the emulator's CPU seconds, request counts by operation, bytes in and out of the data
  plane, server-side copied bytes, per blob requests, bytes read and written and refusals, and per
  account requests, ingress and egress bytes and refusals by limit.
  `GET /_emulator/stats`, `POST /_emulator/stats/reset`, and `PUT /_emulator/link` (JSON body with
  any LinkOptions field) to change the model at run time; all three need the emulator's bearer token.

Memory: a few numbers per blob and per account touched since the last reset.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import math
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from aiohttp import web

from replicator.emulator.blob import wire as blob_wire
from replicator.emulator.errors import blob as blob_errors

MiB = 1024 * 1024
ADMIN_PREFIX = "/_emulator/"
ARM_PREFIX = "/subscriptions/"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
TierLimits = Callable[[str], tuple[float, float] | None]
"""A blob's own (requests/s, MiB/s) by its key "account/container/blob": a premium blob's tier; None
for a standard blob, held to `blob_iops` and `blob_mibps`."""


@dataclass(frozen=True)
class LinkOptions:
    """The modelled link and limits; all off by default (the emulator answers as fast as it can)."""

    latency_ms: float = 0.0  # round trip added to every data-plane request
    blob_limits: bool = False  # enforce blob_iops and blob_mibps per blob
    blob_iops: float = 500.0  # Azure's scalability target: about 500 requests/s per page blob
    blob_mibps: float = 60.0  # Azure's scalability target: up to 60 MiB/s per page blob
    burst_seconds: float = 1.0  # backlog a blob absorbs before it answers 503 ServerBusy
    link_mibps: float | None = None  # cap of client-streamed bytes (request + response bodies)
    # Put Page From URL also costs its copy source a request and the bytes (as Azure counts snapshot
    # reads); off: only the target's limits, to measure a target faster than a standard blob (a premium
    # tier) when Azure publishes no rate for the source (a managed disk's snapshot export)
    limit_copy_sources: bool = True
    account_limits: bool = False  # enforce account_iops, account_ingress_mibps, account_egress_mibps
    account_iops: float = 20_000.0  # a standard account's requests/s (40,000 in the regions Azure lists)
    account_ingress_mibps: float = 25e9 / 8 / MiB  # 25 Gbps (60 Gbps in the regions Azure lists)
    account_egress_mibps: float = 50e9 / 8 / MiB  # 50 Gbps (200 Gbps in the regions Azure lists)

    def __post_init__(self) -> None:
        if not self.latency_ms >= 0:
            raise ValueError("latency_ms must be zero or more")
        for name in ("blob_iops", "blob_mibps", "burst_seconds"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be more than zero")
        if self.link_mibps is not None and not self.link_mibps > 0:
            raise ValueError("link_mibps must be more than zero")
        for name in ("account_iops", "account_ingress_mibps", "account_egress_mibps"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be more than zero")

    def updated(self, changes: dict[str, Any]) -> LinkOptions:
        """A copy with `changes` (JSON values) applied; unknown names are refused."""
        known = {f.name for f in fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise ValueError(f"unknown link options: {', '.join(sorted(unknown))}")
        return replace(self, **changes)


class VirtualClock:
    """A server that serves work in arrival order at a fixed rate; `free_at` is when it is idle."""

    def __init__(self) -> None:
        self.free_at = 0.0

    def finish(self, now: float, cost: float) -> float:
        """When work of `cost` seconds arriving `now` would be served (nothing is reserved)."""
        return max(now, self.free_at) + cost

    def reserve(self, now: float, cost: float) -> float:
        self.free_at = self.finish(now, cost)
        return self.free_at


@dataclass
class BlobLimiter:
    """The request and byte clocks of one blob."""

    requests: VirtualClock
    data: VirtualClock

    @classmethod
    def new(cls) -> BlobLimiter:
        return cls(VirtualClock(), VirtualClock())


@dataclass(frozen=True)
class Charge:
    """What one request costs one blob: one request and `nbytes` of data, at the blob's own limits
    (`rates`: requests/s and MiB/s of a premium blob's tier) or, None, the options' standard ones."""

    blob: str
    nbytes: int
    rates: tuple[float, float] | None = None


def admit(
    limiters: dict[str, BlobLimiter], charges: list[Charge], options: LinkOptions, now: float
) -> tuple[float, str | None]:
    """Reserve every charge and return when the request is served, or refuse it.

    Returns (finish time, None) when admitted, or (seconds to wait, the busy blob) when a blob's
    backlog would exceed `options.burst_seconds`; a refused request reserves nothing.
    """
    plans = []
    for charge in charges:
        lim = limiters.setdefault(charge.blob, BlobLimiter.new())
        per_request, per_byte = _costs(charge, options)
        done = max(lim.requests.finish(now, per_request), lim.data.finish(now, charge.nbytes * per_byte))
        if done - now > options.burst_seconds:
            return done - now - options.burst_seconds, charge.blob
        plans.append((lim, per_request, charge.nbytes * per_byte))
    finish = now
    for lim, request_cost, data_cost in plans:
        finish = max(finish, lim.requests.reserve(now, request_cost), lim.data.reserve(now, data_cost))
    return finish, None


def _costs(charge: Charge, options: LinkOptions) -> tuple[float, float]:
    """Seconds one request and one byte cost the charged blob: its tier's rates (a premium blob) or the
    options' (a standard one)."""
    iops, mibps = charge.rates or (options.blob_iops, options.blob_mibps)
    return 1.0 / iops, 1.0 / (mibps * MiB)


@dataclass
class AccountLimiter:
    """The request, ingress and egress clocks of one storage account."""

    requests: VirtualClock = field(default_factory=VirtualClock)
    ingress: VirtualClock = field(default_factory=VirtualClock)
    egress: VirtualClock = field(default_factory=VirtualClock)


@dataclass(frozen=True)
class AccountCharge:
    """What one request costs one account: requests, bytes put into it and bytes taken out of it."""

    account: str
    requests: int = 1
    ingress: int = 0
    egress: int = 0


ACCOUNT_LIMITS = (
    ("requests", blob_errors.account_requests_over),
    ("ingress", blob_errors.account_ingress_over),
    ("egress", blob_errors.account_egress_over),
)
"""Each account clock and the message Azure's 503 ServerBusy gives when that limit is over."""


def account_charges(path: str, call: Classified, body_bytes: int) -> list[AccountCharge]:
    """The accounts a request costs: the one its path names (one request, the bytes it writes in, the
    ranged bytes it reads out) and, for Put Page From URL, its copy source's (one read of the range)."""
    account = unquote(path.lstrip("/").split("/", 1)[0])
    if not account:
        return []
    charges = [AccountCharge(account, 1, call.write_bytes or body_bytes, call.read_bytes)]
    if call.source is not None:
        charges.append(AccountCharge(call.source.split("/", 1)[0], 1, 0, call.source_bytes))
    return charges


def _account_costs(
    limiters: dict[str, AccountLimiter], charge: AccountCharge, options: LinkOptions
) -> list[tuple[str, VirtualClock, float]]:
    lim = limiters.setdefault(charge.account, AccountLimiter())
    return [
        ("requests", lim.requests, charge.requests / options.account_iops),
        ("ingress", lim.ingress, charge.ingress / (options.account_ingress_mibps * MiB)),
        ("egress", lim.egress, charge.egress / (options.account_egress_mibps * MiB)),
    ]


def account_refusal(
    limiters: dict[str, AccountLimiter], charges: list[AccountCharge], options: LinkOptions, now: float
) -> tuple[float, str, str] | None:
    """None when every account can take its charge within `burst_seconds` of backlog; else (seconds
    to wait, the account, the limit over: requests, ingress or egress). Reserves nothing."""
    for charge in charges:
        for limit, clock, cost in _account_costs(limiters, charge, options):
            backlog = clock.finish(now, cost) - now
            if cost and backlog > options.burst_seconds:
                return backlog - options.burst_seconds, charge.account, limit
    return None


def reserve_accounts(
    limiters: dict[str, AccountLimiter], charges: list[AccountCharge], options: LinkOptions, now: float
) -> float:
    """Reserve every charge on its account's clocks; when the last of them is served."""
    finish = now
    for charge in charges:
        for _, clock, cost in _account_costs(limiters, charge, options):
            if cost:
                finish = max(finish, clock.reserve(now, cost))
    return finish


@dataclass
class AccountStats:
    requests: int = 0
    ingress_bytes: int = 0
    egress_bytes: int = 0
    throttled: Counter[str] = field(default_factory=Counter)  # refusals by limit: requests, ingress, egress

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "throttled": dict(self.throttled)}


@dataclass
class BlobStats:
    requests: int = 0
    bytes_read: int = 0
    bytes_written: int = 0
    throttled: int = 0


@dataclass
class Stats:
    """Counters since the last reset (see the module docstring)."""

    operations: Counter[str] = field(default_factory=Counter)
    bytes_in: int = 0
    bytes_out: int = 0
    bytes_copied_server_side: int = 0
    throttled: int = 0
    blobs: defaultdict[str, BlobStats] = field(default_factory=lambda: defaultdict(BlobStats))
    accounts: defaultdict[str, AccountStats] = field(default_factory=lambda: defaultdict(AccountStats))
    # the emulator's own CPU time since the reset: a benchmark shows what serving it cost on the same host
    cpu_at_reset: float = field(default_factory=time.process_time)

    def as_json(self) -> dict[str, Any]:
        return {
            "cpu_seconds": round(time.process_time() - self.cpu_at_reset, 3),
            "operations": dict(self.operations),
            "requests": sum(self.operations.values()),
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "bytes_copied_server_side": self.bytes_copied_server_side,
            "throttled": self.throttled,
            "blobs": {name: asdict(b) for name, b in self.blobs.items()},
            "accounts": {name: a.as_json() for name, a in self.accounts.items()},
        }


@dataclass(frozen=True)
class Classified:
    """A data-plane request: its operation name, the blob it names, and its copy source, if any."""

    operation: str
    blob: str | None
    source: str | None = None
    source_bytes: int = 0
    write_bytes: int = 0
    read_bytes: int = 0


def _blob_key(path: str) -> str | None:
    parts = [unquote(p) for p in path.lstrip("/").split("/", 2)]
    return "/".join(parts) if len(parts) == 3 and all(parts) else None


def _range_length(value: str | None) -> int:
    """Length of `bytes=a-b` (inclusive), 0 when absent or open-ended."""
    if not value or not value.startswith("bytes="):
        return 0
    first, _, last = value[6:].partition("-")
    try:
        return int(last) - int(first) + 1 if last else 0
    except ValueError:
        return 0


def classify(method: str, path: str, query: dict[str, str], headers: Any) -> Classified:
    """Name the operation and what it costs which blob; pure, from the request line and headers."""
    blob = _blob_key(path)
    comp = query.get("comp")
    if method == "PUT" and comp == "page":
        length = _range_length(headers.get("x-ms-range") or headers.get("Range"))
        if "x-ms-copy-source" in headers:
            source = _blob_key(urlsplit(headers["x-ms-copy-source"]).path)
            return Classified("put_page_from_url", blob, source, length, length)
        if headers.get("x-ms-page-write") == "clear":
            return Classified("clear_pages", blob)
        return Classified("put_page", blob, write_bytes=length)
    if method == "GET" and comp == "pagelist":
        diff = "prevsnapshot" in query or "x-ms-previous-snapshot-url" in headers
        return Classified("get_page_ranges_diff" if diff else "get_page_ranges", blob)
    if method in ("GET", "HEAD") and comp is None and blob is not None:
        if method == "HEAD":
            return Classified("get_blob_properties", blob)
        return Classified(
            "get_blob", blob, read_bytes=_range_length(headers.get("x-ms-range") or headers.get("Range"))
        )
    what = comp or query.get("restype") or ("blob" if blob else "container")
    return Classified(f"{method.lower()}_{what}", blob)


def _busy(request: web.Request, retry_after: float, message: str = "The server is busy.") -> web.Response:
    error = blob_errors.server_busy(message)
    headers = blob_wire.base_headers(request.headers)
    headers.update(
        {
            "x-ms-error-code": error.code,
            "Retry-After": str(max(1, math.ceil(retry_after))),
            "Content-Type": "application/xml",
        }
    )
    return web.Response(status=503, headers=headers, text=blob_wire.error_body(error))


class LinkModel:
    """The middleware's state: options (changeable at run time), limiters, link clock and stats."""

    def __init__(
        self, options: LinkOptions, access_token: str, tier_limits: TierLimits | None = None
    ) -> None:
        self.options = options
        self._token = access_token
        self._tier_limits = tier_limits or (lambda blob: None)
        self.limiters: dict[str, BlobLimiter] = {}
        self.accounts: dict[str, AccountLimiter] = {}
        self.link = VirtualClock()
        self.stats = Stats()

    def reset(self) -> None:
        self.stats = Stats()
        self.limiters.clear()
        self.accounts.clear()
        self.link = VirtualClock()

    async def _link_wait(self, nbytes: int) -> None:
        if self.options.link_mibps and nbytes:
            now = time.monotonic()
            done = self.link.reserve(now, nbytes / (self.options.link_mibps * MiB))
            await asyncio.sleep(done - now)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.rel_url.raw_path
        if path.startswith(ADMIN_PREFIX):
            return await self._admin(request, path)
        if path.startswith(ARM_PREFIX):
            return await handler(request)
        query = dict(parse_qsl(request.rel_url.raw_query_string, keep_blank_values=True))
        call = classify(request.method, path, query, request.headers)
        options = self.options
        if options.latency_ms:
            await asyncio.sleep(options.latency_ms / 1000)
        await self._link_wait(request.content_length or 0)
        now = time.monotonic()
        accounts = account_charges(path, call, request.content_length or 0) if options.account_limits else []
        refused = account_refusal(self.accounts, accounts, options, now)
        if refused is not None:
            return self._account_busy(request, *refused)
        finish = now
        if options.blob_limits and call.blob is not None:
            charges = [Charge(call.blob, call.write_bytes or call.read_bytes, self._tier_limits(call.blob))]
            if call.source is not None and options.limit_copy_sources:
                charges.append(Charge(call.source, call.source_bytes, self._tier_limits(call.source)))
            finish, busy = admit(self.limiters, charges, options, now)
            if busy is not None:
                self.stats.throttled += 1
                self.stats.blobs[busy].throttled += 1
                return _busy(request, finish)
        finish = max(finish, reserve_accounts(self.accounts, accounts, options, now))
        if finish > now:
            await asyncio.sleep(finish - now)
        response = await handler(request)
        self._count(request, call, response)
        if request.method != "HEAD" and isinstance(response, web.Response):
            await self._link_wait(response.content_length or 0)
        return response

    def _account_busy(self, request: web.Request, wait: float, account: str, limit: str) -> web.Response:
        """503 ServerBusy with Azure's message for the account limit that is over."""
        self.stats.throttled += 1
        self.stats.accounts[account].throttled[limit] += 1
        return _busy(request, wait, dict(ACCOUNT_LIMITS)[limit])

    def _count(self, request: web.Request, call: Classified, response: web.StreamResponse) -> None:
        stats = self.stats
        stats.operations[call.operation] += 1
        stats.bytes_in += request.content_length or 0
        if request.method == "HEAD":
            out = 0
        elif isinstance(response, web.Response):
            out = response.content_length or 0
        else:
            out = response.body_length
        stats.bytes_out += out
        ok = response.status < 300
        if call.blob is not None:
            entry = stats.blobs[call.blob]
            entry.requests += 1
            if ok:
                entry.bytes_written += call.write_bytes
                entry.bytes_read += out if call.operation == "get_blob" else 0
        if call.source is not None and ok:
            stats.bytes_copied_server_side += call.source_bytes
            source = stats.blobs[call.source]
            source.requests += 1
            source.bytes_read += call.source_bytes
        for charge in account_charges(request.rel_url.raw_path, call, request.content_length or 0):
            account = stats.accounts[charge.account]
            account.requests += charge.requests
            if ok:
                account.ingress_bytes += charge.ingress
                account.egress_bytes += charge.egress

    async def _admin(self, request: web.Request, path: str) -> web.Response:
        expected = f"Bearer {self._token}".encode()
        if not hmac.compare_digest(request.headers.get("Authorization", "").encode(), expected):
            return web.json_response({"error": "a valid bearer token is required"}, status=401)
        route = (request.method, path[len(ADMIN_PREFIX) :])
        if route == ("GET", "stats"):
            return web.json_response(self.stats.as_json())
        if route == ("POST", "stats/reset"):
            self.reset()
            return web.json_response({"reset": True})
        if route == ("GET", "link"):
            return web.json_response(asdict(self.options))
        if route == ("PUT", "link"):
            try:
                self.options = self.options.updated(json.loads(await request.read() or b"{}"))
            except (ValueError, TypeError) as exc:
                return web.json_response({"error": str(exc)}, status=400)
            return web.json_response(asdict(self.options))
        return web.json_response({"error": "no such emulator endpoint"}, status=404)


def install(
    app: web.Application, options: LinkOptions, access_token: str, tier_limits: TierLimits | None = None
) -> LinkModel:
    """Add the link model's middleware (and its `/_emulator/` endpoints) to `app`. `tier_limits(blob)`:
    a premium blob's (requests/s, MiB/s), None for a standard one (blob/accounts.py)."""
    model = LinkModel(options, access_token, tier_limits)
    app.middlewares.append(model.middleware)
    return model


def add_arguments(parser: Any) -> None:
    """The emulator's command-line options of the link model (see docs/emulator.md)."""
    parser.add_argument("--latency-ms", type=float, default=0.0, help="round trip added per data request")
    parser.add_argument("--blob-limits", action="store_true", help="enforce per-blob request/byte limits")
    parser.add_argument("--blob-iops", type=float, default=500.0, help="requests/s per blob (limits on)")
    parser.add_argument("--blob-mibps", type=float, default=60.0, help="MiB/s per blob (limits on)")
    parser.add_argument("--burst-seconds", type=float, default=1.0, help="backlog per blob before 503")
    parser.add_argument("--link-mibps", type=float, default=None, help="cap of client-streamed MiB/s")
    add_account_arguments(parser)


def add_account_arguments(parser: Any) -> None:
    """The account limits' options (docs/emulator.md); their defaults are LinkOptions'."""
    defaults = LinkOptions()
    parser.add_argument("--account-limits", action="store_true", help="enforce per-account limits")
    parser.add_argument("--account-iops", type=float, default=defaults.account_iops, help="requests/s")
    parser.add_argument(
        "--account-ingress-mibps", type=float, default=defaults.account_ingress_mibps, help="MiB/s in"
    )
    parser.add_argument(
        "--account-egress-mibps", type=float, default=defaults.account_egress_mibps, help="MiB/s out"
    )


def options_from(ns: Any) -> LinkOptions:
    """LinkOptions from parsed arguments; ValueError with one sentence when a value is out of range."""
    return LinkOptions(
        latency_ms=ns.latency_ms,
        blob_limits=ns.blob_limits,
        blob_iops=ns.blob_iops,
        blob_mibps=ns.blob_mibps,
        burst_seconds=ns.burst_seconds,
        link_mibps=ns.link_mibps,
        account_limits=ns.account_limits,
        account_iops=ns.account_iops,
        account_ingress_mibps=ns.account_ingress_mibps,
        account_egress_mibps=ns.account_egress_mibps,
    )
