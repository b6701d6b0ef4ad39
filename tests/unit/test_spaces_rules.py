"""Pure rules of the spaces directory: key and row validation, CSV reading, suggestion scoring, demo data."""

from __future__ import annotations

import pytest

from devhost.demo_spaces import demo_spaces, generated_spaces, space_id_for
from shared.errors import Invalid, TooLarge
from shared.imports import space_rows_from_csv as rows_from_csv
from shared.spaces import (
    IndexEntry,
    RoomHint,
    Snapshot,
    Space,
    SpaceTaken,
    best_match,
    candidates_for,
    parse_space_row,
    score,
    validate_key,
)

ROW = {"id": "s1", "building_id": "sg-hq", "building_name": "Singapore HQ", "floor": "3", "number": "SG-03-014",
       "name": "Orchard", "type": "meeting room", "capacity": 10}


# --- keys and rows ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["a/b", "a\\b", "a#b", "a?b", "tab\there", "nul\x00", "del\x7f", "x" * 65, "", "  ",
                                   None, 3.5, ["s1"]])
def test_keys_table_storage_cannot_hold_are_refused(value: object) -> None:
    with pytest.raises(Invalid):
        validate_key(value, "id")


@pytest.mark.parametrize(("value", "expected"), [(" SG-03-014 ", "SG-03-014"), ("x" * 64, "x" * 64), (3, "3"),
                                                 ("Salle 3 · Étage", "Salle 3 · Étage"), ("a:b.c_d", "a:b.c_d")])
def test_keys_are_trimmed_and_kept(value: object, expected: str) -> None:
    assert validate_key(value, "id") == expected


def test_the_refusal_names_the_field_and_the_character() -> None:
    with pytest.raises(Invalid, match=r"number 'a/b' contains /"):
        validate_key("a/b", "number")


def test_a_good_row_is_normalised() -> None:
    row = parse_space_row({**ROW, "name": "  Marina   Bay ", "capacity": "16", "floor": 3, "type": ""})
    assert (row.name, row.capacity, row.floor, row.type) == ("Marina Bay", 16, "3", "meeting room")


def test_optional_fields_default() -> None:
    row = parse_space_row({"id": "s1", "building_id": "sg-hq", "floor": "3", "number": "3-014", "name": "Orchard"})
    assert (row.building_name, row.type, row.capacity) == ("sg-hq", "meeting room", 0)


@pytest.mark.parametrize(("change", "reason"), [
    ({"capacity": -1}, "capacity"), ({"capacity": "ten"}, "capacity"), ({"capacity": True}, "capacity"),
    ({"capacity": 2.5}, "capacity"), ({"capacity": 100_001}, "capacity"), ({"name": ""}, "name is missing"),
    ({"name": "x" * 201}, "201 characters"), ({"name": 5}, "name must be text"), ({"floor": None}, "floor"),
    ({"building_id": "a#b"}, "building_id"), ({"type": "t" * 65}, "type"),
])
def test_bad_rows_say_what_is_wrong(change: dict, reason: str) -> None:
    with pytest.raises(Invalid, match=reason):
        parse_space_row({**ROW, **change})


def test_a_row_must_be_an_object() -> None:
    with pytest.raises(Invalid):
        parse_space_row(["s1", "sg-hq"])


# --- CSV -------------------------------------------------------------------------------------------------------------


def test_csv_rows_carry_their_line_numbers_and_skip_blank_lines() -> None:
    rows = rows_from_csv("id,building_id,floor,number,name\n\ns1,b,1,1-01,One\n,,,,\ns2,b,1,1-02,Two\n")
    assert [(r["id"], r["_line"]) for r in rows] == [("s1", 3), ("s2", 5)]


def test_csv_reads_semicolons_bom_and_any_header_case() -> None:
    rows = rows_from_csv("\ufeffID;BUILDING_ID;Floor;Number;Name;Capacity\r\ns1;b;1;1-01;One;4\r\n".encode())
    assert rows[0]["id"] == "s1" and rows[0]["capacity"] == "4"


def test_csv_without_a_header_or_not_utf8_is_refused() -> None:
    with pytest.raises(Invalid, match="empty"):
        rows_from_csv(b"\n\n")
    with pytest.raises(Invalid, match="UTF-8"):
        rows_from_csv("id,building_id,floor,number,name\ns1,b,1,1-01,Café\n".encode("latin-1"))


def test_csv_over_the_size_limit_is_too_large() -> None:
    with pytest.raises(TooLarge):
        rows_from_csv(b"id,building_id,floor,number,name\n" + b"x" * (5 * 1024 * 1024))


def test_a_row_with_more_cells_than_columns_is_marked() -> None:
    rows = rows_from_csv("id,building_id,floor,number,name\ns1,b,1,1-01,One,extra\n")
    assert rows[0]["_extra_cells"] is True


# --- the model -------------------------------------------------------------------------------------------------------


def test_space_taken_names_the_holder() -> None:
    space = Space("s1", "sg-hq", "Singapore HQ", "3", "3-014", "Orchard", "meeting room", 10,
                  linked_account_id="acct", linked_email="orchard@contoso.com")
    taken = SpaceTaken(space)
    assert taken.message == "space 3-014 (Orchard) is linked to orchard@contoso.com"
    assert (taken.holder_account_id, taken.holder_email) == ("acct", "orchard@contoso.com")
    assert space.to_api()["linked"] == {"account_id": "acct", "email": "orchard@contoso.com"}


