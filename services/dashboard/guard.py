"""Refuses requests whose path or query holds a control character, before any route runs: such
text could not be stored, and would fail deep in the database as a misleading 503."""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from events.text import control_character


def url_problem(path: str, query: str) -> tuple[str, str] | None:
    """(where, message) for the first control character in the decoded path or query; None."""
    if code := control_character(path):
        return "path", f"contains the control character {code}, which is not allowed"
    for key, value in parse_qsl(query, keep_blank_values=True):
        if code := control_character(key) or control_character(value):
            return "query", f"contains the control character {code}, which is not allowed"
    return None


class ControlCharacterGuard:
    """ASGI middleware: 422 for a path or query with a C0 control character (tab, CR, LF aside)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            query = scope.get("query_string", b"").decode("latin-1")
            if found := url_problem(scope.get("path", ""), query):
                where, message = found
                response = JSONResponse(
                    {"detail": [{"loc": [where], "msg": message, "type": "value_error"}],
                     "message": f"{where}: {message}"}, status_code=422)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
