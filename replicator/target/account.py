"""The target's storage account kind (Get Account Information), read the same way for a blob and a prefix.

Azure documents Shared Key and SAS (any permission, version 2018-03-28 on) for it
(learn.microsoft.com/rest/api/storageservices/get-account-information); a credential that cannot
read it costs only what depends on the kind (a premium blob's tiers and snapshot rules), never the
run: the kind is then premium.UNKNOWN, treated as standard, with the reason.
"""

from __future__ import annotations

import logging

from azure.core.exceptions import HttpResponseError, ServiceRequestError
from azure.storage.blob.aio import BlobClient, ContainerClient

from replicator.core import messages, premium

log = logging.getLogger(__name__)


async def read_kind(
    client: BlobClient | ContainerClient, display: str
) -> tuple[premium.TargetKind, str | None]:
    """The account's SKU and kind, with why it could not be read (None when it was)."""
    try:
        info = await client.get_account_information(retry_total=1)
    except (HttpResponseError, ServiceRequestError) as exc:
        why = f"Get Account Information failed ({messages.describe(exc)}): treated as a standard blob"
        log.info("%s: %s", display, why)
        return premium.UNKNOWN, why
    return premium.TargetKind(info.get("sku_name"), info.get("account_kind")), None
