"""CSV import through devhost and Azurite: both doors (the API upload and a blob dropped with the
Azure SDK), the report and the tables, bad files, limits, the same blob twice, a crash then the retry."""

from __future__ import annotations

import codecs
import csv
import io
import threading
import uuid
from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import BlobServiceClient

from shared.calendars import CalendarRepository, SpaceLinks
from shared.imports import MAX_ROWS, CalendarImports, ImportRecords
from shared.spaces import SpaceTaken
from shared.storage import Table
from tests.flows import verified_account
from tests.helpers import wait_until

UPLOADS = "calendar-uploads"
REPORTS = "import-reports"
FINISHED = ("completed", "failed")


@pytest.fixture(scope="module")
def account(admin, stack) -> dict:
    return verified_account(admin, stack, rooms=2)


@pytest.fixture(scope="module")
def blobs(stack) -> BlobServiceClient:
    return BlobServiceClient.from_connection_string(stack.storage_connection_string)


def new_spaces(admin, count: int) -> list[dict]:
    """Fresh spaces of a building of the caller's own, imported through the API."""
    building = f"b-{uuid.uuid4().hex[:8]}"
    rows = [{"id": f"{building}-s{i}", "building_id": building, "building_name": f"Test {building}", "floor": "1",
             "number": f"I-{building[2:]}-{i}", "name": f"Import room {i}", "type": "meeting room", "capacity": 6}
            for i in range(count)]
    imported = admin.post("/api/spaces/import", json={"spaces": rows})
    assert imported.status_code == 200, imported.text
    return rows


@pytest.fixture
def spaces(admin) -> list[dict]:
    """Four fresh spaces of a building of this test's own; the last one's number starts with '-'."""
    rows = new_spaces(admin, 3)
    building = rows[0]["building_id"]
    rows.append({"id": f"{building}-s3", "building_id": building, "building_name": f"Test {building}",
                 "floor": "-1", "number": f"-1-{building[2:]}", "name": "Basement room", "type": "meeting room",
                 "capacity": 4})
    imported = admin.post("/api/spaces/import", json={"spaces": rows[3:]})
    assert imported.status_code == 200, imported.text
    return rows


def emails(count: int, domain: str = "import.example") -> list[str]:
    tag = uuid.uuid4().hex[:6]
    return [f"room-{tag}-{i}@{domain}" for i in range(count)]


def upload(admin, account: dict, content: bytes, **params: str) -> str:
    response = admin.post(f"/api/accounts/{account['account_id']}/imports", data=content, params=params,
                          headers={"Content-Type": "text/csv"})
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "pending"
    return response.json()["import_id"]


def finished(admin, account: dict, import_id: str, timeout: float = 60) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        response = admin.get(f"/api/accounts/{account['account_id']}/imports/{import_id}")
        body = response.json() if response.status_code == 200 else {}
        return body if body.get("status") in FINISHED else None

    return wait_until(done, timeout=timeout, message=f"import {import_id} did not finish")


def drop(blobs: BlobServiceClient, name: str, content: bytes, **metadata: str) -> None:
    blobs.get_blob_client(UPLOADS, name).upload_blob(content, overwrite=True, metadata=metadata or None)


def report(admin, account: dict, import_id: str) -> list[dict[str, str]]:
    response = admin.get(f"/api/accounts/{account['account_id']}/imports/{import_id}/report.csv")
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/csv")
    assert response.content.startswith(codecs.BOM_UTF8)
    return list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))


def calendar(admin, account: dict, email: str) -> dict[str, Any] | None:
    response = admin.get(f"/api/accounts/{account['account_id']}/calendars/{email}")
    return response.json() if response.status_code == 200 else None


def linked(admin, space: dict) -> dict | None:
    return admin.get(f"/api/spaces/{space['id']}").json()["linked"]


# --- the template and the happy path ---------------------------------------------------------------------


def test_the_template_downloads_as_a_csv_file(admin) -> None:
    response = admin.get("/api/calendars/template.csv")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/csv")
    assert 'filename="csvTemplate.csv"' in response.headers["Content-Disposition"]
    lines = response.content.decode().splitlines()
    assert lines[0] == "email,roomID" and len(lines) == 2


