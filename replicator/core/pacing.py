"""The pacer's controller: how many requests one target blob gets in flight, from what the last window saw.

Why: a fixed `--concurrency` is either too low for a quick blob (a premium tier, a short round trip)
or too high for a slow one, which answers with 503 ServerBusy (or 500 OperationTimedOut) once its
backlog is full (Azure: "Scalability and performance targets for Blob storage", learn.microsoft.com/
azure/storage/blobs/scalability-targets). So the limit adapts, between 1 and the ceiling
(`--concurrency`), and this module decides it: observations in, limit out, no I/O and no clock (the
gate in replicator.engine.pacer measures the windows and applies the limit).

The scheme is AzCopy's page-blob pacer (ste/pacer-autoPacer.go in Azure/azure-storage-azcopy), turned
from bytes per second into requests in flight:

- A window of throttled requests (any fresh 503) cuts the limit at once to 65 % (AzCopy's
  `decreaseFactor`), at least by one, never below 1, and remembers the limit it cut from as the *peak*.
  Only requests issued under the current limit count (the gate's epochs), so the 503s of requests
  sent before a cut do not cut again: AzCopy's dead band, without a clock.
- A clean window grows the limit while throughput grows: the first window after a cut (or the first
  of all) has nothing to compare with and probes upwards; a later one grows only if its throughput
  grew with the limit: by at least `EFFICIENCY` of the share the limit grew by (a limit grown from
  16 to 32 must bring 50 % more), or by `GAIN` at an unchanged limit. More in flight that brings no
  more throughput only queues at the blob, and a full queue is what 503 answers; so below the knee
  (throughput proportional to requests in flight) the limit climbs, past it it holds.
- A clean window in which the limit never filled (the workers had fewer requests to send: the
  listing is slow, the plan ends) says nothing about the blob: the limit stays, and the next full
  window probes as after a cut. So a limit held while the work trickled in is not held for ever.
- How much it grows depends on the peak, as AzCopy's does: before any 503, double (slow start);
  below 95 % of the peak, half the way back to it (fast recovery); near or above it, one (probing).
- A window in which this process's event loop was busy (`CPU_BOUND` of the window or more: running,
  or waiting for a core the machine's other processes held) does not grow the limit, at or above
  INITIAL: the client, not the blob, is what holds throughput then, and more requests in flight only
  add CPU per request (more connections and timers per loop turn) and latency. AzCopy grows on
  throughput alone; with one Python process that uses at most one core, a client-side ceiling is
  what the throughput rule lacks on a shared machine, whose noisy windows can seem to grow. The CPU
  never cuts (503s remain the only cut) and never holds below INITIAL (a limit cut that low recovers
  as before). The busy time is the process's, so every pacer of the process (stripes, a fleet's
  runs) holds in the same windows: right, since the one core is what they share.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

DECREASE = 0.65
"""The cut on a throttled window: AzCopy's `decreaseFactor` (ste/pacer-autoPacer.go)."""
EFFICIENCY = 0.5
"""A grown limit grows again only if throughput rose by at least this share of what the limit rose
by: half, so that a measurement's noise does not stop the climb below the knee, where the rise is all
of it, while at the knee, where the rise is none of it, the limit holds."""
GAIN = 1.05
"""At an unchanged limit, throughput must rise by 5 % to grow the limit again: more than the noise of a
window of a few dozen requests at a steady rate, so a limit that holds stays held until the blob or
the workload really changed."""
STABLE_ZONE = 0.95
"""Below this share of the last peak the limit recovers fast (AzCopy's `stableZoneStart`)."""
INITIAL = 8
"""The first limit (capped by the ceiling): one window of 8 is enough to measure a rate, and slow
start reaches the default ceiling of 64 in three clean windows of growing throughput. A higher
ceiling (a premium tier's, core.premium) starts at an eighth of it, so it too is three windows away."""
CPU_BOUND = 0.85
"""The share of a window's wall time the process's event loop must have been busy (on a core or
waiting for one) for the window to be CPU-bound: a saturated loop measures close to 1, and 0.85
leaves room for what a window's edges and a garbage collection leave idle; a loop that is still
15 % idle has little to give (a limit raised there buys at most that much more throughput, for more
CPU per request: 3.0 -> 3.9 ms when the premium run climbed from 24 to 192), and one idle longer
than that is waiting for the service, which the throughput rule decides."""
TRACE_POINTS = 256
"""The most windows a PacingRecord's trace keeps: enough for a chart of the limit over a run, a few
kilobytes in the `--json` document however long the run (beyond it, every other point is dropped
and the trace keeps one window in twice as many from then on)."""


