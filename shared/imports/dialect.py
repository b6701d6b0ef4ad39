"""Reading what Excel and scripts call a CSV, as a stream of rows with their line numbers: the one CSV reader,
and the one CSV writer of every file the product hands out (exports, import reports).

Owns byte-level sniffing (spreadsheets and images are told apart from text), the text
encoding (UTF-8 with or without BOM, UTF-16 with BOM or recognisable without), the
delimiter (`,` or `;`, chosen from the header line), line splitting (CRLF, LF or CR),
header names in any case and spacing, blank lines, trailing empty columns, the per-line
and per-cell limits, and the formula guard of cells written back out (safe whichever of `,` `;` tab a spreadsheet
splits on: cells holding any of them are quoted, and a formula start after any of them is
guarded too, because Excel in most of Europe splits on `;`). Calendar files
(`read_rows`) and spaces files (`shared.imports.spaces_file`) both read through `records`.
It never holds more than one chunk and one line of the file, never touches storage and
never decides what a row means.

Problems with the file as a whole raise `NotACsv` (or `FieldTooLong`): one clear
message, raised before the caller has seen the row at fault.
"""

from __future__ import annotations

import codecs
import csv
import itertools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TextIO

from shared.errors import Invalid, TooLarge

# A cell longer than this is not a room address or a space number: the file is refused
# as a whole rather than imported in part. Email addresses are at most 254 characters.
MAX_FIELD_LENGTH = 1024
# A physical line longer than this cannot be a row of a two-column file; the cap also
# keeps a file without line breaks from being held whole in memory.
MAX_LINE_LENGTH = 16 * 1024

TEMPLATE_HEADER = "email,roomID"
EMAIL_COLUMN_NAMES = frozenset({"email", "emailaddress", "mail", "roomemail", "mailbox", "calendar"})
ROOM_COLUMN_NAMES = frozenset({"roomid", "room", "spaceid", "space", "spacenumber", "roomnumber"})
# What the export writes before a cell starting with one of these, so Excel shows it as text;
# the reader removes it again, so an exported file re-imports unchanged.
FORMULA_STARTERS = ("=", "+", "-", "@", "\t", "\r")
# Where a spreadsheet may start a new cell inside what we wrote as one: the list separators
# of its locale (`,` `;`), tab, and a line break. A formula start after one of them (spaces
# between allowed) is guarded like one at the start of the cell; so is one already guarded
# (`'=`), which keeps `unprotect(protect(cell))` exact.
_STARTER_CLASS = "'*[=+\\-@\t\r]"
_GUARD = re.compile(f"(^|[,;\t\r\n])( *)(?={_STARTER_CLASS})")
_UNGUARD = re.compile(f"(^|[,;\t\r\n])( *)'(?={_STARTER_CLASS})")
# A cell holding one of these is quoted, so a reader splitting on any separator keeps it whole.
_NEEDS_QUOTES = re.compile('[,;\t"\r\n]')

_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"PK\x03\x04", "a ZIP archive, such as an Excel workbook (.xlsx)"),
    (b"\xd0\xcf\x11\xe0", "an Excel 97-2003 workbook (.xls)"),
    (b"%PDF", "a PDF document"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"{\\rtf", "an RTF document"),
)
_SAVE_AS = "In Excel use File > Save As > 'CSV UTF-8 (Comma delimited)'."
_LINE_BREAK = re.compile(r"\r\n|\n|\r")


class NotACsv(Invalid):
    """The file is not a CSV this import understands; nothing of it is applied."""


class FieldTooLong(TooLarge):
    """A cell or a line is over the limit; nothing of the file is applied."""


@dataclass(frozen=True)
class CsvRow:
    """One data row: its first physical line, the email and room cells as written, and a
    row-level problem (the import reports the row rather than refusing the file)."""

    line: int
    email: str
    room: str | None  # None when the file has no room column
    problem: str | None = None


