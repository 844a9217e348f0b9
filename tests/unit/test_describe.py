"""messages.describe: the one redacted line every error, log line and JSON field says about an exception."""

from __future__ import annotations

from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ODataV4Format

from replicator.core import messages

SECRET = "sig=c2VjcmV0c2lnbmF0dXJl"


class Answer:
    """The parts of an HTTP response the SDK's errors keep: status, reason, headers, body."""

    def __init__(
        self, status: int, reason: str, body: str = "", headers: dict[str, str] | None = None
    ) -> None:
        self.status_code, self.reason, self.headers, self._body = status, reason, headers or {}, body

    def text(self) -> str:
        return self._body


STORAGE_BODY = (
    "<?xml version='1.0'?><Error><Code>LeaseIdMismatchWithLeaseOperation</Code>"
    f"<Message>The lease ID specified did not match.\nRequestId:1 https://a/c/b?{SECRET}</Message></Error>"
)


def storage_error(headers: dict[str, str] | None = None) -> HttpResponseError:
    return HttpResponseError(response=Answer(409, "Conflict", STORAGE_BODY, headers))  # type: ignore[arg-type]


def test_a_service_answer_is_status_code_and_reason_never_its_body() -> None:
    err = storage_error({"x-ms-error-code": "LeaseIdMismatchWithLeaseOperation"})
    assert messages.describe(err) == "409 LeaseIdMismatchWithLeaseOperation Conflict"
    err.error_code = "LeaseLost"  # the storage SDK's own field comes first
    assert messages.describe(err) == "409 LeaseLost Conflict"


def test_the_code_falls_back_to_the_body_and_arm_error() -> None:
    assert messages.error_code(storage_error()) == "LeaseIdMismatchWithLeaseOperation"
    arm = HttpResponseError(message="x")
    arm.status_code, arm.error = (
        404,
        ODataV4Format({"error": {"code": "ResourceNotFound", "message": "gone"}}),
    )
    assert messages.error_code(arm) == "ResourceNotFound"
    assert messages.service_answer(arm) == "ResourceNotFound: gone"
    assert messages.error_code(HttpResponseError(message="no answer")) == ""


def test_the_service_message_is_one_redacted_line() -> None:
    quoted = messages.service_answer(storage_error())
    assert quoted == "LeaseIdMismatchWithLeaseOperation: The lease ID specified did not match."
    silent = HttpResponseError(message="x")
    silent.status_code = 500
    assert messages.service_answer(silent) == "500: no message"


def test_any_other_exception_is_its_type_and_first_line_redacted_and_clipped() -> None:
    assert messages.describe(ValueError(f"bad https://a/c/b?{SECRET}\nsecond line")).startswith(
        "ValueError: bad"
    )
    assert SECRET not in messages.describe(ValueError(f"https://a/c/b?{SECRET}"))
    assert messages.describe(TimeoutError()) == "TimeoutError"
    long = messages.describe(RuntimeError("x" * 1000))
    assert len(long) == messages.DESCRIBE_LIMIT and long.endswith("...")


def test_an_sdk_error_without_an_answer_is_its_first_line() -> None:
    """A credential that produced no token raises a 2.5 KB multi-line text: one line of it."""
    err = ClientAuthenticationError(
        message="DefaultAzureCredential failed to retrieve a token.\nAttempted: ..."
    )
    assert messages.describe(err) == "DefaultAzureCredential failed to retrieve a token."


def test_the_service_message_is_whole_for_the_checks_that_search_it() -> None:
    """is_family_sas_limit searches ARM's message: a long one (the emulator's names the snapshot's full
    ID first) must not lose its end to clipping."""
    text = f"Cannot grant access to {'/x' * 150}: snapshots of the family exceed the SAS limit"
    arm = HttpResponseError(message="x")
    arm.status_code, arm.error = (
        409,
        ODataV4Format({"error": {"code": "OperationNotAllowed", "message": text}}),
    )
    assert messages.service_message(arm) == text