def test_a_filled_in_template_uploaded_through_the_api_adds_and_links(admin, account, spaces) -> None:
    template = admin.get("/api/calendars/template.csv").content.decode().splitlines()[0]
    first, second, third = emails(3)
    content = f"{template}\r\n{first.upper()},{spaces[0]['number']}\r\n{second},\r\n{third},{spaces[1]['id']}\r\n"
    import_id = upload(admin, account, content.encode())
    record = finished(admin, account, import_id)
    assert record["status"] == "completed", record
    assert record["counts"] == {"rows": 3, "added": 3, "updated": 0, "unchanged": 0, "rejected": 0}
    assert record["uploaded_by"] == "admin@contoso.onmicrosoft.com" and record["rejected"] == []
    added = calendar(admin, account, first)
    assert added["status"] == "added" and added["space"]["id"] == spaces[0]["id"]
    assert calendar(admin, account, second)["space"] is None
    assert linked(admin, spaces[1]) == {"account_id": account["account_id"], "email": third}
    rows = report(admin, account, import_id)
    assert [(r["line"], r["email"], r["outcome"]) for r in rows] == [
        ("2", first, "added"), ("3", second, "added"), ("4", third, "added")]
    listed = admin.get(f"/api/accounts/{account['account_id']}/imports").json()["items"]
    assert import_id in [item["import_id"] for item in listed]