def sniff_encoding(head: bytes) -> tuple[str, int]:
    """(codec, length of the byte-order mark to skip) for the file's first bytes."""
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8", 3
    if head.startswith(codecs.BOM_UTF32_LE) or head.startswith(codecs.BOM_UTF32_BE):
        raise NotACsv(f"the file is UTF-32 text, which this import does not read. {_SAVE_AS}")
    if head.startswith(codecs.BOM_UTF16_LE):
        return "utf-16-le", 2
    if head.startswith(codecs.BOM_UTF16_BE):
        return "utf-16-be", 2
    # UTF-16 written without a BOM still shows itself: ASCII text with every other byte zero.
    if len(head) >= 4 and head[0] and not head[1] and head[2] and not head[3]:
        return "utf-16-le", 0
    if len(head) >= 4 and not head[0] and head[1] and not head[2] and head[3]:
        return "utf-16-be", 0
    return "utf-8", 0


def check_not_binary(head: bytes) -> None:
    for magic, what in _MAGIC:
        if head.startswith(magic):
            raise NotACsv(f"the file is {what}, not a CSV. {_SAVE_AS}")


def text_lines(chunks: Iterable[bytes]) -> Iterator[str]:
    """The file's lines, each with its line break, decoded incrementally chunk by chunk."""
    iterator = iter(chunks)
    head = b""
    for chunk in iterator:
        head += chunk
        if len(head) >= 8:
            break
    if not head:
        return
    check_not_binary(head)
    codec, bom = sniff_encoding(head)
    decoder = codecs.getincrementaldecoder(codec)(errors="strict")
    pending = ""
    consumed = 0
    for chunk in itertools.chain([head[bom:]], iterator):
        try:
            text = decoder.decode(chunk)
        except UnicodeDecodeError as error:
            raise NotACsv(f"the file is not {codec.upper()[:6]} text (byte {consumed + error.start + bom} "
                          f"cannot be read). {_SAVE_AS}") from None
        consumed += len(chunk)
        lines, pending = _split(pending + text, final=False)
        yield from lines
    try:
        pending += decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise NotACsv(f"the file ends in the middle of a character: it is not {codec.upper()[:6]} text. "
                      f"{_SAVE_AS}") from None
    lines, _ = _split(pending, final=True)
    yield from lines


def _split(text: str, *, final: bool) -> tuple[list[str], str]:
    """Complete lines of `text` (one chunk's worth) and what follows the last line break."""
    if "\x00" in text:
        raise NotACsv(f"the file holds binary data (NUL characters), not CSV text. {_SAVE_AS}")
    lines: list[str] = []
    position = 0
    for found in _LINE_BREAK.finditer(text):
        # A CR at the very end may be the first half of a CRLF split across chunks.
        if not final and found.group() == "\r" and found.end() == len(text):
            break
        line = text[position:found.end()]
        if len(line) > MAX_LINE_LENGTH:
            raise FieldTooLong(f"a line is longer than {MAX_LINE_LENGTH:,} characters; a row of this file "
                               "needs far fewer; is this the right file?")
        lines.append(line)
        position = found.end()
    remainder = text[position:]
    if len(remainder) > MAX_LINE_LENGTH:
        raise FieldTooLong(f"a line is longer than {MAX_LINE_LENGTH:,} characters; a row of this file "
                           "needs far fewer; is this the right file?")
    if final and remainder:
        lines.append(remainder)
        remainder = ""
    return lines, remainder


def sniff_delimiter(header_line: str) -> str:
    """`;` when the header has more semicolons than commas outside quotes (Excel in locales
    whose decimal separator is a comma writes `;`), else `,`."""
    outside = re.sub(r'"[^"]*"', "", header_line)
    return ";" if outside.count(";") > outside.count(",") else ","


def column_key(name: str) -> str:
    """`Email`, ` E-mail `, `Room ID` and `room_id` all become plain lower-case letters."""
    return "".join(ch for ch in name.casefold() if ch.isalnum())


def unprotect(cell: str) -> str:
    """A cell with surrounding spaces removed and the export's formula guard (the `'` that
    `protect` put before a formula start, at the start or after a separator) taken off again."""
    return _UNGUARD.sub(r"\1\2", cell.strip()).strip()


