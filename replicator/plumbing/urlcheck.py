"""URL checks done before any request: the mistakes that would otherwise surface as an SDK stack trace.

Every URL a user gives (the target, the queue, the ARM endpoint) goes through `check_common`; the
target additionally through `check_target_parts` and `check_names`. Each failure is one sentence
(UserError, exit 2) that echoes at most `messages.ECHO_LIMIT` characters and never a password or SAS.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import SplitResult, parse_qsl, quote, unquote, urlsplit

from replicator.core.errors import UserError
from replicator.core.messages import clip
from replicator.core.redact import redact_url, redacted_repr

CONTAINER_NAME = re.compile(r"(?:[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}|\$root|\$web)")
"""Azure's container names: 3-63 lowercase letters, digits and single hyphens, starting and ending with a
letter or digit; plus the system containers a page blob may live in."""
MAX_BLOB_NAME = 1024
"""Azure's longest blob name, in characters."""
OTHER_SERVICES = re.compile(r"\.(file|queue|table|dfs|web)\.core\.", re.IGNORECASE)
_SERVICE_NAMES = {
    "file": "Azure Files",
    "queue": "Queue",
    "table": "Table",
    "dfs": "Data Lake",
    "web": "static website",
}


def split(url: str, what: str) -> SplitResult:
    """`urlsplit(url)`, with its ValueError (an unbalanced '[') as a UserError naming `what`."""
    try:
        return urlsplit(url)
    except ValueError as exc:
        raise UserError(f"{what} is not a valid URL ({exc}); got {clip(redact_url(url))!r}.") from None


def check_common(url: str, what: str) -> None:
    """UserError for user info, a fragment or a bad port in `url`; `what` names it ("--target")."""
    parts = split(url, what)
    if "@" in parts.netloc:
        raise UserError(
            f"{what} must not carry a user name or password before '@' (not echoed here); "
            "Azure storage takes a SAS in the query or a token credential."
        )
    if parts.fragment or url.endswith("#"):
        raise UserError(f"{what} must not have a #fragment; got {clip(redact_url(url))!r}.")
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0 and re.search(r":[^/]*$", parts.netloc.rsplit("]", 1)[-1]):
        raise UserError(f"{what} has an invalid port (1-65535); got {clip(parts.netloc)!r}.")


def check_target_parts(url: str) -> None:
    """The target-only checks that need no splitting into account, container and blob."""
    check_common(url, "--target")
    parts = split(url, "--target")
    service = OTHER_SERVICES.search(parts.hostname or "")
    if service:
        raise UserError(
            f"--target points at the {_SERVICE_NAMES[service.group(1).lower()]} endpoint "
            f"{clip(parts.hostname or '')}; it must be a blob endpoint: "
            "https://<account>.blob.core.windows.net/<container>/<blob>."
        )
    if parts.query:
        names = [name for name, _ in parse_qsl(parts.query, keep_blank_values=True)]
        if "sig" not in names:
            raise UserError(
                "The query of --target is not a SAS (a SAS carries sv=, sig= and more; got the parameters "
                f"{clip(', '.join(names) or parts.query, 120)!r}): remove it, or paste the whole SAS."
            )


def check_names(container: str, blob: str) -> None:
    """Azure's naming rules for the target's container and blob."""
    if not CONTAINER_NAME.fullmatch(container):
        raise UserError(
            f"The container name {clip(container)!r} of --target is not valid: 3-63 lowercase letters, "
            "digits and single hyphens, starting and ending with a letter or digit."
        )
    if len(blob) > MAX_BLOB_NAME:
        raise UserError(
            f"The blob name of --target has {len(blob)} characters; Azure allows at most {MAX_BLOB_NAME}."
        )


@dataclass(frozen=True)
class TargetUrl:
    """A parsed target URL: the account endpoint, container, blob and the SAS query (if any)."""

    account_url: str
    container: str
    blob: str
    sas: str | None

    @property
    def display(self) -> str:
        """The URL without its query string: safe to print."""
        return f"{self.account_url}/{self.container}/{quote(self.blob)}"

    def __repr__(self) -> str:
        return redacted_repr(self, urls=("account_url",), queries=("sas",))


