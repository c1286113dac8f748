"""The ``supex`` command line: one parser, one function a command, errors a person can act on.

Exit codes: 0 everything valid, 1 some record or input is invalid, 2 usage or configuration.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from gateway import commands
from schemas.exceptions import ConfigurationError, SupexError

__all__ = ["build_parser", "main"]

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2
Command = Callable[[argparse.Namespace], int]


def _add_validate(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("validate", help="validate standard records (JSON object, JSON array or NDJSON files)",
                       description="Validate standard records against the standard interface v1: schema, "
                       "identifiers, region codes and time order. Every error of every record is reported.")
    p.add_argument("files", nargs="+", metavar="FILE", help="files to validate ('-' for standard input)")
    p.add_argument("--type", dest="record_type", metavar="T",
                   help="validate as record type T where a record names none")
    p.add_argument("--lenient", action="store_true",
                   help="accept identifiers failing their check character, with a warning")
    p.add_argument("--json", action="store_true", help="one JSON report a record on standard output")
    p.add_argument("--quiet", "-q", action="store_true", help="report invalid records only")
    p.set_defaults(command="validate")


def _add_map(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("map", help="map source files to standard records (NDJSON on standard output)",
                       description="Map files in a system's own format (JSON, XML, CSV) to standard records, "
                       "written as NDJSON to standard output; problems go to standard error. With --reverse, "
                       "standard records (NDJSON) are mapped back to the source format.")
    p.add_argument("files", nargs="+", metavar="FILE", help="source files ('-' for standard input)")
    p.add_argument("--mapping", required=True, metavar="NAME|FILE", help="a built-in mapping name or a mapping file")
    p.add_argument("--validate", action="store_true", help="validate each mapped record; invalid ones are not written")
    p.add_argument("--lenient", action="store_true",
                   help="accept identifiers failing their check character, with a warning")
    p.add_argument("--reverse", action="store_true", help="standard records in, the source format out")
    p.set_defaults(command="map")


def _add_mapping(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("mapping", help="work with mapping files", description="Work with mapping files.")
    inner = p.add_subparsers(dest="mapping_command", metavar="{test}", required=True)
    t = inner.add_parser("test", help="run the examples a mapping carries",
                         description="Run each example of the mappings: the source maps to the expected standard "
                         "record, the record is valid, and reversible mappings map it back unchanged.")
    t.add_argument("mappings", nargs="*", metavar="NAME|FILE", help="mappings to test (default: every built-in one)")
    t.set_defaults(command="mapping test")


def _add_schemas(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("schemas", help="the standard interface's record types and schemas",
                       description="List the record types of the standard interface, or show one schema.")
    inner = p.add_subparsers(dest="schemas_command", metavar="{list,show}", required=True)
    ls = inner.add_parser("list", help="list the record types", description="List the record types.")
    ls.add_argument("--json", action="store_true", help="as JSON")
    ls.set_defaults(command="schemas list")
    show = inner.add_parser("show", help="print the JSON Schema of a record type",
                            description="Print the JSON Schema of a record type (or of 'envelope' or 'common').")
    show.add_argument("record_type", metavar="TYPE")
    show.set_defaults(command="schemas show")


def build_parser() -> argparse.ArgumentParser:
    """The whole command line, every command with its ``--help``."""
    parser = argparse.ArgumentParser(
        prog="supex",
        description="supex — the supervision data exchange gateway (行政监管数据对接网关).",
    )
    sub = parser.add_subparsers(metavar="COMMAND", required=True)
    for add in (_add_validate, _add_map, _add_mapping, _add_schemas):
        add(sub)
    return parser


def _commands() -> dict[str, Command]:
    return {
        "validate": commands.validate,
        "map": commands.map_files,
        "mapping test": commands.mapping_test,
        "schemas list": commands.schemas_list,
        "schemas show": commands.schemas_show,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command and return its exit code."""
    args = build_parser().parse_args(argv)
    try:
        return _commands()[args.command](args)
    except ConfigurationError as exc:
        print(f"supex: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except SupexError as exc:
        print(f"supex: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        sys.stderr.close()
        return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
