"""Hostile input: generated resource IDs, target URLs and option values get exit 2 and one sentence,
never a traceback, and nothing is granted or written."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from replicator.cli import main as cli_main
from tests.e2e.world import World
from tests.logs import messages
from tests.reliability.leaks import assert_no_leaks

TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=80)
SEGMENT = st.text("abcXYZ09-_.%/?&=# ", min_size=0, max_size=12)
RESOURCE_IDS = st.one_of(
    TEXT,
    st.builds(
        lambda sub, rg, kind, name: f"/subscriptions/{sub}/resourceGroups/{rg}/providers/{kind}/{name}",
        SEGMENT,
        SEGMENT,
        st.sampled_from(["Microsoft.Compute/disk", "Microsoft.Storage/snapshots", "x/y"]),
        SEGMENT,
    ),
)
URLS = st.one_of(
    TEXT,
    st.builds(lambda scheme, rest: f"{scheme}://{rest}", st.sampled_from(["http", "ftp", "https"]), SEGMENT),
)
OPTIONS = st.sampled_from(
    ["--concurrency", "--max-bandwidth", "--list-window", "--page-size", "--checkpoint-seconds",
     "--max-attempts", "--request-timeout", "--sas-duration", "--mode", "--log-level", "--lease-wait"]
)  # fmt: skip
BAD_VALUES = st.one_of(
    st.sampled_from(["-1", "0x10", "nan", "inf", "1e400", " ", "5 MiB/h", "999999999999999"]),
    # no decimal digit of any script (int() and float() read them all): every number, size and
    # duration an option takes has one ("4K" is a valid --max-bandwidth, "1.5" a valid
    # --checkpoint-seconds); and not all ASCII, so a drawn word is never a --mode or --log-level
    TEXT.filter(lambda t: t.strip() != "" and not any(c.isdecimal() for c in t) and not t.isascii()),
)
SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _refused(capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    capsys.readouterr()
    code = cli_main.main(args)
    out, err = capsys.readouterr()
    assert code == 2, (args, err)
    assert "Traceback" not in err and err.count("\n") == 1, err
    [line] = messages(err)  # one JSON line off a terminal (replicator.observe.jsonlog)
    assert line.startswith("replicate: error: "), err
    assert_no_leaks(out + err)


def _untouched(world: World, url: str, snapshot_id: str) -> None:
    assert world.snapshot_state(snapshot_id) != "ActiveSAS"
    with world.container(url) as container:
        assert not container.exists(), "a hostile run wrote to the target"


@pytest.fixture
def sample(world: World, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str, str]:
    monkeypatch.setenv("REPLICATOR_LEASE_WAIT", "0")
    disk = world.create_disk("data", 1)
    world.write(disk, (0, b"\x07" * 512))
    return disk.id, world.snapshot(disk), world.target_url()


@SETTINGS
@given(source=RESOURCE_IDS)
def test_hostile_resource_ids(world, sample, capsys, source: str) -> None:
    _, snapshot_id, url = sample
    _refused(capsys, ["--source", source, "--target", url])
    _untouched(world, url, snapshot_id)


@SETTINGS
@given(target=URLS)
def test_hostile_target_urls(world, sample, capsys, target: str) -> None:
    disk_id, snapshot_id, url = sample
    _refused(capsys, ["--source", disk_id, "--target", target])
    _untouched(world, url, snapshot_id)


@SETTINGS
@given(option=OPTIONS, value=BAD_VALUES)
def test_hostile_option_values(world, sample, capsys, option: str, value: str) -> None:
    disk_id, snapshot_id, url = sample
    _refused(capsys, ["--source", disk_id, "--target", url, option, value])
    _untouched(world, url, snapshot_id)
