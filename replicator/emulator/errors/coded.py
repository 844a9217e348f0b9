"""The one factory mechanism behind both planes' error tables (blob.py and arm.py beside it).

As in Azurite, every refusal is built by the factory of its error code, so a status, a code and its
message live in one table row and docs/emulator.md can list them. A row is an `ErrorCode`: calling
it builds the plane's exception with the row's message template filled from keyword fields, or with
a more specific message the caller gives (the blob plane's habit: Azure's text by default).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar


class CodedError(Exception):
    """A refusal as Azure answers it: HTTP status, error code, one-sentence message, and for ARM the
    request field it concerns (`target`; the blob plane's XML has no such element)."""

    def __init__(self, status: int, code: str, message: str, target: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.target = target


E = TypeVar("E", bound=CodedError)


@dataclass(frozen=True)
class ErrorCode(Generic[E]):
    """One row of an error table: the exception class of its plane, status, code, message template."""

    error: type[E]
    status: int
    code: str
    template: str  # str.format fields come from the call's keywords, `target` included
    target: str | None = None  # ARM's error.target when the row always concerns one field

    def __call__(
        self,
        message: str | None = None,
        /,
        *,
        target: str | None = None,
        status: int | None = None,
        **fields: object,
    ) -> E:
        """`status` replaces the row's where Azure answers a cause's status (CannotVerifyCopySource)."""
        target = target or self.target
        return self.error(
            status or self.status, self.code, message or self.template.format(target=target, **fields), target
        )
