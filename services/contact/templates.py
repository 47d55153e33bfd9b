"""Rendering a sequence step for one lead. Pure."""

from __future__ import annotations

import string
from dataclasses import dataclass

from events import Lead

from ..runtime.config import SequenceStep

#: Lead fields a template may use, e.g. ``Hi {first_name}``.
FIELDS = ("first_name", "last_name", "title", "company", "domain", "industry", "country", "email")


@dataclass(frozen=True, slots=True)
class Message:
    to: str
    subject: str
    body: str


class _Blank(dict[str, str]):
    def __missing__(self, key: str) -> str:
        raise ValueError(f"template names unknown field {{{key}}}; use one of {', '.join(FIELDS)}")


def render(template: str, lead: Lead) -> str:
    """Fill ``{field}`` placeholders from the lead; an absent value renders as ''."""
    values = _Blank({name: str(getattr(lead, name) or "") for name in FIELDS})
    values["first_name"] = values["first_name"] or "there"
    return string.Formatter().vformat(template, (), values)


def compose(step: SequenceStep, lead: Lead) -> Message:
    return Message(to=lead.email, subject=render(step.subject, lead), body=render(step.body, lead))
