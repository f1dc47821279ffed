"""Reading the CSV files that form tools and spreadsheets export, whatever they did to them.

Encodings: UTF-8, UTF-8 with a byte-order mark, or Windows-1250 (Excel on a Romanian Windows).
Delimiters: comma, semicolon (Excel in Romanian and most of Europe) or tab. Columns are found by
their header, in Romanian or English, with or without diacritics; `--map` overrides.
"""

from __future__ import annotations

import codecs
import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from subscribers.profile import ATTRIBUTE_NAME_LIMIT, fold

# The fields an import fills, each with the headers that mean it (compared folded: no case or diacritics).
HEADERS: dict[str, tuple[str, ...]] = {
    "email": ("email", "e-mail", "email address", "e-mail address", "adresa de email", "adresa de e-mail",
              "adresa email", "adresa e-mail", "mail", "posta electronica"),
    "name": ("name", "full name", "nume", "nume si prenume", "nume complet", "prenume si nume", "numele"),
    "first_name": ("first name", "given name", "prenume", "prenumele"),
    "last_name": ("last name", "surname", "family name", "nume de familie"),
    "organisation": ("organisation", "organization", "organisation name", "organization name", "institution",
                     "company", "employer", "organizatie", "organizatia", "institutie", "institutia", "entitate",
                     "denumire organizatie", "denumirea institutiei"),
    "organisation_type": ("organisation type", "organization type", "type of organisation", "type of organization",
                          "type", "category", "tip organizatie", "tipul organizatiei", "tip institutie",
                          "tipul institutiei", "categorie"),
    "city": ("city", "town", "locality", "oras", "orasul", "localitate", "localitatea", "municipiu"),
    "country": ("country", "tara", "tara de resedinta", "stat"),
    "timezone": ("timezone", "time zone", "fus orar"),
    "language": ("language", "preferred language", "limba", "limba preferata"),
    "topics": ("topics", "interests", "areas of interest", "teme", "subiecte", "interese", "domenii de interes",
               "tematici", "teme de interes"),
    "consent": ("consent", "gdpr", "gdpr consent", "i agree", "agreement", "acord", "acord gdpr", "consimtamant",
                "acordul", "sunt de acord"),
    "consent_date": ("consent date", "timestamp", "submitted at", "submission date", "completion time",
                     "data acordului", "data", "marcaj de timp", "marca temporala", "data completarii"),
    "consent_source": ("consent source", "source", "sursa", "sursa acordului"),
    "status": ("status", "subscription status", "stare", "starea abonarii"),
    "attributes": ("attributes", "atribute"),  # a JSON object, as `herald subscribers export` writes it
}
# Columns of Herald's own export that an import leaves out: Herald keeps its own time stamps.
_OWN_STAMPS = ("created at", "confirmed at", "updated at")
FIELDS = tuple(HEADERS)
IGNORE = "-"  # `--map "Column=-"` leaves a column out, even from the custom attributes
_LOOKUP = {fold(header): field for field, headers in HEADERS.items() for header in headers} | {
    stamp: IGNORE for stamp in _OWN_STAMPS}


class FileProblem(ValueError):
    """The whole file cannot be imported (no email column, unreadable); nothing was changed."""


@dataclass(frozen=True)
class Table:
    encoding: str
    delimiter: str
    headers: list[str]
    columns: dict[int, str]  # column index -> field, or "attribute:<name>"
    rows: int  # data rows, for the progress bar


def attribute_name(header: str) -> str:
    """The key a custom column is stored and segmented under: `Rol în proiect` -> `rol_in_proiect`."""
    return re.sub(r"[^a-z0-9]+", "_", fold(header)).strip("_")[:ATTRIBUTE_NAME_LIMIT].rstrip("_") or "column"


_BOM = b"\xef\xbb\xbf"


def detect_encoding(path: Path) -> tuple[str, str]:
    """(codec, name): a BOM means UTF-8; valid UTF-8 is UTF-8; anything else is Windows-1250.

    Checked a block at a time, so a large file is never held in memory.
    """
    with path.open("rb") as file:
        if file.read(3) == _BOM:
            return "utf-8-sig", "UTF-8 with BOM"
        file.seek(0)
        decoder = codecs.getincrementaldecoder("utf-8")()
        try:
            for block in iter(lambda: file.read(1 << 20), b""):
                decoder.decode(block)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return "cp1250", "Windows-1250"
    return "utf-8", "UTF-8"


def _delimiter(header_line: str) -> str:
    return max((",", ";", "\t"), key=lambda candidate: len(next(csv.reader([header_line], delimiter=candidate))))


