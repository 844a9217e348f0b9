"""`replicate emulator` as a subprocess, for tests, the demo and benchmarks: start, stop, restart, kill."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

# Starting takes well under a second (an EC key and a bind); 20 s absorbs a loaded CI machine.
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0


class EmulatorProcess:
    """A `python -m replicator.cli.main emulator --data-dir D --port P --env-file F ...` subprocess."""

    def __init__(self, data_dir: Path, *extra_args: str, own_session: bool = False) -> None:
        """`own_session`: keep the terminal's Ctrl-C away from it (the demo stops it after its clients)."""
        self.data_dir = Path(data_dir)
        self.extra_args = extra_args
        self.own_session = own_session
        self.env: dict[str, str] = {}
        self.port = 0  # 0 until the first start; restarts reuse the bound port
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def log_file(self) -> Path:
        return self.data_dir / "emulator.log"

    @property
    def env_file(self) -> Path:
        return self.data_dir / "emulator.env"

    def start(self) -> dict[str, str]:
        """Start and wait (bounded) for the JSON line; returns the env keys it printed."""
        if self._proc is not None:
            raise RuntimeError("emulator already running")
        cmd = [
            sys.executable, "-m", "replicator.cli.main", "emulator",
            "--data-dir", str(self.data_dir), "--port", str(self.port), "--env-file", str(self.env_file),
            *self.extra_args,
        ]  # fmt: skip
        # stderr goes to a file, never to an undrained pipe: a chatty emulator would block on a full
        # pipe buffer and stall every client.
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log:
            self._proc = subprocess.Popen(
                cmd, stdout=subprocess.PIPE, stderr=log, start_new_session=self.own_session
            )
        line = self._read_line(self._proc)
        self.env = json.loads(line)
        self.port = int(self.env["REPLICATOR_BLOB_ENDPOINT"].rsplit(":", 1)[1])
        return self.env

    def _read_line(self, proc: subprocess.Popen[bytes]) -> str:
        assert proc.stdout is not None
        deadline = time.monotonic() + START_TIMEOUT
        buf = b""
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            while b"\n" not in buf:
                left = deadline - time.monotonic()
                if left <= 0 or (proc.poll() is not None and not sel.select(0)):
                    self._fail(proc, "did not print its JSON line")
                if sel.select(left):
                    chunk = os.read(proc.stdout.fileno(), 65536)
                    if not chunk:
                        self._fail(proc, "closed stdout before its JSON line")
                    buf += chunk
        return buf.split(b"\n", 1)[0].decode()

    def _fail(self, proc: subprocess.Popen[bytes], what: str) -> None:
        proc.kill()
        proc.communicate(timeout=STOP_TIMEOUT)
        self._proc = None
        raise RuntimeError(f"emulator {what}; its log ends with: {self._log_tail()}")

    def _log_tail(self) -> str:
        try:
            return self.log_file.read_bytes()[-2000:].decode(errors="replace")
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """SIGTERM, wait, and check that it exited 0."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise RuntimeError("emulator did not stop on SIGTERM") from None
        if proc.returncode != 0:
            raise RuntimeError(f"emulator exited {proc.returncode}; its log ends with: {self._log_tail()}")

    def restart(self) -> None:
        """Stop and start again on the same data dir and port."""
        self.stop()
        self.start()

    def kill(self) -> None:
        """SIGKILL: a crash, for recovery tests."""
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.kill()
            proc.communicate()
