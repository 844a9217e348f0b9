"""Azurite (Microsoft's storage emulator, installed by scripts/setup.sh into ./node_modules) as a
subprocess on a free loopback port: an independent second implementation of the blob data plane,
used as a target for the client-streamed path (Azurite has no Put Page From URL and no managed-disk
diff, which is why the project has its own emulator)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

# Azurite's documented, public development-storage account (not a secret).
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_SECONDS = 30  # a cold Node start on a loaded 2-core machine takes a few seconds


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def azurite_binary(service: str = "blob") -> str | None:
    """The project-local azurite-<service>, else one on PATH; None when neither is installed."""
    local = ROOT / "node_modules" / ".bin" / f"azurite-{service}"
    return str(local) if local.exists() else shutil.which(f"azurite-{service}")


class AzuriteProcess:
    """`azurite-blob` (or `-queue`) in a private workspace; `blob_endpoint` is the path-style account URL."""

    def __init__(self, workspace: Path, service: str = "blob") -> None:
        self.workspace = workspace
        self.service = service
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def blob_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/{ACCOUNT}"

    queue_endpoint = blob_endpoint  # the same path-style form, on the queue service's port

    def start(self) -> None:
        binary = azurite_binary(self.service)
        if binary is None:
            raise RuntimeError(f"azurite-{self.service} is not installed: run scripts/setup.sh")
        self.workspace.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                binary,
                f"--{self.service}Host",
                "127.0.0.1",
                f"--{self.service}Port",
                str(self.port),
                "--location",
                str(self.workspace),
                "--silent",
                "--skipApiVersionCheck",
                "--disableTelemetry",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ},
        )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise RuntimeError(f"azurite-blob exited with {self.proc.returncode}: {err[-500:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(
            f"azurite-blob did not listen on port {self.port} within {START_TIMEOUT_SECONDS} s"
        )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
