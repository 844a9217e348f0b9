"""What every part of one emulator process shares: its options, its secrets, the blob backend, the
emulated Entra ID tenant, the ARM clock, its URL.

app.py builds it and the route modules (arm.py, blob.py beside it) read it; it lives apart from
app.py so that the route modules need not import the module that imports them.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from pathlib import Path

from replicator.emulator.blob.accounts import Accounts
from replicator.emulator.blob.backend import BlobBackend
from replicator.emulator.entra.directory import Directory
from replicator.emulator.middleware.clock import ShiftedClock
from replicator.emulator.middleware.faults import FaultOptions
from replicator.emulator.middleware.linkmodel import LinkOptions


@dataclass
class EmulatorOptions:
    """The knobs of one emulator process (command-line options of `replicate emulator`)."""

    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 0
    max_page_ranges: int = 10000  # ranges per Get Page Ranges answer; Azure's documented page size
    # Get Page Ranges times out (500 OperationTimedOut) when the rest of its window holds more ranges
    list_timeout_ranges: int | None = None
    completion_seconds: float = 30.0  # PremiumV2/Ultra snapshot completionPercent goes 0 -> 100 in this time
    subscription_id: str = "00000000-0000-0000-0000-000000000001"
    env_file: Path | None = None  # where to also write the env keys as KEY=VALUE lines
    link: LinkOptions = field(default_factory=LinkOptions)  # latency, per-blob limits (linkmodel)
    faults: FaultOptions = field(default_factory=FaultOptions)  # injected failures (middleware/faults.py)
    sas_max_seconds: int = 24 * 3600  # longest SAS a grant hands out (routes/arm.py passes it to ArmLimits)


@dataclass(frozen=True)
class Secrets:
    """What `DIR/secrets.json` keeps (server.py creates and completes it): the root bearer token, the
    account key, the managed-identity endpoint's header secret and the Entra token signing key."""

    access_token: str
    account_key: str
    identity_header: str
    signing_key: str  # base64 of 32 random bytes

    def __repr__(self) -> str:
        return "Secrets(...)"  # never printed by accident


@dataclass
class EmulatorContext:
    """What every handler needs: options, secrets, the blob backend, the tenant, the ARM clock and
    the public base URL."""

    options: EmulatorOptions
    secrets: Secrets
    blobs: BlobBackend
    entra: Directory
    clock: ShiftedClock  # dates what ARM creates and the tokens Entra issues; tests set it back
    base_url: str = field(default="")
    accounts: Accounts = field(default_factory=Accounts)  # premium page-blob accounts (blob/accounts.py)

    @property
    def access_token(self) -> str:
        return self.secrets.access_token

    @property
    def account_key(self) -> str:
        return self.secrets.account_key

    @classmethod
    def open(cls, options: EmulatorOptions, secrets: Secrets) -> EmulatorContext:
        backend = BlobBackend(options.data_dir, account_key=secrets.account_key)
        clock = ShiftedClock()
        entra = Directory(options.data_dir, base64.b64decode(secrets.signing_key), clock)
        return cls(options=options, secrets=secrets, blobs=backend, entra=entra, clock=clock)

    def set_base_url(self, base_url: str) -> None:
        """Known only after the port is bound; the backend needs it to build grant_sas URLs."""
        self.base_url = base_url
        self.blobs.base_url = base_url

    def close(self) -> None:
        self.blobs.close()
