"""Which model (and pinned version) a request path names, and the path its backend expects.

/api/model/NAME/invoke                -> weighted; sent as /api/model/NAME/<backend's version>/invoke
/api/model/NAME/VERSION/invoke        -> only VERSION's replicas; sent unchanged
/v2/models/NAME/infer                 -> weighted; sent unchanged (the server answers its own name there)
/v2/models/NAME/versions/VERSION/...  -> only VERSION's replicas; sent unchanged
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

VERSION_LIKE = re.compile(r"^\d+\.\d+")


@dataclass(frozen=True)
class Target:
    model: str
    version: str | None  # None: share by weight
    path_for: Callable[[str], str]  # backend version -> path to send


def parse(path: str, known_versions: Callable[[str], list[str]]) -> Target | None:
    """The target of a model path, or None when the path is not a model path."""
    parts = path.split("/")
    if len(parts) >= 5 and parts[1] == "api" and parts[2] == "model" and parts[3]:
        model, segment = parts[3], parts[4]
        if segment in known_versions(model) or VERSION_LIKE.match(segment):
            return Target(model, segment, lambda _v: path)
        rest = "/".join(parts[4:])
        return Target(model, None, lambda v: f"/api/model/{model}/{v}/{rest}")
    if len(parts) >= 4 and parts[1] == "v2" and parts[2] == "models" and parts[3]:
        model = parts[3]
        if len(parts) >= 6 and parts[4] == "versions" and parts[5]:
            return Target(model, parts[5], lambda _v: path)
        return Target(model, None, lambda _v: path)
    return None
