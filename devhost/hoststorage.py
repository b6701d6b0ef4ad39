"""The host's own storage (`AzureWebJobsStorage`): timer status, blob receipts, the poison queue.

Owns the blob and queue layout the real Functions host uses, so state written by
devhost looks like the host's and survives restarts:
- `azure-webjobs-hosts/timers/<hostId>/<functionId>/status` (timer schedule status),
- `azure-webjobs-hosts/blobreceipts/<hostId>/<functionId>/"<etag>"/<container>/<blob>` (blob receipts),
- queue `webjobs-blobtrigger-poison` (base64 JSON, as the host encodes queue messages).
https://learn.microsoft.com/azure/azure-functions/functions-bindings-storage-blob-trigger#blob-receipts
It never touches the app's own tables or containers.
"""

from __future__ import annotations

import base64
import json
import re
import socket
from collections.abc import Mapping
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueServiceClient

from devhost.functions import StartupError

HOSTS_CONTAINER = "azure-webjobs-hosts"
POISON_QUEUE = "webjobs-blobtrigger-poison"


def host_id(environ: Mapping[str, str]) -> str:
    """The host id: the `AzureFunctionsWebHost__hostid` setting, else the machine name (as the host does)."""
    configured = environ.get("AzureFunctionsWebHost__hostid")
    if configured:
        return configured
    name = re.sub(r"[^a-z0-9-]", "", socket.gethostname().lower()).strip("-")
    return (name or "devhost")[:32]


def connection_string(environ: Mapping[str, str], connection: str | None) -> str:
    """The connection string a binding's `connection` names (empty: AzureWebJobsStorage)."""
    name = connection or "AzureWebJobsStorage"
    value = environ.get(name) or environ.get(f"ConnectionStrings:{name}")
    if not value:
        raise StartupError(f"app setting {name!r} (a storage connection string) is not set")
    return value


class HostStorage:
    def __init__(self, connection: str, host: str) -> None:
        self.host_id = host
        self.blobs = BlobServiceClient.from_connection_string(connection)
        self.queues = QueueServiceClient.from_connection_string(connection)
        self.container = self.blobs.get_container_client(HOSTS_CONTAINER)

    def ensure_created(self) -> None:
        try:
            self.container.create_container()
        except ResourceExistsError:
            pass

    # Timer status

    def _status_blob(self, function_id: str) -> str:
        return f"timers/{self.host_id}/{function_id}/status"

    def read_timer_status(self, function_id: str) -> dict[str, Any] | None:
        try:
            data = self.container.download_blob(self._status_blob(function_id)).readall()
        except ResourceNotFoundError:
            return None
        try:
            status = json.loads(data)
        except ValueError:
            return None
        return status if isinstance(status, dict) else None

    def write_timer_status(self, function_id: str, status: dict[str, Any]) -> None:
        self.container.upload_blob(self._status_blob(function_id), json.dumps(status), overwrite=True)

    # Blob receipts

    def _receipt_blob(self, function_id: str, etag: str, container: str, blob: str) -> str:
        return f"blobreceipts/{self.host_id}/{function_id}/{etag}/{container}/{blob}"

    def has_receipt(self, function_id: str, etag: str, container: str, blob: str) -> bool:
        return self.container.get_blob_client(self._receipt_blob(function_id, etag, container, blob)).exists()

    def write_receipt(self, function_id: str, etag: str, container: str, blob: str) -> None:
        self.container.upload_blob(self._receipt_blob(function_id, etag, container, blob), b"", overwrite=True)

    # Poison queue

    def write_poison(self, function_id: str, container: str, blob: str, etag: str) -> None:
        queue = self.queues.get_queue_client(POISON_QUEUE)
        try:
            queue.create_queue()
        except ResourceExistsError:
            pass
        message = {"Type": "BlobTrigger", "FunctionId": function_id, "BlobType": "BlockBlob",
                   "ContainerName": container, "BlobName": blob, "ETag": etag}
        queue.send_message(base64.b64encode(json.dumps(message).encode("utf-8")).decode("ascii"))
