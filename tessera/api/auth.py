"""Who may call the REST API.

Every ``/api`` route depends on :func:`authorized`. Today one credential exists: the server's
*local credential* (``server.json`` in the workspace, readable only by the user who started the
server), which the CLI sends as ``Authorization: Bearer tsl_...``. A request without it, or with
another value, is answered 401. The event collection API (``/v1``) keeps its write keys.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from tessera.api.owner import WorkspaceOwner


def owner_of(request: Request) -> WorkspaceOwner:
    return request.app.state.owner


def authorized(request: Request) -> str:
    """The caller's identity; 401 without a valid credential."""
    header = request.headers.get("authorization") or ""
    scheme, _, token = header.partition(" ")
    owner: WorkspaceOwner = request.app.state.owner
    if scheme.lower() == "bearer" and token and hmac.compare_digest(token.strip(), owner.local_token):
        return "local"
    raise HTTPException(401, detail="sign in: send the server's local credential as 'Authorization: Bearer ...' "
                                    "(the tessera command does it for you; it is in server.json in the workspace)",
                        headers={"WWW-Authenticate": "Bearer"})


Caller = Annotated[str, Depends(authorized)]
Owner = Annotated[WorkspaceOwner, Depends(owner_of)]