def map_columns(headers: list[str], overrides: dict[str, str]) -> dict[int, str]:
    """Each column's field: an override, a known header, or a custom attribute named after it."""
    folded_overrides = {fold(header): field for header, field in overrides.items()}
    unknown = set(folded_overrides) - {fold(header) for header in headers}
    if unknown:
        raise FileProblem(f"--map names a column the file does not have: {sorted(unknown)[0]!r}; "
                          f"its columns are {', '.join(repr(h) for h in headers)}")
    columns: dict[int, str] = {}
    for index, header in enumerate(headers):
        key = fold(header)
        field = folded_overrides.get(key) or _LOOKUP.get(key) or f"attribute:{attribute_name(header)}"
        if field in columns.values() and field != IGNORE:
            field = f"attribute:{attribute_name(header)}"  # a second column for one field is kept, not lost
        columns[index] = field
    if {"first_name", "name"} <= set(columns.values()) and "last_name" not in columns.values():
        # Romanian forms ask "Nume" and "Prenume": there, "Nume" is the family name.
        columns = {index: "last_name" if field == "name" else field for index, field in columns.items()}
    if "email" not in columns.values():
        raise FileProblem("no email column; name one with --map, e.g. --map 'Adresa mail=email' "
                          f"(columns: {', '.join(repr(h) for h in headers)})")
    return columns


def column_report(table: Table) -> list[str]:
    """How each column was read, for the operator to check before trusting the rows: the fields recognised, the
    columns kept as custom attributes (which segments can use), and those left out."""
    read, kept, left = [], [], []
    for index, field in table.columns.items():
        header = f"'{table.headers[index]}'"
        if field == IGNORE:
            left.append(header)
        elif field.startswith("attribute:"):
            kept.append(f"{header} as {field.removeprefix('attribute:')}")
        else:
            read.append(f"{header} as {field}")
    return [f"{title}: {', '.join(columns)}." for title, columns in (
        ("Columns read", read), ("Kept as custom attributes, for segments", kept), ("Left out", left)) if columns]


_CELL_LIMIT = csv.field_size_limit()  # characters; the csv module refuses a longer cell


def _rows(reader: Iterator[list[str]]) -> Iterator[list[str] | None]:
    """The reader's rows, and None for one it refuses (a cell over csv's size limit); it goes on after that row."""
    while True:
        try:
            yield next(reader)
        except StopIteration:
            return
        except csv.Error:
            yield None


def open_table(path: Path, overrides: dict[str, str]) -> tuple[Table, Iterator[tuple[int, dict[str, str]]]]:
    """The file's layout, and its data rows as (line number, {field: text}) in file order, streamed.

    A row that cannot be read comes as {"__problem__": why}, for the import to report and skip.
    """
    codec, encoding = detect_encoding(path)

    def read() -> TextIO:
        return path.open(encoding=codec, errors="replace", newline="")

    with read() as file:
        first = file.readline()
        if not first.strip() and not any(line.strip() for line in file):
            raise FileProblem("the file is empty; export it again with its header row")
    try:
        delimiter = _delimiter(first)
    except csv.Error:
        raise FileProblem(f"a header is longer than {_CELL_LIMIT:,} characters; export the file again as CSV") from None
    with read() as file:
        reader = csv.reader(file, delimiter=delimiter)
        headers = [header.strip() for header in next(reader)]
        rows = sum(1 for row in _rows(reader) if row is None or any(map(str.strip, row)))
    columns = map_columns(headers, overrides)
    table = Table(encoding, delimiter, headers, columns, rows)

    def records() -> Iterator[tuple[int, dict[str, str]]]:
        with read() as file:
            reader = csv.reader(file, delimiter=delimiter)
            next(reader)
            for row in _rows(reader):
                if row is None:
                    yield reader.line_num, {"__problem__": f"a cell is longer than {_CELL_LIMIT:,} characters; "
                                                           "nothing of this row was read"}
                    continue
                if not any(cell.strip() for cell in row):
                    continue
                record: dict[str, str] = {}
                for index, field in columns.items():
                    cell = row[index].strip() if index < len(row) else ""
                    if field != IGNORE and (cell or field == "consent"):  # an empty consent cell says "no"
                        record[field] = cell
                if len(row) > len(headers) and any(cell.strip() for cell in row[len(headers):]):
                    record["__problem__"] = (f"{len(row) - len(headers)} more cell(s) than the header has; check "
                                             "the delimiter and the quotes around values that contain it")
                yield reader.line_num, record

    return table, records()
