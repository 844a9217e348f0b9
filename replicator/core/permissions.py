"""What each command needs of the target's credential: checked from the SAS before any request, and
read back from a 403 when the URL does not show it.

Why one table: a SAS that lacks a permission is bad input (exit 2, one sentence naming the missing
letter, what needs it and the fix), whether the URL shows it (`sp`, `sr`, `ss`, `srt`: checked
before anything is granted or written) or only the service knows it (a role or bearer token, a
stored access policy `si=` whose permissions the URL does not carry: the 403's error code tells).
Both paths read `OPERATIONS` and `COMMANDS`, and docs/runbook.md's SAS table is checked against
them (tests/unit/test_permissions.py), so the three cannot drift.

Azure's rules, from "Create a service SAS" (permissions for a container or blob), "Create an
account SAS" (Blob service operations by signed resource type and permission) and "SAS error codes":

- Any one of an operation's letters grants it: Put Blob of a new page blob and Snapshot Blob take
  create (c) or write (w); Put Page (also From URL), Set Blob Metadata/Properties (resize) and Lease
  Blob take w; Get Blob/Properties/Page Ranges take r; Delete Blob d; List Blobs l.
- List Blobs is a container operation: a service SAS reaches it only when scoped to the container
  (`sr=c`, or `sr=d` a directory), an account SAS only with resource type c (`srt`); the blob
  operations need `sr=b`/`c`/`d` or resource type o. A snapshot or version SAS (`sr=bs`, `bv`)
  opens that one snapshot, never the base blob. An account SAS works only with the blob service in
  `ss`.
- A service or user delegation SAS always carries `sr`, an account SAS `ss`, `srt` and `sp` (both
  pages list them as required): a SAS with neither `sr` nor `ss`/`srt` was cut short.
- A refused permission is 403 `AuthorizationPermissionMismatch` (a SAS or a role alike); a SAS of
  the wrong scope `AuthorizationResourceTypeMismatch`; an account SAS of another service
  `AuthorizationServiceMismatch`; anything else the SAS kind cannot do, or a firewall,
  `AuthorizationFailure`.

Nothing here does I/O; the target adapter (replicator.target.page_blob) calls `check_sas` before its first
request and `refused` on a 403. `sp`, `sr`, `ss`, `srt` and `si` are not secret (only `sig` is: see
replicator.core.redact), so sentences may quote them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qsl, urlsplit

from replicator.core.errors import UserError

Level = Literal["object", "container"]

LETTER_NAMES = {"r": "read", "a": "add", "c": "create", "w": "write", "d": "delete", "l": "list"}
LETTER_ORDER = "racwdxltmeopi"
"""The order Azure wants the letters of `sp` in ("Create a service SAS")."""

READER = "Storage Blob Data Reader"
CONTRIBUTOR = "Storage Blob Data Contributor"


@dataclass(frozen=True)
class Operation:
    """One Azure operation the tool makes on the target, and which SAS letters grant it."""

    azure: str  # Azure's operation names
    letters: str  # any one of them grants it; the first is the one a fix asks for
    level: Level  # "container": List Blobs; "object": the blob and its snapshots


OPERATIONS: dict[str, Operation] = {
    "read": Operation("Get Blob Properties, Get Blob, Get Page Ranges", "r", "object"),
    "create": Operation("Put Blob (a new page blob)", "wc", "object"),
    "write": Operation("Put Page (From URL, clear), Set Blob Metadata, Set Blob Properties", "w", "object"),
    "lease": Operation("Lease Blob (acquire, renew, release)", "w", "object"),
    "snapshot": Operation("Snapshot Blob", "wc", "object"),
    "list": Operation("List Blobs (snapshots, metadata)", "l", "container"),
    "delete": Operation("Delete Blob (a restore point)", "d", "object"),
}


@dataclass(frozen=True)
class Need:
    """An operation a command makes, what for, and whether the command can do without it."""

    operation: str  # a key of OPERATIONS
    purpose: str  # completes "needs write (w) to ..."
    required: bool = True


_READ_STATE = Need("read", "read the target's state")
_LIST = Need("list", "list the restore points")
_LEASE = Need("lease", "hold the target's lease")

COMMANDS: dict[str, tuple[Need, ...]] = {
    "replicate": (
        Need("read", "read the target's state (and its bytes with --verify)"),
        Need("create", "create the base blob"),
        Need("write", "write the replica"),
        _LEASE,
        Need("snapshot", "take restore points"),
        Need("list", "check the restore points for a duplicate", required=False),
        Need("delete", "delete a duplicate restore point a resent request took", required=False),
    ),
    "replicate (VM)": (
        Need("read", "read the targets' state and the group manifests (and the bytes with --verify)"),
        Need("create", "create the base blobs and the group manifests"),
        Need("write", "write the replicas and record each disk's commit in the group manifest"),
        _LEASE,
        Need("snapshot", "take restore points"),
        Need("list", "find the groups and each disk's restore points"),
        Need("delete", "delete a duplicate restore point a resent request took", required=False),
    ),
    "replicate --plan": (_READ_STATE,),
    "replicate --plan (VM)": (_READ_STATE, Need("list", "find the groups and each disk's restore points")),
    "list": (_READ_STATE, _LIST),
    "prune": (_READ_STATE, _LIST, _LEASE, Need("delete", "delete restore points")),
    "prune --dry-run": (_READ_STATE, _LIST),
    "restore": (Need("read", "read the target's state and the restore point's VHD footer"), _LIST),
    "status": (_READ_STATE, _LIST),
    "drill": (
        Need("read", "read the target's state and the restore point's bytes"),
        _LIST,
        _LEASE,
        Need("write", "record the drill's result in the target's metadata"),
    ),
}
"""Every command that touches the target and what it does there (`status` is read-only, as `list`;
`replicate (VM)` is `replicate` of a virtual machine, whose --target is a prefix holding a blob per
disk and the group manifests).
A need that is not `required` is used when granted (replicate lists restore points to find a
duplicate a resent request took); without it the command goes on and says so in a warning."""


def command_name(command: str) -> str:
    """How the user typed it: `replicate prune --dry-run`."""
    return command if command.startswith("replicate") else f"replicate {command}"


def letters(command: str) -> str:
    """The SAS permissions `command` requires, in Azure's order: what a fix asks for."""
    wanted = {OPERATIONS[n.operation].letters[0] for n in COMMANDS[command] if n.required}
    return "".join(sorted(wanted, key=LETTER_ORDER.index))


