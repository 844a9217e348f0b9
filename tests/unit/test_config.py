"""Config: flags beat environment, environment beats defaults, bad values are one-sentence UserErrors."""

from __future__ import annotations

from dataclasses import replace

import pytest

from replicator.cli.replicate_cmd import load
from replicator.core.errors import UserError
from replicator.settings.config import Config
from replicator.settings.knobs import KNOBS, parse_size

SUB = "00000000-0000-0000-0000-000000000001"
OTHER_SUB = "00000000-0000-0000-0000-000000000002"
DISK = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Compute/disks/d1"
TARGET = "https://acct.blob.core.windows.net/ccc/b.vhd"
BASE = ["--source", DISK, "--target", TARGET]


def test_defaults_and_subscription_from_source() -> None:
    config = load(BASE, env={})
    # --concurrency unset: the target's kind decides it (core.premium.ceiling_for)
    assert (config.concurrency, config.mode, config.plan, config.max_bandwidth) == (
        None,
        "server",
        False,
        None,
    )
    assert (config.max_in_flight_bytes, config.merge_gap_bytes) == (32 * 1024**2, 64 * 1024)
    assert config.subscription_id == SUB
    assert config.arm_endpoint == "https://management.azure.com"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--merge-gap", "2MiB"], "--merge-gap must be between"),
        (["--merge-gap", "1000"], "multiple of 512"),
        (["--max-in-flight", "1MiB"], "--max-in-flight must be between"),
    ],
)
def test_merge_gap_and_in_flight_bounds(args: list[str], message: str) -> None:
    with pytest.raises(UserError, match=message):
        load([*BASE, *args], env={})


def test_flag_wins_over_environment_and_environment_fills_the_rest() -> None:
    env = {"REPLICATOR_CONCURRENCY": "4", "REPLICATOR_MODE": "stream", "REPLICATOR_LATEST_ONLY": "true"}
    config = load([*BASE, "--concurrency", "8"], env=env)
    assert (config.concurrency, config.mode, config.latest_only) == (8, "stream", True)


def test_source_and_target_from_environment() -> None:
    env = {"REPLICATOR_SOURCE": DISK, "REPLICATOR_TARGET": TARGET, "AZURE_SUBSCRIPTION_ID": OTHER_SUB}
    config = load([], env=env)
    assert (config.source, config.target, config.subscription_id) == (DISK, TARGET, OTHER_SUB)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--concurrency", "0"], "--concurrency must be between 1 and 192; got 0."),
        (["--concurrency", "x"], "--concurrency: expected a whole number; got 'x'."),
        (["--mode", "fast"], "--mode must be one of server, stream; got 'fast'."),
        (["--max-bandwidth", "lots"], "--max-bandwidth: expected a size like 50MiB or 1048576; got 'lots'."),
        (["--list-window", "5MiB"], "--list-window must be a multiple of 4MiB; got 5242880."),
        (["--bogus"], "Unknown argument --bogus; see `replicate --help`."),
    ],
)
def test_bad_values_are_one_sentence(args: list[str], message: str) -> None:
    with pytest.raises(UserError) as caught:
        load([*BASE, *args], env={})
    assert str(caught.value) == message
    assert caught.value.exit_code == 2


def test_missing_source_names_flag_and_variable() -> None:
    with pytest.raises(UserError, match=r"--source is required \(or set REPLICATOR_SOURCE\)"):
        load(["--target", TARGET], env={})


def test_malformed_source_id_is_refused() -> None:
    with pytest.raises(UserError, match="not a managed disk, snapshot or virtual machine resource ID"):
        load(["--source", "/subscriptions/x/disks/d", "--target", TARGET], env={})


def test_bad_boolean_variable() -> None:
    message = r"REPLICATOR_PLAN \(environment variable\) must be true or false; got 'maybe'\."
    with pytest.raises(UserError, match=message):
        load(BASE, env={"REPLICATOR_PLAN": "maybe"})


def test_parse_size_units() -> None:
    assert parse_size("50MiB") == 50 * 2**20
    assert parse_size("1GB") == 10**9
    assert parse_size("1048576") == 2**20
    assert parse_size("2.5KiB") == 2560


def test_every_config_field_is_a_documented_knob() -> None:
    names = {k.name for k in KNOBS}
    assert names == set(Config.__dataclass_fields__) - {"size_readings"}  # how load() read the sizes
    assert all(k.reason and k.memory and k.env.isupper() for k in KNOBS)


