"""Argument helpers shared by the CLI modules."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from legion_ci.core.registry import Registry
    from legion_ci.core.settings import Settings


def add_state_args(parser: argparse.ArgumentParser, store: bool = False) -> None:
    """--home and --registry-url; with `store`, --store too (commands that read or write the artifact store)."""
    group = parser.add_argument_group("state")
    group.add_argument("--home", metavar="DIR", help="state folder (default: $LEGION_HOME or ~/.legion)")
    group.add_argument(
        "--registry-url",
        metavar="URL",
        help="SQLAlchemy URL of the registry (default: $LEGION_REGISTRY_URL or SQLite in the home)",
    )
    if store:
        add_store_arg(group)


def add_store_arg(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """--store URL: the artifact store of this invocation, over $LEGION_STORE_URL. `main` hands it to
    `load_settings` (as --home and --registry-url), so it reaches the code only through Settings.store_url."""
    parser.add_argument(
        "--store",
        dest="store_url",
        metavar="URL",
        help="artifact store: a folder or s3://BUCKET/PREFIX (default: $LEGION_STORE_URL or the home)",
    )


def settings_of(args: argparse.Namespace) -> Settings:
    """The settings `main` read once for this command (defaults < environment < --home/--registry-url/--store)."""
    settings: Settings = args.settings
    return settings


def open_state(args: argparse.Namespace) -> tuple[Settings, Registry]:
    from legion_ci.core.registry import Registry  # SQLAlchemy: only for commands that open the registry

    settings = settings_of(args)
    return settings, Registry.from_settings(settings)


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")
