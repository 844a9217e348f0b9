"""Blob-plane authorization: bearer token, Shared Key and SAS (service, account, stored policy), and
the Entra ID token an Entra-ID-protected managed disk or snapshot needs besides its SAS.

The canonicalization mirrors what azure-storage-blob signs (`_shared/authentication.py` and
`_shared_access_signature.py` for the SDK's current `sv`), so the real SDK authenticates unchanged.
Bearer tokens are the emulator's root token or an Entra ID token of the emulated tenant
(entra/directory.py) for Storage's audience; a protected managed-disk resource needs, on every read
through its SAS, a token for `https://disk.azure.com/` whose identity holds the resource type's
download action. Signatures and tokens never appear in messages.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import unquote

from replicator.emulator.blob.backend import BlobBackend
from replicator.emulator.blob.rows import is_managed_account
from replicator.emulator.blob.signing import account_string_to_sign, service_string_to_sign, sign
from replicator.emulator.entra.directory import Directory
from replicator.emulator.entra.tokens import DISK_AUDIENCE, STORAGE_AUDIENCES, TokenRejected
from replicator.emulator.errors import blob as blob_errors

SIGNED_HEADERS = (
    "content-encoding",
    "content-language",
    "content-length",
    "content-md5",
    "content-type",
    "date",
    "if-modified-since",
    "if-match",
    "if-none-match",
    "if-unmodified-since",
    "range",
)  # fmt: skip  -- "Authorize with Shared Key": the standard Range header, as sent (x-ms-range is
# signed among the x-ms- headers); azure-storage-blob signs a "byte_range" header it never sends,
# an empty slot, which matches because it sends x-ms-range, never Range

# Account SAS resource types: s service, c container, o object.
RESOURCE_TYPE = {"service": "s", "container": "c", "blob": "o"}
SERVICE_SAS_CONTAINER_PERMISSION = "l"
"""The only container operation a service SAS grants is List Blobs ("Create a service SAS": containers
cannot be created, deleted or leased, nor their metadata and properties read or written)."""


@dataclass(frozen=True)
class Target:
    """What a request touches: names, the snapshot query value, and the permission letter it needs."""

    account: str
    container: str | None
    blob: str | None
    snapshot: str | None
    permission: str  # any of these letters grants it: r read, w write, d delete, l list, c create;
    # none: no SAS grants it (Set Container ACL)

    @property
    def resource(self) -> str:
        return "blob" if self.blob is not None else "container" if self.container is not None else "service"


@dataclass(frozen=True)
class SignedRequest:
    """The parts of an HTTP request that signatures cover (raw path and raw query as sent)."""

    method: str
    raw_path: str
    raw_query: str
    headers: Mapping[str, str]


def raw_query_dict(raw_query: str) -> dict[str, str]:
    """Query parameters as the SDK sees them (last value wins), values still percent-encoded."""
    out: dict[str, str] = {}
    for part in raw_query.split("&"):
        if part:
            name, _, value = part.partition("=")
            out[name] = value
    return out


def authorize(
    backend: BlobBackend, entra: Directory, access_token: str, req: SignedRequest, target: Target
) -> str:
    """Check the request's credential for `target`; returns "sas", "key" or "bearer"."""
    query = {k: unquote(v) for k, v in raw_query_dict(req.raw_query).items()}
    if "sig" in query:
        authorize_sas_read(backend, entra, access_token, query, target, req.headers.get("Authorization"))
        return "sas"
    header = req.headers.get("Authorization")
    if not header:
        raise blob_errors.no_authentication_information()
    scheme, _, value = header.partition(" ")
    if scheme == "Bearer":
        try:
            check_storage_bearer(entra, access_token, value)
        except TokenRejected as exc:
            refusal = blob_errors.invalid_authentication_info()
            raise blob_errors.with_challenge(
                refusal, entra.challenge(STORAGE_AUDIENCES[0]), exc.detail
            ) from None
        _refuse_managed(target)
        return "bearer"
    if scheme == "SharedKey":
        _check_shared_key(backend.account_key, req, target, value)
        _refuse_managed(target)
        return "key"
    raise blob_errors.invalid_authentication_info("The Authorization header scheme is not supported.")


