"""The account budget's arithmetic: a target storage account's requests/s and ingress bytes/s, shared out
to every run of a process, and cut and regrown on the account's own 503s, pure.

Why: a page blob's limits are the pacer's business (core.pacing), but a storage account has limits of
its own across all its blobs: a standard account serves 20,000 requests/s and 25 Gbps of ingress
(40,000 and 60 Gbps in the regions Azure lists: "Scalability and performance targets for standard
storage accounts", learn.microsoft.com/azure/storage/common/scalability-targets-standard-account,
where "ingress refers to all data that is sent to a storage account": a Put Page From URL's range is
sent to the target account, so it counts, server-side or not). A fleet process replicating many
disks into one account can pass those even while each blob's pacer is content, and Azure then answers
503 ServerBusy with an account-level message. So every request the pacers admit also takes from its
account's budget; this module decides how much each may take and when, with no clock and no I/O (the
gate in replicator.engine.account_gate measures and waits).

- **Token buckets, one per limit, one queue** (`Bucket`, `admit`): tokens accrue at `rate` per second
  up to `burst`. A request goes at the first moment, no earlier than the request before it, when every
  bucket holds its cost (or a whole burst, for a request larger than the burst: a 4 MiB chunk under a
  small ingress budget), and takes its cost from each then (a larger one leaves a debt the next
  request waits out). So requests go in the order they were made (first come, first served: no run
  starved, whatever its request sizes); over any window the tokens that go are at most `rate` x its
  length plus `burst` (or one request, if larger), in every limit, because a request is charged when
  it goes, never before; and the limits are used at once, not in turn (a run of 4 MiB chunks spends
  ingress while small writes beside it spend requests). The burst is a tenth of a second's worth
  (`BURST_SECONDS`), so the budget never sends a second's worth at once.
- **Cut on the account's 503** (`cut`): AzCopy's factor (0.65, as the pacer) applied to the lower of
  the limit and the rate the account was actually sent in the last second, since the account said
  that much was too much (another process, or another workload, may share it); remembered as the
  *peak*. One cut per overload: a 503 of a request admitted before the cut is counted, not cut on
  again (epochs, as the pacer's).
- **Regrow while it binds** (`grow`, once a second in which some request waited for the budget and
  none was refused): half the way back to 90 % of the peak, then 2 % a second, up to the configured
  limit. A second in which nobody waited says nothing about the account: the limit stays.

Which 503 is the account's: Azure gives one error code (ServerBusy) for a busy partition and for the
account's limits, and tells them apart only by the message ("Common REST API error codes",
learn.microsoft.com/rest/api/storageservices/common-rest-api-error-codes): `limit_of` reads it.
Egress is not budgeted (the replicator writes; its reads of the target are --verify's), so an
egress 503 is counted and left to the blob's pacer and the retry policy.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

BURST_SECONDS = 0.1
"""Tokens a bucket saves while idle, in seconds of its rate: an idle account may take a tenth of a
second's worth at once, not a whole second's (Azure does not say over what interval it measures)."""
DECREASE = 0.65
"""The cut on an account-level 503: AzCopy's `decreaseFactor` (ste/pacer-autoPacer.go), as core.pacing."""
RECOVER_TO = 0.9
"""After a cut, the limit regrows fast up to this share of the peak (the rate the account refused)."""
PROBE = 1.02
"""Above that, 2 % a second: the account's limit is tested again slowly, not hit every few seconds."""
MIN_RATE = {"requests": 1.0, "ingress": 1024.0 * 1024}
"""The lowest a cut goes: one request and 1 MiB a second (the debt model lets a 4 MiB chunk through)."""

DOCUMENTED = {"standard": (20_000.0, 25e9 / 8)}
"""What Azure documents per account kind, (requests/s, ingress bytes/s). Standard (GPv2, Blob storage):
20,000 requests/s and 25 Gbps, the figures of every region ("Scalability and performance targets for
standard storage accounts"; the regions listed there have 40,000 and 60 Gbps: raise the knobs there).

The hook for premium targets (issue 15; their detection is another change): a premium page-blob
account has no documented request rate (its blobs' limits are their tiers', the pacer's business) and
at most 50 Gbps of ingress and egress together ("Premium unmanaged virtual machine disks: per-account
limits", includes/azure-storage-limits-vm-disks-premium.md). The detection adds a "premium" row here
(its request rate the sum its blobs' tiers allow, or the knob) and passes the kind to
replicator.engine.account_gate.account_gate; nothing else changes."""


def ceilings(kind: str, requests: float | None, ingress: float | None) -> tuple[float, float]:
    """The budget's ceilings for an account of `kind`: the operator's knobs where set, else Azure's."""
    documented_requests, documented_ingress = DOCUMENTED[kind]
    return requests or documented_requests, ingress or documented_ingress


LIMITS = ("requests", "ingress")
"""What the budget limits: requests per second and ingress bytes per second."""
MESSAGES = {
    "requests": "Operations per second is over the account limit.",
    "ingress": "Ingress is over the account limit.",
    "egress": "Egress is over the account limit.",
}
"""ServerBusy's account-level messages, verbatim from "Common REST API error codes"."""