def needs_container(command: str) -> bool:
    """Whether `command` requires a container operation (List Blobs), which no blob SAS can serve."""
    return any(OPERATIONS[n.operation].level == "container" for n in COMMANDS[command] if n.required)


def role(command: str) -> str:
    """The built-in role that lets an identity do all of `command`."""
    return READER if set(letters(command)) <= set("rl") else CONTRIBUTOR


# ---------------------------------------------------------------- what a SAS says about itself

_KINDS = {
    "b": "a blob",
    "bs": "a blob snapshot",
    "bv": "a blob version",
    "c": "a container",
    "d": "a directory",
}


@dataclass(frozen=True)
class Sas:
    """The fields of a SAS that say what it may do (none is secret: only `sig` is)."""

    resource: str | None  # service or user delegation SAS `sr`: b, bs, bv, c, d
    services: str | None  # account SAS `ss`
    resource_types: str | None  # account SAS `srt`
    permissions: str | None  # `sp`; None: a stored access policy (`si`) holds them, out of sight
    policy: str | None  # `si`

    @property
    def is_account(self) -> bool:
        return self.resource is None and (self.services is not None or self.resource_types is not None)

    @property
    def hidden(self) -> bool:
        """Its letters are in a stored access policy, which the URL does not show."""
        return self.permissions is None and self.policy is not None

    def describe(self) -> str:
        """`a container SAS with sr=c, sp=rl`: the kind and the fields that say so."""
        kind = "an account" if self.is_account else _KINDS.get(self.resource or "", "a")
        fields = (
            ("sr", self.resource),
            ("ss", self.services),
            ("srt", self.resource_types),
            ("sp", self.permissions),
            ("si", self.policy),
        )
        shown = ", ".join(f"{name}={value}" for name, value in fields if value is not None)
        return f"{kind} SAS with {shown}"


