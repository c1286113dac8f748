"""The command line's commands over the pure core: files in, reports out.

Each command returns its exit code; ``gateway.cli`` owns parsing and the error boundary.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import orjson

from gateway.config import load_config, resolve_mapping
from gateway.exceptions import ConfigError
from gateway.terminal import EXIT_INVALID, EXIT_OK, EXIT_USAGE, counted, progress_bar
from mappings import CompiledMapping, MappedRecord, SourceFormatError, builtin_names, map_stream, run_examples
from mappings.formats import read_json
from mappings.pipeline import write_rows
from schemas import Issue, Validator, Verdict, load_schema_set
from schemas.exceptions import UnknownRecordTypeError
from schemas.issues import issue

if TYPE_CHECKING:
    from rich.progress import Progress

__all__ = ["map_files", "mapping_draft", "mapping_test", "schemas_list", "schemas_show", "validate"]

_PROGRESS_EVERY = 2000


# ---- input files and progress ---------------------------------------------------------------

@contextmanager
def _opened(name: str, *, whole: bool = False) -> Iterator[IO[bytes]]:
    """The named file (``-``: standard input, read whole first where ``whole`` says the reader must seek)."""
    if name == "-":
        yield io.BytesIO(sys.stdin.buffer.read()) if whole else sys.stdin.buffer
        return
    with Path(name).open("rb", buffering=1 << 16) as stream:
        yield stream


def _track(bar: Progress, name: str, stream: IO[bytes], items: Iterator[Any]) -> Iterator[Any]:
    """Pass ``items`` through, moving the bar by the stream's position."""
    if bar.disable or name == "-":
        yield from items
        return
    task = bar.add_task(name, total=Path(name).stat().st_size)
    for n, item in enumerate(items, 1):
        if n % _PROGRESS_EVERY == 0:
            bar.update(task, completed=stream.tell())
        yield item
    bar.update(task, completed=stream.tell())


# ---- reports --------------------------------------------------------------------------------

def _describe(name: str, index: int, where: str, record_id: str | None) -> str:
    """``FILE: record 3 (line 4) id=X``; where says no more than ``record 3``, it is left out."""
    place = f" ({where})" if where and where != f"record {index}" else ""
    ident = f" id={record_id}" if record_id else ""
    return f"{name}: record {index}{place}{ident}"


def _print_issues(heading: str, verdict: Verdict, out: IO[str]) -> None:
    print(f"{heading}: {'valid' if verdict.ok else 'invalid'}", file=out)
    for kind, issues in (("error", verdict.errors), ("warning", verdict.warnings)):
        for item in issues:
            print(f"  {kind:7} {item.path or '/':32} {item.code:20} {item.message}", file=out)


class _Tally:
    def __init__(self) -> None:
        self.valid = self.invalid = self.warned = 0

    def add(self, verdict: Verdict) -> None:
        if verdict.ok:
            self.valid += 1
        else:
            self.invalid += 1
        self.warned += bool(verdict.warnings)

    def summary(self, what: str = "") -> str:
        total = self.valid + self.invalid
        return (f"{counted(total, 'record')}{' ' + what if what else ''}: {self.valid} valid, {self.invalid} invalid, "
                f"{self.warned} with warnings / 共 {total} 条：有效 {self.valid}，无效 {self.invalid}，"
                f"有警告 {self.warned}")


def _unreadable(name: str, exc: OSError) -> Verdict:
    return Verdict((issue("", "malformed", detail=f"cannot read {name}: {exc.strerror or exc}"),))


def _extra_regions(args: argparse.Namespace) -> dict[str, str]:
    """The extra region codes of ``--config``, where given."""
    return load_config(args.config, need_secrets=False).gateway.extra_region_codes if args.config else {}


# ---- validate -------------------------------------------------------------------------------

def _with_type(value: Any, record_type: str | None) -> tuple[Any, list[Issue]]:
    if record_type is None or not isinstance(value, dict):
        return value, []
    given = value.get("record_type")
    if given is None:
        return {"record_type": record_type, **value}, []
    if given != record_type:
        return value, [issue("/record_type", "enum", value=repr(given))]
    return value, []


