"""`legion-ci serve`, `legion-ci token create`, `legion-ci feedback export`: parse, then call the core."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

from legion_ci.cli.common import add_store_arg
from legion_ci.core.errors import ConfigError


def _rate(value: str) -> float:
    try:
        rate = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid rate {value!r} (expected a number from 0 to 1)") from None
    if not 0.0 <= rate <= 1.0:
        raise argparse.ArgumentTypeError(f"invalid rate {value!r} (expected a number from 0 to 1)")
    return rate


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid value {value!r} (expected a positive integer)") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"invalid value {value!r} (expected a positive integer)")
    return number


def _interval(value: str) -> float:
    from legion_ci.core.durations import parse_duration

    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = float(parse_duration(value))
        except ConfigError:
            seconds = -1.0
    if not seconds > 0:
        raise argparse.ArgumentTypeError(
            f"invalid interval {value!r} (expected a positive number of seconds, or e.g. 30s, 5m)"
        )
    return seconds


def _port(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = -1
    if not 0 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"invalid port {value!r} (expected 0-65535; 0 picks a free one)")
    return number


def build_serve(serve: argparse.ArgumentParser, name: str) -> None:
    serve.description = "Serve ARTIFACT_DIR. Prints 'listening on http://HOST:PORT' when ready."
    serve.add_argument(
        "artifact", metavar="ARTIFACT_DIR", help="an artifact folder (with manifest.json) or its store URI (s3://...)"
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=_port, default=8080, help="port (default 8080; 0 picks a free port)")
    serve.add_argument("--workers", type=_positive, default=1, help="worker processes (default 1)")
    serve.add_argument("--no-auth", action="store_true", help="accept requests without a JWT (also LEGION_AUTH=off)")
    serve.add_argument("--no-capture", action="store_true", help="do not capture predictions for the feedback loop")
    serve.add_argument(
        "--capture-rate",
        type=_rate,
        default=1.0,
        help="share of predictions captured, 0-1 (spec serving.capture.sample_rate; default 1)",
    )
    serve.add_argument("--max-rows", type=_positive, default=1000, help="rows per request (default 1000)")
    serve.add_argument(
        "--max-body-bytes", type=_positive, default=1_048_576, help="request body limit in bytes (default 1048576)"
    )
    serve.add_argument(
        "--ship-interval",
        type=_interval,
        default=None,
        help="ship capture segments to the store at least this often: seconds, or e.g. 30s, 5m "
        "(default LEGION_SHIP_INTERVAL or 30)",
    )
    add_store_arg(serve)
    serve.add_argument("--plan", type=Path, default=None, help=argparse.SUPPRESS)  # set by the slim re-exec
    serve.set_defaults(handler=_serve)


def build_token(token: argparse.ArgumentParser, name: str) -> None:
    token_sub = token.add_subparsers(dest="token_command", metavar="ACTION", required=True)
    create = token_sub.add_parser(
        "create",
        help="print an HS256 token scoped to a model (and version)",
        description="The secret comes from LEGION_JWT_SECRET, LEGION_JWT_SECRET_FILE "
        "or $LEGION_HOME/secrets/jwt-hs256.key; never from the command line.",
    )
    create.add_argument("--model", required=True, help="model name, or a glob pattern")
    create.add_argument("--version", dest="model_version", help="model version, or a glob pattern")
    create.add_argument("--ttl", default="1h", help="lifetime: seconds or e.g. 30m, 1h, 7d (default 1h)")
    create.add_argument("--audience", default=None, help="aud claim (default LEGION_JWT_AUDIENCE or legion-ci)")
    create.add_argument("--issuer", default=None, help="iss claim (default LEGION_JWT_ISSUER, if set)")
    create.set_defaults(handler=_token_create)
    from legion_ci.cli.api import register_token  # `token create-admin`: management API tokens

    register_token(token_sub)


def build_feedback(feedback: argparse.ArgumentParser, name: str) -> None:
    fb_sub = feedback.add_subparsers(dest="feedback_command", metavar="ACTION", required=True)
    export = fb_sub.add_parser("export", help="write predictions joined with ground truth for retraining")
    export.add_argument("model", metavar="NAME", help="model name")
    export.add_argument("--since", default=None, help="only requests at or after this ISO time (UTC if no zone)")
    export.add_argument("--out", default=None, help="FILE.csv or FILE.parquet (default NAME-feedback.csv)")
    add_store_arg(export)
    export.set_defaults(handler=_feedback_export)


def _serve(args: argparse.Namespace) -> int:
    from legion_ci.core.store import Store, is_remote
    from legion_ci.serving.options import ServeOptions
    from legion_ci.serving.server import configure_logging, serve

    configure_logging()
    options = ServeOptions(
        host=args.host,
        port=args.port,
        workers=args.workers,
        auth=not args.no_auth,
        capture=not args.no_capture,
        capture_rate=args.capture_rate,
        max_rows=args.max_rows,
        max_body_bytes=args.max_body_bytes,
        ship_interval=args.ship_interval or args.settings.ship_interval,
    )
    artifact = args.artifact
    if is_remote(artifact):  # a store URI: served from this machine's verified cache
        from legion_ci.core.registry import Registry

        registry = Registry.from_settings(args.settings)  # the manifest is checked against its registry row
        try:
            digest = registry.registered_digest(artifact)
        finally:
            registry.close()
        artifact = str(Store.from_settings(args.settings).fetch(artifact, digest).artifact.path)
    return serve(artifact, options, args.settings, args.plan)


def _token_create(args: argparse.Namespace) -> int:
    from legion_ci.auth.tokens import check_ttl, mint_model_token
    from legion_ci.core.durations import parse_duration

    settings = args.settings
    ttl = check_ttl(settings, parse_duration(args.ttl, "--ttl"), "--ttl", args.ttl)
    print(mint_model_token(settings, args.model, args.model_version, ttl, args.audience, args.issuer))
    return 0


def parse_since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"--since: {value!r} is not an ISO time (e.g. 2026-11-26 or 2026-11-26T12:00:00Z)") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _feedback_export(args: argparse.Namespace) -> int:
    from legion_ci.feedback.export import export_feedback

    out = Path(args.out) if args.out else Path(f"{args.model}-feedback.csv")
    print(export_feedback(args.settings, args.model, parse_since(args.since), out).summary())
    return 0
