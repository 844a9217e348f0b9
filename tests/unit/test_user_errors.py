"""What a first-time user trips on gets one sentence and exit 2: a missing credential, an untrusted
certificate, user info in a URL, a malformed page_blob, a value from the environment, an unknown command."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import time

import pytest
from azure.core.exceptions import ClientAuthenticationError, ServiceRequestError
from azure.identity import CredentialUnavailableError
from hypothesis import given, settings
from hypothesis import strategies as st

from replicator.cli import main as cli_main
from replicator.cli.replicate_cmd import load
from replicator.core import messages
from replicator.core.errors import UserError
from replicator.plumbing.urlcheck import parse_target_url
from replicator.target import page_blob

SUB = "00000000-0000-0000-0000-000000000001"
DISK = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Compute/disks/d1"
GOOD = "https://acct.blob.core.windows.net/ccc/b.vhd"


def _run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "replicator.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _env_without(*names: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in names and not k.startswith("REPLICATOR_")}
    return env | extra


class _NoCredential:
    """What DefaultAzureCredential does without any login: raise before a request is sent."""

    async def get_token(self, *scopes: str, **kwargs: object) -> None:
        raise CredentialUnavailableError("DefaultAzureCredential failed to retrieve a token\n" + "x" * 2500)

    get_token_info = get_token

    async def close(self) -> None:
        pass


@pytest.mark.parametrize("command", [["list"], ["prune", "--keep", "1", "--yes"], []])
def test_no_credential_is_one_sentence_and_exit_2(command, monkeypatch, capsys) -> None:
    monkeypatch.setattr(page_blob, "async_credential", lambda *a: _NoCredential())
    monkeypatch.delenv("REPLICATOR_ACCESS_TOKEN", raising=False)
    args = [*command, "--target", GOOD] + ([] if command else ["--source", DISK])
    if not command:  # the main call reaches ARM first: only the target's own error is under test here
        from replicator.engine import pipeline

        async def inspect_only(config, progress, *rest):
            async with page_blob.PageBlobTarget(config, command="replicate") as t:
                await t.inspect()

        monkeypatch.setattr(pipeline, "replicate", inspect_only)
    assert cli_main.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "No Azure credential was found for https://acct.blob.core.windows.net" in err[0]
    assert "az login" in err[0] and "REPLICATOR_ACCESS_TOKEN" in err[0]


def test_certificate_failure_names_the_fix() -> None:
    cause = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    exc = ServiceRequestError("Cannot connect", error=cause)
    text = messages.unreachable("target endpoint", "https://h", exc)
    assert "certificate verification failed" in text and "SSL_CERT_FILE" in text
    plain = messages.unreachable("target endpoint", "https://h", ServiceRequestError("refused"))
    assert plain.startswith("Cannot reach the target endpoint https://h (refused)")


def test_missing_credential_detection() -> None:
    assert messages.is_missing_credential(CredentialUnavailableError("none"))
    assert messages.is_missing_credential(ClientAuthenticationError("no response"))


def test_untrusted_certificate_on_target_and_queue(emulator) -> None:
    """The emulator's certificate without SSL_CERT_FILE: both paths say it is the certificate."""
    port = emulator.port
    env = _env_without("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", REPLICATOR_ACCESS_TOKEN="t")
    for args in (
        ["list", "--target", f"https://127.0.0.1:{port}/acct/ccc/b.vhd"],
        ["worker", "--queue", f"https://127.0.0.1:{port}/acct/q", "--max-jobs", "1"],
    ):
        run = _run(*args, env=env)
        assert run.returncode == 2, run.stderr
        lines = run.stderr.strip().splitlines()
        assert len(lines) == 1 and "certificate verification failed" in lines[0], lines
        assert "SSL_CERT_FILE" in lines[0]


