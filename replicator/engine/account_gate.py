"""The account budget's gate: one per target storage account and process, which every request a blob's
pacer admits passes too, its limits moved by core.account_budget.

Who decides concurrency: the blob's pacer (engine.pacer) decides how many requests a blob has in
flight; this gate decides when each of them may go, so that all the blobs of one account, whichever
run writes them, stay within the account's requests/s and ingress bytes/s. It is shared by every run
of the event loop (a VM's disks, the Functions timer's jobs, the worker, devtools.bench.concurrent):
`account_gate` keeps one per account endpoint and loop, the first run's knobs setting its ceilings.
Waiting is first come, first served (core.account_budget.admit), so no run is starved.

Feedback: a 503 with an account-level message (plumbing.retry.account_limit) cuts the limit it names
(once per overload: a request admitted before the last cut does not cut again), and each second in
which the budget bound and nothing was refused regrows it. A `account_budget` debug event per change.
Egress is counted, not budgeted (core.account_budget).

Separate processes (several Functions instances, several workers) cannot share this budget: each has
its own gate at the full ceiling, so together they can pass the account's limits; then Azure's
account-level 503s cut each process's budget on its own, and they settle below the limit together,
as TCP flows share a link. Lower the knobs (`--account-requests`, `--account-ingress`) to each
process's share where several run at once.

Memory: a few numbers per account written to.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from replicator.core import account_budget
from replicator.core.account_budget import LIMITS, MIN_RATE, Bucket, BudgetRecord, Limit
from replicator.observe.jsonlog import event
from replicator.settings.config import Config

TICK_SECONDS = 1.0
"""How often the budget regrows: Azure states its account limits per second."""


@dataclass(frozen=True)
class Ticket:
    """A request's admission: the epoch of each limit it was admitted under, and whether it waited for
    the budget (then the budget, not its blob, held its throughput: engine.pacer)."""

    epochs: tuple[int, ...]
    waited: bool = False


class AccountGate:
    """The budget of one storage account (its endpoint: `account`, no SAS) in this process."""

    def __init__(
        self,
        account: str,
        requests: float,
        ingress: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.account = account
        self._clock, self._sleep = clock, sleep
        now = clock()
        self.limits = {"requests": account_budget.start(requests), "ingress": account_budget.start(ingress)}
        self._buckets = {name: Bucket.full(limit.rate, now) for name, limit in self.limits.items()}
        self._tick_start = now
        self._sent = dict.fromkeys(LIMITS, 0.0)  # tokens taken in this tick
        self._last_sent: dict[str, float] = dict.fromkeys(LIMITS, 0.0)  # per second, in the last tick
        self._bound: set[str] = set()  # limits some request waited on in this tick
        self._refused: set[str] = set()  # limits the account refused in this tick

    def record(self) -> BudgetRecord:
        """A fresh record for a job's `--json` entry, at the limits of now."""
        return BudgetRecord.at(self.account, self.limits["requests"].rate, self.limits["ingress"].rate)

    async def admit(self, nbytes: int, record: BudgetRecord) -> Ticket:
        """Take one request and `nbytes` of ingress from the budget; return once they are due."""
        now = self._clock()
        self._tick(now)
        costs = (1, nbytes)
        turn = account_budget.admit(tuple(self._buckets[name] for name in LIMITS), now, costs)
        self._buckets = dict(zip(LIMITS, turn.buckets, strict=True))
        for name, cost, held in zip(LIMITS, costs, turn.held, strict=True):
            self._sent[name] += cost
            if held:
                self._bound.add(name)
        wait = turn.go - now
        record.moved(self.limits["requests"].rate, self.limits["ingress"].rate)
        record.waited(wait)
        ticket = Ticket(tuple(self.limits[name].epoch for name in LIMITS), wait > 0)
        if wait > 0:
            await self._sleep(wait)
        return ticket

    def refused(self, ticket: Ticket, limit: str, record: BudgetRecord) -> None:
        """The account answered a request admitted with `ticket` with a 503 naming `limit`."""
        record.refused(limit)
        if limit not in self.limits:  # egress: counted, not budgeted
            return
        now = self._clock()
        self._tick(now)
        self._refused.add(limit)
        current = self.limits[limit]
        if ticket.epochs[LIMITS.index(limit)] != current.epoch:  # sent before the last cut
            return
        cut = account_budget.cut(current, self._last_sent[limit], MIN_RATE[limit])
        self._move(limit, cut, now, "throttled")

    def _tick(self, now: float) -> None:
        """Close the second that has passed, if one has: regrow what bound and was not refused."""
        elapsed = now - self._tick_start
        if elapsed < TICK_SECONDS:
            return
        for name in LIMITS:
            self._last_sent[name] = self._sent[name] / elapsed
            if name in self._bound and name not in self._refused:
                self._move(name, account_budget.grow(self.limits[name]), now, "regrowing")
        self._tick_start, self._sent = now, dict.fromkeys(LIMITS, 0.0)
        self._bound, self._refused = set(), set()

    def _move(self, name: str, limit: Limit, now: float, why: str) -> None:
        before, self.limits[name] = self.limits[name], limit
        if limit.rate == before.rate:
            return
        self._buckets[name] = self._buckets[name].with_rate(limit.rate, now)
        event(
            "account_budget",
            logging.DEBUG,
            message=f"{self.account}: {name} budget {before.rate:,.0f}/s -> {limit.rate:,.0f}/s ({why})",
            account=self.account,
            limit=name,
            previous=round(before.rate, 1),
            rate=round(limit.rate, 1),
            reason=why,
            ceiling=limit.ceiling,
        )


_GATES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, AccountGate]] = (
    weakref.WeakKeyDictionary()
)


def account_gate(config: Config, account: str, kind: str = "standard") -> AccountGate:
    """The gate of the storage account `account` (its endpoint URL, no SAS) in the running loop, made
    by the first run that writes to it, with that run's knobs (else Azure's targets for `kind`:
    core.account_budget.DOCUMENTED, where premium target detection passes "premium")."""
    gates = _GATES.setdefault(asyncio.get_running_loop(), {})
    gate = gates.get(account)
    if gate is None:
        requests, ingress = account_budget.ceilings(kind, config.account_requests, config.account_ingress)
        gate = gates[account] = AccountGate(account, requests, ingress)
    return gate