VARIANTS = {
    "utf8-bom-crlf": ("\ufeffemail,roomID\r\n{a},{room}\r\n{b},\r\n", "utf-8"),
    "utf16-bom": ("\ufeffEmail,RoomID\r\n{a},{room}\r\n{b},\r\n", "utf-16-le"),
    "semicolon-quoted": ('"E-mail";"Room ID"\n"{a}";"{room}"\n"{b}";""\n', "utf-8"),
    "lf-blank-lines-trailing-columns": ("\n EMAIL , room id ,,\n\n{a},{room},,\n\n{b},,,\n\n", "utf-8"),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_what_excel_and_scripts_write_is_read_from_a_dropped_blob(admin, account, blobs, spaces, variant) -> None:
    text, encoding = VARIANTS[variant]
    a, b = emails(2)
    content = text.format(a=a, b=b, room=spaces[0]["number"]).encode(encoding)
    import_id = f"drop-{variant}-{uuid.uuid4().hex[:6]}"
    drop(blobs, f"{account['account_id']}/{import_id}.csv", content)
    record = finished(admin, account, import_id)
    assert record["status"] == "completed", record
    assert record["counts"]["added"] == 2 and record["counts"]["rejected"] == 0, record
    assert record["uploaded_by"] == "blob upload"
    assert calendar(admin, account, a)["space"]["id"] == spaces[0]["id"]
    assert calendar(admin, account, b)["space"] is None


# --- rows that are reported ------------------------------------------------------------------------------


def test_bad_rows_are_reported_by_line_and_the_good_rows_applied(admin, account, spaces) -> None:
    holder, good, linked_twice, duplicate, another, third, fourth = emails(7)
    assert admin.post(f"/api/accounts/{account['account_id']}/calendars",
                      json={"email": holder, "space_id": spaces[0]["id"]}).status_code == 201
    long_email = "x" * 300 + "@import.example"
    lines = [
        "email,roomID",
        f"{good},{spaces[1]['number']}",             # 2 added
        "not-an-email,",                             # 3 bad email
        f"{another},NO-SUCH-ROOM",                   # 4 unknown room
        f"{linked_twice},{spaces[0]['number']}",     # 5 room linked to another calendar
        f"{duplicate},",                             # 6 added
        f"{duplicate.upper()},",                     # 7 in-file duplicate
        f"{long_email},",                            # 8 oversize (for an email) field
        f"{third},{spaces[1]['id']}",                # 9 room already named on line 2
        "=HYPERLINK(\"http://evil.example\"),",      # 10 formula, reported Excel-safe
        f"{fourth},,surplus",                        # 11 more cells than the header
    ]
    import_id = upload(admin, account, "\n".join(lines).encode())
    record = finished(admin, account, import_id)
    assert record["counts"] == {"rows": 10, "added": 2, "updated": 0, "unchanged": 0, "rejected": 8}, record
    reasons = {item["line"]: item["reason"] for item in record["rejected"]}
    assert sorted(reasons) == [3, 4, 5, 7, 8, 9, 10, 11]
    assert "not an email address" in reasons[3]
    assert "NO-SUCH-ROOM" in reasons[4]
    assert holder in reasons[5]
    assert "line 6" in reasons[7]
    assert "limit is 254" in reasons[8]
    assert "line 2" in reasons[9]
    assert "cells" in reasons[11]
    assert calendar(admin, account, good)["space"]["id"] == spaces[1]["id"]
    assert calendar(admin, account, duplicate) is not None
    assert all(calendar(admin, account, email) is None for email in (linked_twice, another, third, fourth))
    assert linked(admin, spaces[0])["email"] == holder
    by_line = {row["line"]: row for row in report(admin, account, import_id)}
    assert by_line["10"]["email"].startswith("'=") and by_line["10"]["outcome"] == "rejected"
    assert by_line["2"]["outcome"] == "added" and by_line["7"]["outcome"] == "rejected"


def test_an_existing_calendar_gets_its_link_updated_and_the_old_space_freed(admin, account, spaces) -> None:
    moving, unlinking, same = emails(3)
    for email, space in ((moving, spaces[0]), (unlinking, spaces[1]), (same, spaces[2])):
        assert admin.post(f"/api/accounts/{account['account_id']}/calendars",
                          json={"email": email, "space_id": space["id"]}).status_code == 201
    content = f"email,roomID\n{moving},{spaces[3]['number']}\n{unlinking},\n{same},{spaces[2]['number']}\n"
    record = finished(admin, account, upload(admin, account, content.encode()))
    assert record["counts"] == {"rows": 3, "added": 0, "updated": 2, "unchanged": 1, "rejected": 0}, record
    assert calendar(admin, account, moving)["space"]["id"] == spaces[3]["id"]
    assert linked(admin, spaces[0]) is None and linked(admin, spaces[1]) is None
    assert calendar(admin, account, unlinking)["space"] is None
    assert linked(admin, spaces[2])["email"] == same


def test_a_space_named_again_far_down_the_file_stays_with_the_first_row(admin, account, spaces) -> None:
    """The first row naming a space holds it in the file even when its claim fails, however many
    rows (and so transactions answered meanwhile) lie between it and the next row naming it."""
    holder, first, *fillers, again = emails(503)
    assert admin.post(f"/api/accounts/{account['account_id']}/calendars",
                      json={"email": holder, "space_id": spaces[0]["id"]}).status_code == 201
    lines = ["email,roomID", f"{first},{spaces[0]['number']}", *(f"{email}," for email in fillers),
             f"{again},{spaces[0]['number']}"]
    record = finished(admin, account, upload(admin, account, "\n".join(lines).encode()))
    assert record["counts"] == {"rows": 502, "added": 500, "updated": 0, "unchanged": 0, "rejected": 2}, record
    reasons = {item["line"]: item["reason"] for item in record["rejected"]}
    assert holder in reasons[2]
    assert "line 2" in reasons[503] and first in reasons[503]
    assert linked(admin, spaces[0])["email"] == holder


def test_a_space_a_later_row_moves_a_calendar_off_is_still_linked_for_the_rows_before(admin, account,
                                                                                     spaces) -> None:
    """As if the rows were applied one by one: line 2 finds the space still linked to the calendar
    that line 3 moves off it, so line 2 is rejected and the space is left free."""
    moving, new = emails(2)
    assert admin.post(f"/api/accounts/{account['account_id']}/calendars",
                      json={"email": moving, "space_id": spaces[0]["id"]}).status_code == 201
    content = f"email,roomID\n{new},{spaces[0]['number']}\n{moving},{spaces[1]['number']}\n"
    record = finished(admin, account, upload(admin, account, content.encode()))
    assert record["counts"] == {"rows": 2, "added": 0, "updated": 1, "unchanged": 0, "rejected": 1}, record
    assert moving in record["rejected"][0]["reason"]
    assert calendar(admin, account, new) is None
    assert calendar(admin, account, moving)["space"]["id"] == spaces[1]["id"]
    assert linked(admin, spaces[0]) is None


def test_a_file_of_emails_only_adds_without_unlinking_anything(admin, account, spaces) -> None:
    existing, new = emails(2)
    assert admin.post(f"/api/accounts/{account['account_id']}/calendars",
                      json={"email": existing, "space_id": spaces[0]["id"]}).status_code == 201
    record = finished(admin, account, upload(admin, account, f"Email\n{existing}\n{new}\n".encode()))
    assert record["counts"] == {"rows": 2, "added": 1, "updated": 0, "unchanged": 1, "rejected": 0}, record
    assert calendar(admin, account, existing)["space"]["id"] == spaces[0]["id"]
    assert linked(admin, spaces[0])["email"] == existing


def test_validate_only_checks_every_row_and_changes_nothing(admin, account, spaces) -> None:
    new, bad = emails(2)
    content = f"email,roomID\n{new},{spaces[0]['number']}\n{bad},NOPE\n"
    record = finished(admin, account, upload(admin, account, content.encode(), validate_only="true"))
    assert record["validate_only"] is True
    assert record["counts"] == {"rows": 2, "added": 1, "updated": 0, "unchanged": 0, "rejected": 1}, record
    assert calendar(admin, account, new) is None and linked(admin, spaces[0]) is None
    assert [row["outcome"] for row in report(admin, account, record["import_id"])] == ["would be added", "rejected"]


def test_the_upload_can_ask_for_connect_calendars(admin, account) -> None:
    (email,) = emails(1)
    record = finished(admin, account, upload(admin, account, f"email\n{email}\n".encode(), connect="true"))
    assert record["counts"]["added"] == 1
    assert calendar(admin, account, email)["status"] == "queued"


def test_an_export_re_imports_unchanged(admin, account, spaces) -> None:
    email = emails(1)[0]
    assert admin.post(f"/api/accounts/{account['account_id']}/calendars",
                      json={"email": email, "space_id": spaces[3]["id"]}).status_code == 201
    exported = admin.get(f"/api/accounts/{account['account_id']}/calendars.csv")
    assert exported.status_code == 200 and exported.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.content.decode("utf-8-sig"))))
    mine = next(row for row in rows if row["email"] == email)
    assert mine["roomID"] == "'" + spaces[3]["number"]  # starts with '-': guarded for Excel
    record = finished(admin, account, upload(admin, account, exported.content))
    assert record["counts"]["rejected"] == 0 and record["counts"]["added"] == 0, record
    assert record["counts"]["unchanged"] == len(rows)
    assert calendar(admin, account, email)["space"]["id"] == spaces[3]["id"]


