"""The Bookings table: PartitionKey = the calendar (`{account id}|{email}`), RowKey = Graph's event id.

Owns reading and writing booking rows and their OData. Keys make sync idempotent: writing the
same occurrence twice is one row, and a calendar's rows are written in entity-group
transactions (one partition, 100 at a time). It never decides what changed: the sync round
compares and says.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime

from shared.bookings.model import Booking, calendar_partition, row_key
from shared.errors import Conflict
from shared.models import iso
from shared.storage import Parallel, Table


class BookingStore:
    def __init__(self, table: Table, parallel: Parallel) -> None:
        self.table = table
        self.parallel = parallel

    def get(self, account_id: str, email: str, booking_id: str) -> Booking | None:
        entity = self.table.get(calendar_partition(account_id, email), row_key(booking_id))
        return Booking.from_entity(entity) if entity else None

    def of_calendar(self, account_id: str, email: str) -> Iterator[Booking]:
        partition = calendar_partition(account_id, email)
        for entity in self.table.query_all("PartitionKey eq @p", parameters={"p": partition}):
            yield Booking.from_entity(entity)

    def between(self, account_id: str, email: str, start: datetime, end: datetime) -> list[Booking]:
        """The calendar's bookings that overlap [start, end), by start (moments compare as UTC text)."""
        found = [Booking.from_entity(entity) for entity in self.table.query_all(
            "PartitionKey eq @p and start lt @end and end gt @start",
            parameters={"p": calendar_partition(account_id, email), "start": iso(start), "end": iso(end)})]
        return sorted(found, key=lambda booking: (booking.start, booking.end, booking.booking_id))

    def find_many(self, account_id: str, email: str, booking_ids: Iterable[str]) -> dict[str, Booking]:
        """The stored bookings among these ids (`Table.get_many`: the key queries side by side)."""
        found = self.table.get_many(calendar_partition(account_id, email),
                                    (row_key(booking_id) for booking_id in booking_ids), self.parallel.run)
        return {booking.booking_id: booking for booking in (Booking.from_entity(entity) for entity in found.values())}

    def write(self, upserts: list[Booking], removals: list[Booking]) -> None:
        """Replace and delete rows of one calendar, 100 to a transaction; repeating it is harmless."""
        operations = [("upsert", booking.to_entity()) for booking in upserts]
        operations += [("delete", {"PartitionKey": calendar_partition(b.account_id, b.email),
                                   "RowKey": row_key(b.booking_id)}) for b in removals]
        self.table.submit_repeatable(operations)

    def add(self, booking: Booking) -> bool:
        """Insert a booking the API just made; False when a round stored it first (then only who
        booked it is merged in, so the round's reading of Graph stands)."""
        try:
            self.table.insert(booking.to_entity())
            return True
        except Conflict:
            self.table.transact([("upsert-merge", {
                "PartitionKey": calendar_partition(booking.account_id, booking.email),
                "RowKey": row_key(booking.booking_id), "booked_by_name": booking.booked_by_name,
                "booked_by_email": booking.booked_by_email})])
            return False

    def remove(self, booking: Booking) -> None:
        self.table.delete(calendar_partition(booking.account_id, booking.email), row_key(booking.booking_id))

    def remove_calendar(self, account_id: str, email: str) -> int:
        """Delete every booking of the calendar; returns how many. Repeatable."""
        partition = calendar_partition(account_id, email)
        keys = [entity["RowKey"] for entity in self.table.query_all("PartitionKey eq @p", parameters={"p": partition},
                                                                     select=["RowKey"])]
        self.table.submit_repeatable([("delete", {"PartitionKey": partition, "RowKey": key}) for key in keys])
        return len(keys)

