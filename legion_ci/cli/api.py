"""`legion-ci api serve` and `legion-ci token create-admin`: parse, then call the management API's core."""

from __future__ import annotations

import argparse
import getpass
from typing import Any

from legion_ci.cli.common import add_state_args, settings_of


def _port(value: str) -> int:
    if not (value.isascii() and value.isdigit()) or not 0 <= int(value) <= 65535:
        raise argparse.ArgumentTypeError(f"invalid port {value!r} (expected 0-65535; 0 picks a free one)")
    return int(value)


def build_api(api: argparse.ArgumentParser, name: str) -> None:
    actions = api.add_subparsers(dest="api_command", metavar="ACTION", required=True)
    serve = actions.add_parser(
        "serve",
        help="serve the management API over HTTP",
        description="Every request needs a JWT with audience LEGION_API_AUDIENCE (default legion-ci-management) "
        "and a role claim; `legion-ci token create-admin` issues one. Mutating calls are written to "
        "$LEGION_HOME/audit.log. Prints 'listening on http://HOST:PORT' when ready.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=_port, default=8090, help="port (default 8090; 0 picks a free port)")
    add_state_args(serve)
    serve.set_defaults(handler=cmd_serve)


def register_token(token_actions: Any) -> None:
    """`token create-admin`, added to `legion-ci token` by legion_ci.cli.serving (the role is checked by the
    core, so that every `legion-ci` start does not import the JWT library)."""
    create = token_actions.add_parser(
        "create-admin",
        help="print a management API token with a role (viewer, operator or admin)",
        description="The secret comes from LEGION_JWT_SECRET, LEGION_JWT_SECRET_FILE or "
        "$LEGION_HOME/secrets/jwt-hs256.key; never from the command line.",
    )
    create.add_argument(
        "--role",
        required=True,
        metavar="viewer|operator|admin",
        help="what the token may do: viewer reads, operator also routes, promotes, deploys and rolls "
        "back, admin also undeploys",
    )
    create.add_argument(
        "--sub", default=None, help="who holds it, as the audit log names them (default: your user name)"
    )
    create.add_argument("--ttl", default="1h", help="lifetime: seconds or e.g. 30m, 1h, 7d (default 1h)")
    create.add_argument(
        "--model",
        dest="models",
        action="append",
        metavar="PATTERN",
        help='limit the token to models matching PATTERN ("iris", "iris:1.*", "fraud-*"); '
        "repeat for several (default: every model)",
    )
    create.add_argument(
        "--audience", default=None, help="aud claim (default LEGION_API_AUDIENCE or legion-ci-management)"
    )
    create.add_argument("--issuer", default=None, help="iss claim (default LEGION_JWT_ISSUER, if set)")
    create.set_defaults(handler=cmd_create_admin)


def _user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name and no passwd entry (some containers)
        return "legion-ci-admin"


def cmd_serve(args: argparse.Namespace) -> int:
    from legion_ci.api.server import serve

    return serve(settings_of(args), args.host, args.port)


def cmd_create_admin(args: argparse.Namespace) -> int:
    from legion_ci.api.tokens import check_role, create_management_token
    from legion_ci.auth.jwt import load_or_create_secret
    from legion_ci.auth.tokens import check_ttl
    from legion_ci.core.durations import parse_duration

    settings = settings_of(args)
    check_role(args.role)  # before the secret file is created on first use
    ttl = check_ttl(settings, parse_duration(args.ttl, "--ttl"), "--ttl", args.ttl, "the API accepts")
    sub = args.sub if args.sub is not None else _user()
    secret = load_or_create_secret(settings)
    print(
        create_management_token(
            secret,
            args.role,
            sub,
            ttl,
            args.audience or settings.api_audience,
            args.issuer or settings.jwt_issuer,
            args.models,
        )
    )
    return 0
