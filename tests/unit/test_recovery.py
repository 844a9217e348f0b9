"""recovery.commit_once on plumbing.retry: a lost answer is looked for before a retry, never retaken;
only transient failures are retried, a failing look-up is not; the waits are zero here (no sleeping)."""

from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError, ServiceResponseError

from replicator.plumbing import recovery


@pytest.fixture(autouse=True)
def no_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(recovery, "COMMIT_BACKOFF_SECONDS", 0.0)


class Service:
    """Snapshot Blob answers `outcomes` in order (an exception or a restore point); `taken` is what
    the listing finds after each failure (None: the lost attempt took nothing)."""

    def __init__(self, outcomes: list[BaseException | str], taken: list[str | None]) -> None:
        self.outcomes, self.taken, self.calls = outcomes, taken, []

    async def create(self) -> str:
        self.calls.append("create")
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    async def find(self) -> str | None:
        self.calls.append("find")
        return self.taken.pop(0)


def refused(status: int) -> HttpResponseError:
    exc = HttpResponseError(f"status {status}")
    exc.status_code = status
    return exc


async def test_a_lost_answer_is_found_instead_of_taking_a_second_restore_point() -> None:
    service = Service([ServiceResponseError("the answer was lost")], ["t1"])
    assert await recovery.commit_once(service.create, service.find) == "t1"
    assert service.calls == ["create", "find"]


async def test_transient_failures_are_retried_after_looking_for_the_lost_commit() -> None:
    service = Service([refused(503), TimeoutError(), "t2"], [None, None])
    assert await recovery.commit_once(service.create, service.find) == "t2"
    assert service.calls == ["create", "find", "create", "find", "create"]


async def test_a_refusal_propagates_at_once() -> None:
    service = Service([refused(409)], [])
    with pytest.raises(HttpResponseError):
        await recovery.commit_once(service.create, service.find)
    assert service.calls == ["create"]


async def test_a_failing_look_up_propagates_and_is_not_retried() -> None:
    service = Service([refused(500), "never"], [])

    async def find() -> str | None:
        service.calls.append("find")
        raise TimeoutError("listing failed")

    with pytest.raises(TimeoutError, match="listing failed"):
        await recovery.commit_once(service.create, find)
    assert service.calls == ["create", "find"]


async def test_the_last_failure_propagates_after_every_attempt() -> None:
    failures: list[BaseException | str] = [refused(500) for _ in range(recovery.COMMIT_ATTEMPTS)]
    last = failures[-1]
    service = Service(failures, [None] * recovery.COMMIT_ATTEMPTS)
    with pytest.raises(HttpResponseError) as raised:
        await recovery.commit_once(service.create, service.find)
    assert raised.value is last
    assert service.calls.count("create") == recovery.COMMIT_ATTEMPTS
    assert service.calls.count("find") == recovery.COMMIT_ATTEMPTS - 1
