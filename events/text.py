"""Text the contract refuses: C0 control characters other than tab, CR and LF (NUL above all,
which Postgres cannot store in text and which would freeze a consumer folding it). Pure."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def control_character(text: str) -> str | None:
    """The first refused control character in ``text`` as ``U+0000``; None if there is none."""
    found = _CONTROL.search(text)
    return f"U+{ord(found.group()):04X}" if found else None


def control_problem(text: str, what: str) -> str | None:
    """Why ``text`` (named ``what`` in the message) is refused, or None."""
    code = control_character(text)
    return f"{what} contains the control character {code}, which is not allowed" if code else None


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _strings(str(key), f"{path}.<key>" if path else "<key>")
            yield from _strings(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        for index, item in enumerate(value):
            yield from _strings(item, f"{path}.{index}" if path else str(index))


def first_control_problem(value: Any) -> str | None:
    """Why any string inside ``value`` (parsed JSON: dicts, lists, strings) is refused, or None."""
    for path, text in _strings(value, ""):
        if problem := control_problem(text, path or "<value>"):
            return problem
    return None
