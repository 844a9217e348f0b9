"""The account budget's gate (replicator.engine.account_gate) on a clock the test moves: requests wait
their turn at the account's rate, an account-level 503 cuts the limit it names once per overload, a
second in which the budget bound regrows it, one gate per account is shared by every run of the loop,
and a blob's pacer hands the account's 503s to the gate instead of cutting the blob."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest
from azure.core.exceptions import HttpResponseError

from replicator.core.account_budget import DECREASE, MESSAGES, BudgetRecord
from replicator.engine.account_gate import AccountGate, account_gate
from replicator.engine.pacer import Pacer
from replicator.plumbing.retry import account_limit
from replicator.settings.config import Config
from tests.unit.test_pacer import holding

ACCOUNT = "https://acct.blob.core.windows.net"


class Clock:
    """A clock the test moves; `sleep` records the time slept and, for requests made one after another
    (`advance`), moves the clock past it (and yields to the loop)."""

    def __init__(self, *, advance: bool = True) -> None:
        self.now = 0.0
        self.advance = advance
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds if self.advance else 0.0
        await asyncio.sleep(0)


class Response:
    """What a storage error's answer carries that the classification reads: its XML body."""

    def __init__(self, message: str) -> None:
        self.status_code = 503
        self.headers = {"x-ms-error-code": "ServerBusy"}
        self._body = (
            f"<Error><Code>ServerBusy</Code><Message>{message}\nRequestId:x\nTime:y</Message></Error>"
        )

    def text(self) -> str:
        return self._body


def busy(message: str) -> HttpResponseError:
    exc = HttpResponseError(message="ServerBusy")
    exc.status_code, exc.error_code, exc.response = 503, "ServerBusy", Response(message)  # type: ignore[assignment]
    return exc


def gate(clock: Clock, requests: float = 10.0, ingress: float = 1e9) -> AccountGate:
    return AccountGate(ACCOUNT, requests, ingress, clock=clock, sleep=clock.sleep)


@pytest.mark.parametrize(
    ("message", "limit"),
    [
        (MESSAGES["requests"], "requests"),
        (MESSAGES["ingress"], "ingress"),
        (MESSAGES["egress"], "egress"),
        ("The server is currently unable to receive requests. Please retry your request.", None),
    ],
)
def test_a_503_names_its_account_limit_by_its_message(message: str, limit: str | None) -> None:
    assert account_limit(busy(message)) == limit
    other = busy(MESSAGES["requests"])
    other.status_code = 500
    assert account_limit(other) is None and account_limit(TimeoutError()) is None


async def test_requests_wait_their_turn_at_the_accounts_rate() -> None:
    clock = Clock()
    account = gate(clock, requests=10.0)  # a burst of one, then one every 0.1 s
    record = account.record()
    for _ in range(5):
        await account.admit(0, record)  # one after another, each as soon as it may
    assert clock.slept == pytest.approx([0.1] * 4) and clock.now == pytest.approx(0.4)
    assert record.waits == 4 and record.wait_seconds == pytest.approx(0.4)
    assert record.requests_per_second == 10.0


async def test_ingress_is_budgeted_by_bytes() -> None:
    clock = Clock(advance=False)  # three requests made at once
    account = gate(clock, requests=1e6, ingress=40 * 2**20)  # 40 MiB/s: 4 MiB saved
    record = account.record()
    await asyncio.gather(*(account.admit(4 * 2**20, record) for _ in range(3)))
    assert sorted(clock.slept) == pytest.approx([0.1, 0.2])  # 4 MiB at once, then one every 0.1 s


async def test_an_account_503_cuts_its_limit_once_per_overload() -> None:
    clock = Clock()
    account = gate(clock, requests=100.0)
    record = account.record()
    tickets = [await account.admit(0, record) for _ in range(3)]
    account.refused(tickets[0], "requests", record)
    assert account.limits["requests"].rate == pytest.approx(100 * DECREASE)
    account.refused(tickets[1], "requests", record)  # admitted before the cut: counted, not cut again
    assert account.limits["requests"].rate == pytest.approx(100 * DECREASE)
    fresh = await account.admit(0, record)
    account.refused(fresh, "requests", record)
    assert account.limits["requests"].rate == pytest.approx(100 * DECREASE * DECREASE)
    account.refused(tickets[2], "ingress", record)  # the ingress limit has its own epochs
    assert account.limits["ingress"].rate == pytest.approx(1e9 * DECREASE)
    account.refused(fresh, "egress", record)  # egress: counted, not budgeted
    assert record.throttled == 5 and record.throttled_by == {"requests": 3, "ingress": 1, "egress": 1}
    assert record.lowest_requests_per_second == pytest.approx(100 * DECREASE)  # the limits its requests saw


