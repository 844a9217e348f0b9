"""The emulator's link model: pure limiter arithmetic, request classification, and the middleware
driven over HTTP (aiohttp test server, 127.0.0.1, free port)."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from multidict import CIMultiDict

from replicator.emulator.middleware.linkmodel import (
    BlobLimiter,
    Charge,
    LinkOptions,
    MiB,
    Stats,
    admit,
    classify,
    install,
)

TOKEN = "test-token"
LIMITS = LinkOptions(blob_limits=True, blob_iops=500, blob_mibps=60, burst_seconds=1.0)


def test_admit_serves_requests_at_the_request_rate() -> None:
    limiters: dict[str, BlobLimiter] = {}
    finishes = [admit(limiters, [Charge("a/c/b", 0)], LIMITS, 0.0)[0] for _ in range(10)]
    assert finishes == pytest.approx([(i + 1) / 500 for i in range(10)])


def test_admit_serves_bytes_at_the_byte_rate_and_takes_the_slower_clock() -> None:
    limiters: dict[str, BlobLimiter] = {}
    finish, busy = admit(limiters, [Charge("a/c/b", 6 * MiB)], LIMITS, 0.0)
    assert busy is None and finish == pytest.approx(0.1)


def test_admit_refuses_beyond_the_burst_without_reserving() -> None:
    limiters: dict[str, BlobLimiter] = {}
    for _ in range(15):  # 15 x 4 MiB = 1 s of backlog at 60 MiB/s
        assert admit(limiters, [Charge("a/c/b", 4 * MiB)], LIMITS, 0.0)[1] is None
    free_at = limiters["a/c/b"].data.free_at
    wait, busy = admit(limiters, [Charge("a/c/b", 4 * MiB)], LIMITS, 0.0)
    assert busy == "a/c/b" and wait == pytest.approx(4 / 60)
    assert limiters["a/c/b"].data.free_at == free_at
    # another blob has its own limits
    assert admit(limiters, [Charge("a/c/other", 4 * MiB)], LIMITS, 0.0)[1] is None


def test_a_copy_charges_its_source_blob_too() -> None:
    limiters: dict[str, BlobLimiter] = {}
    for _ in range(15):
        admit(limiters, [Charge("src/c/b", 4 * MiB)], LIMITS, 0.0)
    _, busy = admit(limiters, [Charge("dst/c/b", 4 * MiB), Charge("src/c/b", 4 * MiB)], LIMITS, 0.0)
    assert busy == "src/c/b"
    assert "dst/c/b" not in limiters or limiters["dst/c/b"].data.free_at == 0.0


def test_classify_names_operations_and_costs() -> None:
    copy = classify(
        "PUT",
        "/acct/cont/blob.vhd",
        {"comp": "page"},
        CIMultiDict(
            {"x-ms-range": "bytes=0-4194303", "x-ms-copy-source": "https://h/md-x/c/abcd?snapshot=1"}
        ),
    )
    assert (copy.operation, copy.blob, copy.source, copy.source_bytes) == (
        "put_page_from_url", "acct/cont/blob.vhd", "md-x/c/abcd", 4 * MiB,
    )  # fmt: skip
    clear = classify("PUT", "/a/c/b", {"comp": "page"}, CIMultiDict({"x-ms-page-write": "clear"}))
    assert clear.operation == "clear_pages" and clear.write_bytes == 0
    diff = classify("GET", "/a/c/b", {"comp": "pagelist"}, CIMultiDict({"x-ms-previous-snapshot-url": "u"}))
    assert diff.operation == "get_page_ranges_diff"
    read = classify("GET", "/a/c/b", {}, CIMultiDict({"x-ms-range": "bytes=512-1023"}))
    assert (read.operation, read.read_bytes) == ("get_blob", 512)
    assert classify("PUT", "/a/c", {"restype": "container"}, CIMultiDict()).blob is None


@pytest.mark.parametrize("bad", [{"latency_ms": -1}, {"blob_iops": 0}, {"link_mibps": 0}])
def test_options_refuse_bad_values(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        LinkOptions().updated(bad)


def test_options_refuse_unknown_names() -> None:
    with pytest.raises(ValueError, match="unknown link options: speed"):
        LinkOptions().updated({"speed": 1})


async def _client(options: LinkOptions) -> TestClient:
    app = web.Application()

    async def handler(request: web.Request) -> web.Response:
        body = await request.read()
        return web.Response(status=201 if request.method == "PUT" else 200, body=body or b"x" * 1000)

    app.router.add_route("*", "/{tail:.*}", handler)
    install(app, options, TOKEN)
    client = TestClient(TestServer(app, host="127.0.0.1", port=0))
    await client.start_server()
    return client


AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def test_latency_is_added_to_data_plane_requests_only() -> None:
    client = await _client(LinkOptions(latency_ms=80))
    try:
        t0 = time.monotonic()
        await client.get("/subscriptions/x/resourceGroups")
        arm = time.monotonic() - t0
        t0 = time.monotonic()
        await client.get("/acct/cont/blob")
        data = time.monotonic() - t0
        assert data >= 0.08 and arm < 0.08
    finally:
        await client.close()


async def test_stats_count_operations_and_bytes_and_reset() -> None:
    client = await _client(LinkOptions())
    try:
        headers = {"x-ms-range": "bytes=0-511", "x-ms-page-write": "update"}
        await client.put("/acct/cont/blob?comp=page", data=b"\0" * 512, headers=headers)
        await client.get("/acct/cont/blob", headers={"x-ms-range": "bytes=0-999"})
        stats = await (await client.get("/_emulator/stats", headers=AUTH)).json()
        assert stats["operations"] == {"put_page": 1, "get_blob": 1}
        assert stats["bytes_in"] == 512 and stats["bytes_out"] == 512 + 1000
        assert stats["blobs"]["acct/cont/blob"]["bytes_written"] == 512
        assert stats["blobs"]["acct/cont/blob"]["bytes_read"] == 1000
        await client.post("/_emulator/stats/reset", headers=AUTH)
        stats = await (await client.get("/_emulator/stats", headers=AUTH)).json()
        assert stats["requests"] == 0 and stats["blobs"] == {}
    finally:
        await client.close()


async def test_admin_endpoints_need_the_token() -> None:
    client = await _client(LinkOptions())
    try:
        assert (await client.get("/_emulator/stats")).status == 401
        assert (await client.get("/_emulator/stats", headers={"Authorization": "Bearer no"})).status == 401
        assert (await client.get("/_emulator/nothing", headers=AUTH)).status == 404
    finally:
        await client.close()


async def test_limits_answer_server_busy_with_retry_after_and_link_changes_at_run_time() -> None:
    client = await _client(LinkOptions())
    try:
        answer = await client.put(
            "/_emulator/link", json={"blob_limits": True, "blob_iops": 5, "burst_seconds": 0.5}, headers=AUTH
        )
        assert (await answer.json())["blob_iops"] == 5
        # concurrent requests build a backlog: at 5/s with a 0.5 s burst, two are served, three refused
        statuses = await asyncio.gather(
            *(client.put("/a/c/b?comp=page", headers={"x-ms-page-write": "clear"}) for _ in range(5))
        )
        busy = [r for r in statuses if r.status == 503]
        assert len(busy) == 3 and all(r.headers["x-ms-error-code"] == "ServerBusy" for r in busy)
        assert all(int(r.headers["Retry-After"]) >= 1 for r in busy)
        stats = await (await client.get("/_emulator/stats", headers=AUTH)).json()
        assert stats["throttled"] == len(busy) and stats["blobs"]["a/c/b"]["throttled"] == len(busy)
        bad = await client.put("/_emulator/link", json={"latency_ms": -5}, headers=AUTH)
        assert bad.status == 400
    finally:
        await client.close()


def test_stats_report_the_emulators_cpu_time_since_the_reset() -> None:
    stats = Stats()
    deadline = time.process_time() + 0.05
    while time.process_time() < deadline:  # burn a little CPU
        pass
    assert 0.05 <= stats.as_json()["cpu_seconds"] < 5
    assert Stats().as_json()["cpu_seconds"] < 0.05
