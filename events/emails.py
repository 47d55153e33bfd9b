"""What the contract accepts as an email address (syntax only; no DNS, no I/O)."""

from __future__ import annotations

import re

_LOCAL = re.compile(r"^[a-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


def normalise_email(raw: str) -> str:
    """Trim and lower-case: the form in which emails are compared and keyed."""
    return raw.strip().lower()


def email_problem(email: str) -> str | None:
    """Why ``email`` (already normalised) is not a valid address, or None if it is."""
    if not email:
        return "email is empty"
    if email.count("@") != 1:
        return f"email {email!r} must contain exactly one @"
    local, domain = email.split("@")
    if not local or len(local) > 64 or not _LOCAL.match(local):
        return f"email {email!r} has an invalid part before the @"
    labels = domain.split(".")
    if len(labels) < 2 or len(domain) > 253 or not all(_LABEL.match(label) for label in labels):
        return f"email {email!r} has an invalid domain"
    if not labels[-1].isalpha() or len(labels[-1]) < 2:
        return f"email {email!r} has an invalid top-level domain"
    return None


def is_valid_email(email: str) -> bool:
    return email_problem(email) is None
