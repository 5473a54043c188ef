"""`legion-ci router [serve|start|stop|status]`: the A/B router in front of the local model servers."""

from __future__ import annotations

import argparse

from legion_ci.cli.common import add_state_args, print_json, settings_of
from legion_ci.deploy import local_router


def build_router(p: argparse.ArgumentParser, name: str) -> None:
    p.description = (
        "serve (default) runs the router in the foreground; start runs it detached for this "
        "LEGION_HOME, or reuses the running one (what `legion-ci deploy` does); stop and status "
        "act on that one. Routes are the registry's active deployments, read every 0.5 s."
    )
    p.add_argument(
        "action", nargs="?", choices=("serve", "start", "stop", "status"), default="serve", help="(default: serve)"
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument(
        "--port",
        type=int,
        default=None,
        help=f"port (serve default {local_router.DEFAULT_PORT}; start default: $"
        f"{local_router.ENV_PORT}, the last port used, {local_router.DEFAULT_PORT}, or any free one)",
    )
    p.add_argument(
        "--target",
        choices=("local", "kubernetes"),
        default=None,
        help="route only the deployments of this target (default: every active deployment)",
    )
    p.add_argument("--timeout", type=float, default=60.0, help="seconds a backend may take to answer")
    add_state_args(p)
    p.set_defaults(handler=cmd_router)


def cmd_router(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    if args.action == "serve":
        from legion_ci.router.server import serve

        port = local_router.requested_port(settings, args.port)
        return serve(
            settings, args.host, local_router.DEFAULT_PORT if port is None else port, args.target, args.timeout
        )
    if args.action == "start":
        info, started = local_router.ensure(settings, args.host, args.port)
        print(f"router {'started' if started else 'already running'} on {info.url} (pid {info.pid})")
        return 0
    if args.action == "stop":
        stopped = local_router.stop(settings)
        print(f"router on {stopped.url} stopped" if stopped else "no router running for this home")
        return 0
    print_json(local_router.status(settings))
    return 0
