"""The emulator's account limits (replicator.emulator.middleware.linkmodel): what a request costs which
account, the arithmetic of refusal (counts at a fixed `now`, no wall time), and the middleware's 503
ServerBusy with Azure's account-level message, its Retry-After and the per-account stats."""

from __future__ import annotations

import asyncio

import pytest
from multidict import CIMultiDict

from replicator.emulator.errors import blob as blob_errors
from replicator.emulator.middleware.linkmodel import (
    AccountCharge,
    AccountLimiter,
    LinkOptions,
    MiB,
    account_charges,
    account_refusal,
    classify,
    reserve_accounts,
)
from tests.unit.test_linkmodel import AUTH, _client

ACCOUNT = LinkOptions(
    account_limits=True, account_iops=128, account_ingress_mibps=8, account_egress_mibps=4, burst_seconds=1.0
)


def _admit(
    limiters: dict[str, AccountLimiter], charges: list[AccountCharge]
) -> tuple[float, str, str] | None:
    """At time 0: refuse, or reserve (as the middleware does, one after the other)."""
    refused = account_refusal(limiters, charges, ACCOUNT, 0.0)
    if refused is None:
        reserve_accounts(limiters, charges, ACCOUNT, 0.0)
    return refused


def test_the_defaults_are_a_standard_accounts_targets() -> None:
    options = LinkOptions()
    assert not options.account_limits and options.account_iops == 20_000
    assert options.account_ingress_mibps * MiB * 8 == pytest.approx(25e9)  # 25 Gbps
    assert options.account_egress_mibps * MiB * 8 == pytest.approx(50e9)  # 50 Gbps


def test_a_copy_puts_its_range_into_the_target_account_and_takes_it_out_of_the_sources() -> None:
    headers = CIMultiDict(
        {"x-ms-range": "bytes=0-4194303", "x-ms-copy-source": "https://h/md-x/c/abcd?snapshot=1"}
    )
    call = classify("PUT", "/acct/cont/blob.vhd", {"comp": "page"}, headers)
    assert account_charges("/acct/cont/blob.vhd", call, 0) == [
        AccountCharge("acct", 1, 4 * MiB, 0),
        AccountCharge("md-x", 1, 0, 4 * MiB),
    ]
    read = classify("GET", "/acct/c/b", {}, CIMultiDict({"x-ms-range": "bytes=0-1023"}))
    assert account_charges("/acct/c/b", read, 0) == [AccountCharge("acct", 1, 0, 1024)]
    put = classify("PUT", "/acct/c/b", {"comp": "page"}, CIMultiDict({"x-ms-range": "bytes=0-511"}))
    assert account_charges("/acct/c/b", put, 512) == [AccountCharge("acct", 1, 512, 0)]
    container = classify("PUT", "/acct/c", {"restype": "container"}, CIMultiDict())
    assert account_charges("/acct/c", container, 0) == [AccountCharge("acct", 1, 0, 0)]


def test_requests_beyond_the_accounts_rate_and_burst_are_refused_with_the_operations_limit() -> None:
    limiters: dict[str, AccountLimiter] = {}
    # 128 requests/s and 1 s of backlog: 128 are taken at once, the next would wait past the burst
    assert all(_admit(limiters, [AccountCharge("acct")]) is None for _ in range(128))
    refused = _admit(limiters, [AccountCharge("acct")])
    assert refused is not None and refused[1:] == ("acct", "requests") and refused[0] == 1 / 128
    assert limiters["acct"].requests.free_at == pytest.approx(1.0)  # the refusal reserved nothing
    assert _admit(limiters, [AccountCharge("other")]) is None  # another account has its own limits


def test_ingress_and_egress_are_limited_on_their_own_clocks() -> None:
    limiters: dict[str, AccountLimiter] = {}
    assert _admit(limiters, [AccountCharge("acct", 1, 8 * MiB, 0)]) is None  # 1 s of ingress
    refused = _admit(limiters, [AccountCharge("acct", 1, 4 * MiB, 0)])
    assert refused is not None and refused[2] == "ingress"
    assert _admit(limiters, [AccountCharge("acct", 1, 0, 4 * MiB)]) is None  # egress is its own: 1 s
    refused = _admit(limiters, [AccountCharge("acct", 1, 0, 1)])
    assert refused is not None and refused[2] == "egress"
    # a copy whose source account's egress is over is refused whole: nothing reserved on the target
    target_before = limiters.setdefault("dst", AccountLimiter()).ingress.free_at
    refused = _admit(limiters, [AccountCharge("dst", 1, 4 * MiB, 0), AccountCharge("acct", 1, 0, 4 * MiB)])
    assert refused is not None and refused[1:] == ("acct", "egress")
    assert limiters["dst"].ingress.free_at == target_before


@pytest.mark.parametrize(
    "bad", [{"account_iops": 0}, {"account_ingress_mibps": -1}, {"account_egress_mibps": 0}]
)
def test_account_options_refuse_bad_values(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        LinkOptions().updated(bad)


async def test_the_middleware_answers_the_account_limit_with_azures_message_and_counts_it() -> None:
    client = await _client(LinkOptions())
    try:
        change = {"account_limits": True, "account_iops": 4, "burst_seconds": 0.5}
        assert (await (await client.put("/_emulator/link", json=change, headers=AUTH)).json())[
            "account_iops"
        ] == 4
        # 4 requests/s with 0.5 s of backlog, sent together to two blobs of one account: two taken
        clears = [
            client.put(f"/acct/c/b{i % 2}?comp=page", headers={"x-ms-page-write": "clear"}) for i in range(6)
        ]
        answers = await asyncio.gather(*clears)
        busy = [a for a in answers if a.status == 503]
        assert len(busy) == 4
        for answer in busy:
            assert (
                answer.headers["x-ms-error-code"] == "ServerBusy" and int(answer.headers["Retry-After"]) >= 1
            )
            assert f"<Message>{blob_errors.account_requests_over}" in await answer.text()
        stats = await (await client.get("/_emulator/stats", headers=AUTH)).json()
        assert stats["throttled"] == 4
        assert stats["accounts"]["acct"] == {
            "requests": 2, "ingress_bytes": 0, "egress_bytes": 0, "throttled": {"requests": 4},
        }  # fmt: skip
        assert all(blob["throttled"] == 0 for blob in stats["blobs"].values())  # the account's, not a blob's
    finally:
        await client.close()


async def test_the_middleware_counts_ingress_per_account() -> None:
    client = await _client(LinkOptions(account_limits=True))
    try:
        headers = {"x-ms-range": "bytes=0-511", "x-ms-page-write": "update"}
        await client.put("/acct/cont/blob?comp=page", data=b"\0" * 512, headers=headers)
        await client.get("/acct/cont/blob", headers={"x-ms-range": "bytes=0-999"})
        stats = await (await client.get("/_emulator/stats", headers=AUTH)).json()
        assert stats["accounts"]["acct"] == {
            "requests": 2,
            "ingress_bytes": 512,
            "egress_bytes": 1000,
            "throttled": {},
        }
    finally:
        await client.close()