def check_storage_bearer(entra: Directory, access_token: str, token: str) -> None:
    """The emulator's root token, or an Entra ID token for Storage (`https://storage.azure.com`, with or
    without the slash). Roles are not checked: non-managed accounts model no Storage data roles."""
    if not hmac.compare_digest(token.strip().encode(), access_token.encode()):
        entra.verify(token.strip(), STORAGE_AUDIENCES)


def storage_bearer_accepted(entra: Directory, access_token: str, header: str | None) -> bool:
    """Is `header` (`x-ms-copy-source-authorization`) `Bearer <token>` with a token Storage accepts?"""
    scheme, _, token = (header or "").partition(" ")
    if scheme != "Bearer":
        return False
    try:
        check_storage_bearer(entra, access_token, token)
    except TokenRejected:
        return False
    return True


def authorize_sas_read(
    backend: BlobBackend,
    entra: Directory,
    access_token: str,
    query: Mapping[str, str],
    target: Target,
    bearer: str | None,
    *,
    previous: bool = False,
) -> None:
    """A SAS (decoded query) for `target`; then, when `target` is a read of an Entra-ID-protected
    managed disk or snapshot, `bearer` (an `Authorization` or `x-ms-copy-source-authorization` value)
    must carry a disk token whose identity may download that resource type.

    `previous`: the target is the base of a diff (`x-ms-previous-snapshot-url`). Azure documents no
    answer for a protected base; the emulator authorizes it with the request's own token, or refuses
    the diff while `entra.refuse_protected_previous` is set (403 AuthorizationFailure, or 401
    InvalidAuthenticationInfo with the challenge when it is 401).
    """
    check_sas(backend, query, target)
    if not is_managed_account(target.account) or "r" not in target.permission or target.container is None:
        return
    resource_type = backend.protection(target.account, target.container)
    if resource_type is None:
        return  # an unprotected resource ignores an Authorization header (emulator assumption)
    challenge = entra.challenge(DISK_AUDIENCE)
    if previous and entra.refuse_protected_previous:
        refused = "A diff against an Entra-ID-protected previous snapshot is refused (emulator control)."
        if entra.refuse_protected_previous == 401:
            raise blob_errors.with_challenge(blob_errors.invalid_authentication_info(), challenge, refused)
        raise blob_errors.authorization_failure(refused)
    scheme, _, token = (bearer or "").partition(" ")
    if not bearer:
        raise blob_errors.with_challenge(
            blob_errors.no_authentication_information(), challenge, "This resource needs a bearer token."
        )
    if scheme != "Bearer":
        raise blob_errors.with_challenge(
            blob_errors.invalid_authentication_info(), challenge, "Only the Bearer scheme is accepted."
        )
    if hmac.compare_digest(token.strip().encode(), access_token.encode()):
        detail = "The emulator's root token has no audience; the disk plane needs a token for https://disk.azure.com/."
        raise blob_errors.with_challenge(blob_errors.invalid_authentication_info(), challenge, detail)
    try:
        claims = entra.verify(token.strip(), (DISK_AUDIENCE,))
    except TokenRejected as exc:
        raise blob_errors.with_challenge(
            blob_errors.invalid_authentication_info(), challenge, exc.detail
        ) from None
    if not entra.allows(claims, f"Microsoft.Compute/{resource_type}/download/action"):
        raise blob_errors.authorization_permission_mismatch()


def _refuse_managed(target: Target) -> None:
    if is_managed_account(target.account):
        raise blob_errors.authorization_failure(
            "Managed-disk storage accepts only the SAS returned by grant access."
        )


def _check_shared_key(account_key: str, req: SignedRequest, target: Target, value: str) -> None:
    account, _, signature = value.partition(":")
    if account != target.account:
        raise blob_errors.authentication_failed("The Shared Key account name does not match the URL.")
    headers = {k.lower(): v for k, v in req.headers.items() if v}
    if headers.get("content-length") == "0":
        del headers["content-length"]
    head = req.method + "\n" + "".join(headers.get(h, "") + "\n" for h in SIGNED_HEADERS)
    x_ms = [(k, v) for k, v in headers.items() if k.startswith("x-ms-")]
    query = sorted(raw_query_dict(req.raw_query).items())
    resource = f"/{account}{req.raw_path}" + "".join(f"\n{k.lower()}:{unquote(v)}" for k, v in query)
    # The SDK sorts x-ms- headers with the service's collation (hyphens weigh less than letters);
    # accept either that order or plain ordinal order.
    for key in (lambda kv: kv[0], lambda kv: (kv[0].replace("-", ""), kv[0])):
        canonical = "".join(f"{k}:{v}\n" for k, v in sorted(x_ms, key=key))
        if hmac.compare_digest(sign(account_key, head + canonical + resource), signature):
            return
    raise blob_errors.authentication_failed("The Shared Key signature did not match.")