def limit_of(message: str) -> str | None:
    """Which account limit a 503's message names (requests, ingress, egress), or None (a blob's or a
    partition's: "The server is currently unable to receive requests. Please retry your request.").
    The message's first line, as Azure sends it (RequestId and Time follow on lines of their own)."""
    first = message.strip().splitlines()[0].strip() if message.strip() else ""
    return next((limit for limit, text in MESSAGES.items() if first.startswith(text)), None)


@dataclass(frozen=True)
class Bucket:
    """One limit's bucket: `rate` tokens a second, at most `burst` saved, `tokens` (negative: debt,
    the reservations not yet due) as of time `at`."""

    rate: float
    burst: float
    tokens: float
    at: float

    @classmethod
    def full(cls, rate: float, now: float) -> Bucket:
        burst = rate * BURST_SECONDS
        return cls(rate, burst, burst, now)

    def refilled(self, now: float) -> Bucket:
        """The bucket at `now` (a `now` before `at` changes nothing: time never runs back)."""
        if now <= self.at:
            return self
        return replace(self, tokens=min(self.burst, self.tokens + self.rate * (now - self.at)), at=now)

    def ready(self, cost: float) -> float:
        """When this bucket holds `cost` tokens (at most a whole burst), from `at` on without other takers."""
        need = min(cost, self.burst)
        return self.at + max(0.0, need - self.tokens) / self.rate

    def with_rate(self, rate: float, now: float) -> Bucket:
        """The same bucket at another rate from `now` on: the debt is kept, the burst follows the rate."""
        bucket = self.refilled(now)
        burst = rate * BURST_SECONDS
        return replace(bucket, rate=rate, burst=burst, tokens=min(bucket.tokens, burst))


@dataclass(frozen=True)
class Admission:
    """A request's turn: the buckets after it, when it goes, and which limits held it (made it wait)."""

    buckets: tuple[Bucket, ...]
    go: float
    held: tuple[bool, ...]


def admit(buckets: tuple[Bucket, ...], now: float, costs: tuple[float, ...]) -> Admission:
    """The turn of a request made at `now` that costs `costs[i]` of `buckets[i]` (module docstring)."""
    start = max(now, *(b.at for b in buckets))
    ready = [b.refilled(start) for b in buckets]
    times = [b.ready(cost) for b, cost in zip(ready, costs, strict=True)]
    go = max(times)
    after = []
    for bucket, cost in zip(ready, costs, strict=True):
        at_go = bucket.refilled(go)
        after.append(replace(at_go, tokens=at_go.tokens - cost))
    held = tuple(go > now and t == go and cost > 0 for t, cost in zip(times, costs, strict=True))
    return Admission(tuple(after), go, held)


@dataclass(frozen=True)
class Limit:
    """One limit's controller: the configured ceiling, the rate now, the peak it was last cut from
    (None: never cut) and its epoch (one more per cut)."""

    ceiling: float
    rate: float
    peak: float | None = None
    epoch: int = 0


def start(ceiling: float) -> Limit:
    """A limit at its ceiling: the account's documented target, or the operator's lower knob."""
    if not ceiling > 0:
        raise ValueError(f"an account budget must be more than zero, got {ceiling}")
    return Limit(ceiling=ceiling, rate=ceiling)


def cut(limit: Limit, sent: float, floor: float) -> Limit:
    """After an account-level 503: 65 % of the lower of the rate and what was `sent` in the last second
    (0: not measured yet), never below `floor`; the peak is that lower value."""
    peak = min(limit.rate, sent) if sent > 0 else limit.rate
    return Limit(limit.ceiling, max(floor, min(limit.rate, DECREASE * peak)), peak, limit.epoch + 1)


def grow(limit: Limit) -> Limit:
    """After a second in which the budget bound and the account refused nothing (module docstring)."""
    if limit.peak is None:
        return limit  # never cut: at its ceiling already
    target = RECOVER_TO * limit.peak
    rate = limit.rate + (target - limit.rate) / 2 if limit.rate < 0.99 * target else limit.rate * PROBE
    return replace(limit, rate=min(limit.ceiling, rate))


@dataclass
class BudgetRecord:
    """What the account budget did to one job's requests, for its entry of the `--json` document: the
    account (its endpoint, never a SAS), the limits when the job ended and the lowest they were, how
    many of the job's requests waited for the budget and how long in all, and how many the account
    refused (503 with an account-level message)."""

    account: str
    requests_per_second: float
    ingress_bytes_per_second: float
    lowest_requests_per_second: float
    lowest_ingress_bytes_per_second: float
    waits: int = 0
    wait_seconds: float = 0.0
    throttled: int = 0
    throttled_by: dict[str, int] = field(default_factory=dict)  # account-level 503s by limit

    @classmethod
    def at(cls, account: str, requests: float, ingress: float) -> BudgetRecord:
        return cls(account, requests, ingress, requests, ingress)

    def moved(self, requests: float, ingress: float) -> None:
        """The limits are now `requests` and `ingress`."""
        self.requests_per_second, self.ingress_bytes_per_second = requests, ingress
        self.lowest_requests_per_second = min(self.lowest_requests_per_second, requests)
        self.lowest_ingress_bytes_per_second = min(self.lowest_ingress_bytes_per_second, ingress)

    def waited(self, seconds: float) -> None:
        if seconds > 0:
            self.waits += 1
            self.wait_seconds += seconds

    def refused(self, limit: str) -> None:
        self.throttled += 1
        self.throttled_by[limit] = self.throttled_by.get(limit, 0) + 1
