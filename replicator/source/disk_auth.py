"""Entra-ID-protected snapshots: the disk token every data-plane request to them carries besides the SAS.

Hardened tenants set `dataAccessAuthMode: AzureActiveDirectory` on disks and snapshots. A SAS from
`beginGetAccess` on such a snapshot is then not enough: every request to its `md-...` URL (Get Blob,
Get Blob Properties, Get Page Ranges and its diff) must also carry `Authorization: Bearer <token>`
whose audience is `https://disk.azure.com/`, and the identity behind the token needs the role "Data
Operator for Managed Disks" (or a custom role with `Microsoft.Compute/snapshots/download/action`) on
it. Put Page From URL from such a source carries the token as `x-ms-copy-source-authorization`
(Bearer only); the target keeps its own credential.

Why one module: every data-plane client of the source is built here (`DiskAuth.client`: the listing,
the size, stream-mode reads, `--verify`), so the rule "the disk token on a protected snapshot, nothing
on any other" has one implementation, and so does its detection:

- from ARM: `SnapshotInfo.protected` (the snapshot's `dataAccessAuthMode`), known before the first
  request;
- from the service, as a fallback (AzCopy's `mdAccountNeedsOAuth`): a 401 (sometimes 403) whose
  `WWW-Authenticate` challenge names `resource_id=https://disk.azure.com/` on a request that carried
  no token switches the request's snapshots to bearer mode and repeats the request once, with the
  token (`_DiskBearerPolicy`). A request that carried the token is never repeated for a challenge:
  its refusal is the identity's (`refused_identity`), which a re-grant or a second try cannot fix.
  There is no separate probe: the request that meets the challenge is the run's own, on the URL the
  grant handed out, query and all (AzCopy's probe once dropped `?snapshot=` and asked the wrong
  blob: its PR #2542).

The token comes from the run's credential (plumbing.credentials: `async_credential`, so
DefaultAzureCredential: a managed identity, `az login`, ...), is cached and refreshed five minutes
before it expires, as azure-core's bearer policy and AzCopy's source policy do (`DiskToken`).
REPLICATOR_ACCESS_TOKEN (one static token for every scope) cannot serve a protected source: the disk
plane refuses any token not issued for its audience, so that is a UserError before anything is granted.

Secrets: the token never appears in a log line, an error or a repr (`DiskToken` hides it; the SDKs'
wire log redacts both headers; replicator.core.redact masks any `Bearer` value that slips through).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import os
import re
from collections.abc import Iterable
from typing import Any, Protocol

from azure.core.credentials import AccessToken, AccessTokenInfo
from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import AsyncHTTPPolicy
from azure.storage.blob.aio import BlobClient

from replicator.core import messages
from replicator.core.errors import UserError
from replicator.observe.jsonlog import event
from replicator.plumbing.credentials import ACCESS_TOKEN_ENV, AsyncStaticTokenCredential, CachedToken

log = logging.getLogger(__name__)

ENTRA_MODE = "AzureActiveDirectory"
"""The `dataAccessAuthMode` of a protected disk or snapshot (the other value is "None")."""

DISK_RESOURCE = "https://disk.azure.com/"
"""The audience the disk plane accepts, exactly, trailing slash included; its challenge names it."""

DISK_SCOPE = "https://disk.azure.com//.default"
"""The token scope for DISK_RESOURCE, with a double slash on purpose.

