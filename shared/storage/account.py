"""The storage account: its three service clients and every table, container and queue the app uses.

Owns how the app reaches its storage account (a connection string for Azurite locally, the
managed identity with account URLs in Azure) and the names of what it keeps there (the
tables of docs/architecture.md are the contract). It never reads or writes a domain row.
"""

from __future__ import annotations

from dataclasses import dataclass

from azure.core.exceptions import ResourceExistsError
from azure.core.pipeline.transport import RequestsTransport
from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueServiceClient

from shared.sessions import storage_transport
from shared.storage.tables import Table

TABLE_NAMES = ("Accounts", "Calendars", "Spaces", "SpaceIndex", "ConsentStates", "Imports", "Audit", "ConnectorRuns",
               "Subscriptions", "Bookings", "SyncStates", "BookingChanges", "BookingLocks", "Readiness")
REPORTS_CONTAINER = "import-reports"
CONTAINER_NAMES = (REPORTS_CONTAINER,)
CALENDAR_CHANGES_QUEUE = "calendar-changes"
QUEUE_NAMES = (CALENDAR_CHANGES_QUEUE,)


def _data_transport() -> RequestsTransport:
    """Blob and queue clients keep the timeouts their SDKs give their own transports (20 s to
    connect, 60 s to read): a transport passed in starts from azure-core's 300 s each instead."""
    return storage_transport(connection_timeout=20, read_timeout=60)


@dataclass
class StorageAccount:
    """The three service clients of one storage account."""

    tables: TableServiceClient
    blobs: BlobServiceClient
    queues: QueueServiceClient

    @classmethod
    def from_connection_string(cls, connection_string: str) -> StorageAccount:
        return cls(
            tables=TableServiceClient.from_connection_string(connection_string, transport=storage_transport()),
            blobs=BlobServiceClient.from_connection_string(connection_string, transport=_data_transport()),
            queues=QueueServiceClient.from_connection_string(connection_string, transport=_data_transport()),
        )

    @classmethod
    def from_managed_identity(cls, account_name: str) -> StorageAccount:
        # Imported here: azure-identity is only needed in Azure.
        from azure.identity import DefaultAzureCredential

        credential = DefaultAzureCredential()
        return cls(
            tables=TableServiceClient(f"https://{account_name}.table.core.windows.net", credential=credential,
                                      transport=storage_transport()),
            blobs=BlobServiceClient(f"https://{account_name}.blob.core.windows.net", credential=credential,
                                    transport=_data_transport()),
            queues=QueueServiceClient(f"https://{account_name}.queue.core.windows.net", credential=credential,
                                      transport=_data_transport()),
        )

    def table(self, name: str) -> Table:
        return Table(self.tables.get_table_client(name))

    def ensure_created(self, container_names: tuple[str, ...] = CONTAINER_NAMES, *,
                       containers_and_queues: bool = True) -> None:
        """Create every table the app uses, and (`containers_and_queues`) its containers and queues;
        safe to repeat. In Azure the app reaches storage with roles scoped to each container and queue,
        which Bicep creates (infra/main.bicep): it may create tables (an account-level role) but not
        those."""
        for name in TABLE_NAMES:
            self.table(name).create_if_missing()
        if not containers_and_queues:
            return
        for name in container_names:
            try:
                self.blobs.create_container(name)
            except ResourceExistsError:
                pass
        for name in QUEUE_NAMES:
            try:
                self.queues.create_queue(name)
            except ResourceExistsError:
                pass

    def missing_tables(self) -> list[str]:
        present = {table.name for table in self.tables.list_tables()}
        return [name for name in TABLE_NAMES if name not in present]