def parse_sas(url: str) -> Sas | None:
    """The SAS in `url`'s query, or None when it carries none (a role or token authorizes then)."""
    query = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
    if "sig" not in query:
        return None
    return Sas(query.get("sr"), query.get("ss"), query.get("srt"), query.get("sp"), query.get("si"))


def unreachable(sas: Sas, level: Level) -> str | None:
    """Why `sas` can never reach an operation of `level` on the target (None: its scope allows it)."""
    if sas.is_account:
        if "b" not in (sas.services or ""):
            return "it is not for the blob service, no b in ss"
        wanted = "c" if level == "container" else "o"
        if wanted not in (sas.resource_types or ""):
            return f"it lacks the {level} resource type, {wanted} in srt"
        return None
    if sas.resource in ("bs", "bv"):
        return "it opens one blob snapshot or version, never the base blob"
    if level == "container" and sas.resource == "b":
        return "it is scoped to the blob, and listing is a container operation"
    return None


def grants(sas: Sas, operation: str) -> bool | None:
    """Whether `sas`'s letters grant `operation`; None when a stored access policy hides them."""
    if sas.permissions is None:
        return None
    return any(letter in sas.permissions for letter in OPERATIONS[operation].letters)


def check_sas(url: str, command: str) -> None:
    """UserError (exit 2) when the SAS in `url` cannot do what `command` requires.

    Nothing for a URL without a SAS, nor for letters a stored access policy keeps out of sight:
    `refused` reads those from the 403. A scope that can never work is named before missing letters.
    """
    sas = parse_sas(url)
    if sas is None:
        return
    if sas.resource is None and not sas.is_account:  # a token cut short when it was copied
        raise UserError(
            "the SAS of --target is incomplete: it has neither sr (what a service SAS opens) nor ss and "
            f"srt (an account SAS's services and resource types), so `{command_name(command)}` cannot use "
            "it; give the whole SAS token Azure made (az storage container generate-sas, or the portal)."
        )
    required = [n for n in COMMANDS[command] if n.required]
    scopes = [(n, unreachable(sas, OPERATIONS[n.operation].level)) for n in required]
    if blocked := [(n, why) for n, why in scopes if why is not None]:
        why = blocked[0][1]
        failing = [n for n, reason in blocked if reason == why]
        raise UserError(_sentence(command, failing, f"{_on_target(sas)} cannot grant", f" ({why})", sas))
    if missing := [n for n in required if grants(sas, n.operation) is False]:
        raise UserError(_sentence(command, missing, f"{_on_target(sas)} does not grant", "", sas))


def check_stripe_reach(url: str, blob: str, stripe_count: int) -> None:
    """UserError (exit 2) when the SAS in `url` opens only the base blob while the export needs
    `stripe_count` blobs (core.stripes: a source over 8 TiB is written to `<blob>.stripe<k>` beside it).

    A blob SAS is signed for one blob's path, so Azure answers its use on a stripe with 403
    AuthenticationFailed, which reads as an expired or wrong key: named here, before anything is granted.
    """
    sas = parse_sas(url)
    if sas is None or sas.resource != "b" or stripe_count <= 1:
        return
    raise UserError(
        f"{_on_target(sas)} opens only {blob}, but this source is larger than one page blob (8 TiB) and "
        f"is written in {stripe_count} blobs ({blob}, {blob}.stripe1, ...); give a container SAS (sr=c) "
        "with the same letters, or a role (Storage Blob Data Contributor) instead."
    )


def _on_target(sas: Sas) -> str:
    return f"the SAS of --target ({sas.describe()})"


# ---------------------------------------------------------------- the 403 of an operation