def protect(cell: str) -> str:
    """Excel-safe: a `'` before every formula start (= + - @ tab CR) at the start of the cell or
    after a `,` `;` tab or line break in it, so no way of splitting the cell shows a formula.
    https://owasp.org/www-community/attacks/CSV_Injection"""
    return _GUARD.sub(r"\1\2'", cell)


def csv_line(cells: Iterable[object]) -> str:
    """One CSV line (`,`-separated, CRLF): every cell guarded, and quoted when it holds a separator."""
    written = []
    for value in cells:
        cell = protect("" if value is None else str(value))
        written.append('"' + cell.replace('"', '""') + '"' if _NEEDS_QUOTES.search(cell) else cell)
    return ",".join(written) + "\r\n"


class CsvWriter:
    """What writes every CSV the product hands out: `writerow` as `csv.writer` has it, cells made
    safe by `csv_line`."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def writerow(self, cells: Iterable[object]) -> None:
        self.stream.write(csv_line(cells))


def records(chunks: Iterable[bytes], *, empty: str) -> Iterator[tuple[int, list[str]]]:
    """(first physical line, cells) of the header and then of every data row that is not blank;
    `NotACsv` with the message `empty` for a file with no header."""
    lines = text_lines(chunks)
    skipped = 0
    header_line = ""
    for header_line in lines:
        if header_line.strip():
            break
        skipped += 1
    else:
        raise NotACsv(empty)
    reader = csv.reader(itertools.chain([header_line], lines), delimiter=sniff_delimiter(header_line))
    try:
        header = next(reader)
        _check_cells(header, skipped + 1)
        yield skipped + 1, header
        previous_line = reader.line_num
        for cells in reader:
            line = skipped + previous_line + 1
            previous_line = reader.line_num
            if not any(cell.strip() for cell in cells):
                continue
            _check_cells(cells, line)
            yield line, cells
    except csv.Error as error:
        raise NotACsv(f"line {skipped + reader.line_num}: the file is not a well-formed CSV ({error})") from None


def read_rows(chunks: Iterable[bytes]) -> Iterator[CsvRow]:
    """Data rows of a calendars file (blank ones skipped), after checking the header."""
    rows = records(chunks, empty=f"the file is empty: it needs the header line {TEMPLATE_HEADER} and a row per "
                                 "calendar")
    _, header = next(rows)
    email_index, room_index = _columns(header)
    for line, cells in rows:
        problem = None
        if any(cell.strip() for cell in cells[len(header):]):
            problem = f"the row has {len(cells)} cells but the header has {len(header)} columns"
        email = unprotect(cells[email_index]) if email_index < len(cells) else ""
        if room_index is None:
            room = None  # no room column: the file says nothing about links
        else:
            room = unprotect(cells[room_index]) if room_index < len(cells) else ""
        yield CsvRow(line=line, email=email, room=room, problem=problem)


def _check_cells(cells: list[str], line: int) -> None:
    for cell in cells:
        if len(cell) > MAX_FIELD_LENGTH:
            raise FieldTooLong(f"line {line}: a cell is {len(cell):,} characters long; the limit is "
                               f"{MAX_FIELD_LENGTH:,}; fix the cell and upload again.")


def _columns(header: list[str]) -> tuple[int, int | None]:
    keys = [column_key(name) for name in header]
    emails = [index for index, key in enumerate(keys) if key in EMAIL_COLUMN_NAMES]
    rooms = [index for index, key in enumerate(keys) if key in ROOM_COLUMN_NAMES]
    shown = ", ".join(repr(name.strip()) for name in header[:6]) or "nothing"
    if not emails:
        raise NotACsv(f"the first line must be the header {TEMPLATE_HEADER} (as in the template); "
                      f"found {shown}")
    if len(emails) > 1 or len(rooms) > 1:
        raise NotACsv(f"the header names the {'email' if len(emails) > 1 else 'room'} column twice ({shown}); "
                      f"keep one, as in the template's {TEMPLATE_HEADER}")
    return emails[0], rooms[0] if rooms else None