def _parse_time(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise blob_errors.authentication_failed(
            "A SAS start or expiry time is not in ISO 8601 format."
        ) from None


def check_sas(backend: BlobBackend, query: Mapping[str, str], target: Target) -> None:
    """Validate a SAS (decoded query parameters) for `target`: signature, policy, time, permission."""
    if any(k in query for k in ("skoid", "sktid", "sduoid")):
        raise blob_errors.authentication_failed("User delegation SAS is not supported by the emulator.")
    if "ss" in query or "srt" in query:
        permissions, start, expiry = _check_account_sas(backend.account_key, query, target)
    else:
        permissions, start, expiry = _check_service_sas(backend, query, target)
        if target.resource == "container" and target.permission != SERVICE_SAS_CONTAINER_PERMISSION:
            # Azure's "SAS error codes": calling an operation the SAS kind cannot grant is
            # AuthorizationFailure; a service SAS, even one scoped to the container, grants no
            # container operation but List Blobs.
            raise blob_errors.authorization_failure()
    if not target.permission:  # "attempting to modify an ACL": AuthorizationFailure
        raise blob_errors.authorization_failure()
    now = time.time()
    if expiry is None or now >= expiry or (start is not None and now < start):
        raise blob_errors.authentication_failed("The SAS is not valid at this time (start/expiry).")
    if not any(letter in permissions for letter in target.permission):
        raise blob_errors.authorization_permission_mismatch()


def _check_account_sas(
    account_key: str, q: Mapping[str, str], target: Target
) -> tuple[str, float | None, float | None]:
    if is_managed_account(target.account):
        raise blob_errors.authorization_failure(
            "Managed-disk storage accepts only the SAS returned by grant access."
        )
    if not hmac.compare_digest(sign(account_key, account_string_to_sign(target.account, q)), q["sig"]):
        raise blob_errors.authentication_failed("The SAS signature did not match.")
    if "b" not in q.get("ss", ""):
        raise blob_errors.authorization_service_mismatch()
    if RESOURCE_TYPE[target.resource] not in q.get("srt", ""):
        raise blob_errors.authorization_resource_type_mismatch()
    return q.get("sp", ""), _parse_time(q.get("st")), _parse_time(q.get("se"))


def _check_service_sas(
    backend: BlobBackend, q: Mapping[str, str], target: Target
) -> tuple[str, float | None, float | None]:
    resource = q.get("sr", "")
    if resource not in ("b", "bs", "c") or target.container is None:
        raise blob_errors.authorization_resource_type_mismatch()
    if resource != "c" and target.blob is None:
        raise blob_errors.authorization_resource_type_mismatch()
    path = f"/{target.container}" if resource == "c" else f"/{target.container}/{target.blob}"
    signed = dict(q)
    signed["snapshot"] = (target.snapshot or "") if resource == "bs" else ""
    if not hmac.compare_digest(
        sign(backend.account_key, service_string_to_sign(target.account, path, signed)), q["sig"]
    ):
        raise blob_errors.authentication_failed("The SAS signature did not match.")
    policy_id = q.get("si")
    if policy_id is None:
        if is_managed_account(target.account):
            raise blob_errors.authorization_failure(
                "Managed-disk storage accepts only the SAS returned by grant access."
            )
        return q.get("sp", ""), _parse_time(q.get("st")), _parse_time(q.get("se"))
    policy = backend.policy(target.account, target.container, policy_id)
    if policy is None:
        raise blob_errors.authentication_failed("The SAS's stored access policy does not exist (revoked).")
    return (
        q.get("sp", policy.permissions),
        _parse_time(q.get("st")) or policy.start,
        _parse_time(q.get("se")) or policy.expiry,
    )