def test_access_token_never_in_repr() -> None:
    config = load(BASE, env={"REPLICATOR_ACCESS_TOKEN": "secret-token-value"})
    assert config.access_token == "secret-token-value"
    assert "secret-token-value" not in repr(config)


def test_sizes_in_decimal_or_one_letter_units_say_how_they_were_read() -> None:
    config = load(
        [*BASE, "--max-bandwidth", "50MB", "--max-in-flight", "64MiB", "--list-window", "4G"],
        env={"REPLICATOR_MERGE_GAP": "128k"},
    )
    assert config.max_bandwidth == 50 * 1000**2 and config.list_window_bytes == 4 * 1024**3
    assert [r.text for r in config.size_readings] == [  # --max-in-flight 64MiB is unambiguous: no line
        "REPLICATOR_MERGE_GAP 128k = 128.0 KiB (k is binary, as rsync and dd read it; "
        "128KB would be 125.0 KiB).",
        "--max-bandwidth 50MB = 47.7 MiB/s (MB is decimal, 10^6 bytes; 50MiB would be 50.0 MiB/s).",
        "--list-window 4G = 4.0 GiB (G is binary, as rsync and dd read it; 4GB would be 3.7 GiB).",
    ]
    assert load([*BASE, "--max-bandwidth", "52428800"], env={}).size_readings == ()
    read = load([*BASE, "--max-bandwidth", "1GB"], env={})
    assert read == replace(read, size_readings=())  # how a value was read is not part of the config


def test_progress_seconds_and_the_wire_level() -> None:
    assert load(BASE, env={}).progress_seconds == 30.0
    config = load([*BASE, "--log-level", "wire"], env={"REPLICATOR_PROGRESS_SECONDS": "0.5"})
    assert (config.log_level, config.progress_seconds) == ("wire", 0.5)
    with pytest.raises(UserError, match=r"PROGRESS_SECONDS \(environment variable\) must be between"):
        load(BASE, env={"REPLICATOR_PROGRESS_SECONDS": "0"})
    with pytest.raises(UserError, match="--log-level must be one of wire, debug, info, warning, error"):
        load([*BASE, "--log-level", "verbose"], env={})


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--account-requests", "0"], {}, "--account-requests must be between 1 and 1000000; got 0."),
        (["--account-requests", "many"], {}, "--account-requests: expected a whole number; got 'many'."),
        (
            ["--account-ingress", "64KiB"],
            {},
            "--account-ingress must be between 1 MiB and 1 TiB; got 64 KiB.",
        ),
        (
            [],
            {"REPLICATOR_ACCOUNT_INGRESS": "fast"},
            "REPLICATOR_ACCOUNT_INGRESS (environment variable): expected a size like 50MiB or 1048576; "
            "got 'fast'.",
        ),
    ],
)
def test_bad_account_budgets_exit_2(args: list[str], env: dict[str, str], message: str) -> None:
    with pytest.raises(UserError) as caught:
        load([*BASE, *args], env=env)
    assert str(caught.value) == message
    assert caught.value.exit_code == 2


def test_the_account_budget_defaults_to_azures_targets_and_takes_rates() -> None:
    assert (load(BASE, env={}).account_requests, load(BASE, env={}).account_ingress) == (None, None)
    config = load([*BASE, "--account-requests", "40000"], env={"REPLICATOR_ACCOUNT_INGRESS": "7.5GB"})
    assert (config.account_requests, config.account_ingress) == (40_000, 7_500_000_000)
    (reading,) = config.size_readings
    assert reading.text.startswith("REPLICATOR_ACCOUNT_INGRESS 7.5GB = ") and "/s (" in reading.text


@pytest.mark.parametrize(
    ("given", "seconds"), [("540", 540.0), ("9m", 540.0), ("1h30m", 5400.0), ("2.5", 2.5)]
)
def test_the_time_budget_takes_a_duration_or_seconds(given: str, seconds: float) -> None:
    """A Functions timeout is written 00:10:00 and a cron slot 15m: the budget is said the same way,
    and a bare number still means seconds (older scripts and app settings)."""
    assert load([*BASE, "--time-budget", given], env={}).time_budget_seconds == seconds
    assert load(BASE, env={"REPLICATOR_TIME_BUDGET": given}).time_budget_seconds == seconds
