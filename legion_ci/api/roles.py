"""Who may do what: a token's `role` grants permissions, its optional `models` patterns scope the models.

Reads are scoped by model name; changes by model and every version they touch (a pattern "iris:1.*" may
read iris, but only move aliases, weights and deployments of its 1.x versions).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from legion_ci.api.errors import ApiError
from legion_ci.auth.jwt import in_scope


class Permission(StrEnum):
    READ = "read"  # GET
    OPERATE = "operate"  # routes, aliases, deploy, rollback
    ADMIN = "admin"  # undeploy


ROLES: dict[str, frozenset[Permission]] = {
    "viewer": frozenset({Permission.READ}),
    "operator": frozenset({Permission.READ, Permission.OPERATE}),
    "admin": frozenset({Permission.READ, Permission.OPERATE, Permission.ADMIN}),
}


def roles_with(permission: Permission) -> list[str]:
    return [role for role, granted in ROLES.items() if permission in granted]


@dataclass(frozen=True)
class Principal:
    """The verified caller: subject, role, and the model patterns it is limited to (None: every model)."""

    sub: str | None
    role: str
    models: tuple[str, ...] | None

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any]) -> Principal:
        """Raise 403 when the token's role or models claim is missing or malformed."""
        sub = claims.get("sub")
        role = claims.get("role")
        if role is None:
            raise ApiError(403, f"token has no 'role' claim (expected one of {', '.join(ROLES)})")
        if not isinstance(role, str) or role not in ROLES:
            raise ApiError(403, f"token's role {role!r} is not one of {', '.join(ROLES)}")
        models = claims.get("models")
        if models is not None and (not isinstance(models, list) or not all(isinstance(m, str) for m in models)):
            raise ApiError(403, 'token\'s \'models\' claim is not a list of patterns like "iris" or "iris:1.*"')
        return cls(str(sub) if sub is not None else None, str(role), tuple(models) if models is not None else None)

    def may(self, permission: Permission) -> bool:
        return permission in ROLES[self.role]

    def require(self, permission: Permission, method: str, path: str) -> None:
        if not self.may(permission):
            raise ApiError(
                403, f"role {self.role!r} may not {method} {path} (needs role {' or '.join(roles_with(permission))})"
            )

    def covers(self, model: str, version: str | None = None) -> bool:
        if self.models is None:
            return True
        if version is None:
            return any(fnmatch.fnmatchcase(model, p.partition(":")[0]) for p in self.models)
        return in_scope(list(self.models), model, version)

    def require_model(self, model: str, versions: Iterable[str] = ()) -> None:
        """403 unless the token's models claim covers the model and each version the call touches."""
        if not self.covers(model):
            raise ApiError(403, f"token does not cover model {model!r} (its 'models' claim: {list(self.models or [])})")
        outside = sorted({v for v in versions if not self.covers(model, v)})
        if outside:
            raise ApiError(
                403,
                f"token does not cover version(s) {', '.join(outside)} of model {model!r} "
                f"(its 'models' claim: {list(self.models or [])})",
            )
