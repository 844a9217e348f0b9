"""What each command needs of the target's SAS or role (replicator.core.permissions), exhaustively.

The oracle is written out by hand from Azure's tables ("Create a service SAS", "Create an account
SAS"), not computed from the module's own table: `MINIMAL` is the smallest `sp` each command works
with, `LISTS` the commands that list (a container operation). Every subset of `racwdl` is tried for
every SAS kind and command.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from replicator.core import permissions
from replicator.core.errors import EXIT_USAGE, UserError
from replicator.core.permissions import (
    COMMANDS,
    OPERATIONS,
    check_sas,
    command_name,
    parse_sas,
    refused,
)

URL = "https://acct.blob.core.windows.net/c/replica.vhd"
SIG = "c2VjcmV0LXNpZ25hdHVyZQ%3D%3D"

MINIMAL = {
    "replicate": "rw",  # w creates, writes, leases and snapshots; c alone would create and snapshot only
    "replicate (VM)": "rwl",  # l: the group manifests and each disk's restore points under the prefix
    "replicate --plan": "r",
    "replicate --plan (VM)": "rl",
    "list": "rl",
    "prune": "rwdl",  # w: the lease (acquire needs w; d only breaks one)
    "prune --dry-run": "rl",
    "restore": "rl",
    "status": "rl",
    "drill": "rwl",  # w: the lease and the drill's record in the base blob's metadata
}
LISTS = {
    "replicate (VM)",
    "replicate --plan (VM)",
    "list",
    "prune",
    "prune --dry-run",
    "restore",
    "status",
    "drill",
}
LETTERS = "racwdl"
SUBSETS = ["".join(c) for n in range(len(LETTERS) + 1) for c in itertools.combinations(LETTERS, n)]


def sas_url(**fields: str) -> str:
    query = "&".join(f"{k}={v}" for k, v in {"sv": "2026-10-06", **fields, "sig": SIG}.items())
    return f"{URL}?{query}"


def refusal(url: str, command: str) -> str | None:
    """The sentence check_sas raises, or None when it lets the command through."""
    try:
        check_sas(url, command)
    except UserError as err:
        assert err.exit_code == EXIT_USAGE
        return str(err)
    return None


def assert_one_sentence(text: str, command: str) -> None:
    assert f"`{command_name(command)}`" in text
    assert text.endswith(".") and ". " not in text and "\n" not in text
    assert "sig=" not in text and "c2VjcmV0" not in text  # the signature never appears


def test_the_table_covers_every_command_and_names_real_operations() -> None:
    assert set(COMMANDS) == set(MINIMAL)
    for command, needs in COMMANDS.items():
        assert {n.operation for n in needs} <= set(OPERATIONS)
        assert permissions.letters(command) == MINIMAL[command]
        assert permissions.needs_container(command) == (command in LISTS)
    for op in OPERATIONS.values():
        assert op.letters and set(op.letters) <= set(permissions.LETTER_NAMES)


@pytest.mark.parametrize("command", sorted(MINIMAL))
@pytest.mark.parametrize("resource", ["c", "d", "b"])
def test_every_sp_of_a_service_sas(command: str, resource: str) -> None:
    """A blob SAS can never list; otherwise exactly the SASes holding the minimal letters pass."""
    for sp in SUBSETS:
        text = refusal(sas_url(sr=resource, sp=sp), command)
        if resource == "b" and command in LISTS:
            assert text is not None and "listing is a container operation" in text
            assert "list (l)" in text
        elif set(MINIMAL[command]) <= set(sp):
            assert text is None, (sp, text)
        else:
            assert text is not None, sp
            for letter in sorted(set(MINIMAL[command]) - set(sp)):
                assert f"{permissions.LETTER_NAMES[letter]} ({letter}) to " in text, (sp, text)
            assert f"sp={sp}" in text and f"with permissions {MINIMAL[command]}" in text
        if text is not None:
            assert_one_sentence(text, command)


@pytest.mark.parametrize("command", sorted(MINIMAL))
def test_every_account_sas(command: str) -> None:
    """An account SAS: the blob service in ss, resource type o always and c to list, then the letters."""
    for ss, srt, sp in itertools.product(["b", "bq", "q"], ["o", "c", "co", "sco"], SUBSETS):
        text = refusal(sas_url(ss=ss, srt=srt, sp=sp), command)
        scope_ok = "b" in ss and "o" in srt and ("c" in srt or command not in LISTS)
        assert (text is None) == (scope_ok and set(MINIMAL[command]) <= set(sp)), (ss, srt, sp, text)
        if text is not None:
            assert_one_sentence(text, command)
            if "b" not in ss:
                assert "not for the blob service" in text


@pytest.mark.parametrize("command", sorted(MINIMAL))
@pytest.mark.parametrize("resource", ["bs", "bv"])
def test_a_snapshot_or_version_sas_never_opens_the_base_blob(command: str, resource: str) -> None:
    text = refusal(sas_url(sr=resource, sp="racwdl"), command)
    assert text is not None and "never the base blob" in text
    assert_one_sentence(text, command)


@pytest.mark.parametrize("command", sorted(MINIMAL))
def test_letters_in_a_stored_policy_are_left_to_the_service(command: str) -> None:
    """`si=` without `sp`: the URL does not show the letters, so only the scope is checked."""
    assert refusal(sas_url(sr="c", si="pol"), command) is None
    blob_scoped = refusal(sas_url(sr="b", si="pol"), command)
    assert (blob_scoped is not None) == (command in LISTS)


@pytest.mark.parametrize("command", sorted(MINIMAL))
def test_no_sas_is_left_to_the_role(command: str) -> None:
    assert refusal(URL, command) is None
    assert parse_sas(URL) is None


def test_replicate_without_write_names_every_use_of_w_once() -> None:
    text = refusal(sas_url(sr="c", sp="rcl"), "replicate")
    assert text == (
        "the SAS of --target (a container SAS with sr=c, sp=rcl) does not grant write (w) to write the "
        "replica and hold the target's lease, which `replicate` needs: use a blob, container or account "
        "SAS with permissions rw, or the role Storage Blob Data Contributor on the container, instead."
    )


CREDENTIAL_CODES = [
    "AuthorizationPermissionMismatch",
    "AuthorizationResourceTypeMismatch",
    "AuthorizationServiceMismatch",
]
OTHER_CODES = [
    "AuthorizationFailure",
    "AuthorizationSourceIPMismatch",
    "AuthorizationProtocolMismatch",
    "AuthenticationFailed",
]
KINDS = {
    "role": None,
    "container SAS": parse_sas(sas_url(sr="c", sp="r")),
    "stored policy": parse_sas(sas_url(sr="c", si="nightly")),
}


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("command", sorted(MINIMAL))
def test_every_403_of_every_operation_is_one_sentence_with_the_fix(command: str, kind: str) -> None:
    sas = KINDS[kind]
    for need, code in itertools.product(COMMANDS[command], CREDENTIAL_CODES + OTHER_CODES + [None]):
        err = refused(command, need.operation, code, sas, URL)
        text = str(err)
        assert err.exit_code == EXIT_USAGE
        assert_one_sentence(text, command)
        assert f"403 {code or 'Forbidden'}" in text
        assert need.purpose in text
        if code in CREDENTIAL_CODES:
            letter = OPERATIONS[need.operation].letters[0]
            assert f"{permissions.LETTER_NAMES[letter]} ({letter})" in text
            assert f"permissions {MINIMAL[command]}" in text and permissions.role(command) in text
            if kind == "stored policy":
                assert "stored access policy nightly" in text and f"add {letter} to" in text
            if kind == "role":
                assert "assign the role" in text


def test_an_operation_outside_the_command_still_gets_a_sentence() -> None:
    text = str(refused("replicate --plan", "delete", "AuthorizationPermissionMismatch", None, URL))
    assert "delete (d) to make Delete Blob (a restore point)" in text


@given(
    st.dictionaries(
        st.sampled_from(["sr", "ss", "srt", "sp", "si", "se", "skoid"]),
        st.text(alphabet="abcdlorswxqt-=&%", max_size=6),
    ),
    st.sampled_from(sorted(MINIMAL)),
)
def test_any_sas_query_is_a_user_error_or_passes(fields: dict[str, str], command: str) -> None:
    """Whatever the query holds, check_sas raises nothing but a one-sentence UserError."""
    query = "&".join(f"{k}={v}" for k, v in fields.items())
    text = refusal(f"{URL}?{query}&sig={SIG}", command)
    if text is not None:
        assert_one_sentence(text, command)


# ---------------------------------------------------------------- docs/runbook.md


def runbook_row(command: str) -> str:
    """The row docs/runbook.md must carry for `command`, rendered from the table."""
    optional = [n for n in COMMANDS[command] if not n.required]
    also = "; ".join(f"`{OPERATIONS[n.operation].letters[0]}` to {n.purpose}" for n in optional)
    scope = (
        "container (`sr=c`) or account (`srt=co`)"
        if permissions.needs_container(command)
        else "blob (`sr=b`), container (`sr=c`) or account (`srt` with `o`)"
    )
    return (
        f"| `{command_name(command)}` | `{permissions.letters(command)}` | {also or '-'} | {scope} "
        f"| {permissions.role(command)} |"
    )


def test_the_runbook_sas_table_is_the_permissions_table() -> None:
    runbook = (Path(__file__).parents[2] / "docs" / "runbook.md").read_text()
    rows = [line for line in runbook.splitlines() if re.match(r"\| `replicate[ `]", line)]
    assert rows == [runbook_row(c) for c in COMMANDS], "\n".join(runbook_row(c) for c in COMMANDS)


@pytest.mark.parametrize(
    ("query", "count", "refused"),
    [
        ("sr=b&sp=racwd&sig=x", 3, True),  # a blob SAS cannot sign for <blob>.stripe1
        ("sr=b&sp=racwd&sig=x", 1, False),  # one blob: the SAS's own
        ("sr=c&sp=racwdl&sig=x", 3, False),
        ("sr=d&sdd=1&sp=racwdl&sig=x", 3, False),  # the stripes sit in the base blob's directory
        ("ss=b&srt=co&sp=racwdl&sig=x", 3, False),
        ("", 3, False),  # no SAS: a role authorizes every blob
    ],
)
def test_a_blob_sas_is_refused_only_where_stripes_exist(query: str, count: int, refused: bool) -> None:
    url = f"https://a.blob.core.windows.net/c/disk.vhd?{query}"
    if not refused:
        permissions.check_stripe_reach(url, "disk.vhd", count)
        return
    with pytest.raises(UserError) as caught:
        permissions.check_stripe_reach(url, "disk.vhd", count)
    assert caught.value.exit_code == EXIT_USAGE
    assert "disk.vhd.stripe1" in str(caught.value) and "sig" not in str(caught.value)
