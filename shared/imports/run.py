"""One import of one file, row by row: deciding each row, then writing the decided rows in transactions.

Owns what a row becomes (added, updated, unchanged, rejected with the reason) and the order of
writes. Writes go 100 rows at a time, a few such chunks in flight: first the chunk's space
claims as one entity-group transaction of If-Match merges (`SpaceDirectory.claim_many`; a claim
that loses a race is decided again one by one, a taken space rejects its row), then the
chunk's new calendars as one transaction. A row's calendar is written only once its space is
its own. While one window's transactions are answered the next window is decided; windows
are reported in line order. Every row is decided from the rows before it, never from when a
claim was answered: the first acceptable row naming a space holds it in the file (a later row
naming it is rejected, whatever that claim comes to), and moving a calendar off a space an
earlier row named waits for that row's claim. So a file gives the same report however its
windows fall and its requests interleave.

Restartable: every calendar this import writes carries its `ImportMark` (import id + blob
ETag, and the action). A run that finds a row's calendar already marked by itself reports the
recorded action and writes nothing, so a retry after a crash at any point ends with every row
applied once or reported, and its report is the one a clean run would have written. New
calendars are created (never upserted): one added meanwhile by someone else is never
overwritten. It never calls Graph.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from shared.calendars import Calendar, CalendarHooks, CalendarRepository, ImportMark, SpaceLinks
from shared.errors import ConcurrencyConflict, Conflict, Invalid, NotFound
from shared.identifiers import normalise_email
from shared.imports.dialect import CsvRow
from shared.imports.records import REJECTED_IN_RECORD
from shared.models import iso, utc_now
from shared.spaces import Space, SpaceTaken, space_not_found
from shared.storage import MAX_BATCH_SIZE

# Rows decided but not yet written out to the report: flushed with each round of transactions.
WINDOW_ROWS = 2000
# Entity-group transactions in flight at once.
PARALLEL_TRANSACTIONS = 4
# Windows whose transactions are submitted but not yet reported: while one is written, the next is
# decided, so Table Storage is kept busy.
_WINDOWS_IN_FLIGHT = 2


@dataclass
class RowResult:
    line: int
    email: str
    room: str
    outcome: str  # added | updated | unchanged | rejected (+ "would be" in validate-only)
    reason: str = ""
    pending: Calendar | None = None
    to_claim: Space | None = None  # the space a new calendar links to, claimed just before it is written
    claimed: Space | None = None


@dataclass
class Known:
    """What an import needs to know about an existing calendar before deciding a row."""

    space_id: str
    action: str | None  # the action this very import recorded on it, if it wrote it
    previous_space_id: str | None


@dataclass
class ImportRun:
    """The state of one run of one import: what is known, what is decided, what is in flight."""

    account_id: str
    import_id: str
    actor: str
    validate_only: bool
    marker: str
    known: dict[str, Known]
    spaces: dict[str, Space]
    writer: Any
    pool: ThreadPoolExecutor
    calendars: CalendarRepository
    links: SpaceLinks
    hooks: CalendarHooks
    counts: dict[str, int] = field(default_factory=lambda: {"rows": 0, "added": 0, "updated": 0,
                                                            "unchanged": 0, "rejected": 0})
    rejected: list[dict[str, Any]] = field(default_factory=list)
    seen: dict[str, int] = field(default_factory=dict)
    space_holders: dict[str, tuple[str, int]] = field(default_factory=dict)
    window: list[RowResult] = field(default_factory=list)
    pending: int = 0
    in_flight: deque[tuple[list[RowResult], list[Future[None]]]] = field(default_factory=deque)

    def apply(self, rows: Any) -> None:
        """Decide and write every row, then wait for the last transactions and report them."""
        for row in rows:
            self.decide(row)
            if len(self.window) >= WINDOW_ROWS or self.pending >= MAX_BATCH_SIZE * PARALLEL_TRANSACTIONS:
                self._flush()
        self._flush()
        self._drain()

    def decide(self, row: CsvRow) -> None:
        self.counts["rows"] += 1
        result = RowResult(line=row.line, email=row.email, room=row.room or "", outcome="rejected")
        self._decide_row(row, result)
        # Into the window once decided: deciding may submit and report the rows before it.
        self.window.append(result)

    def _decide_row(self, row: CsvRow, result: RowResult) -> None:
        if row.problem:
            result.reason = row.problem
            return
        try:
            email = normalise_email(row.email)
        except Invalid as error:
            result.reason = error.message
            return
        result.email = email
        first = self.seen.get(email)
        if first is not None:
            result.reason = f"{email} is already on line {first} of this file"
            return
        self.seen[email] = row.line
        known = self.known.get(email)
        if known is not None and known.action:
            # Written by this very import in an earlier attempt: report it, write nothing again.
            result.outcome = known.action
            if row.room:
                self.space_holders.setdefault(known.space_id, (email, row.line))
            if known.previous_space_id and not self.validate_only:
                self._release_previous(known.previous_space_id, email)
            return
        space: Space | None = None
        if row.room:
            space = self.spaces.get(row.room)
            if space is None:
                result.reason = space_not_found(row.room).message
                return
            holder = self.space_holders.get(space.space_id)
            if holder is not None and holder[0] != email:
                result.reason = (f"space {space.label} is already named on line {holder[1]} of this file "
                                 f"(for {holder[0]}): a space links to one calendar")
                return
            # The first row naming a space holds it in this file, whatever its claim comes to: so every
            # row is decided from the rows before it alone, never from when a claim was answered.
            self.space_holders[space.space_id] = (email, row.line)
        target = space.space_id if space else ""
        if known is not None and (row.room is None or known.space_id == target):
            # A file without a room column (a list of emails) never unlinks existing calendars;
            # a blank cell in the room column does, so export, edit and re-upload round-trips.
            result.outcome = "unchanged"
        elif self.validate_only:
            self._check_claimable(space, email, result)
        elif known is None:
            self._prepare_add(space, email, result)
        else:
            self._update_link(space, email, result)

    def _check_claimable(self, space: Space | None, email: str, result: RowResult) -> None:
        if space is not None and space.linked_account_id and not space.is_linked_to(self.account_id, email):
            holder = self.calendars.find(space.linked_account_id, space.linked_email or "")
            if holder is not None and holder.space_id == space.space_id:
                result.reason = SpaceTaken(space).message
                return
        result.outcome = "added" if email not in self.known else "updated"

    def _claim(self, space: Space, email: str) -> Space:
        return self.links.claim(space, self.account_id, email)

    def _prepare_add(self, space: Space | None, email: str, result: RowResult) -> None:
        """A new calendar, written in a transaction at the next flush; its space is claimed there first."""
        now = iso(utc_now())
        calendar = Calendar(account_id=self.account_id, email=email, added_at=now, added_by=self.actor,
                            updated_at=now, import_mark=ImportMark(self.marker, "added"))
        result.outcome, result.pending, result.to_claim = "added", calendar, space
        self.pending += 1

    def _update_link(self, space: Space | None, email: str, result: RowResult) -> None:
        calendar = self.calendars.find(self.account_id, email)
        if calendar is None:
            result.reason = f"{email} was removed while the file was being imported; upload it again"
            return
        target = space.space_id if space else None
        if calendar.space_id == target:
            result.outcome = "unchanged"
            return
        claimed = None
        if space is not None:
            try:
                claimed = self._claim(space, email)
            except (SpaceTaken, ConcurrencyConflict, NotFound) as error:
                result.reason = error.message
                return
        previous = calendar.space_id
        calendar.link_to(claimed)
        calendar.import_mark = ImportMark(self.marker, "updated", previous or "")
        try:
            self.calendars.save(calendar)
        except ConcurrencyConflict:
            if claimed is not None:
                self.links.release(claimed.space_id, self.account_id, email)
            result.reason = f"{email} was changed by someone else while the file was being imported; upload again"
            return
        if previous:
            self._release_previous(previous, email)
        self.hooks.relinked(calendar, previous)
        result.outcome = "updated"

    def _release_previous(self, space_id: str, email: str) -> None:
        """Free the space a calendar is moved off. When an earlier row of the file named it, that
        row's claim is answered first and finds the space still linked, as it would if the rows
        were applied one by one."""
        holder = self.space_holders.get(space_id)
        if holder is not None and holder[0] != email:
            self._flush()
            self._drain()
        self.links.release(space_id, self.account_id, email)

    def _flush(self) -> None:
        """Submit the window: the spaces of its pending calendars are claimed and the calendars
        created, up to 100 rows at a time (one claims transaction, then one calendars transaction).
        The window is reported once they are answered, while later windows are being decided."""
        pending = [result for result in self.window if result.pending is not None]
        chunks = [pending[start:start + MAX_BATCH_SIZE] for start in range(0, len(pending), MAX_BATCH_SIZE)]

        def submit(chunk: list[RowResult]) -> None:
            self._claim_spaces(chunk)
            chunk = [result for result in chunk if result.pending is not None]
            if not chunk:
                return
            try:
                self.calendars.add_many([r.pending for r in chunk])
            except Conflict:
                # One of them was added by someone else meanwhile: the transaction applied nothing.
                for result in chunk:
                    self._add_one(result)

        # Chunks are independent (distinct rows, distinct spaces, each transaction atomic), so they go
        # at once; only the pool's threads touch a submitted row until its window is reported.
        self.in_flight.append((self.window, [self.pool.submit(submit, chunk) for chunk in chunks]))
        self.window, self.pending = [], 0
        while len(self.in_flight) > _WINDOWS_IN_FLIGHT:
            self._report_window()

    def _drain(self) -> None:
        while self.in_flight:
            self._report_window()

    def _report_window(self) -> None:
        """Wait for the oldest submitted window's transactions, then write its rows to the report in
        line order (a failed transaction raises here, and the trigger's retry resumes the import)."""
        window, futures = self.in_flight.popleft()
        for future in futures:
            future.result()
        for result in window:
            outcome = result.outcome
            if outcome == "rejected":
                self.counts["rejected"] += 1
                if len(self.rejected) < REJECTED_IN_RECORD:
                    self.rejected.append({"line": result.line, "email": result.email[:254],
                                          "reason": result.reason[:500]})
            else:
                self.counts[outcome] += 1
            shown = f"would be {outcome}" if self.validate_only and outcome != "rejected" else outcome
            self.writer.writerow((result.line, result.email, result.room, shown, result.reason))

    def _claim_spaces(self, chunk: list[RowResult]) -> None:
        """Claim the chunk's spaces before their calendars are written (a crash in between leaves
        claims that point at this import's rows: the retry finds them already its own). A row whose
        space is taken is rejected and its calendar not written: a row never half-applies."""
        linking = [result for result in chunk if result.to_claim is not None]
        if not linking:
            return
        outcomes = self.links.spaces.claim_many([(result.to_claim, self.account_id, result.email)
                                                 for result in linking])
        for result, outcome in zip(linking, outcomes, strict=True):
            assert result.pending is not None and result.to_claim is not None
            if isinstance(outcome, SpaceTaken):
                # Maybe a claim left by a crash, whose calendar never pointed back: `SpaceLinks.claim` repairs
                # those once they are old enough, and otherwise refuses like claim does.
                try:
                    outcome = self._claim(result.to_claim, result.email)
                except (SpaceTaken, ConcurrencyConflict, NotFound) as error:
                    outcome = error
            if isinstance(outcome, Space):
                result.pending.link_to(outcome)
                result.claimed = outcome
                continue
            result.outcome, result.reason, result.pending = "rejected", outcome.message, None

    def _add_one(self, result: RowResult) -> None:
        assert result.pending is not None
        try:
            self.calendars.add(result.pending)
        except Conflict:
            current = self.calendars.find(self.account_id, result.pending.email)
            if current is not None and current.import_mark is not None and current.import_mark.marker == self.marker:
                return
            if result.claimed is not None:
                self.links.release(result.claimed.space_id, self.account_id, result.pending.email)
            result.outcome = "rejected"
            result.reason = f"{result.pending.email} was added by someone else while the file was being imported"
