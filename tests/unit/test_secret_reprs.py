"""Objects that hold a target URL never show its SAS signature in repr() or str()."""

from __future__ import annotations

import pytest

from replicator.cli.replicate_cmd import load
from replicator.plumbing.urlcheck import parse_target_url

SIGNATURE = "c2VjcmV0LXNpZ25hdHVyZS12YWx1ZQ%3D%3D"
SUBSCRIPTION = "/subscriptions/00000000-0000-0000-0000-000000000001"
DISK = f"{SUBSCRIPTION}/resourceGroups/rg/providers/Microsoft.Compute/disks/d"
TARGETS = (
    f"https://acct.blob.core.windows.net/ccc/b.vhd?sv=2025-01-05&sr=b&sp=rcw&sig={SIGNATURE}",
    f"https://acct.blob.core.windows.net/ccc/b.vhd?sig={SIGNATURE}&se=2030-01-01",
    f"https://127.0.0.1:1/acct/ccc/dir/b.vhd?sv=2025-01-05&s%69g={SIGNATURE}",  # an encoded letter
)


@pytest.mark.parametrize("target", TARGETS)
def test_config_repr_and_str_mask_the_target_sas(target: str) -> None:
    config = load(["--source", DISK, "--target", target], env={"REPLICATOR_ACCESS_TOKEN": "tok-secret"})
    for text in (repr(config), str(config), f"{config}", repr([config])):
        assert SIGNATURE not in text and "tok-secret" not in text
        assert "acct" in text and "b.vhd" in text and "merge_gap_bytes=65536" in text  # still useful
    assert config.target == target  # only the repr is masked, never the value


@pytest.mark.parametrize("target", TARGETS)
def test_target_url_repr_and_str_mask_the_sas(target: str) -> None:
    url = parse_target_url(target, allow_http=False)
    for text in (repr(url), str(url), f"{url!r}"):
        assert SIGNATURE not in text
        assert "REDACTED" in text and "acct" in text
    assert url.sas is not None and SIGNATURE in url.sas