async def test_the_cut_is_from_what_was_sent_in_the_last_second(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    account = gate(clock, requests=20_000.0)
    record = account.record()
    for _ in range(40):  # 40 requests in the first second: far below the ceiling
        await account.admit(0, record)
        clock.now += 1 / 40
    ticket = await account.admit(0, record)  # opens the next second: 40/s were sent
    with caplog.at_level(logging.DEBUG, logger="replicator.events"):
        account.refused(ticket, "requests", record)
    assert account.limits["requests"].rate == pytest.approx(40 * DECREASE, rel=0.05)
    (line,) = [r for r in caplog.records if "account_budget" in r.getMessage()]
    assert line.levelno == logging.DEBUG and "throttled" in line.getMessage()


async def test_a_second_in_which_the_budget_bound_regrows_it_and_an_idle_one_does_not() -> None:
    clock = Clock()
    account = gate(clock, requests=100.0)
    record = account.record()
    account.refused(await account.admit(0, record), "requests", record)
    cut_to = account.limits["requests"].rate
    clock.now += 1.5  # a second with nothing waiting
    await account.admit(0, record)
    assert account.limits["requests"].rate == cut_to
    for _ in range(2 * int(cut_to)):  # more than a second's worth: the budget binds
        await account.admit(0, record)
    await account.admit(0, record)
    assert account.limits["requests"].rate > cut_to


async def test_one_gate_per_account_is_shared_by_every_run_of_the_loop() -> None:
    first = Config(source="", target="", account_requests=500)
    second = Config(source="", target="", account_requests=900)
    shared = account_gate(first, ACCOUNT)
    assert account_gate(second, ACCOUNT) is shared  # the first run's knobs set it
    assert shared.limits["requests"].ceiling == 500 and shared.limits["ingress"].ceiling == 25e9 / 8
    assert account_gate(first, "https://other.blob.core.windows.net") is not shared


def test_each_loop_has_its_own_gates() -> None:
    config = Config(source="", target="")

    async def one() -> AccountGate:
        return account_gate(config, ACCOUNT)

    assert asyncio.run(one()) is not asyncio.run(one())


async def _request(pacer: Pacer, failure: BaseException | None = None) -> None:
    with contextlib.suppress(HttpResponseError):
        async with pacer.slot(4096):
            if failure is not None:
                raise failure


async def test_the_pacer_hands_the_accounts_503_to_the_account_and_a_blobs_to_the_blob() -> None:
    clock = Clock()
    account = gate(clock, requests=1000.0)
    pacer = Pacer(64, "c/b", clock=clock, account=account)
    pacer.begin_job()
    limit = pacer.state.limit
    await _request(pacer, busy(MESSAGES["requests"]))
    assert pacer.state.limit == limit and pacer.record.throttled == 0  # the blob was not the limit
    assert account.limits["requests"].rate < 1000.0
    budget = pacer.budget
    assert isinstance(budget, BudgetRecord) and budget.throttled == 1 and budget.account == ACCOUNT
    await _request(pacer, busy("The server is currently unable to receive requests. Please retry."))
    assert pacer.state.limit < limit and pacer.record.throttled == 1  # the blob's own 503
    assert budget.throttled == 1


async def test_without_an_account_gate_an_account_503_paces_the_blob() -> None:
    pacer = Pacer(64, "c/b", clock=Clock())
    limit = pacer.state.limit
    await _request(pacer, busy(MESSAGES["ingress"]))
    assert pacer.state.limit < limit and pacer.budget is None


async def test_a_new_job_gets_a_fresh_budget_record() -> None:
    clock = Clock()
    pacer = Pacer(64, "c/b", clock=clock, account=gate(clock))
    first = pacer.budget
    await _request(pacer, busy(MESSAGES["requests"]))
    pacer.begin_job()
    assert pacer.budget is not first and pacer.budget is not None and pacer.budget.throttled == 0


@pytest.mark.parametrize(("requests", "limits"), [(1e6, [16, 32, 64]), (1.0, [8, 8, 8])])
async def test_windows_the_budget_held_do_not_grow_the_blobs_limit(
    requests: float, limits: list[int]
) -> None:
    clock = Clock(advance=False)
    pacer = Pacer(64, "c/b", clock=clock, account=gate(clock, requests=requests))
    pacer.begin_job()
    seen = []
    for _ in range(3):  # full windows of throughput growing with the limit, as test_pacer's
        async with holding(pacer, pacer.state.limit) as events:
            clock.now += 1.0
            for done in events:
                done.set()
                await asyncio.sleep(0)
            await asyncio.sleep(0)
        seen.append(pacer.state.limit)
    assert seen == limits  # a generous budget: the blob's limit grows; a binding one: it holds
