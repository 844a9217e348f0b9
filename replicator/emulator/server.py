"""`replicate emulator`: option parsing, TLS material, secrets, the env file, signals.

The process prints one JSON line with everything a client needs (endpoints, token, key, the
managed-identity endpoint and its header secret, CA bundle)
once it is listening, so a test or a demo can start it on port 0 and read where it went.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import ipaddress
import json
import os
import secrets
import signal
import ssl
import sys
from pathlib import Path

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from replicator.emulator.app import build_app
from replicator.emulator.middleware import entra as entra_middleware
from replicator.emulator.middleware import faults, linkmodel
from replicator.emulator.routes.context import EmulatorContext, EmulatorOptions, Secrets

# The CA lives ten years so that a data dir reused across months keeps a trusted bundle; the server
# certificate is re-issued at every start (cheap with EC keys), so it only needs to outlive one run.
CA_VALIDITY = dt.timedelta(days=3650)
SERVER_VALIDITY = dt.timedelta(days=30)


class _UsageError(Exception):
    """Bad option value: reported as one sentence on stderr with exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise _UsageError(f"replicate emulator: {message}.")


def _parse(argv: list[str]) -> EmulatorOptions:
    parser = _Parser(
        prog="replicate emulator",
        description="Local emulator of the Azure surface used. It prints (and --env-file writes) the "
        "environment a client needs: endpoints, REPLICATOR_ACCESS_TOKEN, the account key, the CA "
        "bundle, and IDENTITY_ENDPOINT/IDENTITY_HEADER, a managed-identity endpoint through which "
        "DefaultAzureCredential gets Entra ID tokens (Entra-ID-protected disks need one: "
        "docs/emulator.md).",
    )
    parser.add_argument("--data-dir", required=True, type=Path, help="state directory (survives restarts)")
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; endpoints say 127.0.0.1)"
    )
    parser.add_argument("--port", default=0, type=int, help="0 picks a free port")
    parser.add_argument("--env-file", type=Path, help="also write the env keys here as KEY=VALUE lines")
    parser.add_argument(
        "--max-page-ranges", default=10000, type=int, help="ranges per Get Page Ranges answer"
    )
    parser.add_argument(
        "--list-timeout-ranges",
        type=int,
        help="Get Page Ranges answers 500 OperationTimedOut when the rest of its window holds more ranges",
    )
    parser.add_argument(
        "--completion-seconds", default=30.0, type=float, help="time for a v2/Ultra snapshot to complete"
    )
    linkmodel.add_arguments(parser)
    faults.add_arguments(parser)
    ns = parser.parse_args(argv)
    try:
        link = linkmodel.options_from(ns)
        fault_options = faults.options_from(ns)
    except ValueError as exc:
        raise _UsageError(f"replicate emulator: {exc}.") from None
    if not 0 <= ns.port <= 65535:
        raise _UsageError(f"replicate emulator: --port must be between 0 and 65535, not {ns.port}.")
    if ns.max_page_ranges < 1:
        raise _UsageError("replicate emulator: --max-page-ranges must be at least 1.")
    if ns.list_timeout_ranges is not None and ns.list_timeout_ranges < 1:
        raise _UsageError("replicate emulator: --list-timeout-ranges must be at least 1.")
    if not ns.completion_seconds >= 0:
        raise _UsageError("replicate emulator: --completion-seconds must be zero or more.")
    if ns.data_dir.exists() and not ns.data_dir.is_dir():
        raise _UsageError(f"replicate emulator: --data-dir {ns.data_dir} exists and is not a directory.")
    return EmulatorOptions(
        data_dir=ns.data_dir.resolve(),
        host=ns.host,
        port=ns.port,
        max_page_ranges=ns.max_page_ranges,
        list_timeout_ranges=ns.list_timeout_ranges,
        completion_seconds=ns.completion_seconds,
        env_file=ns.env_file,
        link=link,
        faults=fault_options,
        sas_max_seconds=ns.sas_max_seconds,
    )


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _ensure_ca(tls_dir: Path) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """Load the CA from the data dir, or create it once so restarts keep clients' trust."""
    key_path, cert_path = tls_dir / "ca.key", tls_dir / "ca.pem"
    if key_path.exists() and cert_path.exists():
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return key, x509.load_pem_x509_certificate(cert_path.read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("replicator emulator CA"))
        .issuer_name(_name("replicator emulator CA"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _write_private(key_path, key_pem)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key, cert


def _issue_server_cert(tls_dir: Path) -> tuple[Path, Path, Path]:
    """Issue a fresh server certificate for 127.0.0.1 and localhost; returns (ca, cert, key) paths."""
    tls_dir.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = _ensure_ca(tls_dir)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    san = x509.SubjectAlternativeName(
        [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + SERVER_VALIDITY)
        .add_extension(san, critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    cert_path, key_path = tls_dir / "server.pem", tls_dir / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_private(
        key_path,
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )
    return tls_dir / "ca.pem", cert_path, key_path


_NEW_SECRETS = {
    "access_token": lambda: secrets.token_urlsafe(32),
    "account_key": lambda: base64.b64encode(secrets.token_bytes(64)).decode(),
    "identity_header": lambda: secrets.token_urlsafe(32),
    "signing_key": lambda: base64.b64encode(secrets.token_bytes(32)).decode(),
}  # each made once, at the first start that lacks it (a data dir from an older emulator gains the new ones)


def _load_secrets(data_dir: Path) -> Secrets:
    """The emulator's secrets: generated once, then reused from the data dir, so clients keep them."""
    path = data_dir / "secrets.json"
    stored = json.loads(path.read_text()) if path.exists() else {}
    missing = {name: make() for name, make in _NEW_SECRETS.items() if name not in stored}
    if missing:
        stored.update(missing)
        _write_private(path, json.dumps(stored).encode())
    return Secrets(**{name: stored[name] for name in _NEW_SECRETS})


def _env_keys(ctx: EmulatorContext, ca_path: Path) -> dict[str, str]:
    return {
        "REPLICATOR_ARM_ENDPOINT": ctx.base_url,
        "REPLICATOR_BLOB_ENDPOINT": ctx.base_url,
        "REPLICATOR_ACCESS_TOKEN": ctx.access_token,
        "REPLICATOR_ACCOUNT_KEY": ctx.account_key,
        "AZURE_SUBSCRIPTION_ID": ctx.options.subscription_id,
        # The App Service managed-identity protocol, which DefaultAzureCredential speaks unchanged
        # (middleware/entra.py): a path no account name can take (they cannot start with "_").
        "IDENTITY_ENDPOINT": f"{ctx.base_url}{entra_middleware.TOKEN_PATH}",
        "IDENTITY_HEADER": ctx.secrets.identity_header,
        "SSL_CERT_FILE": str(ca_path),
        "REQUESTS_CA_BUNDLE": str(ca_path),
    }


async def _serve(options: EmulatorOptions) -> int:
    options.data_dir.mkdir(parents=True, exist_ok=True)
    ca_path, cert_path, key_path = _issue_server_cert(options.data_dir / "tls")
    ssl_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ssl_ctx.load_cert_chain(cert_path, key_path)
    ctx = EmulatorContext.open(options, _load_secrets(options.data_dir))
    # Handlers go in before the JSON line is printed: whoever reads it may signal us at once.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    runner = web.AppRunner(build_app(ctx), access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, options.host, options.port, ssl_context=ssl_ctx, reuse_address=True)
        await site.start()
        port = runner.addresses[0][1]
        ctx.set_base_url(f"https://127.0.0.1:{port}")
        env = _env_keys(ctx, ca_path)
        if options.env_file is not None:
            options.env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
        print(json.dumps(env), flush=True)
        await stop.wait()
    finally:
        await runner.cleanup()
        ctx.close()
    return 0


def main(argv: list[str]) -> int:
    """Entry of `replicate emulator ...`; returns the process exit code."""
    try:
        options = _parse(argv)
    except _UsageError as exc:
        text = str(exc).removeprefix("replicate emulator: ").removeprefix("argument ")
        print(f"replicate emulator: error: {text[:1].upper()}{text[1:]}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_serve(options))
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""  # which path: the data dir, the env file...
        print(f"replicate emulator: error: Cannot start: {exc.strerror or exc}{where}.", file=sys.stderr)
        return 2