_CREDENTIAL_CODES = {
    "AuthorizationPermissionMismatch": "does not grant",
    "AuthorizationResourceTypeMismatch": "cannot grant, at its scope (sr or srt),",
    "AuthorizationServiceMismatch": "cannot grant, without the blob service (ss),",
}
"""403 codes that mean "this credential lacks what the operation needs": the permission fix applies."""

_OTHER_CODES = {
    "AuthorizationFailure": (
        "the storage account refused it (its firewall or network rules, or an operation this kind of "
        "credential cannot do)",
        "allow this client in the storage account's network settings, or use a role or an account SAS",
    ),
    "AuthorizationSourceIPMismatch": (
        "the SAS of --target does not allow this client's IP address (sip)",
        "make a SAS whose sip includes this client, or none",
    ),
    "AuthorizationProtocolMismatch": ("the SAS of --target does not allow this protocol (spr)", "use https"),
    "AuthenticationFailed": (
        "the credential was not accepted (a SAS expired, revoked or signed with another key)",
        "make a new SAS, or sign in again",
    ),
}
"""Other 403 codes, with their fix: not a permission letter."""


def refused(command: str, operation: str, code: str | None, sas: Sas | None, target: str) -> UserError:
    """The UserError for a 403 with error `code` on `operation` of `command` on `target` (a display URL)."""
    need = next((n for n in COMMANDS[command] if n.operation == operation), None)
    need = need or Need(operation, f"make {OPERATIONS[operation].azure}")
    if code in _CREDENTIAL_CODES:
        if sas is None:
            who = "the identity's role on the target"
        elif sas.hidden:
            who = f"the stored access policy {sas.policy} of the SAS of --target"
        else:
            who = _on_target(sas)
        denial = f"{who} {_CREDENTIAL_CODES[code]}"
        return UserError(_sentence(command, [need], denial, f" (403 {code})", sas))
    why, fix_ = _OTHER_CODES.get(code or "", ("access was denied", "check the credential or SAS of --target"))
    return UserError(
        f"`{command_name(command)}` could not {need.purpose} on {target}: {why} "
        f"(403 {code or 'Forbidden'}); {fix_}."
    )


# ---------------------------------------------------------------- the sentence


def _join(parts: list[str], last: str = " and ") -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + last + parts[-1]


def _needs(failing: list[Need]) -> tuple[str, str]:
    """("write (w) to write the replica and hold the target's lease", "w"): grouped by letter."""
    by_letter: dict[str, list[str]] = {}
    for need in failing:
        purposes = by_letter.setdefault(OPERATIONS[need.operation].letters[0], [])
        if need.purpose not in purposes:
            purposes.append(need.purpose)
    order = sorted(by_letter, key=LETTER_ORDER.index)
    groups = [f"{LETTER_NAMES[letter]} ({letter}) to {_join(by_letter[letter])}" for letter in order]
    return _join(groups, ", and "), "".join(order)


def _sentence(command: str, failing: list[Need], denial: str, detail: str, sas: Sas | None) -> str:
    """<the SAS ...> does not grant delete (d) to delete restore points, which `replicate prune`
    needs<detail>: <the fix>."""
    needs, missing = _needs(failing)
    return f"{denial} {needs}, which `{command_name(command)}` needs{detail}: {fix(command, sas, missing)}."


def fix(command: str, sas: Sas | None, missing: str) -> str:
    """What to use instead: a SAS with every letter `command` needs at the right scope, or a role."""
    scope = (
        "a container SAS (or an account SAS with resource types co)"
        if needs_container(command)
        else "a blob, container or account SAS"
    )
    sas_fix = f"{scope} with permissions {letters(command)}"
    role_fix = f"the role {role(command)} on the container"
    if sas is None:
        return f"assign {role_fix} to the identity, or use {sas_fix}"
    if sas.hidden:
        return f"add {missing} to the stored access policy {sas.policy}, or use {sas_fix}, or {role_fix}"
    return f"use {sas_fix}, or {role_fix}, instead"
