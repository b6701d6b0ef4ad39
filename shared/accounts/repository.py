"""The Accounts table (PartitionKey `account`, RowKey = the tenant's GUID).

Owns reading and writing account rows and their OData. Every replace is ETag-guarded: a
concurrent change is a `ConcurrencyConflict`, never overwritten. It never decides an account's
status (the model's `change_status` does).
"""

from __future__ import annotations

from shared.accounts.model import ACCOUNT_PARTITION, Account
from shared.errors import NotFound
from shared.identifiers import is_guid
from shared.storage import Table


class AccountRepository:
    def __init__(self, table: Table) -> None:
        self.table = table

    def get(self, account_id: str) -> Account:
        entity = self.table.get(ACCOUNT_PARTITION, account_id) if is_guid(account_id) else None
        if entity is None:
            raise NotFound(f"there is no calendar account {account_id!r}")
        return Account.from_entity(entity)

    def find(self, account_id: str) -> Account | None:
        try:
            return self.get(account_id)
        except NotFound:
            return None

    def add(self, account: Account) -> Account:
        saved = self.table.insert(
            account.to_entity(), exists_message=f"the tenant {account.tenant_name} is already added as an account"
        )
        account.etag = saved["_etag"]
        return account

    def save(self, account: Account) -> Account:
        """ETag-guarded replace: a concurrent change is a ConcurrencyConflict, never overwritten."""
        saved = self.table.update(account.to_entity())
        account.etag = saved["_etag"]
        return account

    def all(self) -> list[Account]:
        return [
            Account.from_entity(e)
            for e in self.table.query_all("PartitionKey eq @pk", parameters={"pk": ACCOUNT_PARTITION})
        ]

    def delete(self, account: Account) -> None:
        self.table.delete(ACCOUNT_PARTITION, account.account_id)
