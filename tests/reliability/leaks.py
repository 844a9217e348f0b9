"""The "no secret anywhere" oracle: what a run printed or logged carries no SAS signature, account key
or token. Used by every end-to-end CLI run (tests/e2e/conftest.py) and by the reliability campaign."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

SECRET_ENVS = ("REPLICATOR_ACCESS_TOKEN", "REPLICATOR_ACCOUNT_KEY", "IDENTITY_HEADER")
"""Environment keys whose values are credentials (the emulator prints them; a run must not)."""

# A SAS signature that was not masked: `sig=` (plain or URL-encoded, once or twice) followed by
# anything but replicator.core.redact's mask.
_UNMASKED_SIG = re.compile(r"sig(?:=|%3D|%253D)(?!REDACTED)[A-Za-z0-9%+/]", re.IGNORECASE)
_BEARER = re.compile(r"Bearer\s+(?!REDACTED)[A-Za-z0-9._~+/-]{8,}")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.")  # an issued token, whatever precedes it


def find_leaks(text: str, env: Mapping[str, str] | None = None) -> list[str]:
    """What in `text` looks like a leaked secret (empty: nothing)."""
    env = os.environ if env is None else env
    leaks = [f"the value of {key}" for key in SECRET_ENVS if env.get(key) and env[key] in text]
    leaks += [f"an unmasked SAS signature near {m.start()}" for m in _UNMASKED_SIG.finditer(text)]
    leaks += [f"a bearer token near {m.start()}" for m in _BEARER.finditer(text)]
    leaks += [f"a JSON Web Token near {m.start()}" for m in _JWT.finditer(text)]
    return leaks


def assert_no_leaks(text: str, env: Mapping[str, str] | None = None) -> None:
    leaks = find_leaks(text, env)
    assert not leaks, f"secrets in the output: {', '.join(leaks)}"
