"""The routing table: which backends serve which model, at what weight, and how many requests each holds.

Deployments of a model share its traffic by weight with smooth weighted round-robin (nginx's algorithm:
over any window the shares are exact, not merely expected); the replicas of one deployment take turns.
A request carrying a sticky key (a caller id from a header or cookie) is placed instead by the key's hash on
the weights laid end to end in deployment order: the same key lands on the same deployment while the
weights stand, the keys spread in the weights' proportions, and when a canary's weight grows only keys
moving to it change deployment (its range grows at the end). A deployment with a `mirror` share takes no
routed traffic of its own from that share: the router copies that share of the model's answered requests to
it (shadow) and drops its answers.
The table is rebuilt from the registry whenever a deployment changes, but a backend object lives on while
it is still known, so its in-flight count survives the rebuild and tells a drain when the last request ended.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Route:
    """One active deployment as the registry describes it."""

    deployment_id: int
    model: str
    version: str
    weight: int
    urls: tuple[str, ...]
    mirror: int = 0  # percent of the model's routed requests copied to this deployment (shadow)


@dataclass(eq=False)
class Backend:
    """One replica: where it listens and the requests it is answering now."""

    deployment_id: int
    model: str
    version: str
    url: str
    inflight: int = 0
    served: int = 0


@dataclass(eq=False)
class _Group:
    """The replicas of one deployment, with its smooth-WRR state."""

    route: Route
    backends: list[Backend]
    current: int = 0
    turn: int = 0

    def next_backend(self, exclude: set[str]) -> Backend | None:
        for _ in range(len(self.backends)):
            backend = self.backends[self.turn % len(self.backends)]
            self.turn += 1
            if backend.url not in exclude:
                return backend
        return None


def sticky_point(model: str, key: bytes) -> float:
    """Where a sticky key falls in [0, 1): a stable hash (the same in every router process and replica)."""
    digest = hashlib.blake2b(key, digest_size=8, person=model.encode()[:16]).digest()
    return int.from_bytes(digest, "big") / 2.0**64


@dataclass(eq=False)
class _ModelRoutes:
    groups: list[_Group] = field(default_factory=list)
    mirrors: list[_Group] = field(default_factory=list)

    def pick(self, version: str | None, exclude: set[str], sticky: float | None = None) -> Backend | None:
        """Next backend by weight (or among `version`'s replicas when pinned), skipping `exclude`d URLs;
        `sticky` (a point in [0, 1) from sticky_point) chooses the deployment by the weights laid end to end."""
        if version is not None:
            for group in self.groups:
                if group.route.version == version:
                    backend = group.next_backend(exclude)
                    if backend is not None:
                        return backend
            return None
        live = [g for g in self.groups if g.route.weight > 0 and any(b.url not in exclude for b in g.backends)]
        if not live:
            return None
        if sticky is not None:
            return _by_point(live, sticky, exclude)
        total = 0
        best = live[0]
        for group in live:
            group.current += group.route.weight
            total += group.route.weight
            if group.current > best.current:
                best = group
        best.current -= total
        return best.next_backend(exclude)

    def mirror(self, answered_by: int) -> list[Backend]:
        """The shadow backends this request is copied to: each mirror deployment takes its share of requests
        exactly (a credit counter, not a coin), never the deployment that answered."""
        out = []
        for group in self.mirrors:
            if group.route.deployment_id == answered_by:
                continue
            group.current += group.route.mirror
            if group.current >= 100:
                group.current -= 100
                backend = group.next_backend(set())
                if backend is not None:
                    out.append(backend)
        return out


def _by_point(live: list[_Group], point: float, exclude: set[str]) -> Backend | None:
    """The deployment whose range of the weights laid end to end (in deployment order) holds `point`."""
    total = sum(g.route.weight for g in live)
    mark = point * total
    for group in live:
        mark -= group.route.weight
        if mark < 0:
            return group.next_backend(exclude)
    return live[-1].next_backend(exclude)


class RouteTable:
    """All models' routes; `replace` swaps in a new registry snapshot in one step."""

    def __init__(self) -> None:
        self.generation = 0
        self.routes: tuple[Route, ...] = ()
        self._models: dict[str, _ModelRoutes] = {}
        self._known: dict[tuple[int, str], Backend] = {}
        self._versions: dict[str, list[str]] = {}
        self.mirrored = False  # any deployment with a mirror share (one check on the request path)

    def replace(self, routes: Iterable[Route]) -> bool:
        """Install a new snapshot; returns False (and keeps the WRR state) when nothing changed."""
        snapshot = tuple(sorted(routes, key=lambda r: (r.model, r.deployment_id)))
        if snapshot == self.routes:
            return False
        models: dict[str, _ModelRoutes] = {}
        known: dict[tuple[int, str], Backend] = {}
        for route in snapshot:
            backends = []
            for url in route.urls:
                key = (route.deployment_id, url)
                backend = self._known.get(key) or Backend(route.deployment_id, route.model, route.version, url)
                known[key] = backend
                backends.append(backend)
            if backends:
                entry = models.setdefault(route.model, _ModelRoutes())
                entry.groups.append(_Group(route, backends))
                if route.mirror > 0:
                    entry.mirrors.append(_Group(route, backends))
        for key, backend in self._known.items():  # retired but still answering: keep counting
            if key not in known and backend.inflight > 0:
                known[key] = backend
        self.routes, self._models, self._known = snapshot, models, known
        self._versions = {m: sorted({g.route.version for g in r.groups}) for m, r in models.items()}
        self.mirrored = any(r.mirrors for r in models.values())
        self.generation += 1
        return True

    def pick(
        self, model: str, version: str | None = None, exclude: set[str] | None = None, sticky: float | None = None
    ) -> Backend | None:
        routes = self._models.get(model)
        return routes.pick(version, exclude or set(), sticky) if routes else None

    def mirror(self, model: str, answered_by: int) -> list[Backend]:
        """The shadow backends a request of `model` answered by deployment `answered_by` is copied to."""
        routes = self._models.get(model)
        return routes.mirror(answered_by) if routes is not None and routes.mirrors else []

    def versions(self, model: str) -> list[str]:
        """Versions of `model` with at least one replica in the table (weight 0 included)."""
        return self._versions.get(model, [])

    def models(self) -> list[str]:
        return sorted(self._models)

    def describe(self) -> dict[str, Any]:
        """The table as JSON-ready data: per model, each deployment's weight, share and replicas."""
        weights = {route.deployment_id: route.weight for route in self.routes}
        mirrors = {route.deployment_id: route.mirror for route in self.routes}
        out: dict[str, Any] = {}
        by_deployment: dict[tuple[str, int], list[Backend]] = {}
        for backend in self._known.values():
            by_deployment.setdefault((backend.model, backend.deployment_id), []).append(backend)
        for (model, deployment_id), backends in sorted(by_deployment.items()):
            entry = out.setdefault(model, {"deployments": []})
            total = sum(r.weight for r in self.routes if r.model == model)
            weight = weights.get(deployment_id, 0)
            entry["deployments"].append(
                {
                    "deployment_id": deployment_id,
                    "version": backends[0].version,
                    "weight": weight,
                    "share": round(weight / total, 4) if total else 0.0,
                    "routed": deployment_id in weights,
                    "mirror": mirrors.get(deployment_id, 0),
                    "inflight": sum(b.inflight for b in backends),
                    "replicas": [{"url": b.url, "inflight": b.inflight, "served": b.served} for b in backends],
                }
            )
        return out