def _cells_as_any_spreadsheet_splits_them(text: str) -> list[str]:
    cells: list[str] = []
    for separator in (",", ";", "\t"):
        for row in csv.reader(io.StringIO(text, newline=""), delimiter=separator):
            cells += row
        cells += text.replace("\r\n", separator).split(separator)  # a reader that ignores quotes
    return [cell.strip('" ') for cell in cells]


def test_exports_and_reports_show_no_formula_whichever_separator_the_spreadsheet_splits_on(admin, account) -> None:
    (space,) = new_spaces(admin, 1)
    space.update(number=f"{space['number']};=2+2", name='Lab;=HYPERLINK("http://evil.example")')
    assert admin.post("/api/spaces/import", json={"spaces": [space]}).status_code == 200
    email, other = emails(2)
    assert admin.post(f"/api/accounts/{account['account_id']}/calendars",
                      json={"email": email, "space_id": space["id"]}).status_code == 201
    exported = admin.get(f"/api/accounts/{account['account_id']}/calendars.csv").content
    import_id = upload(admin, account, f"email,roomID\r\n{other},\"NO-SUCH;=1+1\"\r\n".encode())
    assert finished(admin, account, import_id)["counts"]["rejected"] == 1
    reported = admin.get(f"/api/accounts/{account['account_id']}/imports/{import_id}/report.csv").content
    assert "NO-SUCH;" in reported.decode("utf-8-sig")
    for text in (exported.decode("utf-8-sig"), reported.decode("utf-8-sig")):
        formulas = [cell for cell in _cells_as_any_spreadsheet_splits_them(text) if cell[:1] in ("=", "+", "-", "@")]
        assert formulas == [], formulas
    # ... and the export still re-imports unchanged, the guarded room number included.
    record = finished(admin, account, upload(admin, account, exported))
    assert record["counts"]["rejected"] == 0 and record["counts"]["updated"] == 0, record
    assert calendar(admin, account, email)["space"]["id"] == space["id"]


