"""The `legion-ci` command: parse arguments, call the core, turn errors into messages and exit codes.

Each area registers its subcommands from its own module (listed in COMMAND_MODULES): a module
defines `register(subparsers)` and gives every parser a `handler(args) -> int`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from importlib import import_module

from legion_ci import __version__
from legion_ci.core.errors import EXIT_ERROR, LegionError

COMMAND_MODULES = [
    "legion_ci.cli.pipeline",
    "legion_ci.cli.models",
    "legion_ci.cli.serving",
    "legion_ci.cli.router",
    "legion_ci.cli.deploy",
    "legion_ci.cli.jenkins",
    "legion_ci.cli.image",
    "legion_ci.cli.api",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="legion-ci",
        description="Train, gate, package, deploy and promote scikit-learn models; locally or through Jenkins.",
        epilog="Start with `legion-ci run examples/iris`. State lives in $LEGION_HOME (default ~/.legion).",
    )
    parser.add_argument("--version", action="version", version=f"legion-ci {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        return int(args.handler(args) or 0)
    except LegionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_ERROR


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
