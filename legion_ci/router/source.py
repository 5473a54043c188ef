"""Where the routes come from: the registry's active deployments, read again every half second."""

from __future__ import annotations

import asyncio
import logging
import time

from legion_ci.core.registry import Registry
from legion_ci.router.table import Route, RouteTable

log = logging.getLogger(__name__)
POLL_INTERVAL = 0.5


def load_routes(registry: Registry, target: str | None = None) -> list[Route]:
    """Active deployments (of `target`, or of every target) that have endpoints, as routes."""
    routes = []
    for d in registry.deployments(active_only=True):
        if target is not None and d.target != target:
            continue
        urls = tuple(str(e["url"]).rstrip("/") for e in d.endpoints or [] if e.get("url"))
        if urls:
            version = str(d.detail.get("version") or registry.version_by_id(d.version_id).version)
            mirror = min(100, max(0, int(d.detail.get("mirror") or 0)))  # set by deploy.local.set_mirror
            routes.append(Route(d.id, d.model, version, max(0, int(d.weight)), urls, mirror))
    return routes


class RegistryPoller:
    """Refreshes a RouteTable from the registry in a background task (never on the request path).

    A registry that cannot be read leaves the last good table in place, so traffic keeps flowing.
    """

    def __init__(
        self, registry: Registry, table: RouteTable, target: str | None = None, interval: float = POLL_INTERVAL
    ) -> None:
        self.registry, self.table, self.target, self.interval = registry, table, target, interval
        self.loaded_at: float | None = None
        self.error: str | None = None
        self._task: asyncio.Task[None] | None = None

    def refresh(self) -> bool:
        """Read once (blocking); True when the table changed."""
        routes = load_routes(self.registry, self.target)
        changed = self.table.replace(routes)
        self.loaded_at, self.error = time.time(), None
        if changed:
            log.info(
                "routes generation %d: %s",
                self.table.generation,
                ", ".join(f"{r.model}:{r.version}#{r.deployment_id}={r.weight}" for r in routes) or "none",
            )
        return changed

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await asyncio.to_thread(self.refresh)
            except Exception as exc:
                if self.error != str(exc):
                    log.warning("cannot read routes from the registry (keeping the last table): %s", exc)
                self.error = str(exc)

    def start(self) -> None:
        self.refresh()
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        await asyncio.to_thread(self.registry.close)
