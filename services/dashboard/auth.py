"""Bearer-token check for the control endpoints. No configured token: every control is refused."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from .resources import Resources

_bearer = HTTPBearer(auto_error=False, description="The [dashboard] token from the config "
                     "(or LEADFLOW_DASHBOARD_TOKEN).")

NO_TOKEN_CONFIGURED = ("control endpoints are disabled: no dashboard token is configured; set "
                       "token in the [dashboard] section of the config or LEADFLOW_DASHBOARD_TOKEN, "
                       "then restart the dashboard")


def resources(request: Request) -> Resources:
    return request.app.state.resources


def require_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """401 without a matching bearer token; 403 when the server has no token to compare."""
    expected = resources(request).token
    if expected is None:
        raise HTTPException(status.HTTP_403_FORBIDDEN, NO_TOKEN_CONFIGURED)
    if credentials is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED,
                            "missing bearer token: send the header 'Authorization: Bearer <token>' "
                            "with the dashboard token from the config",
                            headers={"WWW-Authenticate": "Bearer"})
    if not secrets.compare_digest(credentials.credentials.encode(), expected.encode()):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED,
                            "wrong bearer token: use the [dashboard] token of this deployment "
                            "(or LEADFLOW_DASHBOARD_TOKEN)",
                            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
