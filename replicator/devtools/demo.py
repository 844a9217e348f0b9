"""`replicate demo`: the whole product on the embedded emulator, in about a minute.

It starts the emulator (a subprocess, stopped on every way out), makes a 64 GiB disk holding a few
hundred MiB in scattered extents, snapshots it, replicates (full copy), changes and clears scattered
pages, snapshots again, replicates (diff), verifies both restore points byte-for-byte against their
source snapshots, and prints what moved. The replication runs through the real CLI in a child
process, exactly as an operator would run it; the demo only plays the part of the VM and the
operator around it (with replicator.devtools.disk_builder, as the benchmark and the end-to-end tests do).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from replicator.cli.parser import CommandParser, first_paragraph
from replicator.devtools.disk_builder import (
    LOCATION,
    VM_WRITES,
    DiskBuilder,
    Extent,
    aligned,
    footprint,
    scattered_writes,
)
from replicator.emulator.process import EmulatorProcess
from replicator.settings.knobs import GiB, KiB, MiB

GROUP = "demo-rg"


def initial_layout(size: int, rng: random.Random) -> list[Extent]:
    """A freshly installed disk: boot area, two large file extents, and thousands of small files."""
    extents = [Extent(0, 1 * MiB), Extent(1 * GiB, 96 * MiB), Extent(10 * GiB, 64 * MiB)]
    extents += scattered_writes(rng, size, count=2000, low=4 * KiB, high=128 * KiB)
    return extents


def churn(size: int, rng: random.Random) -> list[Extent]:
    """A day of activity: scattered rewrites (some over existing data) and trimmed (cleared) ranges."""
    extents = scattered_writes(rng, size, count=3000, low=4 * KiB, high=64 * KiB)
    extents += [Extent(1 * GiB + 8 * MiB, 4 * MiB, clear=True), Extent(10 * GiB, 1 * MiB, clear=True)]
    extents += [
        Extent(
            aligned(rng.randrange(0, size - 4 * MiB)), rng.choice((64 * KiB, 512 * KiB, 2 * MiB)), clear=True
        )
        for _ in range(40)
    ]
    return extents


class _Signals:
    """SIGINT/SIGTERM while the demo runs: a running `replicate` child gets the signal and cleans up
    (grants revoked, lease released) while the emulator, in its own session, still answers it."""

    child: subprocess.Popen[str] | None = None
    received: int | None = None

    @classmethod
    def handle(cls, signum: int, frame: object) -> None:
        cls.received = signum
        if cls.child is not None and cls.child.poll() is None:
            cls.child.send_signal(signum)  # its exit (128 + signum) then ends the demo
        else:
            raise KeyboardInterrupt


def replicate(env: dict[str, str], *args: str) -> dict[str, Any]:
    """Run `replicate ARGS --json` as an operator would; returns its JSON document."""
    cmd = [sys.executable, "-m", "replicator.cli.main", *args, "--json"]
    # Its own session: a terminal's Ctrl-C reaches the demo only, which forwards it (_Signals).
    with subprocess.Popen(
        cmd, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    ) as child:  # fmt: skip
        _Signals.child = child
        try:
            out, err = child.communicate()
        finally:
            _Signals.child = None
    if _Signals.received is not None:
        raise KeyboardInterrupt
    if child.returncode != 0:
        raise SystemExit(f"demo: replicate exited {child.returncode}: {err.strip()[-2000:]}")
    return json.loads(out)


def _rate(nbytes: int, seconds: float) -> str:
    return f"{nbytes / MiB / seconds:,.0f} MiB/s" if seconds > 0 else "-"


def _print_table(rows: list[dict[str, Any]]) -> None:
    headers = ["run", "mode", "pages touched", "changed", "merged gaps", "copied", "cleared", "requests",
               "seconds", "throughput", "verified"]  # fmt: skip
    table = [headers] + [
        [
            r["run"],
            r["mode"],
            f"{r['written'] / MiB:,.1f} MiB",
            f"{r['changed'] / MiB:,.1f} MiB",
            f"{r['gaps'] / MiB:,.1f} MiB",
            f"{r['copied'] / MiB:,.1f} MiB",
            f"{r['cleared'] / MiB:,.1f} MiB",
            str(r["requests"]),
            f"{r['seconds']:.1f}",
            _rate(r["copied"], r["seconds"]),
            r["verified"],
        ]
        for r in rows
    ]
    widths = [max(len(str(row[i])) for row in table) for i in range(len(headers))]
    for row in table:
        cells = zip(row, widths, strict=True)
        print("  ".join(_align(i, str(c), w) for i, (c, w) in enumerate(cells)).rstrip())


_TEXT_COLUMNS = (0, 1, 10)
"""Columns of the demo table holding words (run, mode, verified): left-aligned; numbers right."""


def _align(column: int, cell: str, width: int) -> str:
    return cell.ljust(width) if column in _TEXT_COLUMNS else cell.rjust(width)


def run(data_dir: Path, disk_gib: int, seed: int) -> int:
    rng = random.Random(seed)
    size = disk_gib * GiB
    emulator = EmulatorProcess(data_dir, own_session=True)
    env = emulator.start()
    # The demo plays the operator: its own SDK clients and the replicate child use the emulator's
    # endpoints, token and CA exactly as an operator's shell would.
    os.environ.update(env)
    try:
        disks, disk = DiskBuilder(env, GROUP), f"demo-disk-{uuid.uuid4().hex[:6]}"
        print(f"demo: emulator at {env['REPLICATOR_ARM_ENDPOINT']} (data in {data_dir})", file=sys.stderr)
        disk_id = disks.create_disk(disk, size, "Premium_LRS")
        target = f"{env['REPLICATOR_BLOB_ENDPOINT']}/drsite/replicas/{disk}.vhd"
        rows = []
        for run_name, extents in (("1 first", initial_layout(size, rng)), ("2 next", churn(size, rng))):
            t0 = time.monotonic()
            disks.write(disk, extents, rng=rng, concurrency=VM_WRITES)
            snap = f"{disk}-snap{run_name[0]}"
            disks.snapshot(disk_id, snap)
            print(f"demo: wrote {len(extents)} extents in {time.monotonic() - t0:.1f} s; "
                  f"snapshot {snap}; replicating", file=sys.stderr)  # fmt: skip
            doc = replicate(env, "--source", disk_id, "--target", target)
            (result,) = doc["snapshots"]
            check = disks.compare_snapshot(snap, target, result["restore_point"])
            equal, compared = check.equal, check.bytes_compared
            rows.append({
                "run": run_name, "mode": result["mode"], "written": footprint(extents),
                "changed": result["changed_bytes"], "gaps": result["merged_gap_bytes"],
                "copied": result["copied_bytes"],
                "cleared": result["cleared_bytes"], "requests": result["requests"],
                "seconds": result["seconds"],
                "verified": f"{'equal' if equal else 'DIFFERENT'} ({compared / MiB:,.0f} MiB)",
            })  # fmt: skip
            if not equal:
                _print_table(rows)
                print(f"demo: restore point {result['restore_point']} differs from {snap}", file=sys.stderr)
                return 1
        print(f"\n{disk_gib} GiB disk {disk} replicated to {target.split('/', 3)[3]}:\n")
        _print_table(rows)
        # Disaster recovery: the last restore point becomes a new disk, proven equal to its source.
        restored = f"{disk}-restored"
        doc = replicate(env, "restore", "--target", target, "--point", "latest", "--resource-group",
                        GROUP, "--disk-name", restored, "--location", LOCATION)  # fmt: skip
        with disks.sas("disks", restored, "Read") as restored_url:  # a disk is read through a SAS
            check = disks.compare_snapshot(snap, restored_url)
        equal, compared = check.equal, check.bytes_compared
        verdict = "equal to" if equal else "DIFFERENT from"
        print(f"\nrestored restore point {doc['restore_point']['id']} to disk {restored}: "
              f"{verdict} {snap} ({compared / MiB:,.0f} MiB compared byte-for-byte)")  # fmt: skip
        return 0 if equal else 1
    finally:
        emulator.stop()


def main(argv: list[str]) -> int:
    parser = CommandParser(prog="replicate demo", description=first_paragraph(__doc__))
    parser.add_argument(
        "--data-dir", type=Path, help="emulator state (default: a temporary folder, removed after)"
    )
    parser.add_argument("--disk-gib", type=int, default=64, help="size of the demo disk (default 64)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the data pattern (default 7)")
    args = parser.parse_args(argv)
    if args.disk_gib < 16 or args.disk_gib > 4096:
        parser.error(f"--disk-gib must be between 16 and 4096; got {args.disk_gib}")
    previous = {sig: signal.signal(sig, _Signals.handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        if args.data_dir is not None:
            return run(args.data_dir, args.disk_gib, args.seed)
        with tempfile.TemporaryDirectory(prefix="replicator-demo-") as tmp:
            return run(Path(tmp), args.disk_gib, args.seed)
    except KeyboardInterrupt:  # the emulator was stopped on the way out (run's finally)
        received = _Signals.received or signal.SIGINT
        print(f"demo: interrupted ({signal.Signals(received).name}); emulator stopped", file=sys.stderr)
        return 128 + received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
