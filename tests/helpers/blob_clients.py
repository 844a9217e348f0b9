"""Azure SDK blob clients on an emulator, per credential kind (account key, bearer token, SAS URL)."""

from __future__ import annotations

from dataclasses import dataclass

from azure.storage.blob import BlobClient, BlobServiceClient

from replicator.plumbing.credentials import StaticTokenCredential


@dataclass(frozen=True)
class BlobClients:
    """Azure SDK blob clients for an emulator, per credential kind (the CA is passed explicitly)."""

    env: dict[str, str]

    def url(self, account: str) -> str:
        return f"{self.env['REPLICATOR_BLOB_ENDPOINT']}/{account}"

    def key(self, account: str) -> BlobServiceClient:
        credential = {"account_name": account, "account_key": self.env["REPLICATOR_ACCOUNT_KEY"]}
        return BlobServiceClient(self.url(account), credential, connection_verify=self.env["SSL_CERT_FILE"])

    def bearer(self, account: str, token: str | None = None) -> BlobServiceClient:
        credential = StaticTokenCredential(token or self.env["REPLICATOR_ACCESS_TOKEN"])
        return BlobServiceClient(self.url(account), credential, connection_verify=self.env["SSL_CERT_FILE"])

    def blob_from_url(self, url: str, credential: object = None) -> BlobClient:
        return BlobClient.from_blob_url(url, credential, connection_verify=self.env["SSL_CERT_FILE"])