@dataclass(frozen=True)
class Observation:
    """One window, as the gate measured it: requests that ended in it, how many of those were
    throttled (503 ServerBusy, 500 OperationTimedOut), its length in seconds, whether the requests
    in flight reached the limit in it (False: the limit was not what held throughput), and the
    seconds the process's event loop was busy in it (on a core or waiting for one)."""

    completed: int
    throttled: int
    seconds: float
    full: bool = True
    busy_seconds: float = 0.0

    @property
    def rate(self) -> float:
        """Completed requests per second (0 for an empty or instant window)."""
        return self.completed / self.seconds if self.seconds > 0 else 0.0

    @property
    def busy_share(self) -> float:
        """The share of one core the process's event loop used or waited for (0 for an instant window)."""
        return self.busy_seconds / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class PacerState:
    """The limit, the ceiling it never passes, the peak it was last cut from, and the previous clean
    window's rate and the limit it was measured at (None after a cut: nothing to compare with yet)."""

    limit: int
    ceiling: int
    peak: int | None = None
    last_rate: float | None = None
    last_limit: int = 1


def start(ceiling: int) -> PacerState:
    """The state a blob starts in: INITIAL requests in flight (an eighth of a ceiling above 64), or the
    ceiling if that is lower."""
    if ceiling < 1:
        raise ValueError(f"a pacer's ceiling must be at least 1, got {ceiling}")
    return PacerState(limit=min(ceiling, max(INITIAL, -(-ceiling // 8))), ceiling=ceiling)


def step(state: PacerState, seen: Observation) -> PacerState:
    """The state after one window (see the module docstring for the rules)."""
    if seen.throttled:
        cut = min(state.limit - 1, math.floor(state.limit * DECREASE))
        return PacerState(limit=max(1, cut), ceiling=state.ceiling, peak=state.limit)
    if not seen.full:
        return replace(state, last_rate=None)
    measured = replace(state, last_rate=seen.rate, last_limit=state.limit)
    if not _throughput_grew(state, seen) or held_for_cpu(state, seen):
        return measured
    return replace(measured, limit=min(state.ceiling, state.limit + _increment(state)))


def held_for_cpu(state: PacerState, seen: Observation) -> bool:
    """Whether a window that would grow the limit by the throughput rule is held because the process
    was CPU-bound in it (at or above INITIAL only: a limit cut lower recovers whatever the CPU)."""
    cpu_bound = seen.busy_share >= CPU_BOUND and INITIAL <= state.limit < state.ceiling
    return cpu_bound and not seen.throttled and seen.full and _throughput_grew(state, seen)


def _throughput_grew(state: PacerState, seen: Observation) -> bool:
    """Whether a clean full window's throughput grew enough to grow the limit (always, when there is
    no last rate to compare with: the first window, or the first after a cut, probes)."""
    return state.last_rate is None or seen.rate >= state.last_rate * _needed_gain(state)


def _needed_gain(state: PacerState) -> float:
    """How much more throughput than the last window's this window must show to grow the limit."""
    added = state.limit / state.last_limit - 1
    return 1 + EFFICIENCY * added if added > 0 else GAIN


def _increment(state: PacerState) -> int:
    """How much a growing limit grows: slow start, fast recovery toward the peak, or probing."""
    if state.peak is None:
        return state.limit
    if state.limit < STABLE_ZONE * state.peak:
        return max(1, (state.peak - state.limit) // 2)
    return 1


@dataclass
class PacingRecord:
    """What the pacer did in one job, for its entry of the `--json` document: the lowest, highest and
    last limit, how many requests the service throttled (503 ServerBusy, 500 OperationTimedOut), and
    how many windows would have grown the limit but were CPU-bound (`held_for_cpu`) with the busiest
    window's share of one core (so a run that stopped short of its ceiling says why).

    `trace` is the limit over time, for a chart of what the pacer converged to: one point
    `[seconds since the job began, the window's limit, its requests/s]` per `trace_every` windows
    (of `windows` closed in all), at most TRACE_POINTS of them whatever the run's length."""

    min_limit: int
    max_limit: int
    final_limit: int
    throttled: int = 0
    cpu_held: int = 0
    cpu_share: float = 0.0
    windows: int = 0
    trace_every: int = 1
    trace: list[list[float]] = field(default_factory=list)

    @classmethod
    def at(cls, limit: int) -> PacingRecord:
        return cls(limit, limit, limit)

    def moved(self, limit: int) -> None:
        """The limit changed to `limit`."""
        self.min_limit, self.max_limit = min(self.min_limit, limit), max(self.max_limit, limit)
        self.final_limit = limit

    def closed(self, before: PacerState, seen: Observation, elapsed: float) -> None:
        """A window measured as `seen` closed on the state `before`, `elapsed` seconds after the job began:
        count it if the CPU held it, keep the busiest window's share, and trace it (every
        `trace_every`-th window; halving the trace and doubling that stride when it is full)."""
        self.cpu_held += held_for_cpu(before, seen)
        self.cpu_share = max(self.cpu_share, round(seen.busy_share, 2))
        if self.windows % self.trace_every == 0:
            self.trace.append([round(elapsed, 3), before.limit, round(seen.rate, 1)])
            if len(self.trace) > TRACE_POINTS:
                del self.trace[1::2]
                self.trace_every *= 2
        self.windows += 1
