"""Entra ID access tokens as the emulator issues and checks them: JWTs signed HS256 with a secret of the
data dir, carrying the claims a managed identity's token carries (`aud`, `iss`, `iat`, `nbf`, `exp`,
`appid`, `oid`, `sub`, `tid`, `idtyp`, `ver`).

Why real JWTs: the services decide by the audience (`aud`), and the audience is where clients go
wrong. A token for `https://disk.azure.com/.default` has `aud` `https://disk.azure.com`, which the
managed-disk data plane refuses; the double-slash scope `https://disk.azure.com//.default` gives
`https://disk.azure.com/`, the one it accepts (AzCopy's `common/oauthTokenManager.go`: "The service
checks explicitly for https://disk.azure.com/"). The audience is the resource asked for, verbatim,
as the managed-identity endpoints hand it out. Azure signs RS256 with published keys; nothing here
needs a client to check a signature, so a shared secret does (the emulator is the only verifier).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Collection
from dataclasses import dataclass

TOKEN_LIFETIME_SECONDS = 24 * 3600  # managed-identity tokens live about a day (App Service, IMDS)
DISK_AUDIENCE = "https://disk.azure.com/"
"""The only audience the managed-disk data plane accepts (AzCopy's MDResource, trailing slash included)."""
STORAGE_AUDIENCES = ("https://storage.azure.com", "https://storage.azure.com/")
ARM_AUDIENCES = (
    "https://management.core.windows.net/",
    "https://management.core.windows.net",
    "https://management.azure.com/",
    "https://management.azure.com",
)  # ARM's InvalidAuthenticationTokenAudience message lists exactly these four
_HEADER = {"alg": "HS256", "typ": "JWT"}


class TokenRejected(Exception):
    """A bearer token a service refuses; `detail` is one sentence in the manner of Storage's
    `AuthenticationErrorDetail` (it never repeats the token)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class WrongAudience(TokenRejected):
    def __init__(self, audience: str) -> None:
        super().__init__("Audience validation failed. Audience did not match.")
        self.audience = audience


class Expired(TokenRejected):
    def __init__(self, expired_at: int) -> None:
        super().__init__("Lifetime validation failed. The token is expired.")
        self.expired_at = expired_at


@dataclass(frozen=True)
class Claims:
    """What a service reads from a valid token: for whom (audience), and who (application, object)."""

    audience: str
    app_id: str  # the identity's client ID: how the emulator finds its roles
    object_id: str
    tenant_id: str
    expires: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenAuthority:
    """Issues and verifies the tenant's tokens with one signing key."""

    def __init__(self, signing_key: bytes, tenant_id: str) -> None:
        self._key = signing_key
        self.tenant_id = tenant_id

    @property
    def issuer(self) -> str:
        return f"https://sts.windows.net/{self.tenant_id}/"  # a v1 token's issuer, as managed identities get

    def issue(self, resource: str, *, app_id: str, object_id: str, now: float) -> tuple[str, int]:
        """A token for `resource` (its `aud`, verbatim) and its expiry in epoch seconds."""
        issued = int(now)
        expires = issued + TOKEN_LIFETIME_SECONDS
        claims = {
            "aud": resource, "iss": self.issuer, "iat": issued, "nbf": issued, "exp": expires,
            "appid": app_id, "oid": object_id, "sub": object_id, "tid": self.tenant_id,
            "idtyp": "app", "ver": "1.0",
        }  # fmt: skip
        signing_input = f"{_b64(json.dumps(_HEADER).encode())}.{_b64(json.dumps(claims).encode())}"
        return f"{signing_input}.{_b64(self._sign(signing_input))}", expires

    def verify(self, token: str, audiences: Collection[str], *, now: float) -> Claims:
        """The claims of a token this authority signed, for one of `audiences`, valid at `now`."""
        parts = token.split(".")
        if len(parts) != 3:
            raise TokenRejected("The token is not a JWT (three base64url parts separated by dots).")
        try:
            header, claims, signature = (
                json.loads(_unb64(parts[0])),
                json.loads(_unb64(parts[1])),
                _unb64(parts[2]),
            )
        except (ValueError, binascii.Error):
            raise TokenRejected("The token is not a JWT (its parts do not decode).") from None
        if not isinstance(header, dict) or header.get("alg") != "HS256" or not isinstance(claims, dict):
            raise TokenRejected("Signature validation failed: the token was not issued by this tenant.")
        if not hmac.compare_digest(self._sign(f"{parts[0]}.{parts[1]}"), signature):
            raise TokenRejected("Signature validation failed: the token was not issued by this tenant.")
        if claims.get("iss") != self.issuer or claims.get("tid") != self.tenant_id:
            raise TokenRejected("Issuer validation failed: the token was issued by another tenant.")
        if int(claims.get("nbf", 0)) > now:
            raise TokenRejected("Lifetime validation failed. The token is not yet valid.")
        if int(claims["exp"]) <= now:
            raise Expired(int(claims["exp"]))
        if claims.get("aud") not in audiences:
            raise WrongAudience(str(claims.get("aud")))
        return Claims(claims["aud"], claims["appid"], claims["oid"], claims["tid"], int(claims["exp"]))

    def _sign(self, signing_input: str) -> bytes:
        return hmac.new(self._key, signing_input.encode(), hashlib.sha256).digest()