def validate(args: argparse.Namespace) -> int:
    """``supex validate``: every record of every file, every error of every record."""
    schema_set = load_schema_set()
    if args.record_type is not None:
        schema_set.schema(args.record_type)
    validator = Validator(schema_set, identifiers="lenient" if args.lenient else "strict",
                          extra_regions=_extra_regions(args))
    tally = _Tally()
    unread: list[str] = []
    out = sys.stdout
    with progress_bar() as bar:
        for name in args.files:
            try:
                with _opened(name) as stream:
                    for item in _track(bar, name, stream, read_json(stream)):
                        if item.error is not None:
                            verdict = Verdict((issue("", "malformed", detail=item.error),))
                            record_id = None
                        else:
                            value, mismatch = _with_type(item.value, args.record_type)
                            verdict = validator.validate(value)
                            if mismatch:
                                verdict = Verdict((*mismatch, *verdict.errors), verdict.warnings)
                            found = value.get("record_id") if isinstance(value, dict) else None
                            record_id = found if isinstance(found, str) else None
                        tally.add(verdict)
                        _report(args, name, item.index, where=item.where, record_id=record_id, verdict=verdict,
                                out=out)
            except OSError as exc:  # not a record that is invalid: a file that is not there to read
                unread.append(name)
                print(f"supex: {name}: 无法读取 / cannot read: {exc.strerror or exc}", file=sys.stderr)
    print(tally.summary(), file=sys.stderr)
    return _exit(tally, unread)


