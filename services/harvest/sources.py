"""Reading CSV and JSONL sources row by row, with the line each row starts on. Streams; never
loads a whole file."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .normalize import RowError


@dataclass(frozen=True, slots=True)
class SourceRow:
    source: str
    line: int
    fields: dict[str, Any]
    raw: str


def read_rows(path: Path, fmt: str) -> Iterator[SourceRow | RowError]:
    """Yield each data row of ``path`` or a RowError saying which line is unreadable and why."""
    if fmt == "jsonl":
        yield from _read_jsonl(path)
    else:
        yield from _read_csv(path)


def _undecodable(text: str) -> bool:
    return "\ufffd" in text


def _read_jsonl(path: Path) -> Iterator[SourceRow | RowError]:
    source = str(path)
    with path.open(encoding="utf-8-sig", errors="replace") as handle:
        for line_no, line in enumerate(handle, start=1):
            text = line.strip()
            if not text:
                continue
            if _undecodable(text):
                yield RowError(source, line_no, "line is not valid UTF-8", text)
                continue
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                yield RowError(source, line_no, f"not valid JSON: {exc.msg} at column {exc.colno}", text)
                continue
            if not isinstance(value, dict):
                yield RowError(source, line_no, "a JSONL line must be an object", text)
                continue
            yield SourceRow(source, line_no, value, text)


def _read_csv(path: Path) -> Iterator[SourceRow | RowError]:
    source = str(path)
    with path.open(encoding="utf-8-sig", errors="replace", newline="") as handle:
        reader = csv.reader(handle)
        try:
            header = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield RowError(source, 1, f"unreadable CSV header: {exc}", "")
            return
        columns = [h.strip() for h in header]
        if not any(c.lower() in {"email", "e-mail", "email_address", "work_email"} for c in columns):
            yield RowError(source, 1, f"the header has no email column (found: {', '.join(columns)})",
                           ",".join(header))
            return
        while True:
            start = reader.line_num + 1
            try:
                values = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield RowError(source, start, f"unreadable CSV row: {exc}", "")
                continue
            if not values or all(not v.strip() for v in values):
                continue
            raw = _csv_line(values)
            if _undecodable(raw):
                yield RowError(source, start, "row is not valid UTF-8", raw)
            elif len(values) > len(columns):
                yield RowError(source, start,
                               f"row has {len(values)} fields but the header has {len(columns)}", raw)
            else:
                yield SourceRow(source, start, dict(zip(columns, values, strict=False)), raw)


def _csv_line(values: list[str]) -> str:
    out = io.StringIO()
    csv.writer(out).writerow(values)
    return out.getvalue().rstrip("\r\n")