# --- files that are refused as a whole -------------------------------------------------------------------


NOT_CSV = {
    "xlsx": (b"PK\x03\x04\x14\x00\x06\x00" + bytes(200), "Excel workbook"),
    "png": (b"\x89PNG\r\n\x1a\n" + bytes(200), "PNG image"),
    "latin1": ("email,roomID\ncaf\u00e9@x.example,\n".encode("latin-1"), "not UTF-8"),
    "no-header": (b"room-1@x.example,A-1\nroom-2@x.example,A-2\n", "header"),
}


@pytest.mark.parametrize("kind", sorted(NOT_CSV))
def test_a_file_that_is_not_a_csv_gets_one_clear_error(admin, account, blobs, kind) -> None:
    content, words = NOT_CSV[kind]
    import_id = f"not-csv-{kind}-{uuid.uuid4().hex[:6]}"
    drop(blobs, f"{account['account_id']}/{import_id}.csv", content)
    record = finished(admin, account, import_id)
    assert record["status"] == "failed" and words in record["error"] and "Nothing was imported" in record["error"]
    rows = report(admin, account, import_id)
    assert len(rows) == 1 and rows[0]["outcome"] == "error" and words in rows[0]["reason"]


def test_a_spreadsheet_uploaded_through_the_api_is_refused_at_once(admin, account) -> None:
    response = admin.post(f"/api/accounts/{account['account_id']}/imports", data=NOT_CSV["xlsx"][0],
                          headers={"Content-Type": "text/csv"})
    assert response.status_code == 400 and "Excel workbook" in response.json()["error"]["message"]


def test_over_the_limits_nothing_is_applied(admin, account, blobs) -> None:
    too_big = b"email,roomID\n" + b"x" * (20 * 1024 * 1024)
    response = admin.post(f"/api/accounts/{account['account_id']}/imports", data=too_big,
                          headers={"Content-Type": "text/csv"})
    assert response.status_code == 413 and "20 MiB" in response.json()["error"]["message"]

    tag = uuid.uuid4().hex[:6]
    many = "email\n" + "".join(f"r{i}-{tag}@many.example\n" for i in range(MAX_ROWS + 1))
    import_id = f"too-many-{tag}"
    drop(blobs, f"{account['account_id']}/{import_id}.csv", many.encode())
    record = finished(admin, account, import_id, timeout=120)
    assert record["status"] == "failed" and f"{MAX_ROWS:,} rows" in record["error"], record
    assert calendar(admin, account, f"r0-{tag}@many.example") is None

    long_cell = f"email,roomID\nfirst-{tag}@x.example,\nsecond-{tag}@x.example," + "9" * 5000 + "\n"
    record = finished(admin, account, upload(admin, account, long_cell.encode()))
    assert record["status"] == "failed" and "line 3" in record["error"] and "1,024" in record["error"], record
    assert calendar(admin, account, f"first-{tag}@x.example") is None


def test_a_blob_without_an_account_or_for_an_unknown_one_gets_a_report_and_changes_nothing(blobs) -> None:
    tag = uuid.uuid4().hex[:6]
    unknown = str(uuid.uuid4())
    drop(blobs, f"rooms-{tag}.csv", b"email\nroom@x.example\n")
    drop(blobs, f"{unknown}/rooms-{tag}.csv", b"email\nroom@x.example\n")

    def report_text(name: str) -> str | None:
        try:
            return blobs.get_blob_client(REPORTS, name).download_blob().readall().decode("utf-8-sig")
        except ResourceNotFoundError:
            return None

    assert "in no account's folder" in wait_until(lambda: report_text(f"rooms-{tag}.report.csv"), timeout=60)
    assert f"no calendar account '{unknown}'" in wait_until(
        lambda: report_text(f"{unknown}/rooms-{tag}.report.csv"), timeout=60)


# --- at least once: the same blob twice, a crash midway then the retry ------------------------------------