def _exit(tally: _Tally, unread: list[str]) -> int:
    """2 if a file could not be read (said on standard error), else 1 if a record is invalid, else 0."""
    if unread:
        print(f"supex: {counted(len(unread), 'file')} not read / {len(unread)} 个文件未能读取", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK if tally.invalid == 0 else EXIT_INVALID



def _report(args: argparse.Namespace, name: str, index: int, *, where: str, record_id: str | None,
            verdict: Verdict, out: IO[str]) -> None:
    if args.json:
        line = {"file": name, "index": index, "where": where, "record_id": record_id, "valid": verdict.ok,
                "errors": [e.as_dict() for e in verdict.errors],
                "warnings": [w.as_dict() for w in verdict.warnings]}
        out.write(json.dumps(line, ensure_ascii=False) + "\n")
    elif not verdict.ok or verdict.warnings or not args.quiet:
        _print_issues(_describe(name, index, where, record_id), verdict, out)


# ---- map ------------------------------------------------------------------------------------

def map_files(args: argparse.Namespace) -> int:
    """``supex map``: source files to standard NDJSON (or back with ``--reverse``). A file the mapping
    cannot read at all (missing, another format, a header without a mapped column) is named on
    standard error and the command exits 2; the other files are still mapped."""
    mapping = resolve_mapping(args.mapping)
    if args.reverse:
        return _map_reverse(mapping, args.files)
    validator = Validator(identifiers="lenient" if args.lenient else "strict",
                          extra_regions=_extra_regions(args)) if args.validate else None
    tally = _Tally()
    unread: list[str] = []
    write = sys.stdout.buffer.write
    with progress_bar() as bar:
        for name in args.files:
            try:
                with _opened(name, whole=mapping.format == "xlsx") as stream:
                    mapped: Iterator[MappedRecord] = map_stream(mapping, validator, stream)
                    for result in _track(bar, name, stream, mapped):
                        tally.add(result.verdict)
                        if result.verdict.ok and result.record is not None:
                            write(orjson.dumps(result.record) + b"\n")
                        if not result.verdict.ok or result.verdict.warnings:
                            heading = _describe(name, result.index, result.where, result.record_id)
                            _print_issues(heading, result.verdict, sys.stderr)
            except SourceFormatError as exc:
                unread.append(name)
                print(f"supex: {name}: 映射 {mapping.name} 无法读取此文件 / the mapping {mapping.name} cannot read "
                      f"this file: {exc}", file=sys.stderr)
            except OSError as exc:
                unread.append(name)
                print(f"supex: {name}: 无法读取 / cannot read: {exc.strerror or exc}", file=sys.stderr)
    sys.stdout.flush()
    print(tally.summary("mapped"), file=sys.stderr)
    return _exit(tally, unread)


def _map_reverse(mapping: CompiledMapping, files: list[str]) -> int:
    """Standard records back to the system's format. Every file is looked at first: a document half
    made of what could be read (an empty list where a file was missing) is never written."""
    missing = [name for name in files if name != "-" and not Path(name).is_file()]
    for name in missing:
        why = "not a regular file" if Path(name).exists() else "no such file"
        print(f"supex: {name}: 无法读取 / cannot read: {why}", file=sys.stderr)
    if missing:
        return EXIT_USAGE
    failed = write_rows(mapping, _reverse_rows(mapping, files), sys.stdout.buffer, lines=True)
    return EXIT_OK if failed == 0 else EXIT_INVALID


def _reverse_rows(mapping: CompiledMapping, files: list[str]) -> Iterator[Any]:
    """Each standard record mapped back; ``None`` (after a report on stderr) where that failed."""
    for name in files:
        try:
            with _opened(name) as stream:
                for item in read_json(stream):
                    problems: list[Issue]
                    if item.error is not None or not isinstance(item.value, dict):
                        problems = [issue("", "malformed", detail=item.error or "not a JSON object")]
                    else:
                        row, problems = mapping.from_standard(item.value)
                        if not problems:
                            yield row
                            continue
                    _print_issues(_describe(name, item.index, item.where, None), Verdict(tuple(problems)),
                                  sys.stderr)
                    yield None
        except OSError as exc:
            _print_issues(_describe(name, 0, "file", None), _unreadable(name, exc), sys.stderr)
            yield None


# ---- mapping test and schemas ---------------------------------------------------------------

def mapping_test(args: argparse.Namespace) -> int:
    """``supex mapping test``: run every example of the named (or all built-in) mappings."""
    validator = Validator()
    passed = failed = 0
    for name in args.mappings or builtin_names():
        mapping = resolve_mapping(name)
        outcomes = run_examples(mapping, validator)
        if not outcomes:
            print(f"WARN  {mapping.name}: no examples / 映射未提供示例")
        for outcome in outcomes:
            print(f"{'PASS' if outcome.ok else 'FAIL'}  {outcome.mapping}  {outcome.name}")
            for problem in outcome.problems:
                print(f"        {problem}")
            passed += outcome.ok
            failed += not outcome.ok
    print(f"examples: {passed} passed, {failed} failed / 示例：通过 {passed}，失败 {failed}")
    return EXIT_OK if failed == 0 else EXIT_INVALID


def mapping_draft(args: argparse.Namespace) -> int:
    """``supex mapping draft``: a commented mapping file from a sample export, its fields listed."""
    from mappings.draft import draft_mapping, read_sample  # noqa: PLC0415 - tomlkit for this only

    load_schema_set().schema(args.record_type)
    try:
        with _opened(args.sample, whole=True) as stream:
            shape = read_sample(args.format, stream, skip_rows=args.skip_rows,
                                header_rows=args.header_rows)
    except OSError as exc:
        raise ConfigError(f"无法读取样例 / cannot read the sample {args.sample}: {exc.strerror or exc}") from exc
    except SourceFormatError as exc:
        raise ConfigError(f"{args.sample}: {exc}") from None
    stem = re.sub(r"[^a-z0-9_]+", "_", Path(args.sample).stem.lower()).strip("_") or "sample"
    text = draft_mapping(shape, name=args.name or f"draft.{stem}", record_type=args.record_type,
                         sample=Path(args.sample).name)
    for field in shape.fields:
        guess = f"→ {field.target}" if field.target else ("→ a list (each)" if field.rule else "→ ?")
        print(f"  {field.path:40} {guess:38} e.g. {str(field.example)[:40]}", file=sys.stderr)
    if args.output is None:
        sys.stdout.write(text)
        return EXIT_OK
    try:
        with args.output.open("x", encoding="utf-8") as out:
            out.write(text)
    except FileExistsError as exc:
        raise ConfigError(f"{args.output} 已存在，未覆盖 / {args.output} exists: not overwritten") from exc
    guessed = sum(f.target is not None for f in shape.fields)
    print(f"draft written to {args.output}: {guessed} of {len(shape.fields)} fields guessed / 已写出草稿",
          file=sys.stderr)
    return EXIT_OK


def schemas_list(args: argparse.Namespace) -> int:
    """``supex schemas list``: the record types with their titles and default sharing."""
    schema_set = load_schema_set()
    rows = [{"type": t.name, "title": t.title, "sharing": t.sharing, "description": t.description,
             "version": schema_set.version} for t in schema_set.types.values()]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=1))
        return EXIT_OK
    print(f"标准接口 / standard interface {schema_set.version} (v1 records stay valid)")
    for row in rows:
        print(f"{row['type']:22} {row['title']:10}\t{row['sharing']:14} {row['description']}")
    return EXIT_OK


def schemas_show(args: argparse.Namespace) -> int:
    """``supex schemas show TYPE``: the JSON Schema of one record type."""
    schema_set = load_schema_set()
    special = {"envelope": schema_set.envelope, "common": schema_set.common}
    if args.record_type in special:
        schema = special[args.record_type]
    else:
        try:
            schema = schema_set.schema(args.record_type)
        except UnknownRecordTypeError as exc:
            known = ", ".join(schema_set.record_types)
            raise _unknown(exc, known) from None
    print(json.dumps(schema, ensure_ascii=False, indent=1))
    return EXIT_OK


def _unknown(exc: UnknownRecordTypeError, known: str) -> UnknownRecordTypeError:
    error = UnknownRecordTypeError(exc.record_type)
    error.args = (f"{exc} (known: {known}, envelope, common)",)
    return error
