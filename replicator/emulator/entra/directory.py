"""The emulated tenant as the services see it: tokens for an identity, their verification, the
actions an identity holds, the challenge a refusing service sends, and the switches tests flip.

One object (`Directory`, on the emulator's context) so that the identity endpoint, ARM and the blob
plane's authorization (blob/auth.py) agree on one tenant, one signing key and one clock.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from pathlib import Path

from replicator.emulator.entra.identities import Identities, Identity
from replicator.emulator.entra.tokens import Claims, TokenAuthority

TENANT_ID = "00000000-0000-0000-0000-0000000000e1"  # the emulator's one tenant


class Directory:
    """Tokens, identities and switches of the emulated tenant.

    `clock` dates the tokens it issues and checks: the ARM clock, which tests may set back, so an
    expired token needs no waiting (issue one while the clock is a day back).
    """

    def __init__(self, data_dir: Path, signing_key: bytes, clock: Callable[[], float]) -> None:
        self.authority = TokenAuthority(signing_key, TENANT_ID)
        self.identities = Identities(data_dir / "identities.json")
        self.clock = clock
        # PUT /_emulator/entra: refuse diffs against a protected base (True or 403: 403, 401: 401)
        self.refuse_protected_previous: bool | int = False

    @property
    def tenant_id(self) -> str:
        return self.authority.tenant_id

    def issue(self, resource: str, client_id: str | None) -> tuple[Identity, str, int]:
        """A token of the identity `client_id` names (None: the system-assigned one) for `resource`."""
        identity = self.identities.get(client_id)
        token, expires = self.authority.issue(
            resource, app_id=identity.client_id, object_id=identity.object_id, now=self.clock()
        )
        return identity, token, expires

    def verify(self, token: str, audiences: Collection[str]) -> Claims:
        """Claims of a valid token for one of `audiences`; tokens.TokenRejected otherwise."""
        return self.authority.verify(token, audiences, now=self.clock())

    def allows(self, claims: Claims, action: str) -> bool:
        """Does the token's identity hold `action` now (roles are read per request, as RBAC is)?"""
        return self.identities.get(claims.app_id).allows(action)

    def challenge(self, resource: str) -> str:
        """The `WWW-Authenticate` value of a Storage refusal: unquoted, space-separated, as Azure
        Storage sends it and the SDKs' challenge parsers read it (Python's StorageHttpChallenge, Go's
        azblob challenge policy, AzCopy's check for the disk resource)."""
        authorize = f"https://login.microsoftonline.com/{self.tenant_id}/oauth2/authorize"
        return f"Bearer authorization_uri={authorize} resource_id={resource}"
