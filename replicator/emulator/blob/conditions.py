"""HTTP conditional headers on blob operations: the parsed values and Azure's rule for them.

wire.py parses the headers into `Conditions`; the backend checks them against a blob version's
ETag and Last-Modified before it reads or writes (a blob that does not exist has neither).
"""

from __future__ import annotations

from dataclasses import dataclass

from replicator.emulator.errors import blob as blob_errors


@dataclass(frozen=True)
class Conditions:
    """The four conditional headers of a request; None where it sent none."""

    if_match: str | None = None  # an ETag, or "*" for any
    if_none_match: str | None = None  # an ETag, or "*" for any
    if_modified_since: float | None = None  # epoch seconds
    if_unmodified_since: float | None = None  # epoch seconds


def check_conditions(
    conditions: Conditions | None, etag: str | None, last_modified: float | None, *, read: bool
) -> None:
    """Refuse what the conditions forbid: 412 ConditionNotMet, but 304 (status only) for a read whose
    If-None-Match or If-Modified-Since fails."""
    if conditions is None:
        return
    modified = None if last_modified is None else int(last_modified)  # HTTP dates have whole seconds
    if conditions.if_match is not None and (etag is None or conditions.if_match not in ("*", etag)):
        raise blob_errors.condition_not_met()
    if (
        conditions.if_unmodified_since is not None
        and modified is not None
        and modified > conditions.if_unmodified_since
    ):
        raise blob_errors.condition_not_met()
    not_modified = (
        conditions.if_none_match is not None and etag is not None and conditions.if_none_match in ("*", etag)
    ) or (
        conditions.if_modified_since is not None
        and modified is not None
        and modified <= conditions.if_modified_since
    )
    if not_modified:
        raise blob_errors.not_modified() if read else blob_errors.condition_not_met()
