"""Signatures with the account key: the HMAC, the strings-to-sign of a SAS, and the SAS URL that
ARM's grant access hands out.

auth.py checks what clients sign with these; access_policies.py signs grant URLs with
them. The layouts are azure-storage-blob's (`_shared_access_signature.py`, `sv` 2020-12-06 and
later, no delegation key).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from urllib.parse import quote

API_VERSION = "2026-10-06"  # the installed SDK's x-ms-version: the default answer and grant_sas `sv`


def sign(account_key: str, string_to_sign: str) -> str:
    """HMAC-SHA256 with the base64 account key, base64 again: a SAS `sig` or a Shared Key signature."""
    digest = hmac.new(base64.b64decode(account_key), string_to_sign.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def service_string_to_sign(account: str, path: str, q: Mapping[str, str]) -> str:
    """The service SAS string-to-sign of azure-storage-blob (sv 2020-12-06 and later, no delegation key)."""
    fields = ["sp", "st", "se"]
    head = "".join(q.get(k, "") + "\n" for k in fields) + f"/blob/{account}{path}\n"
    tail = ["si", "sip", "spr", "sv", "sr", "snapshot", "ses", "rscc", "rscd", "rsce", "rscl", "rsct"]
    return head + "\n".join(q.get(k, "") for k in tail)


def account_string_to_sign(account: str, q: Mapping[str, str]) -> str:
    """The account SAS string-to-sign of azure-storage-blob's generate_account_sas."""
    fields = ("sp", "ss", "srt", "st", "se", "sip", "spr", "sv", "ses")
    return account + "\n" + "".join(q.get(k, "") + "\n" for k in fields)


def policy_sas_url(
    account_key: str, base_url: str, account: str, container: str, blob: str, policy_id: str
) -> str:
    """A blob's URL with a service SAS that grants what the stored access policy `policy_id` says."""
    fields = {"sv": API_VERSION, "sr": "b", "si": policy_id}
    sig = sign(account_key, service_string_to_sign(account, f"/{container}/{blob}", fields))
    query = "&".join(f"{k}={quote(v, safe='')}" for k, v in {**fields, "sig": sig}.items())
    return f"{base_url}/{account}/{container}/{quote(blob)}?{query}"