def test_the_same_blob_processed_twice_changes_nothing_and_keeps_the_report(admin, account, fire, app_context,
                                                                            spaces) -> None:
    first, second = emails(2)
    content = f"email,roomID\n{first},{spaces[0]['number']}\n{second},\nbad,\n"
    import_id = upload(admin, account, content.encode())
    record = finished(admin, account, import_id)
    table = app_context.storage.table("Calendars")
    before = {email: table.get(account["account_id"], email)["_etag"] for email in (first, second)}
    report_before = admin.get(f"/api/accounts/{account['account_id']}/imports/{import_id}/report.csv").content

    outcome = fire("import_calendar_csv", input=f"{UPLOADS}/{account['account_id']}/{import_id}.csv")
    assert outcome["outcome"] == "succeeded", outcome
    again = finished(admin, account, import_id)
    assert again == record
    assert {email: table.get(account["account_id"], email)["_etag"] for email in (first, second)} == before
    assert admin.get(f"/api/accounts/{account['account_id']}/imports/{import_id}/report.csv").content == report_before


class CrashingTable(Table):
    """The Calendars table with a crash injected after (or before) the n-th write reaches storage:
    the same Azurite table, failing the way a worker killed at that moment would leave it."""

    def __init__(self, table: Table, crash_at_write: int, after_commit: bool) -> None:
        super().__init__(table.client)
        self.writes_left = crash_at_write
        self.after_commit = after_commit
        self.lock = threading.Lock()

    def _write(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        with self.lock:  # transactions run on several threads at once
            self.writes_left -= 1
            crash_here = self.writes_left == 0
        if crash_here and not self.after_commit:
            raise ConnectionError("injected crash before the write")
        result = method(*args, **kwargs)
        if crash_here:
            raise ConnectionError("injected crash after the write")
        return result

    def transact(self, operations: Any) -> Any:
        return self._write(super().transact, list(operations))

    def update(self, entity: Any, *, etag: str | None = None) -> Any:
        return self._write(super().update, entity, etag=etag)


def importer(app_context: Any, container: str, calendars_table: Table | None = None) -> CalendarImports:
    calendars = CalendarRepository(calendars_table or app_context.storage.table("Calendars"))
    return CalendarImports(
        blobs=app_context.storage.blobs, uploads_container=container, reports_container=REPORTS,
        records=ImportRecords(app_context.storage.table("Imports")), calendars=calendars,
        accounts=app_context.accounts.accounts, links=SpaceLinks(app_context.spaces, calendars),
        audit=app_context.audit,
        queue_for_connection=app_context.calendars.queue_calendars_for_connection,
    )


@pytest.mark.parametrize(("crash_at_write", "after_commit"), [(1, True), (2, False), (3, True), (4, False)],
                         ids=["after-1st-link", "before-2nd-link", "after-a-batch", "before-a-batch"])
def test_a_crash_midway_then_the_retry_applies_every_row_once(admin, account, app_context, blobs, spaces,
                                                              crash_at_write, after_commit) -> None:
    """250 new calendars (one in each hundred linked), a bad row, two link changes and a duplicate.
    Writes to the Calendars table: link change 1, link change 2, then three transactions at once
    (the new calendars, at the end of the file), each after its hundred's space claims (SpaceIndex,
    not failing): a crash before a calendars transaction leaves claims whose calendars were never
    written. The import runs in this process against a container devhost does not watch, with the
    crash injected; the retry runs the same blob with the real table."""
    container = f"crash-{uuid.uuid4().hex[:10]}"
    blobs.create_container(container)
    moving, unlinking = emails(2)
    for email, space in ((moving, spaces[0]), (unlinking, spaces[1])):
        assert admin.post(f"/api/accounts/{account['account_id']}/calendars",
                          json={"email": email, "space_id": space["id"]}).status_code == 201
    new = emails(250, domain="crash.example")
    more = new_spaces(admin, 2)
    rooms = {0: spaces[2]["number"], 120: more[0]["number"], 220: more[1]["id"]}
    lines = ["email,roomID", *(f"{email},{rooms.get(i, '')}" for i, email in enumerate(new)), "bad row,",
             f"{moving},{spaces[3]['number']}", f"{unlinking},", new[5]]
    name = f"{account['account_id']}/crash-{uuid.uuid4().hex[:6]}.csv"
    blobs.get_blob_client(container, name).upload_blob("\n".join(lines).encode())
    calendars_table = app_context.storage.table("Calendars")

    with pytest.raises(ConnectionError):
        importer(app_context, container, CrashingTable(calendars_table, crash_at_write, after_commit)).process_blob(
            name)
    prefix = new[0].rsplit("-", 1)[0] + "-"

    def imported_count() -> int:
        return sum(1 for _ in calendars_table.query_all(
            "PartitionKey eq @a and RowKey ge @low and RowKey lt @high",
            parameters={"a": account["account_id"], "low": prefix, "high": prefix + "~"}, select=["RowKey"]))

    if crash_at_write <= 2 or not after_commit:
        assert imported_count() < 250
    import_id = name.split("/")[1][:-4]
    assert app_context.storage.table("Imports").get(account["account_id"], import_id)["status"] == "running"

    record = importer(app_context, container).process_blob(name)
    assert record["status"] == "completed", record
    assert record["counts"] == {"rows": 254, "added": 250, "updated": 2, "unchanged": 0, "rejected": 2}, record
    assert [item["line"] for item in record["rejected"]] == [252, 255]
    assert imported_count() == 250
    assert calendar(admin, account, new[0])["space"]["id"] == spaces[2]["id"]
    for i, space in ((120, more[0]), (220, more[1])):
        assert calendar(admin, account, new[i])["space"]["id"] == space["id"]
        assert linked(admin, space) == {"account_id": account["account_id"], "email": new[i]}
    assert calendar(admin, account, moving)["space"]["id"] == spaces[3]["id"]
    assert calendar(admin, account, unlinking)["space"] is None
    assert linked(admin, spaces[0]) is None and linked(admin, spaces[1]) is None
    assert linked(admin, spaces[3])["email"] == moving

    report_name = f"{name[:-4]}.report.csv"
    rows = list(csv.DictReader(io.StringIO(
        blobs.get_blob_client(REPORTS, report_name).download_blob().readall().decode("utf-8-sig"))))
    assert [row["line"] for row in rows] == [str(n) for n in range(2, 256)]
    assert sum(row["outcome"] == "added" for row in rows) == 250
    # And once more: finished, so nothing is run or written again.
    assert importer(app_context, container).process_blob(name) == record


# --- the spaces side of a bulk import: resolving many references, claims in transactions -----------------


def test_many_references_are_resolved_in_one_pass_like_resolve(app_context, admin) -> None:
    directory = app_context.spaces
    rows = new_spaces(admin, 3)
    unknown = [f"NO-SUCH-{uuid.uuid4().hex[:6]}-{i}" for i in range(25)]
    references = [rows[0]["number"].lower(), f" {rows[1]['id']} ", rows[2]["number"], *unknown]
    found = directory.resolve_many(references)
    assert sorted(found) == sorted(references[:3])
    assert [found[reference].space_id for reference in references[:3]] == [row["id"] for row in rows]
    assert all(found[reference].etag for reference in references[:3])
    assert directory.resolve_many(references[:2]).keys() == {references[0], references[1]}


def test_claims_in_one_transaction_never_overwrite_a_link_taken_meanwhile(app_context, admin) -> None:
    directory = app_context.spaces
    rows = new_spaces(admin, 3)
    account_id = str(uuid.uuid4())
    first, second, third, rival = emails(4)
    read = directory.resolve_many([row["id"] for row in rows])
    claims = [(read[row["id"]], account_id, email) for row, email in zip(rows, (first, second, third), strict=True)]
    # Another admin links the second space after it was read: the transaction's If-Match fails
    # as a whole, and each claim is decided again on its own.
    directory.claim(rows[1]["id"], account_id, rival)
    outcomes = directory.claim_many(claims)
    assert [getattr(outcome, "linked_email", None) for outcome in (outcomes[0], outcomes[2])] == [first, third]
    assert isinstance(outcomes[1], SpaceTaken) and outcomes[1].holder_email == rival
    assert [linked(admin, row)["email"] for row in rows] == [first, rival, third]

    # Claimed again by the same calendars (a retry): nothing to write, the same links.
    again = directory.claim_many([(directory.get(row["id"]), account_id, email)
                                  for row, email in zip(rows[::2], (first, third), strict=True)])
    assert [outcome.linked_email for outcome in again] == [first, third]
    with pytest.raises(ValueError, match="distinct"):
        directory.claim_many([claims[0], claims[0]])
