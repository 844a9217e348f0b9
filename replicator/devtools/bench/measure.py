"""Run contenders as child processes and measure them: wall time, peak RSS and CPU seconds.

Why children: peak RSS and CPU time of one contender must not include the harness or another
contender; `os.wait4` returns the child's own resource usage.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

POLL_SECONDS = 0.02


@dataclass
class Measured:
    wall_seconds: float
    peak_rss_bytes: int  # the largest of the children (sampled every POLL_SECONDS)
    cpu_seconds: float  # user + system, summed over the children
    outputs: list[Any]  # each child's JSON document (its stdout)


def run_children(commands: list[tuple[list[str], dict[str, str]]]) -> Measured:
    """Start every command at once, wait for all; each must print a JSON document and exit 0."""
    with contextlib.ExitStack() as files:
        started = time.monotonic()
        procs = []
        for cmd, env in commands:
            out = files.enter_context(tempfile.TemporaryFile())
            err = files.enter_context(tempfile.TemporaryFile())
            procs.append((subprocess.Popen(cmd, env=env, stdout=out, stderr=err), out, err))
        return _wait(procs, started)


class _PeakRss:
    """Polls /proc/PID/status VmHWM (the peak RSS since exec) while the children run.

    Why not ru_maxrss: a forked child starts with its parent's peak, so it would report the harness.
    """

    def __init__(self, pids: list[int]) -> None:
        self.peaks = dict.fromkeys(pids, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            for pid in self.peaks:
                with contextlib.suppress(OSError, ValueError, IndexError):
                    for text in Path(f"/proc/{pid}/status").read_text().splitlines():
                        if text.startswith("VmHWM:"):
                            self.peaks[pid] = max(self.peaks[pid], int(text.split()[1]) * 1024)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return max(self.peaks.values(), default=0)


def _wait(procs: list[Any], started: float) -> Measured:
    peak = _PeakRss([p.pid for p, _, _ in procs])
    rss, cpu, outputs = 0, 0.0, []
    failures = []
    for proc, out, err in procs:
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        cpu += usage.ru_utime + usage.ru_stime
        out.seek(0)
        err.seek(0)
        text = out.read().decode()
        if proc.returncode != 0:
            failures.append(f"{proc.args[:4]} exited {proc.returncode}: {err.read().decode()[-1500:]}")
        else:
            outputs.append(_document(text))
    wall = time.monotonic() - started
    rss = peak.stop()
    if failures:
        raise RuntimeError("; ".join(failures))
    return Measured(wall, rss, cpu, outputs)


def _document(stdout: str) -> Any:
    """The child's JSON document, without the lines a wrapping profiler prints (`py-spy> ...`)."""
    return json.loads("\n".join(line for line in stdout.splitlines() if not line.startswith("py-spy> ")))
