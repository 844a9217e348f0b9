"""replicator.plumbing.credentials: static tokens, URL policy, the CA bundle and the pooled TLS transport."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from azure.identity.aio import DefaultAzureCredential

from replicator.core.errors import UserError
from replicator.plumbing import credentials


async def test_a_static_token_serves_every_scope_and_is_never_shown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(credentials.ACCESS_TOKEN_ENV, "env-token")
    cred = credentials.async_credential()
    assert (await cred.get_token("https://management.azure.com/.default")).token == "env-token"
    assert (await cred.get_token_info("https://storage.azure.com/.default")).token == "env-token"
    assert "env-token" not in repr(cred)
    await cred.close()
    # A token in the config wins over the environment.
    settings = SimpleNamespace(access_token="config-token", allow_http=False)
    assert credentials.sync_credential(settings).get_token("x").token == "config-token"


async def test_without_a_token_default_azure_credential_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(credentials.ACCESS_TOKEN_ENV, raising=False)
    cred = credentials.async_credential(SimpleNamespace(access_token=None, allow_http=False))
    assert isinstance(cred, DefaultAzureCredential)
    await cred.close()


@pytest.mark.parametrize(
    "url", ["https://acct.blob.core.windows.net/c/b?sv=1&sig=abc", "http://127.0.0.1:10000/a/c/b"]
)
def test_https_always_and_http_only_when_allowed(url: str) -> None:
    credentials.check_url(url, "target URL", allow_http=True)
    if url.startswith("http:"):
        with pytest.raises(UserError, match="plain HTTP"):
            credentials.check_url(url, "target URL", allow_http=False)


def test_other_urls_are_refused_without_showing_a_sas() -> None:
    with pytest.raises(UserError) as caught:
        credentials.check_url("ftp://host/c/b?sig=SECRET", "target URL", allow_http=True)
    assert "SECRET" not in str(caught.value)
    with pytest.raises(UserError):
        credentials.check_url("/just/a/path", "target URL", allow_http=True)


def test_the_arm_endpoint_must_be_https_even_with_allow_http() -> None:
    assert (
        credentials.check_arm_endpoint("https://127.0.0.1:8443/", allow_http=False)
        == "https://127.0.0.1:8443"
    )
    with pytest.raises(UserError, match="bearer tokens"):
        credentials.check_arm_endpoint("http://127.0.0.1:8443", allow_http=True)
    assert (
        credentials.arm_scope("https://management.chinacloudapi.cn/")
        == "https://management.chinacloudapi.cn/.default"
    )


def test_an_unreadable_ca_bundle_is_a_user_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate")
    monkeypatch.setenv("SSL_CERT_FILE", str(bad))
    with pytest.raises(UserError, match="Cannot load the CA bundle"):
        credentials.ssl_context()
    monkeypatch.delenv("SSL_CERT_FILE")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "missing.pem"))
    with pytest.raises(UserError, match=r"missing\.pem"):
        credentials.ssl_context()


def test_each_client_gets_its_own_transport_sharing_one_tls_context(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    first, second = credentials.transport_kwargs()["transport"], credentials.transport_kwargs()["transport"]
    assert first is not second
    assert first._ssl_context is second._ssl_context
