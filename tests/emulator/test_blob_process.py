"""The emulator process: options, env file, signals, restart persistence, a big sparse blob."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from replicator.emulator.process import EmulatorProcess
from tests.helpers.blob_clients import BlobClients

P = 512
TIB = 1024**4


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "replicator.cli.main", "emulator", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)


@pytest.mark.parametrize(
    "args",
    [
        ("--port", "70000"),
        ("--port", "abc"),
        ("--max-page-ranges", "0"),
        ("--completion-seconds", "-1"),
        ("--unknown",),
        (),  # --data-dir is required
    ],
)
def test_bad_options_exit_2_with_one_sentence(tmp_path: Path, args: tuple[str, ...]) -> None:
    extra = () if not args else ("--data-dir", str(tmp_path))
    result = run_cli(*extra, *args)
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.strip().endswith(".")


def test_env_file_matches_the_json_line_and_sigint_exits_0(tmp_path: Path) -> None:
    env_file = tmp_path / "env"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "replicator.cli.main",
            "emulator",
            "--data-dir",
            str(tmp_path / "d"),
            "--env-file",
            str(env_file),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        printed = json.loads(proc.stdout.readline())
        written = dict(line.split("=", 1) for line in env_file.read_text().splitlines())
        assert printed == written
        assert printed["REPLICATOR_ARM_ENDPOINT"] == printed["REPLICATOR_BLOB_ENDPOINT"]
        assert printed["REPLICATOR_BLOB_ENDPOINT"].startswith("https://127.0.0.1:")
        assert Path(printed["SSL_CERT_FILE"]).read_text().startswith("-----BEGIN CERTIFICATE-----")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_restart_keeps_data_snapshots_secrets_and_ca(fresh_emulator, unique_name) -> None:
    emulator: EmulatorProcess = fresh_emulator()
    env_before = dict(emulator.env)
    account = unique_name("acct")
    service = BlobClients(emulator.env).key(account)
    service.create_container("c")
    blob = service.get_blob_client("c", "b")
    blob.create_page_blob(8 * P)
    blob.upload_page(b"1" * P, offset=0, length=P)
    snap = blob.create_snapshot(metadata={"rp": "1"})["snapshot"]
    blob.upload_page(b"2" * P, offset=P, length=P)
    emulator.restart()
    assert emulator.env == env_before  # same port, token, key and CA: clients keep working
    blob = BlobClients(emulator.env).key(account).get_blob_client("c", "b")
    assert blob.download_blob(offset=0, length=2 * P).readall() == b"1" * P + b"2" * P
    old = BlobClients(emulator.env).key(account).get_blob_client("c", "b", snapshot=snap)
    assert old.get_blob_properties().metadata == {"rp": "1"}
    assert [(r.start, r.end) for r in blob.list_page_ranges(previous_snapshot=snap)] == [(P, 2 * P - 1)]


def test_4tib_sparse_blob_is_quick_and_small(fresh_emulator, unique_name) -> None:
    emulator: EmulatorProcess = fresh_emulator()
    service = BlobClients(emulator.env).key(unique_name("acct"))
    service.create_container("c")
    blob = service.get_blob_client("c", "big")
    started = time.monotonic()
    blob.create_page_blob(4 * TIB)
    chunk = os.urandom(4 * 1024 * 1024)
    for offset in (0, 2 * TIB, 4 * TIB - len(chunk)):  # 12 MiB at the start, the middle and the end
        blob.upload_page(chunk, offset=offset, length=len(chunk))
    ranges = [(r.start, r.end) for r in blob.list_page_ranges()]
    idle = [(r.start, r.end) for r in blob.list_page_ranges(offset=TIB, length=TIB // 2)]
    mib = 1024 * 1024
    clipped = [(r.start, r.end) for r in blob.list_page_ranges(offset=2 * TIB - mib, length=2 * mib)]
    elapsed = time.monotonic() - started
    assert len(ranges) == 3 and idle == []
    assert clipped == [(2 * TIB, 2 * TIB + mib - 1)]
    assert blob.download_blob(offset=4 * TIB - P, length=P).readall() == chunk[-P:]
    used = sum(f.stat().st_size for f in emulator.data_dir.rglob("*") if f.is_file())
    assert used < 64 * 1024 * 1024
    assert elapsed < 20
