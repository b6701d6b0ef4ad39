"""The CSV reader's pure rules: encodings, delimiters, line breaks split across chunks, headers, limits."""

from __future__ import annotations

import csv
import io

import pytest

from shared.imports import parse_upload_path, report_name_for
from shared.imports.dialect import (
    MAX_FIELD_LENGTH,
    FieldTooLong,
    NotACsv,
    csv_line,
    protect,
    read_rows,
    sniff_delimiter,
    sniff_encoding,
    text_lines,
    unprotect,
)


def chunked(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


def rows(data: bytes, size: int = 7) -> list[tuple[int, str, str, str | None]]:
    return [(r.line, r.email, r.room, r.problem) for r in read_rows(chunked(data, size))]


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be"])
@pytest.mark.parametrize("size", [1, 2, 3, 5, 4096])
def test_every_encoding_reads_the_same_at_any_chunk_size(encoding: str, size: int) -> None:
    text = "Email,Room ID\r\nA@x.example,3-014\r\nb@x.example,\r\n"
    assert rows(text.encode(encoding), size) == [(2, "A@x.example", "3-014", None), (3, "b@x.example", "", None)]


def test_a_crlf_split_between_chunks_is_one_line_break() -> None:
    data = b"email\r\na@x.example\r\nb@x.example\r\n"
    split_at = data.index(b"\n")
    assert list(text_lines([data[:split_at], data[split_at:]])) == ["email\r\n", "a@x.example\r\n", "b@x.example\r\n"]


def test_line_numbers_count_blank_lines_and_quoted_line_breaks() -> None:
    data = b'\n\nemail;roomID;;\n\n"a@x.example";"R\n1"\n;;\nb@x.example;;;\n'
    assert rows(data) == [(5, "a@x.example", "R\n1", None), (8, "b@x.example", "", None)]


def test_surplus_cells_are_a_row_problem_and_empty_trailing_ones_are_not() -> None:
    assert rows(b"email,roomID\na@x.example,1,,\nb@x.example,2,extra\n") == [
        (2, "a@x.example", "1", None), (3, "b@x.example", "2", "the row has 3 cells but the header has 2 columns")]


def test_the_delimiter_is_taken_from_the_header() -> None:
    assert sniff_delimiter("email;roomID\r\n") == ";"
    assert sniff_delimiter('"e;mail",roomID\n') == ","
    assert sniff_delimiter("email\n") == ","


def test_utf16_without_bom_is_recognised() -> None:
    assert sniff_encoding("em".encode("utf-16-le")) == ("utf-16-le", 0)
    assert sniff_encoding("em".encode("utf-16-be")) == ("utf-16-be", 0)
    assert sniff_encoding(b"email") == ("utf-8", 0)


@pytest.mark.parametrize(("data", "words"), [
    (b"PK\x03\x04rest-of-a-zip", "Excel workbook"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "Excel 97-2003"),
    (b"\xff\xd8\xff\xe0JFIF", "JPEG image"),
    (b"email\n\xe9t\xe9@x.example\n", "not UTF-8"),
    (b"email\nab\x00cd\n", "binary data"),
    (b"", "empty"),
    (b"\n\n", "empty"),
    (b"name,room\nx,y\n", "header email,roomID"),
    (b"email,mail\nx,y\n", "email column twice"),
])
def test_what_is_not_a_csv_is_one_clear_error(data: bytes, words: str) -> None:
    with pytest.raises(NotACsv, match=words):
        rows(data)


def test_limits_on_cells_and_lines() -> None:
    with pytest.raises(FieldTooLong, match="line 3"):
        rows(b"email\na@x.example\n" + b"b" * (MAX_FIELD_LENGTH + 1) + b"\n")
    with pytest.raises(FieldTooLong, match="line is longer"):
        rows(b"email\n" + b"x" * 100_000, size=4096)


def test_formula_cells_are_guarded_for_excel_and_unguarded_on_import() -> None:
    for cell in ("=1+2", "+1", "-1.05", "@SUM(A1)", "\tx", "\rx"):
        assert protect(cell).startswith("'")
    assert protect("room@x.example") == "room@x.example"
    assert unprotect(" '-1.05 ") == "-1.05"
    assert unprotect("'quoted") == "'quoted"
    assert rows(b"email,roomID\na@x.example,'-1.05\n") == [(2, "a@x.example", "-1.05", None)]


# Cells from outside (emails, room names from Graph, space names, reasons quoting them) that
# hide a formula behind a separator some spreadsheet splits on.
HOSTILE_CELLS = ["x;=1+1", "x,=1+1", "x\t=1+1", "Orchard; =HYPERLINK(\"http://evil.example\")", "a;+1;-2;@SUM(A1)",
                 "a\n=1", "a;'=1", "'-1.05", "=1+2", "plain room", "Meeting room - East", 'say "hi"']


def _starts_a_formula(cell: str) -> bool:
    return cell.lstrip(" ").startswith(("=", "+", "-", "@"))


@pytest.mark.parametrize("separator", [",", ";", "\t"])
def test_a_written_cell_shows_no_formula_whichever_separator_the_reader_splits_on(separator: str) -> None:
    line = csv_line(["a@x.example", *HOSTILE_CELLS])
    quoted = next(csv.reader(io.StringIO(line, newline=""), delimiter=separator))
    naive = line.replace("\n", separator).split(separator)  # a reader that ignores quotes
    for cell in quoted + naive:
        assert not _starts_a_formula(cell.strip('"')), (separator, cell)


def test_written_cells_are_read_back_exactly() -> None:
    for cell in HOSTILE_CELLS:
        assert unprotect(protect(cell)) == cell.strip()
    data = ("email,roomID\r\n" + "".join(csv_line(["a@x.example", cell]) for cell in HOSTILE_CELLS)).encode()
    assert [room for _, _, room, _ in rows(data)] == [cell.strip() for cell in HOSTILE_CELLS]


def test_upload_paths_name_the_account_and_the_import() -> None:
    assert parse_upload_path("acc/20240101-ab.csv") == ("acc", "20240101-ab")
    assert parse_upload_path("acc/rooms march.CSV") == ("acc", "rooms march")
    assert parse_upload_path("rooms.csv") is None
    assert parse_upload_path("acc/sub/rooms.csv") is None
    assert parse_upload_path("acc/a#b?.csv") == ("acc", "a_b_")
    assert report_name_for("acc/x.csv") == "acc/x.report.csv"
