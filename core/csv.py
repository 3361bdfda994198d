"""CSV exports that a spreadsheet cannot run (formula or "CSV" injection).

Excel, LibreOffice and Google Sheets run a cell as a formula when its text starts with `=`,
`+`, `-` or `@` (and some with a tab or a carriage return before one of them, or with the
full-width forms). `safe_cell` prefixes such a cell with `'`, which every spreadsheet shows as
plain text; `safe_writer` applies it to every cell of every row, so an export cannot forget a
column. Numbers, and text that is only a number (`-12.50`), are left alone: they are not
formulas, and the totals must still add up. `csv_stream_response` streams such rows as a
download (the refund export, the admin's audit report).
"""

import csv
import re
from collections.abc import Iterable
from typing import Any

from django.http import StreamingHttpResponse

# The characters that start a formula, ASCII and full-width; tab, CR and LF start one in some
# spreadsheets (and hide what follows).
FORMULA_STARTS = frozenset("=+-@\t\r\n\uff1d\uff0b\uff0d\uff20")
_PLAIN_NUMBER = re.compile(r"[+-]?\d+(?:\.\d+)?")


def safe_cell(value: Any) -> Any:
    """`value`, with a `'` in front when it is text a spreadsheet would run as a formula.

    Leading spaces do not hide a formula (`  =1+1` is also prefixed). Non-text values (numbers,
    None) come back unchanged.
    """
    if not isinstance(value, str) or not value:
        return value
    if _PLAIN_NUMBER.fullmatch(value):
        return value
    if value[0] in FORMULA_STARTS or value.lstrip()[:1] in FORMULA_STARTS:
        return f"'{value}"
    return value


def safe_row(values: Iterable[Any]) -> list[Any]:
    return [safe_cell(value) for value in values]


class _SafeWriter:
    """A `csv.writer` whose `writerow`/`writerows` pass every cell through `safe_cell`."""

    def __init__(self, file, **kwargs):
        self._writer = csv.writer(file, **kwargs)

    def writerow(self, row: Iterable[Any]):
        return self._writer.writerow(safe_row(row))

    def writerows(self, rows: Iterable[Iterable[Any]]):
        return self._writer.writerows(safe_row(row) for row in rows)


def safe_writer(file, **kwargs) -> _SafeWriter:
    """`csv.writer(file, **kwargs)` that neutralises formulas in every cell it writes."""
    return _SafeWriter(file, **kwargs)


class _Echo:
    """A file whose `write` hands the line back, so the writer's rows can be streamed."""

    def write(self, value: str) -> str:
        return value


def csv_stream_response(rows: Iterable[Iterable[Any]], filename: str) -> StreamingHttpResponse:
    """Stream `rows` (the header first) as a CSV download named `filename`, every cell through
    `safe_cell`; `rows` may be a generator, so a large export is never held in memory."""
    writer = safe_writer(_Echo())
    response = StreamingHttpResponse(
        (writer.writerow(row) for row in rows), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
