"""The CLI as a child process, as an operator or a scheduler runs it: started with the emulator's
environment (`cli_process`), waited for and checked for leaked secrets and tracebacks (`finish`)."""

from __future__ import annotations

import fcntl
import os
import signal
import struct
import subprocess
import sys
import termios
import threading
from dataclasses import dataclass
from typing import Any

from tests import envelope
from tests.logs import records
from tests.reliability.leaks import assert_no_leaks

STALL_SECONDS = 3.0
"""How late a stalled answer of the reliability campaign's emulator comes; the runs use
--request-timeout 2 (FAST_RETRY), so it is a timeout for them."""
FAST_RETRY = ("--request-timeout", "2", "--checkpoint-seconds", "0.2")


@dataclass
class Run:
    code: int
    out: str
    err: str

    @property
    def doc(self) -> dict[str, Any]:
        """The run's `--json` envelope, checked against the published schema (tests.envelope)."""
        return envelope.parse(self.out)


def cli_process(env: dict[str, str], *args: str, **kwargs: Any) -> subprocess.Popen[str]:
    """`python -m replicator.cli.main ARGS` as a child process with the emulator's environment, output piped.

    SIGINT is reset to its default in the child: a test runner started in the background by a
    non-interactive shell ignores SIGINT, the child would inherit that, and Python then installs no
    KeyboardInterrupt handler, so the signal tests would test nothing.
    """
    return subprocess.Popen(
        [sys.executable, "-m", "replicator.cli.main", *args],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_sigint,
        **kwargs,
    )


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def finish(proc: subprocess.Popen[str], timeout: float = 240) -> Run:
    """Wait for `proc`; its output must carry no secret and no traceback, and its stderr (not a
    terminal here) must be JSON lines only (tests.logs)."""
    out, err = proc.communicate(timeout=timeout)
    assert_no_leaks(out + err)
    assert "Traceback" not in err, err
    records(err)
    return Run(proc.returncode, out, err)


def run(env: dict[str, str], *args: str, timeout: float = 240) -> Run:
    """`cli_process` then `finish`."""
    return finish(cli_process(env, *args), timeout)


def on_terminal(env: dict[str, str], *args: str, timeout: float = 240) -> Run:
    """The CLI as a person at a shell runs it: stderr on a terminal (a pseudo-terminal of 50 x 200:
    human lines, and for `replicate` a bar), stdout piped, stdin empty; checked for secrets and
    tracebacks. `err` is what the terminal showed (escape sequences included), line ends `\\n`."""
    controller, terminal = os.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "replicator.cli.main", *args],
        env={**os.environ, **env, "TERM": "xterm"},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=terminal,
        text=True,
        preexec_fn=_default_sigint,
    )
    os.close(terminal)
    shown: list[bytes] = []

    def drain() -> None:  # a pty is read while the child writes, or the child blocks; until EIO
        while True:
            try:
                data = os.read(controller, 65536)
            except OSError:
                return
            if not data:
                return
            shown.append(data)

    reader = threading.Thread(target=drain)
    reader.start()
    try:
        out, _ = proc.communicate(timeout=timeout)
    finally:
        reader.join(timeout)
        os.close(controller)
    err = b"".join(shown).decode(errors="replace").replace("\r\n", "\n")
    assert_no_leaks(out + err)
    assert "Traceback" not in err, err
    return Run(proc.returncode, out, err)
