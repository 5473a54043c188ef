"""The `legion-ci` command: parse arguments, call the core, turn errors into messages and exit codes.

Subcommands are registered lazily. `legion_ci.cli.commands.COMMANDS` is a table of (name, one-line help,
"module:function"); `legion-ci --help` lists the table, and only the chosen command's module is imported,
where `function(parser, name)` fills in that command's parser and gives it a `handler(args) -> int`.
So `legion-ci --version` imports no third-party library, and a stage process pays only for its stage.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from legion_ci import __version__
from legion_ci.cli.commands import COMMANDS, Command
from legion_ci.core.errors import EXIT_ERROR, LegionError

_TOP_LEVEL_FLAGS = frozenset({"-v", "--verbose"})


def chosen_command(argv: Sequence[str]) -> str | None:
    """The subcommand named on the command line (the first word after the top-level flags), if any."""
    for word in argv:
        if word in _TOP_LEVEL_FLAGS:
            continue
        return None if word.startswith("-") else word
    return None


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser for `argv`: every command listed, only the chosen one built (all of them when argv is None)."""
    parser = argparse.ArgumentParser(
        prog="legion-ci",
        description="Train, gate, package, deploy and promote scikit-learn models; locally or through Jenkins.",
        epilog="Start with `legion-ci run examples/iris`. State lives in $LEGION_HOME (default ~/.legion).",
    )
    parser.add_argument("--version", action="version", version=f"legion-ci {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chosen = None if argv is None else chosen_command(argv)
    for command in COMMANDS:
        command_parser = sub.add_parser(command.name, help=command.help, description=command.help)
        if argv is None or command.name == chosen:
            command.build(command_parser)
            _describe_steps(command_parser)
    return parser


def _describe_steps(parser: argparse.ArgumentParser) -> None:
    """A step (`legion-ci db upgrade`) whose builder gave it a one-line help but no description gets that
    line as its description too, so its own --help says what it does."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, step in action.choices.items():
                if not step.description and helps.get(name):
                    text = str(helps[name])
                    step.description = f"{text[0].upper()}{text[1:]}."
                _describe_steps(step)


def main(argv: list[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else argv
    args = build_parser(words).parse_args(words)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        from legion_ci.core.settings import load_settings  # pydantic: not for --version and --help

        args.settings = load_settings(
            getattr(args, "home", None),
            getattr(args, "registry_url", None),
            store_url=getattr(args, "store_url", None),
        )
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


__all__ = ["COMMANDS", "Command", "build_parser", "chosen_command", "main", "run"]