# --- suggestions -----------------------------------------------------------------------------------------------------


def _entry(number: str, name: str, building: str = "Singapore HQ", floor: str = "3") -> IndexEntry:
    return IndexEntry(space_id=space_id_for(number), building_id=building.lower().replace(" ", "-"),
                      building_name=building, floor=floor, number=number, name=name)


ORCHARD = _entry("SG-03-014", "Orchard")
CLARKE_QUAY = _entry("SG-04-011", "Clarke Quay", floor="4")


def test_the_exact_name_is_a_strong_match() -> None:
    assert score(RoomHint("Orchard", "orchard@contoso.com"), ORCHARD) == pytest.approx(0.9)


def test_the_number_in_the_name_or_address_is_the_strongest_match() -> None:
    assert score(RoomHint("SG-03-014 Boardroom", "x@contoso.com"), ORCHARD) == pytest.approx(0.95)
    assert score(RoomHint("Big room", "sg-03-014@contoso.com"), ORCHARD) == pytest.approx(0.95)


def test_a_matching_building_and_floor_raise_the_score_and_wrong_ones_lower_it() -> None:
    plain = score(RoomHint("Orchard Room", "orchard@contoso.com"), ORCHARD)
    located = score(RoomHint("Orchard Room", "orchard@contoso.com", "Singapore HQ", "03"), ORCHARD)
    elsewhere = score(RoomHint("Orchard Room", "orchard@contoso.com", "London", "7"), ORCHARD)
    assert elsewhere < plain < located <= 1.0


def test_the_address_alone_can_match_a_two_word_name() -> None:
    assert score(RoomHint("Room 4-11", "clarkequay@contoso.com"), CLARKE_QUAY) == pytest.approx(0.85)


def test_extra_words_beside_the_name_still_match_but_less() -> None:
    loose = score(RoomHint("SG HQ Clarke Quay (8 seats)", "cq@contoso.com"), CLARKE_QUAY)
    assert 0.6 <= loose < 0.85


def test_filler_words_and_unrelated_names_do_not_match() -> None:
    assert score(RoomHint("Meeting Room", "meetingroom@contoso.com"), ORCHARD) == 0.0
    assert score(RoomHint("Sentosa", "sentosa@contoso.com"), ORCHARD) == 0.0


def test_a_near_spelling_matches_weakly() -> None:
    assert 0 < score(RoomHint("Orchad", "x@contoso.com"), ORCHARD) < 0.6


def test_two_equally_good_spaces_make_the_suggestion_unsure() -> None:
    twin = _entry("LDN-01-001", "Orchard", building="London", floor="1")
    _, alone = best_match(RoomHint("Orchard", "orchard@contoso.com"), [ORCHARD])
    space, unsure = best_match(RoomHint("Orchard", "orchard@contoso.com"), [ORCHARD, twin])
    assert unsure < alone
    # The building tells them apart.
    space, sure = best_match(RoomHint("Orchard", "orchard@contoso.com", building="London"), [ORCHARD, twin])
    assert space == twin and sure >= 0.9


def test_no_suggestion_below_the_threshold() -> None:
    assert best_match(RoomHint("Atlantis", "atlantis@contoso.com"), [ORCHARD, CLARKE_QUAY]) == (None, 0.0)


def test_candidates_come_from_name_words_numbers_and_compact_names() -> None:
    snapshot = Snapshot([ORCHARD, CLARKE_QUAY, _entry("SG-03-001", "Desk 3.01")], loaded_at=0)
    assert candidates_for(RoomHint("Orchard", "x@contoso.com"), snapshot) == {ORCHARD}
    assert candidates_for(RoomHint("Room", "clarkequay@contoso.com"), snapshot) == {CLARKE_QUAY}
    assert candidates_for(RoomHint("SG-03-014", "x@contoso.com"), snapshot) == {ORCHARD}
    # Bare digits are in too many names to be candidates on their own.
    assert candidates_for(RoomHint("Room 3", "x@contoso.com"), snapshot) == set()


# --- demo data -------------------------------------------------------------------------------------------------------


def test_demo_spaces_are_valid_unique_and_hold_the_demo_rooms() -> None:
    rows = demo_spaces()
    assert rows == demo_spaces()
    parsed = [parse_space_row(row) for row in rows]
    assert len({r.space_id for r in parsed}) == len({r.number.casefold() for r in parsed}) == len(rows) >= 300
    names = {r.number: r.name for r in parsed}
    assert names["SG-03-014"] == "Orchard"
    assert {"Sentosa", "Marina Bay", "Raffles", "Bugis", "Changi", "Clarke Quay", "Tiong Bahru", "Dempsey",
            "Katong"} <= set(names.values())
    assert {r.building_name for r in parsed} == {"Singapore HQ", "London", "Sydney"}


def test_generated_spaces_are_deterministic_valid_and_unique() -> None:
    rows = generated_spaces(2_000, seed=3)
    assert rows == generated_spaces(2_000, seed=3) != generated_spaces(2_000, seed=4)
    parsed = [parse_space_row(row) for row in rows]
    assert len({r.space_id for r in parsed}) == len({r.number.casefold() for r in parsed}) == 2_000
