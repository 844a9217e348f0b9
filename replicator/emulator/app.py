"""Builds the aiohttp application: ARM routes (arm.py) and the blob data plane (blob.py) on one port."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from replicator.emulator import arm, blob, clock, faults, linkmodel
from replicator.emulator.blob_backend import BlobBackend
from replicator.emulator.faults import FaultOptions
from replicator.emulator.linkmodel import LinkOptions


@dataclass
class EmulatorOptions:
    """The knobs of one emulator process (command-line options of `replicate emulator`)."""

    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 0
    max_page_ranges: int = 10000  # ranges per Get Page Ranges answer; Azure's documented page size
    completion_seconds: float = 30.0  # PremiumV2/Ultra snapshot completionPercent goes 0 -> 100 in this time
    subscription_id: str = "00000000-0000-0000-0000-000000000001"
    env_file: Path | None = None  # where to also write the env keys as KEY=VALUE lines
    link: LinkOptions = field(default_factory=LinkOptions)  # latency, per-blob limits (linkmodel.py)
    faults: FaultOptions = field(default_factory=FaultOptions)  # injected failures (faults.py)
    sas_max_seconds: int = 24 * 3600  # longest SAS a grant hands out (ArmLimits.from_options reads it)


@dataclass
class EmulatorContext:
    """What every handler needs: options, secrets, the blob backend and the public base URL."""

    options: EmulatorOptions
    access_token: str
    account_key: str
    blobs: BlobBackend
    base_url: str = field(default="")

    @classmethod
    def open(cls, options: EmulatorOptions, *, access_token: str, account_key: str) -> EmulatorContext:
        backend = BlobBackend(options.data_dir, account_key=account_key)
        return cls(options=options, access_token=access_token, account_key=account_key, blobs=backend)

    def set_base_url(self, base_url: str) -> None:
        """Known only after the port is bound; the backend needs it to build grant_sas URLs."""
        self.base_url = base_url
        self.blobs.base_url = base_url

    def close(self) -> None:
        self.blobs.close()


def build_app(ctx: EmulatorContext) -> web.Application:
    """ARM first (its paths start with /subscriptions/), then the path-style blob plane as catch-all."""
    app = web.Application(client_max_size=8 * 1024 * 1024)  # a Put Page body is at most 4 MiB
    arm_clock = clock.ShiftedClock()
    arm.add_routes(app, ctx, arm_clock)
    blob.add_routes(app, ctx)
    clock.install(app, arm_clock, ctx.access_token)  # before the link model (it 404s other /_emulator/ paths)
    linkmodel.install(app, ctx.options.link, ctx.access_token)
    faults.install(app, ctx.options.faults, ctx.access_token)
    return app
