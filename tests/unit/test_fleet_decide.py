"""replicator.fleet.queue.decide: what a worker does with a message, for every outcome and delivery count,
including the bounds on deferrals (locked, limited) and on re-queues without progress (stalls)."""

from __future__ import annotations

import json

import pytest

from replicator.core.errors import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_RETRY_LATER,
    EXIT_UNPROTECTED,
    EXIT_USAGE,
)
from replicator.fleet.jobs import JobSpec, Outcome
from replicator.fleet.queue import (
    MAX_DEFERRALS,
    MAX_STALLS,
    Message,
    decide,
    stalls_after,
)

JOB = JobSpec("/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/disks/d", "https://a/c/b")
MAX_DEQUEUE = 5
EXIT_CODES = {
    "replicated": EXIT_OK,
    "nothing new": EXIT_OK,
    "incomplete": EXIT_RETRY_LATER,
    "locked": EXIT_RETRY_LATER,
    "limited": EXIT_RETRY_LATER,
    "bad input": EXIT_USAGE,
    "unprotected": EXIT_UNPROTECTED,
    "failed": EXIT_FAILED,
}


def outcome(status: str, position: str | None = None) -> Outcome:
    return Outcome(JOB, "run", status, EXIT_CODES[status], position=position)


def message(dequeue_count: int = 1, **fields: object) -> Message:
    return Message(json.dumps({"source": JOB.source, "target": JOB.target, **fields}), dequeue_count)


EXPECTED = {  # status -> action on a first delivery, and on the max_dequeue-th
    "replicated": ("delete", "delete"),
    "nothing new": ("delete", "delete"),
    "incomplete": ("continue", "continue"),
    "locked": ("defer", "defer"),
    "limited": ("defer", "defer"),
    "bad input": ("poison", "poison"),
    "unprotected": ("poison", "poison"),
    "failed": ("retry", "poison"),
}


@pytest.mark.parametrize("status", EXPECTED)
@pytest.mark.parametrize("delivery", [1, MAX_DEQUEUE - 1, MAX_DEQUEUE, MAX_DEQUEUE + 3])
def test_every_outcome_at_every_delivery_count(status: str, delivery: int) -> None:
    first, last = EXPECTED[status]
    want = last if delivery >= MAX_DEQUEUE else first
    assert decide(outcome(status), message(delivery), MAX_DEQUEUE) == want


@pytest.mark.parametrize("status", ["locked", "limited"])
def test_deferrals_are_bounded_then_dropped(status: str) -> None:
    assert decide(outcome(status), message(deferrals=MAX_DEFERRALS - 1), MAX_DEQUEUE) == "defer"
    assert decide(outcome(status), message(deferrals=MAX_DEFERRALS), MAX_DEQUEUE) == "drop"


def test_incomplete_runs_that_advance_continue_forever() -> None:
    done = message(stalls=MAX_STALLS - 1, position="at offset 4096 of s1")
    moved = outcome("incomplete", "at offset 8192 of s1")
    assert stalls_after(moved, done) == 0
    assert decide(moved, done, MAX_DEQUEUE) == "continue"


def test_incomplete_runs_stuck_at_one_place_are_poisoned_after_max_stalls() -> None:
    stuck = outcome("incomplete", "at offset 0 of s1")
    msg = message()  # the first run: no position yet
    for stalls in range(MAX_STALLS):
        assert stalls_after(stuck, msg) == stalls
        assert decide(stuck, msg, MAX_DEQUEUE) == "continue"
        msg = message(stalls=stalls, position="at offset 0 of s1")
    assert stalls_after(stuck, msg) == MAX_STALLS
    assert decide(stuck, msg, MAX_DEQUEUE) == "poison"


def test_an_incomplete_run_without_a_position_never_counts_as_a_stall() -> None:
    assert stalls_after(outcome("incomplete"), message(stalls=MAX_STALLS - 1)) == 0


@pytest.mark.parametrize("body", ['{"deferrals": "3", "stalls": true, "position": 7}', "[1]", "not json"])
def test_malformed_bookkeeping_reads_as_none(body: str) -> None:
    msg = Message(body, 1)
    assert (msg.deferrals, msg.stalls, msg.position) == (0, 0, None)
