"""The spaces directory against a real Azurite: import, search, browse, claim and release.

Starts its own in-memory Azurite on free ports for this module and stops it afterwards;
each test gets fresh Spaces/SpaceIndex tables (unique names), so tests don't depend on order.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from devhost.demo_spaces import demo_spaces, generated_spaces, space_id_for
from shared.errors import Invalid, NotFound
from shared.imports import space_rows_from_csv as rows_from_csv
from shared.spaces import SpaceDirectory, SpaceTaken
from shared.storage import StorageAccount

REPO = Path(__file__).resolve().parents[2]
AZURITE = REPO / "node_modules" / ".bin" / "azurite"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(port: int, process: subprocess.Popen, deadline_seconds: float = 30.0) -> None:
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Azurite exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"Azurite did not listen on {port} within {deadline_seconds} s")


@pytest.fixture(scope="module")
def azurite() -> Iterator[str]:
    """A connection string to a private, in-memory Azurite."""
    # In-memory Azurite refuses --location; run it in a scratch directory so nothing lands in the tree.
    workspace = tempfile.mkdtemp(prefix="azurite-spaces-")
    blob, queue, table = _free_port(), _free_port(), _free_port()
    process = subprocess.Popen(
        [str(AZURITE), "--inMemoryPersistence", "--silent", "--disableTelemetry", "--skipApiVersionCheck",
         "--loose", "--blobPort", str(blob), "--queuePort", str(queue),
         "--tablePort", str(table)],
        cwd=workspace, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        for port in (blob, queue, table):
            _wait_for_port(port, process)
        yield (
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
            f"AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint=http://127.0.0.1:{blob}/devstoreaccount1;"
            f"QueueEndpoint=http://127.0.0.1:{queue}/devstoreaccount1;"
            f"TableEndpoint=http://127.0.0.1:{table}/devstoreaccount1;"
        )
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        shutil.rmtree(workspace, ignore_errors=True)


@pytest.fixture(scope="module")
def storage(azurite: str) -> StorageAccount:
    account = StorageAccount.from_connection_string(azurite)
    account.ensure_created()
    return account


@pytest.fixture
def directory(storage: StorageAccount) -> SpaceDirectory:
    """A directory over empty tables of its own."""
    suffix = uuid.uuid4().hex[:10]
    spaces, index = storage.table(f"Spaces{suffix}"), storage.table(f"SpaceIndex{suffix}")
    spaces.create_if_missing()
    index.create_if_missing()
    return SpaceDirectory(spaces, index)


def _space(space_id: str, number: str, name: str, *, building: str = "sg-hq", floor: str = "3",
           capacity: int = 8) -> dict:
    return {"id": space_id, "building_id": building, "building_name": "Singapore HQ", "floor": floor,
            "number": number, "name": name, "type": "meeting room", "capacity": capacity}


# --- the tables themselves -----------------------------------------------------------------------------------------


def test_ensure_created_makes_the_spaces_tables(storage: StorageAccount) -> None:
    assert {"Spaces", "SpaceIndex"} <= {table.name for table in storage.tables.list_tables()}


# --- import ----------------------------------------------------------------------------------------------------------


def test_import_adds_then_a_second_import_changes_nothing(directory: SpaceDirectory) -> None:
    rows = demo_spaces()
    first = directory.import_spaces(rows, actor="admin@contoso.com")
    assert first == {"added": len(rows), "updated": 0, "unchanged": 0, "rejected": []}
    second = directory.import_spaces(rows, actor="admin@contoso.com")
    assert second == {"added": 0, "updated": 0, "unchanged": len(rows), "rejected": []}
    orchard = directory.resolve("SG-03-014")
    assert (orchard.name, orchard.building_name, orchard.floor, orchard.capacity) == (
        "Orchard", "Singapore HQ", "3", 10)
    # Browsing reads the Spaces table: the building partition holds the row too.
    assert directory.spaces.get("sg-hq", orchard.space_id)["number"] == "SG-03-014"


def test_import_updates_changed_rows_and_keeps_the_link(directory: SpaceDirectory) -> None:
    directory.import_spaces([_space("s1", "3-014", "Orchard"), _space("s2", "3-015", "Sentosa")], actor="a")
    directory.claim("s1", "acct-1", "Orchard@Contoso.com")
    report = directory.import_spaces(
        [_space("s1", "3-014", "Orchard Room", capacity=12), _space("s2", "3-015", "Sentosa")], actor="a"
    )
    assert report == {"added": 0, "updated": 1, "unchanged": 1, "rejected": []}
    space = directory.get("s1")
    assert (space.name, space.capacity) == ("Orchard Room", 12)
    assert space.to_api()["linked"] == {"account_id": "acct-1", "email": "orchard@contoso.com"}


def test_import_moves_a_space_to_another_building(directory: SpaceDirectory) -> None:
    directory.import_spaces([_space("s1", "3-014", "Orchard")], actor="a")
    report = directory.import_spaces([_space("s1", "L-1-01", "Orchard", building="london", floor="1")], actor="a")
    assert report["updated"] == 1
    assert directory.spaces.get("sg-hq", "s1") is None
    assert directory.spaces.get("london", "s1") is not None
    assert [b["id"] for b in directory.buildings()] == ["london"]


def test_import_reports_bad_rows_with_line_numbers_and_applies_the_good_ones(directory: SpaceDirectory) -> None:
    directory.import_spaces([_space("existing", "3-001", "Kept")], actor="a")
    rows = [
        _space("ok-1", "3-010", "Good"),  # 1
        _space("bad/id", "3-011", "Slash"),  # 2
        {**_space("ok-2", "3-012", "Good"), "capacity": "many"},  # 3
        _space("ok-1", "3-013", "Duplicate id"),  # 4
        _space("ok-3", "3-010", "Duplicate number, other case"),  # 5
        _space("ok-4", "3-001", "Number of an existing space"),  # 6
        _space("ok-5", "x" * 65, "Long number"),  # 7
        {**_space("ok-6", "3-016", "Control"), "name": "Bad\x07name"},  # 8
        "not an object",  # 9
        {**_space("ok-7", "3-017", "Missing floor"), "floor": ""},  # 10
        _space("ok-8", "3-018", "Fine too"),  # 11
    ]
    report = directory.import_spaces(rows, actor="a")
    assert report["added"] == 2
    assert [r["line"] for r in report["rejected"]] == [2, 3, 4, 5, 6, 7, 8, 9, 10]
    reasons = {r["line"]: r["reason"] for r in report["rejected"]}
    assert "/" in reasons[2]
    assert "capacity" in reasons[3]
    assert "line 1" in reasons[4]
    assert "ok-1" in reasons[5]
    assert "existing" in reasons[6]
    assert "65 characters" in reasons[7]
    assert "floor is missing" in reasons[10]
    with pytest.raises(NotFound):
        directory.get("ok-2")
    assert directory.get("ok-8").name == "Fine too"


def test_numbers_are_unique_case_insensitively_across_imports(directory: SpaceDirectory) -> None:
    directory.import_spaces([_space("s1", "SG-03-014", "Orchard")], actor="a")
    report = directory.import_spaces([_space("s2", "sg-03-014", "Copy")], actor="a")
    assert report["added"] == 0 and "s1" in report["rejected"][0]["reason"]
    # A space may take a number another space of the same file gave up earlier in the file.
    report = directory.import_spaces([_space("s1", "SG-03-099", "Orchard"), _space("s2", "SG-03-014", "New")],
                                     actor="a")
    assert (report["added"], report["updated"], report["rejected"]) == (1, 1, [])
    assert directory.resolve("sg-03-014").space_id == "s2"


def test_csv_import_reports_physical_line_numbers(directory: SpaceDirectory) -> None:
    text = (
        "\ufeffID;Building_ID;Building_Name;Floor;Number;Name;Type;Capacity\n"
        "c1;sg-hq;Singapore HQ;3;3-014;Orchard;meeting room;10\n"
        "\n"
        "c2;sg-hq;Singapore HQ;3;3-015;;meeting room;8\n"
        'c3;sg-hq;Singapore HQ;3;3-016;"Marina; Bay";meeting room;\n'
    ).encode()
    report = directory.import_spaces(rows_from_csv(text), actor="a")
    assert report["added"] == 2
    assert report["rejected"] == [{"line": 4, "reason": "name is missing"}]
    assert directory.get("c3").name == "Marina; Bay"
    assert directory.get("c3").capacity == 0


def test_csv_without_the_required_columns_is_refused_whole() -> None:
    with pytest.raises(Invalid, match="number"):
        rows_from_csv(b"id,building_id,floor,name\nx,y,1,z\n")


# --- get and resolve -------------------------------------------------------------------------------------------------


def test_get_and_resolve_name_what_is_missing(directory: SpaceDirectory) -> None:
    directory.import_spaces([_space("s1", "3-014", "Orchard")], actor="a")
    assert directory.resolve("s1").number == "3-014"
    assert directory.resolve("3-014").space_id == "s1"
    with pytest.raises(NotFound, match="nope"):
        directory.get("nope")
    with pytest.raises(NotFound, match="3-999"):
        directory.resolve("3-999")
    with pytest.raises(NotFound):
        directory.get("bad/id#?")


def test_resolve_finds_a_space_imported_by_another_process(directory: SpaceDirectory) -> None:
    directory.import_spaces([_space("s1", "3-014", "Orchard")], actor="a")
    directory.snapshot()  # this process's snapshot now lacks what the other process adds next
    other_process = SpaceDirectory(directory.spaces, directory.index)
    other_process.index.client.upsert_entity(
        {"PartitionKey": "space", "RowKey": "s9", "building_id": "sg-hq", "floor": "3", "number": "3-099",
         "number_lower": "3-099", "name": "Late", "name_lower": "late", "type": "meeting room", "capacity": 2}
    )
    assert directory.resolve("3-099").space_id == "s9"


def test_search_finds_a_space_imported_by_another_process_after_a_reload(directory: SpaceDirectory) -> None:
    directory.import_spaces([_space("s1", "3-014", "Orchard")], actor="a")
    impatient = SpaceDirectory(directory.spaces, directory.index, cache_seconds=0)
    assert [i["id"] for i in impatient.search("3-0", 10, None)["items"]] == ["s1"]
    directory.index.client.upsert_entity(  # as another process's import would leave it
        {"PartitionKey": "space", "RowKey": "s9", "building_id": "sg-hq", "floor": "3", "number": "3-099",
         "number_lower": "3-099", "name": "Late", "name_lower": "late", "type": "meeting room", "capacity": 2}
    )
    deadline = time.monotonic() + 30
    while [i["id"] for i in impatient.search("3-0", 10, None)["items"]] != ["s1", "s9"]:
        assert time.monotonic() < deadline, "the snapshot was never reloaded"
        time.sleep(0.05)


# --- search ----------------------------------------------------------------------------------------------------------


def test_search_by_number_prefix_and_by_name_contains(directory: SpaceDirectory) -> None:
    directory.import_spaces(demo_spaces(), actor="a")
    by_number = directory.search("sg-03-01", 50, None)
    assert [i["number"] for i in by_number["items"]] == [f"SG-03-{n:03d}" for n in range(10, 20)]
    assert by_number["continuation_token"] is None
    by_name = directory.search("ARINA", 50, None)
    assert [i["name"] for i in by_name["items"]] == ["Marina Bay"]
    assert by_name["items"][0]["linked"] is None
    assert directory.search("no such thing", 50, None) == {"items": [], "continuation_token": None}


def test_search_pages_across_continuation_tokens_without_repeats_or_gaps(directory: SpaceDirectory) -> None:
    rows = demo_spaces()
    directory.import_spaces(rows, actor="a")
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        page = directory.search("desk", 7, token)
        pages += 1
        assert len(page["items"]) <= 7
        seen.extend(item["number"] for item in page["items"])
        token = page["continuation_token"]
        if token is None:
            break
    expected = sorted((r["number"] for r in rows if "desk" in r["name"].lower()), key=str.casefold)
    assert seen == expected
    assert pages == -(-len(expected) // 7)


def test_search_page_shows_the_current_link(directory: SpaceDirectory) -> None:
    directory.import_spaces(demo_spaces(), actor="a")
    assert directory.search("orchard", 10, None)["items"][0]["linked"] is None
    directory.claim(space_id_for("SG-03-014"), "acct-1", "orchard@contoso.com")
    assert directory.search("orchard", 10, None)["items"][0]["linked"] == {
        "account_id": "acct-1", "email": "orchard@contoso.com"}


def test_search_shows_a_link_made_by_another_instance_once_its_snapshot_reloads(directory: SpaceDirectory) -> None:
    directory.import_spaces(demo_spaces(), actor="a")
    orchard = space_id_for("SG-03-014")
    assert directory.search("orchard", 10, None)["items"][0]["linked"] is None
    row = directory.index.get("space", orchard)
    directory.index.update({**row, "linked_account_id": "acct-2", "linked_email": "other@contoso.com",
                            "linked_at": "2026-11-25T10:00:00Z"})  # as another instance's claim would
    assert directory.get(orchard).linked_email == "other@contoso.com"  # reading one space is always fresh
    directory.forget_snapshot()  # what the reload after `cache_seconds` does
    assert directory.search("orchard", 10, None)["items"][0]["linked"] == {
        "account_id": "acct-2", "email": "other@contoso.com"}
    with pytest.raises(SpaceTaken):
        directory.claim(orchard, "acct-1", "orchard@contoso.com")


def test_search_sees_an_import_in_this_process_at_once(directory: SpaceDirectory) -> None:
    directory.import_spaces([_space("s1", "3-014", "Orchard")], actor="a")
    assert directory.search("sentosa", 10, None)["items"] == []
    directory.import_spaces([_space("s2", "3-015", "Sentosa")], actor="a")
    assert [i["id"] for i in directory.search("sentosa", 10, None)["items"]] == ["s2"]


def test_a_token_from_another_search_or_a_garbled_one_is_refused(directory: SpaceDirectory) -> None:
    directory.import_spaces(demo_spaces(), actor="a")
    token = directory.search("sg", 5, None)["continuation_token"]
    with pytest.raises(Invalid):
        directory.search("ldn", 5, token)
    with pytest.raises(Invalid):
        directory.search("sg", 5, "not-a-token!")


@pytest.mark.slow
def test_search_on_ten_thousand_spaces_pages_through_every_match(directory: SpaceDirectory) -> None:
    rows = generated_spaces(10_000, seed=7)
    assert directory.import_spaces(rows, actor="bench")["added"] == 10_000
    numbers: list[str] = []
    token = None
    while True:
        page = directory.search("b01-", 200, token)
        numbers.extend(item["number"] for item in page["items"])
        token = page["continuation_token"]
        if token is None:
            break
    assert numbers == sorted((r["number"] for r in rows if r["number"].startswith("B01-")), key=str.casefold)


# --- browse ----------------------------------------------------------------------------------------------------------


def test_browse_buildings_floors_and_a_floor(directory: SpaceDirectory) -> None:
    directory.import_spaces(demo_spaces(), actor="a")
    buildings = directory.buildings()
    assert [(b["name"], b["floor_count"], b["space_count"]) for b in buildings] == [
        ("London", 5, 100), ("Singapore HQ", 6, 150), ("Sydney", 4, 80)]
    floors = directory.floors("sg-hq")
    assert [f["floor"] for f in floors] == ["1", "2", "3", "4", "5", "6"]
    assert all(f["space_count"] == 25 for f in floors)
    on_floor = directory.spaces_on_floor("sg-hq", "3")
    assert len(on_floor) == 25
    assert [s["number"] for s in on_floor] == [f"SG-03-{n:03d}" for n in range(1, 26)]
    assert next(s for s in on_floor if s["number"] == "SG-03-014")["name"] == "Orchard"


def test_floors_sort_naturally(directory: SpaceDirectory) -> None:
    directory.import_spaces([_space(f"s{f}", f"n-{f}", f"Room {f}", floor=f) for f in ("10", "2", "B1", "1")],
                            actor="a")
    assert [f["floor"] for f in directory.floors("sg-hq")] == ["1", "2", "10", "B1"]


def test_browsing_the_unknown_is_not_found(directory: SpaceDirectory) -> None:
    directory.import_spaces(demo_spaces(), actor="a")
    with pytest.raises(NotFound, match="mars"):
        directory.floors("mars")
    with pytest.raises(NotFound, match="mars"):
        directory.spaces_on_floor("mars", "1")
    with pytest.raises(NotFound, match="99"):
        directory.spaces_on_floor("sg-hq", "99")
    with pytest.raises(NotFound):
        directory.floors("a/b")


# --- claim and release -----------------------------------------------------------------------------------------------


def test_claim_is_idempotent_and_a_second_calendar_is_told_the_holder(directory: SpaceDirectory) -> None:
    directory.import_spaces([_space("s1", "3-014", "Orchard")], actor="a")
    first = directory.claim("s1", "acct-1", "orchard@contoso.com")
    again = directory.claim("s1", "acct-1", " ORCHARD@contoso.com ")
    assert first.linked_email == again.linked_email == "orchard@contoso.com"
    with pytest.raises(SpaceTaken) as taken:
        directory.claim("s1", "acct-1", "sentosa@contoso.com")
    assert taken.value.message == "space 3-014 (Orchard) is linked to orchard@contoso.com"
    assert (taken.value.holder_account_id, taken.value.holder_email) == ("acct-1", "orchard@contoso.com")
    # The same address in another account is another calendar.
    with pytest.raises(SpaceTaken):
        directory.claim("s1", "acct-2", "orchard@contoso.com")


def test_claiming_an_unknown_space_is_not_found(directory: SpaceDirectory) -> None:
    with pytest.raises(NotFound, match="ghost"):
        directory.claim("ghost", "acct-1", "orchard@contoso.com")


def test_release_clears_only_its_own_link_and_is_idempotent(directory: SpaceDirectory) -> None:
    directory.import_spaces([_space("s1", "3-014", "Orchard")], actor="a")
    directory.claim("s1", "acct-1", "orchard@contoso.com")
    directory.release("s1", "acct-1", "sentosa@contoso.com")  # not the holder: nothing changes
    assert directory.get("s1").linked_email == "orchard@contoso.com"
    directory.release("s1", "acct-1", "Orchard@Contoso.com")
    assert directory.get("s1").to_api()["linked"] is None
    directory.release("s1", "acct-1", "orchard@contoso.com")
    directory.release("ghost", "acct-1", "orchard@contoso.com")
    directory.release("bad/key", "acct-1", "orchard@contoso.com")
    assert directory.claim("s1", "acct-1", "sentosa@contoso.com").linked_email == "sentosa@contoso.com"


def test_concurrent_claims_of_one_space_have_exactly_one_winner(directory: SpaceDirectory) -> None:
    spaces = [_space(f"race-{n}", f"R-{n:02d}", f"Race {n}") for n in range(10)]
    directory.import_spaces(spaces, actor="a")
    contenders = 6
    for row in spaces:
        barrier = threading.Barrier(contenders)
        outcomes: dict[str, str] = {}

        def contend(email: str, space_id: str = row["id"], barrier: threading.Barrier = barrier,
                    outcomes: dict[str, str] = outcomes) -> None:
            # Each contender its own directory, as two admins' requests would have.
            own = SpaceDirectory(directory.spaces, directory.index)
            barrier.wait(timeout=30)
            try:
                own.claim(space_id, "acct-1", email)
                outcomes[email] = "won"
            except SpaceTaken as taken:
                outcomes[email] = f"taken by {taken.holder_email}"

        threads = [threading.Thread(target=contend, args=(f"room{n}@contoso.com",)) for n in range(contenders)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        winners = [email for email, outcome in outcomes.items() if outcome == "won"]
        assert len(outcomes) == contenders
        assert len(winners) == 1, outcomes
        assert all(outcome == f"taken by {winners[0]}" for email, outcome in outcomes.items() if email not in winners)
        assert directory.get(row["id"]).linked_email == winners[0]


def test_an_import_racing_claims_never_loses_a_link(directory: SpaceDirectory) -> None:
    rows = [_space(f"s{n}", f"N-{n:03d}", f"Space {n}") for n in range(150)]
    directory.import_spaces(rows, actor="a")
    renamed = [{**row, "name": row["name"] + " renamed"} for row in rows]
    start = threading.Barrier(2)

    def reimport() -> None:
        start.wait(timeout=30)
        SpaceDirectory(directory.spaces, directory.index).import_spaces(renamed, actor="b")

    importer = threading.Thread(target=reimport)
    importer.start()
    start.wait(timeout=30)
    for row in rows:
        directory.claim(row["id"], "acct-1", f"{row['id']}@contoso.com")
    importer.join(timeout=120)
    for row in rows:
        space = directory.get(row["id"])
        assert space.linked_email == f"{row['id']}@contoso.com"
        assert space.name.endswith("renamed")


# --- suggestions -----------------------------------------------------------------------------------------------------


def test_suggest_finds_the_demo_rooms_by_name_and_number(directory: SpaceDirectory) -> None:
    directory.import_spaces(demo_spaces(), actor="a")
    space, confidence = directory.suggest("Orchard", "orchard@contoso.com", "Singapore HQ", "3")
    assert space is not None and space.number == "SG-03-014" and confidence >= 0.9
    space, confidence = directory.suggest("Clarke Quay Meeting Room", "clarkequay@contoso.com", None, None)
    assert space is not None and space.name == "Clarke Quay" and confidence >= 0.6
    space, _ = directory.suggest("SG-04-010 (12 seats)", "room4010@contoso.com", None, None)
    assert space is not None and space.name == "Changi"
    assert directory.suggest("Atlantis", "atlantis@contoso.com", None, None) == (None, 0.0)