A scope is the resource ID followed by `/.default`; Entra ID issues the token for the part before
`/.default` as its audience. `https://disk.azure.com/.default` yields the audience
`https://disk.azure.com` (no trailing slash), which the disk plane refuses: it checks for
`https://disk.azure.com/` exactly (AzCopy, common/oauthTokenManager.go `ManagedDiskScope`; the
JavaScript storage SDK's challenge policy rewrites the single-slash scope to this one)."""

DATA_ROLE = "Data Operator for Managed Disks"
DATA_ROLE_ID = "959f8984-c045-4866-89c7-12bf9737be2e"
DOWNLOAD_ACTION = "Microsoft.Compute/snapshots/download/action"
"""The role a reader of a protected snapshot needs (its ID), or a custom role with this data action."""

SAS_REFUSAL_CODE = "AuthenticationFailed"
"""Storage's code for a SAS it cannot verify (expired, revoked): the one 403 a re-grant fixes."""

_CHALLENGE_RESOURCE = re.compile(r"""resource_id\s*=\s*["']?https://disk\.azure\.com/?["',\s]""", re.I)

_CREDENTIAL_KINDS = {
    "ManagedIdentityCredential": "managed identity",
    "WorkloadIdentityCredential": "workload identity",
    "EnvironmentCredential": "service principal of AZURE_CLIENT_ID",
    "AzureCliCredential": "Azure CLI login",
    "AzureDeveloperCliCredential": "Azure Developer CLI login",
    "AzurePowerShellCredential": "Azure PowerShell login",
    "SharedTokenCacheCredential": "shared token cache account",
    "VisualStudioCodeCredential": "Visual Studio Code login",
    "InteractiveBrowserCredential": "browser login",
}
"""What DefaultAzureCredential's chosen credential is, in an operator's words (the identity kind a
missing-role sentence names)."""


class Protectable(Protocol):
    """What this module needs of a snapshot (replicator.source.arm.SnapshotInfo has it)."""

    @property
    def id(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def data_access_auth_mode(self) -> str | None: ...

    @property
    def protected(self) -> bool: ...


def names_disk_plane(headers: Any) -> bool:
    """A `WWW-Authenticate` challenge naming the disk plane's resource (quoted or not, with or without
    its trailing slash, comma-separated or not: Azure's and the Go SDK's tests show each)."""
    challenge = str(headers.get("WWW-Authenticate") or "")
    return challenge.lower().startswith("bearer") and bool(_CHALLENGE_RESOURCE.search(challenge + " "))


def bearer_sent(err: BaseException) -> bool:
    """Whether the request an error answers carried a bearer token (the disk token: the source's
    requests carry no other)."""
    request = getattr(getattr(err, "response", None), "request", None)
    headers = getattr(request, "headers", None) or {}
    return str(headers.get("Authorization", "")).startswith("Bearer ")


def refused_sas(err: BaseException) -> bool:
    """A 403 that a re-grant may fix: any 403 of a request without the disk token (the SAS expired or
    another run revoked it), and with it only AuthenticationFailed (the SAS; any other code refuses
    the identity)."""
    if not isinstance(err, HttpResponseError) or err.status_code != 403:
        return False
    return not bearer_sent(err) or messages.error_code(err) == SAS_REFUSAL_CODE


def refused_identity(err: BaseException) -> bool:
    """The disk plane refused a request that carried the disk token: the token (401) or the
    identity's role (403) is the problem, not the SAS (once it survived a re-grant)."""
    return isinstance(err, HttpResponseError) and err.status_code in (401, 403) and bearer_sent(err)


class DiskToken(CachedToken):
    """The run credential's token for DISK_SCOPE (plumbing.credentials.CachedToken), whose failure is
    the sentence naming the role a protected snapshot needs."""

    def __init__(self, credential: AsyncTokenCredential) -> None:
        super().__init__(credential, DISK_SCOPE)

    async def _fetch(self) -> AccessToken | AccessTokenInfo:
        try:
            return await super()._fetch()
        except ClientAuthenticationError as err:
            raise UserError(
                f"No Azure credential could get a token for the disk plane ({DISK_RESOURCE}), which an "
                f"Entra-ID-protected snapshot needs ({messages.cause(err, 160)}): use a managed identity "
                f"or `az login` with the role {DATA_ROLE} on the snapshot."
            ) from None

    def claims(self) -> dict[str, Any]:
        """The cached token's claims, read (never verified) for the identity's object ID, which a
        refusal names (an ID, not a secret); empty when there is none or it is not a JSON Web Token."""
        if self._token is None:
            return {}
        parts = self._token.token.split(".")
        if len(parts) != 3:
            return {}
        try:
            payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        except (binascii.Error, ValueError):
            return {}
        return payload if isinstance(payload, dict) else {}


class DiskAuth:
    """The run's disk-plane authorization: which snapshots need the disk token, and the token.

    One per ArmSource (its credential); shared by every client of the source, so a snapshot switched
    to bearer mode by a challenge stays switched for every later request of the run.
    """

    def __init__(self, credential: AsyncTokenCredential) -> None:
        self._credential = credential
        self._static = isinstance(credential, AsyncStaticTokenCredential)
        self._token = DiskToken(credential)
        self._detected: set[str] = set()  # snapshot IDs (casefolded) switched by a challenge

    def __repr__(self) -> str:
        return f"DiskAuth(detected={len(self._detected)}, {self._token!r})"

    def needs_bearer(self, *snapshots: Protectable) -> bool:
        """Whether a request naming these snapshots (a diff names two) carries the disk token."""
        return any(s.protected or s.id.casefold() in self._detected for s in snapshots)

    def auth_mode(self, snapshot: Protectable) -> str:
        """The snapshot's `dataAccessAuthMode` as a restore point records it: ARM's value, or ENTRA_MODE
        when the service showed it protected; "" when ARM said nothing."""
        return ENTRA_MODE if self.needs_bearer(snapshot) else (snapshot.data_access_auth_mode or "")

    def check_credential(self, name: str, kind: str = "snapshot") -> None:
        """UserError, before anything is granted or taken, when the run's credential cannot get a disk
        token for the protected `kind` (snapshot, or the disk --snapshot-now is about to snapshot)."""
        if self._static:
            raise UserError(
                f"the {kind} {name} is protected by Entra ID (dataAccessAuthMode {ENTRA_MODE}) "
                f"and its data plane accepts only a token issued for {DISK_RESOURCE}, which "
                f"{ACCESS_TOKEN_ENV} (one static token for every scope) is not; unset {ACCESS_TOKEN_ENV} "
                "so that DefaultAzureCredential asks for that audience (a managed identity or `az login` "
                f"holding the role {DATA_ROLE} on the {kind})."
            )

    async def authorization(self, *snapshots: Protectable) -> str | None:
        """`Bearer <disk token>` for a request naming these snapshots, or None when none needs it."""
        if not self.needs_bearer(*snapshots):
            return None
        self.check_credential(snapshots[0].name)
        return f"Bearer {await self._token.get()}"

    def detected(self, snapshots: Iterable[Protectable], status: int) -> None:
        """The service answered a request without the disk token with the disk plane's challenge."""
        found = [s for s in snapshots if s.id.casefold() not in self._detected]
        self._detected.update(s.id.casefold() for s in found)
        for snap in found:
            event(
                "disk_auth_detected",
                logging.INFO,
                message=f"{snap.name} answered {status} with a challenge for {DISK_RESOURCE} although ARM "
                f"did not report it protected: its data access needs an Entra ID token; sending one "
                "from now on",
                snapshot=snap.id,
                status=status,
            )

    def client(self, url: str, *snapshots: Protectable, **kwargs: Any) -> BlobClient:
        """A data-plane client on a SAS URL of `snapshots[0]` (a diff's requests name the others too):
        the one builder of the source's clients, so each of their requests goes through the policy.

        azure-storage-blob's clients take no per-retry policy but `_additional_pipeline_policies`, whose
        policies follow its retry policy (each attempt goes through them); tests/unit/test_disk_auth.py
        sees the header arrive, so an SDK that dropped the keyword would fail it."""
        policy = _DiskBearerPolicy(self, snapshots)
        return BlobClient.from_blob_url(url, _additional_pipeline_policies=[policy], **kwargs)

    def refusal(self, err: HttpResponseError, snapshot: Protectable) -> UserError:
        """The sentence of a disk plane that refused a request carrying the disk token (refused_identity)."""
        answer = messages.describe(err)
        who = self.identity()
        if err.status_code == 401:
            return UserError(
                f"the disk plane refused the Entra ID token of {who} for the protected snapshot "
                f"{snapshot.name} ({answer}); the token must be issued for {DISK_RESOURCE} in the "
                "snapshot's tenant: check the credential (AZURE_TENANT_ID, AZURE_CLIENT_ID)."
            )
        return UserError(
            f"{who} may not read the Entra-ID-protected snapshot {snapshot.name} ({answer}): assign it "
            f"the role {DATA_ROLE} ({DATA_ROLE_ID}), or a custom role with {DOWNLOAD_ACTION}, on the "
            "snapshot or its resource group."
        )

    def identity(self) -> str:
        """The identity whose token was refused, as far as the run knows it: the credential
        DefaultAzureCredential chose (the user-assigned identity's client ID) and the token's object ID."""
        chosen = getattr(self._credential, "_successful_credential", None) or self._credential
        kind = _CREDENTIAL_KINDS.get(type(chosen).__name__, "the run's identity")
        if kind == "managed identity":
            client_id = os.environ.get("AZURE_CLIENT_ID")
            kind = f"user-assigned managed identity {client_id}" if client_id else f"system-assigned {kind}"
        oid = self._token.claims().get("oid")
        described = kind if kind.startswith("the ") else f"the {kind}"
        return f"{described} (object ID {oid})" if isinstance(oid, str) and oid else described


class _DiskBearerPolicy(AsyncHTTPPolicy):  # type: ignore[type-arg]
    """The last policy of a source client's pipeline (inside its retries, so every attempt is
    authorized afresh): the disk token when the request's snapshots need it; on the disk plane's
    challenge to a request without it, bearer mode and one repeat."""

    def __init__(self, auth: DiskAuth, snapshots: tuple[Protectable, ...]) -> None:
        super().__init__()
        self._auth = auth
        self._snapshots = snapshots

    async def _authorize(self, request: PipelineRequest[Any]) -> bool:
        header = await self._auth.authorization(*self._snapshots)
        if header is not None:
            request.http_request.headers["Authorization"] = header
        return header is not None

    async def send(self, request: PipelineRequest[Any]) -> PipelineResponse[Any, Any]:
        sent = await self._authorize(request)
        response = await self.next.send(request)
        answer = response.http_response
        if sent or answer.status_code not in (401, 403) or not names_disk_plane(answer.headers):
            return response
        self._auth.detected(self._snapshots, answer.status_code)
        _discard(answer)
        await self._authorize(request)
        return await self.next.send(request)


def _discard(answer: Any) -> None:
    """Give the refused answer's connection back before the repeat (a streamed Get Blob holds it)."""
    internal = getattr(answer, "internal_response", None)
    if internal is not None:
        with contextlib.suppress(Exception):  # a connection that cannot be released is closed by the pool
            internal.release()
