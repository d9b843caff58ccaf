"""The API's dependencies: settings, the runtime, metrics, and who is calling.

Every `/v1` call carries `Authorization: Bearer <credential>` (made by `walkout credentials add`).
A credential has one role, and a route names the roles it serves through its dependency alias:

- `GateDep`: a gate. A gate credential is named after the gate it is (`--name exit-1`): it acts
  only for that gate (the `gate` of its requests), and reads only what a gate needs (see
  `gate_may_read`).
- `NodeDep`: a camera node, named after its camera (`--name aisle`): it posts that camera's events.
- `OperatorDep`: a person at the store's back office: reviews, disputes, receipts, metrics.
- `ReaderDep`: a gate or an operator (sessions and receipts).

No or an unknown credential is 401 (with `WWW-Authenticate: Bearer`); a known one of another role,
or a gate or node acting for another, is 403.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from store_runtime.api.errors import ApiError
from store_runtime.api.metrics import Metrics
from store_runtime.api.schemas import ErrorOut
from store_runtime.api.settings import ApiSettings
from store_runtime.db import Credential, Role, check_credential
from store_runtime.runtime import StoreRuntime

__all__ = [
    "AUTH_ERRORS",
    "CredentialDep",
    "GateDep",
    "MetricsDep",
    "NodeDep",
    "OperatorDep",
    "ReaderDep",
    "RuntimeDep",
    "SettingsDep",
    "act_for_camera",
    "act_for_gate",
    "gate_may_read",
    "require",
]


def get_settings(request: Request) -> ApiSettings:
    return request.app.state.settings


def get_runtime(request: Request) -> StoreRuntime:
    runtime = getattr(request.app.state, "runtime", None)
    if runtime is None:  # only between a failed start and the process ending
        raise ApiError(503, "starting", "the store runtime is not running yet")
    return runtime


def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


SettingsDep = Annotated[ApiSettings, Depends(get_settings)]
RuntimeDep = Annotated[StoreRuntime, Depends(get_runtime)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]

bearer_scheme = HTTPBearer(auto_error=False, description="A credential made by `walkout credentials add`.")
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def get_credential(request: Request, runtime: RuntimeDep,
                   auth: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]) -> Credential:
    if auth is None:
        raise ApiError(401, "unauthenticated", "this call needs an 'Authorization: Bearer <credential>' header",
                       headers=_CHALLENGE)
    credential = check_credential(runtime.db, auth.credentials)
    if credential is None:
        raise ApiError(401, "unauthenticated", "the bearer credential is not known here", headers=_CHALLENGE)
    request.state.credential = credential.name  # for the request's log line
    return credential


CredentialDep = Annotated[Credential, Depends(get_credential)]


def require(*roles: Role) -> Callable[[Credential], Credential]:
    """A dependency that lets through only credentials of `roles`."""
    allowed = " or ".join(roles)

    def check(credential: CredentialDep) -> Credential:
        if credential.role not in roles:
            raise ApiError(403, "forbidden", f"credential {credential.name!r} is a {credential.role} credential; "
                                             f"this call is for a {allowed}")
        return credential

    return check


# What every route behind a credential may answer, for its routers' `responses` (the document).
AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "no credential, or one not known here"},
    403: {"model": ErrorOut, "description": "a credential of another role, or a gate or node acting for another"},
}

GateDep = Annotated[Credential, Depends(require("gate"))]
NodeDep = Annotated[Credential, Depends(require("node"))]
OperatorDep = Annotated[Credential, Depends(require("operator"))]
ReaderDep = Annotated[Credential, Depends(require("gate", "operator"))]


def act_for_gate(credential: Credential, gate: str) -> None:
    """A gate credential speaks for the gate it is named after, and no other."""
    if credential.name != gate:
        raise ApiError(403, "wrong_gate", f"credential {credential.name!r} is gate {credential.name!r}'s; "
                                          f"it cannot act for gate {gate!r}")


def act_for_camera(credential: Credential, camera: str, runtime: StoreRuntime) -> None:
    """A node credential posts the events of the camera it is named after, and no other."""
    if credential.name not in runtime.store.config.cameras:
        raise ApiError(403, "wrong_camera", f"credential {credential.name!r} names no camera of this store "
                                            "(a node credential is named after its camera)")
    if credential.name != camera:
        raise ApiError(403, "wrong_camera", f"credential {credential.name!r} is camera {credential.name!r}'s; "
                                            f"it cannot post events of camera {camera!r}")


def gate_may_read(credential: Credential, runtime: StoreRuntime, entry_gate: str) -> bool:
    """What a gate needs to read: an exit gate, the basket or receipt of whoever walks through it;
    an entry gate, the sessions it admitted. An operator reads everything."""
    if credential.role == "operator":
        return True
    kind = runtime.store.config.gates.get(credential.name)
    return kind is not None and (kind.kind == "exit" or credential.name == entry_gate)
