"""Bearer tokens. The control token opens the controls and the reads; the read-only token opens
the reads. No token configured for a kind of endpoint: every request to it is refused."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from .resources import Resources

_bearer = HTTPBearer(auto_error=False, description="The [dashboard] token (controls and reads) "
                     "or read_token (reads), or LEADFLOW_DASHBOARD_TOKEN / _READ_TOKEN.")

NO_TOKEN_CONFIGURED = ("control endpoints are disabled: no dashboard token is configured; set "
                       "token in the [dashboard] section of the config or LEADFLOW_DASHBOARD_TOKEN, "
                       "then restart the dashboard")
NO_READ_TOKEN_CONFIGURED = ("the read API is disabled: no dashboard token is configured; set "
                            "read_token (or token) in the [dashboard] section of the config, or "
                            "LEADFLOW_DASHBOARD_READ_TOKEN, then restart the dashboard")

Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def resources(request: Request) -> Resources:
    return request.app.state.resources


def matches(given: str, expected: str | None) -> bool:
    """Constant-time comparison; nothing matches an unset token."""
    return expected is not None and secrets.compare_digest(given.encode(), expected.encode())


def _check(credentials: HTTPAuthorizationCredentials | None, accepted: list[str | None],
           *, disabled: str, which: str) -> None:
    if not any(accepted):
        raise HTTPException(status.HTTP_403_FORBIDDEN, disabled)
    if credentials is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED,
                            f"missing bearer token: send the header 'Authorization: Bearer "
                            f"<token>' with {which}",
                            headers={"WWW-Authenticate": "Bearer"})
    # Every candidate is compared, so the time taken does not tell which one nearly matched.
    if not [expected for expected in accepted if matches(credentials.credentials, expected)]:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED,
                            f"wrong bearer token: use {which}",
                            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


def require_token(request: Request, credentials: Credentials) -> None:
    """Controls: 401 without the control token; 403 when the server has none to compare."""
    _check(credentials, [resources(request).token], disabled=NO_TOKEN_CONFIGURED,
           which="the dashboard's control token ([dashboard] token or LEADFLOW_DASHBOARD_TOKEN)")


def require_reader(request: Request, credentials: Credentials) -> None:
    """Reads: 401 without the read-only or the control token; 403 when neither is configured."""
    deps = resources(request)
    _check(credentials, [deps.read_token, deps.token], disabled=NO_READ_TOKEN_CONFIGURED,
           which="the dashboard's read token or control token ([dashboard] read_token / token)")