def test_unreachable_queue_fails_fast_with_one_sentence() -> None:
    env = _env_without(REPLICATOR_ACCESS_TOKEN="t")
    started = time.monotonic()
    run = _run("worker", "--queue", "https://127.0.0.1:9/acct/q", "--max-jobs", "1", env=env)
    assert time.monotonic() - started < 15
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "https://127.0.0.1:9/acct/q" in lines[0], lines


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--target", "https://user:hunter2@acct.blob.core.windows.net/ccc/b"], "user name or password"),
        (["--target", GOOD, "--arm-endpoint", "https://u:hunter2@management.azure.com"], "user name"),
        (["--target", "https://acct.blob.core.windows.net/ccc/b?foo=bar&junk"], "is not a SAS"),
        (["--target", "https://acct.blob.core.windows.net/Bad_Name/b"], "container name 'Bad_Name'"),
        (["--target", "https://acct.blob.core.windows.net/a--b/b"], "container name"),
        (["--target", "https://acct.blob.core.windows.net/ab/b"], "container name"),
        (["--target", "https://acct.blob.core.windows.net/ccc/" + "x" * 1025], "at most 1024"),
        (["--target", "https://acct.blob.core.windows.net:99999/ccc/b"], "invalid port"),
        (["--target", "https://acct.blob.core.windows.net:x/ccc/b"], "invalid port"),
        (["--target", GOOD + "#frag"], "#fragment"),
        (["--target", "https://acct.file.core.windows.net/ccc/b"], "Azure Files endpoint"),
        (["--target", "https://acct.queue.core.windows.net/ccc/b"], "Queue endpoint"),
        (["--target", "https://acct.dfs.core.windows.net/ccc/b"], "Data Lake endpoint"),
        (["--target", GOOD, "--subscription-id", "nope"], "--subscription-id must be a GUID"),
        (["--target", GOOD, "--max-bandwidth=-5MiB"], "between 4 KiB and 100 GiB; got -5 MiB."),
        (["--target", GOOD, "--max-bandwidth", "1"], "between 4 KiB and 100 GiB; got 1 bytes."),
        (["--target", GOOD, "--time-budget", "9000000"], "between 1 and 604800; got 9000000."),
        (
            ["--target", GOOD, "--time-budget", "5 minutes"],
            "--time-budget: expected a duration like 26h, 90m, 2d, 1d12h or 3600 (seconds); got '5 minutes'.",
        ),
        (["--target", GOOD, "--max-bandwidth", "-5MiB"], "takes the = form: --max-bandwidth=-VALUE"),
        (["--target", GOOD, "--keep-going"], "Unknown argument --keep-going; see `replicate --help`."),
    ],
)
def test_bad_input_is_one_sentence(args, says) -> None:
    with pytest.raises(UserError) as info:
        load(["--source", DISK, *args], env={})
    text = str(info.value)
    assert says in text and "hunter2" not in text and len(text) < 400
    assert text[0].isupper() or text.startswith("--")
    assert text.endswith(".")


def test_values_from_the_environment_name_the_variable() -> None:
    base = ["--source", DISK, "--target", GOOD]
    with pytest.raises(UserError, match=r"^REPLICATOR_CONCURRENCY \(environment variable\): expected a"):
        load(base, env={"REPLICATOR_CONCURRENCY": "abc"})
    with pytest.raises(UserError, match=r"^REPLICATOR_CONCURRENCY \(environment variable\) must be between"):
        load(base, env={"REPLICATOR_CONCURRENCY": "200"})
    with pytest.raises(UserError, match=r"^--concurrency must be between 1 and 192; got 200\.$"):
        load([*base, "--concurrency", "200"], env={"REPLICATOR_CONCURRENCY": "3"})


def test_sas_and_path_style_targets_still_parse() -> None:
    sas = parse_target_url(GOOD + "?sv=2025-01-05&sr=b&sp=rcw&sig=abc", allow_http=False)
    assert (sas.container, sas.blob, sas.sas is not None) == ("ccc", "b.vhd", True)
    emulated = parse_target_url("https://127.0.0.1:8443/acct/$root/dir/b.vhd", allow_http=False)
    assert (emulated.container, emulated.blob) == ("$root", "dir/b.vhd")


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(max_size=300),
        st.builds(
            lambda scheme, host, path, query: f"{scheme}://{host}/{path}{query}",
            st.sampled_from(["https", "http", "ftp", ""]),
            st.text(max_size=60),
            st.text(max_size=200),
            st.sampled_from(["", "?", "?sig=x", "?a=b&c", "#f"]),
        ),
    )
)
def test_random_urls_raise_only_user_errors(url: str) -> None:
    try:
        parse_target_url(url, allow_http=True)
    except UserError as err:
        assert len(str(err)) < 600
        assert "\n" not in str(err)


def test_unknown_subcommand_and_help(capsys) -> None:
    assert cli_main.main(["lst", "--target", "x"]) == 2
    err = capsys.readouterr().err
    assert "Unknown subcommand 'lst'" in err and "list" in err
    assert cli_main.main(["help"]) == 0
    assert "--source" in capsys.readouterr().out


def test_arm_without_credential_or_with_an_untrusted_certificate_is_one_sentence() -> None:
    from replicator.source.arm import ArmSource

    source = ArmSource(load(["--source", DISK, "--target", GOOD], env={}), credential=None)
    with pytest.raises(UserError) as info, source.arm_errors("read disk d1"):
        raise CredentialUnavailableError("DefaultAzureCredential failed\n" + "attempt\n" * 300)
    text = str(info.value)
    assert text.startswith("Cannot read disk d1: No Azure credential was found for https://management")
    assert "\n" not in text and "attempt" not in text
    cause = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    with (
        pytest.raises(UserError, match=r"certificate verification failed.*SSL_CERT_FILE"),
        source.arm_errors("x"),
    ):
        raise ServiceRequestError("Cannot connect", error=cause)