def _path_style(host: str) -> bool:
    """Emulators and IP endpoints put the account in the path; Azure puts it in the host name."""
    if host == "localhost":
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _split_target(url: str, *, allow_http: bool) -> tuple[str, list[str], str | None]:
    """The account URL, the path's segments after the account (container first) and the SAS query."""
    check_target_parts(url)
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise UserError(
            "--target must be a blob URL like https://<account>.blob.core.windows.net/<container>/<blob>."
        )
    if parts.scheme == "http" and not allow_http:
        raise UserError("--target uses plain HTTP; pass --allow-http to allow it (local emulators only).")
    segments = [unquote(s) for s in parts.path.split("/")[1:]]
    base = f"{parts.scheme}://{parts.netloc}"
    if _path_style(parts.hostname):
        if len(segments) < 2 or not segments[0] or not segments[1]:
            raise UserError(
                "--target must name an account and a container: https://host:port/<account>/<container>/..."
            )
        base += f"/{segments[0]}"
        segments = segments[1:]
    return base, segments, parts.query or None


def parse_target_url(url: str, *, allow_http: bool) -> TargetUrl:
    """Split a page blob URL into its parts; UserError for anything that is not a blob URL."""
    base, segments, sas = _split_target(url, allow_http=allow_http)
    if len(segments) < 2 and _path_style(urlsplit(url).hostname or ""):
        raise UserError(
            "--target must name an account, a container and a blob: https://host:port/<account>/<container>/<blob>."
        )
    if len(segments) < 2 or not segments[0] or not all(segments[1:]):
        raise UserError(
            "--target must name a container and a blob: https://<account>.blob.core.windows.net/<container>/<blob>."
        )
    check_names(segments[0], "/".join(segments[1:]))
    return TargetUrl(base, segments[0], "/".join(segments[1:]), sas)


@dataclass(frozen=True)
class TargetPrefix:
    """Where a virtual machine's disks go: a container, or a folder (`prefix`) in it; each disk's base
    blob is `<prefix>/<disk name>.vhd` (`blob`), the group manifests are under it too."""

    account_url: str
    container: str
    prefix: str  # "" for the container itself; never ends in "/"
    sas: str | None

    def blob_name(self, name: str) -> str:
        """The blob `name` under the prefix."""
        return f"{self.prefix}/{name}" if self.prefix else name

    def blob(self, name: str) -> TargetUrl:
        """The blob `name` under the prefix, with the prefix's credential (its SAS)."""
        blob = self.blob_name(name)
        check_names(self.container, blob)
        return TargetUrl(self.account_url, self.container, blob, self.sas)

    @property
    def display(self) -> str:
        """The URL without its query string: safe to print."""
        return f"{self.account_url}/{self.container}" + (f"/{quote(self.prefix)}" if self.prefix else "")

    def __repr__(self) -> str:
        return redacted_repr(self, urls=("account_url",), queries=("sas",))


def parse_target_prefix(url: str, *, allow_http: bool) -> TargetPrefix:
    """Split the `--target` of a virtual machine (a container URL, or a folder in it) into its parts.

    UserError for anything else, including a URL ending in `.vhd`: that names one disk's blob, and a VM
    has several (each goes to `<prefix>/<disk name>.vhd`).
    """
    base, segments, sas = _split_target(url, allow_http=allow_http)
    if not segments or not segments[0]:
        raise UserError(
            "--target of a virtual machine must name a container: "
            "https://<account>.blob.core.windows.net/<container>[/<prefix>]."
        )
    prefix = "/".join(s for s in segments[1:] if s)
    if prefix.lower().endswith(".vhd"):
        raise UserError(
            f"--target {clip(redact_url(url))!r} names one blob ({prefix}), but a virtual machine's "
            "target holds a blob per disk: give a container or a folder in it "
            "(https://<account>.blob.core.windows.net/<container>/<prefix>); each disk goes to "
            "<prefix>/<disk name>.vhd."
        )
    check_names(segments[0], prefix or "x")
    return TargetPrefix(base, segments[0], prefix, sas)
