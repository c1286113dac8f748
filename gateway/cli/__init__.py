"""The ``supex`` command line: one parser, one function a command, errors a person can act on.

Each family of commands is a module of this package (``files``, ``serve``, ``exchange``, ``log``,
``admin``, ``connector``, ``quality``, ``store``, ``demo``), imported only when one of its commands runs.

Exit codes: 0 everything valid, 1 some record or input is invalid, 2 usage or configuration.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from gateway.exchange_log import EVENTS
from gateway.terminal import EXIT_INVALID, EXIT_OK, EXIT_USAGE
from schemas.exceptions import ConfigurationError, SupexError

__all__ = ["build_parser", "main"]

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
    p.add_argument("--config", metavar="FILE", help="admit the extra region codes of this gateway configuration")
    p.set_defaults(command="validate")


def _add_map(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("map", help="map source files to standard records (NDJSON on standard output)",
                       description="Map files in a system's own format (JSON, XML, CSV, spreadsheets) to standard "
                       "records, written as NDJSON to standard output; problems go to standard error. A file the "
                       "mapping cannot read at all is named and the command exits 2. With --reverse, standard "
                       "records (NDJSON) are mapped back to the source format.")
    p.add_argument("files", nargs="+", metavar="FILE", help="source files ('-' for standard input)")
    p.add_argument("--mapping", required=True, metavar="NAME|FILE", help="a built-in mapping name or a mapping file")
    p.add_argument("--validate", action="store_true", help="validate each mapped record; invalid ones are not written")
    p.add_argument("--lenient", action="store_true",
                   help="accept identifiers failing their check character, with a warning")
    p.add_argument("--reverse", action="store_true", help="standard records in, the source format out")
    p.add_argument("--config", metavar="FILE", help="validate admitting the extra region codes of this configuration")
    p.set_defaults(command="map")


def _add_mapping(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("mapping", help="work with mapping files", description="Work with mapping files.")
    inner = p.add_subparsers(dest="mapping_command", metavar="{test,draft}", required=True)
    t = inner.add_parser("test", help="run the examples a mapping carries",
                         description="Run each example of the mappings: the source maps to the expected standard "
                         "record, the record is valid, and reversible mappings map it back unchanged.")
    t.add_argument("mappings", nargs="*", metavar="NAME|FILE", help="mappings to test (default: every built-in one)")
    t.set_defaults(command="mapping test")
    d = inner.add_parser("draft", help="draft a mapping file from a sample export",
                         description="Read a sample export, list its fields with example values and the standard "
                         "field each one plainly is (统一社会信用代码 → data.subject.cert_no…), and write a commented "
                         "mapping file with the sample's first record as its example, for the team to finish. Fields "
                         "whose names do not make their meaning clear are left as comments, never guessed.")
    d.add_argument("sample", metavar="SAMPLE", help="a sample export")
    d.add_argument("--format", required=True, choices=("json", "xml", "csv", "xlsx"), help="the sample's format")
    d.add_argument("--type", dest="record_type", required=True, metavar="T", help="the standard record type")
    d.add_argument("--name", help="the mapping's name (default: draft.<the sample's name>)")
    d.add_argument("--skip-rows", type=int, default=0, metavar="N", help="CSV/xlsx: title rows above the header")
    d.add_argument("--header-rows", type=int, default=1, metavar="N", help="CSV/xlsx: rows of the header")
    d.add_argument("--output", type=Path, metavar="FILE", help="write the draft to this new file (default: stdout)")
    d.set_defaults(command="mapping draft")


def _add_schemas(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("schemas", help="the standard interface's record types and schemas",
                       description="List the record types of the standard interface, or show one schema.")
    inner = p.add_subparsers(dest="schemas_command", metavar="{list,show}", required=True)
    ls = inner.add_parser("list", help="list the record types", description="List the record types.")
    ls.add_argument("--json", action="store_true", help="as JSON")
    ls.set_defaults(command="schemas list")
    show = inner.add_parser("show", help="print the JSON Schema of a record type",
                            description="Print the JSON Schema of a record type (or of 'envelope' or 'common').")
    show.add_argument("record_type", metavar="TYPE", help="the record type (see supex schemas list)")
    show.set_defaults(command="schemas show")


def _add_gateway(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("serve", help="run the gateway", description="Run the HTTP gateway with a configuration.")
    p.add_argument("--config", required=True, metavar="FILE", help="the TOML configuration")
    p.set_defaults(command="serve")
    p = sub.add_parser("check-config", help="validate a configuration without starting anything",
                       description="Validate a configuration: keys, values, mappings and (unless --no-secrets) "
                       "that every connector has a secret.")
    p.add_argument("config", metavar="FILE", help="the gateway's configuration to check")
    p.add_argument("--no-secrets", action="store_true", help="do not require the connectors' secrets")
    p.set_defaults(command="check-config")
    p = sub.add_parser("push", help="push files to a gateway as a connector (signed, with retries)",
                       description="Push standard records (JSON, JSON array, NDJSON) in batches, or a file in the "
                       "connector's own format (.xml, .csv, .xlsx, .xls, .ods; .json too where its mapping reads "
                       "JSON), signed as the connector. A file that cannot be pushed (missing, of no known format, "
                       "refused whole by the gateway) is named and the command exits 2; the other files are still "
                       "pushed.")
    p.add_argument("files", nargs="+", metavar="FILE", help="the files to push")
    p.add_argument("--connector", required=True, metavar="ID", help="the connector pushing (signs as it)")
    p.add_argument("--config", metavar="FILE", help="the gateway's configuration (for the secret and address)")
    p.add_argument("--url", metavar="URL", help="the gateway's address (default: from --config)")
    p.add_argument("--batch-size", type=_whole(1, 10_000), default=500, metavar="N",
                   help="standard records a request (1-10000, default 500)")
    p.add_argument("--json", action="store_true", help="print the gateway's whole answer to each request, a JSON "
                   "object a line, instead of the rejected records")
    p.set_defaults(command="push")
    p = sub.add_parser("pull", help="a consumer's inbox as NDJSON (or its own format), acknowledging what was written",
                       description="Read the connector's inbox from its last acknowledged cursor and write the records "
                       "to standard output: NDJSON standard records, or with --format own the connector's own format "
                       "through its reversible mapping. With --ack, each page is acknowledged once written and "
                       "flushed (an XML or CSV document: once all of it is), so nothing unwritten is ever "
                       "acknowledged. With --follow, wait for more instead of stopping at the end.")
    p.add_argument("--connector", required=True, metavar="ID", help="the consumer whose inbox is read (signs as it)")
    p.add_argument("--config", metavar="FILE", help="the gateway's configuration (for the secret, address and mapping)")
    p.add_argument("--url", metavar="URL", help="the gateway's address (default: from --config)")
    p.add_argument("--ack", action="store_true", help="acknowledge what was written")
    p.add_argument("--follow", action="store_true", help="keep reading as records arrive (Ctrl-C to stop)")
    p.add_argument("--every", type=_seconds(0.1), default=2.0, metavar="SECONDS",
                   help="with --follow: wait between polls (0.1 to 86400)")
    p.add_argument("--format", choices=("ndjson", "own"), default="ndjson",
                   help="ndjson standard records (default), or the connector's own format")
    p.add_argument("--limit", type=_whole(1, 1000), default=500, metavar="N",
                   help="records a page (1-1000)")
    p.set_defaults(command="pull")


def _add_log(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("log", help="the exchange log: verify, query, export, checkpoint, receipts, archives",
                       description="Work with the verifiable exchange log (a Merkle tree with signed checkpoints).")
    inner = p.add_subparsers(dest="log_command", required=True,
                             metavar="{verify,query,export,checkpoint,check-receipt,archive,check-archive,prune}")
    verify = inner.add_parser("verify", help="recompute every entry and the tree; exit 1 naming the first bad entry",
                              description="Recompute every entry's hash and the Merkle tree they make, hold it to "
                              "the tree proofs are served from and to the latest signed checkpoint (by a "
                              "consistency proof); exit 1 naming the first bad entry.")
    verify.add_argument("--json", action="store_true", help="the verdict as JSON")
    verify.add_argument("--checkpoint", type=_checkpoint, metavar="SEQ:HASH",
                        help="a head recorded earlier with 'log checkpoint': a removed tail is detected too")
    verify.set_defaults(command="log verify")
    checkpoint = inner.add_parser("checkpoint", help="print the head hash to record outside the system",
                                  description="Print the last seq and hash of the log.")
    checkpoint.set_defaults(command="log checkpoint")
    query = inner.add_parser("query", help="entries by filter", description="Exchange-log entries by filter.")
    query.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    query.add_argument("--limit", type=int, default=1000, help="at most this many entries (default 1000)")
    query.set_defaults(command="log query")
    export = inner.add_parser("export", help="entries as NDJSON", description="Every entry, with hashes, as NDJSON.")
    export.set_defaults(command="log export")
    receipt = inner.add_parser("check-receipt", help="check a receipt offline against the log's key",
                               description="Check a receipt (GET /v1/records/{id}/receipt) offline: the checkpoint's "
                               "signature (Ed25519 or SM2) and the entry's inclusion proof (RFC 9162). With --older "
                               "and --proof, also that the log extends a checkpoint kept earlier. Exit 1 if it does "
                               "not hold. Needs no configuration and no gateway.")
    receipt.add_argument("receipt", type=Path, metavar="FILE", help="the receipt (JSON)")
    receipt.add_argument("--key", required=True, metavar="KEY", help="the log's verifier key (supex keys show)")
    receipt.add_argument("--older", type=Path, metavar="FILE", help="a checkpoint note kept earlier")
    receipt.add_argument("--proof", type=Path, metavar="FILE",
                         help="the consistency proof from it (GET /v1/audit/proof/consistency)")
    receipt.set_defaults(command="log check-receipt")
    archive = inner.add_parser("archive", help="write a closed range of the log as a self-verifying bundle",
                               description="Write the entries after the folder's last bundle up to --until as a new "
                               "bundle in FOLDER: the entries, the subtrees of the tree before them, and a checkpoint "
                               "of exactly that size signed with the log key. Logged as audit_query.")
    archive.add_argument("--until", type=int, required=True, metavar="SEQ", help="the last entry of the bundle")
    archive.add_argument("folder", type=Path, metavar="FOLDER", help="the archive's folder (bundles accumulate)")
    archive.set_defaults(command="log archive")
    check_archive = inner.add_parser("check-archive", help="verify an archived bundle by itself",
                                     description="Verify a bundle written by 'supex log archive': its checkpoint's "
                                     "signature, every entry's hash, and the root they make. Exit 1 if it does not "
                                     "hold.")
    check_archive.add_argument("bundle", type=Path, metavar="BUNDLE", help="the bundle's folder")
    check_archive.add_argument("--key", required=True, metavar="KEY", help="the log's verifier key")
    check_archive.set_defaults(command="log check-archive")
    prune = inner.add_parser("prune", help="delete archived entries older than the retention from the store",
                             description="Delete from the store the entries that the bundles in --archive hold "
                             "(each verified, signed with the log key and of this store's tree) and that are older "
                             "than [log] retain_days (or --retain-days), in whole tiles of 256 entries, never the "
                             "last one. The tree keeps every hash: checkpoints, proofs and receipts already issued "
                             "stay checkable; the bundles hold the entries. Logged as audit_query.")
    prune.add_argument("--archive", type=Path, required=True, metavar="FOLDER",
                       help="the folder 'supex log archive' writes the bundles to")
    prune.add_argument("--retain-days", type=_whole(0, 36_500), metavar="DAYS",
                       help="keep entries of the last DAYS days (default: [log] retain_days)")
    prune.add_argument("--dry-run", action="store_true", help="say what would be pruned, and delete nothing")
    prune.set_defaults(command="log prune")
    for command in (verify, checkpoint, query, export, archive, prune):
        command.add_argument("--config", required=True, metavar="FILE", help="the gateway's configuration")
    filters = {
        "since": ("TIME", "entries at or after TIME: ISO 8601 with an offset or Z (2026-12-01T14:55:00+08:00), "
                          "or a date (2026-12-01); without an offset, the province's time (UTC+8)"),
        "until": ("TIME", "entries before TIME (as --since)"),
        "connector": ("ID", "entries the connector took part in, on either side (connector or counterpart)"),
        "counterpart": ("ID", "entries whose counterpart is ID (the producer of a delivered record, an auditor)"),
        "record-type": ("TYPE", "entries about records of TYPE (see supex schemas list)"),
        "record-id": ("ID", "entries about the record ID"),
        "event": ("EVENT", f"entries of one event: {', '.join(EVENTS)}"),
        "rule": ("ID", "entries under the sharing rule ID"),
    }
    for command in (query, export):
        for name, (metavar, text) in filters.items():
            command.add_argument(f"--{name}", dest=name.replace("-", "_"), metavar=metavar, help=text)


def _add_policy(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("policy", help="routing and sharing rules", description="Routing and sharing rules.")
    inner = p.add_subparsers(dest="policy_command", metavar="{explain}", required=True)
    explain = inner.add_parser("explain", help="which rule applies to a record for a consumer, and what it receives",
                               description="Show whether a record reaches a consumer, by which route and under which "
                               "sharing rule (or why none applies), and exactly the record the consumer would "
                               "receive, masked and filtered. The store, where it exists, supplies the matter "
                               "catalogue and the rules changed at run time.")
    explain.add_argument("--config", required=True, metavar="FILE", help="the gateway's configuration")
    explain.add_argument("--record", required=True, metavar="FILE", help="a standard record (one JSON object)")
    explain.add_argument("--to", required=True, metavar="CONNECTOR", help="the consumer's id")
    explain.add_argument("--json", action="store_true", help="the explanation as JSON")
    explain.set_defaults(command="policy explain")


def _add_deadletter(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("deadletter", help="push deliveries given up on: list and replay",
                       description="Push deliveries that ran out of attempts (or age) are kept as dead letters.")
    inner = p.add_subparsers(dest="deadletter_command", metavar="{list,replay}", required=True)
    ls = inner.add_parser("list", help="list dead letters", description="List dead letters, oldest first.")
    ls.add_argument("--json", action="store_true", help="JSON lines")
    ls.add_argument("--limit", type=int, default=1000, help="at most this many dead letters (default 1000)")
    ls.set_defaults(command="deadletter list")
    replay = inner.add_parser("replay", help="queue dead letters again",
                              description="Queue dead letters for delivery again; the running gateway sends them "
                              "within a second. Each is logged as replayed.")
    replay.add_argument("--seq", type=int, nargs="+", metavar="N", help="only these record seqs")
    replay.set_defaults(command="deadletter replay")
    for command in (ls, replay):
        command.add_argument("--config", required=True, metavar="FILE", help="the gateway's configuration")
        command.add_argument("--consumer", metavar="ID", help="only this consumer's")


def _add_connector(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("connector", help="registered connectors: the acceptance suite",
                       description="Work with the connectors of a configuration.")
    inner = p.add_subparsers(dest="connector_command", metavar="{test}", required=True)
    test = inner.add_parser(
        "test", help="prove a connector works against a running gateway",
        description="Run the connector acceptance suite against a running gateway: signatures (good, wrong, "
        "stale, replayed), the connector's samples map, validate and are accepted in its own format, re-pushing "
        "is idempotent, a higher version applies and a stale one does not, deletes, a full batch, encoding and "
        "XML edge cases, and delivery to the connector. The records it pushes (ids conntest-<run>-…) are stored "
        "and routed like any other: run it against a test gateway or before the consumers go live. Exit 1 if "
        "any check fails.")
    test.add_argument("connector", metavar="ID", help="the connector's id")
    test.add_argument("--config", required=True, metavar="FILE", help="the configuration naming the connector")
    test.add_argument("--url", metavar="URL", help="the gateway's address (default: its listen address)")
    test.add_argument("--json", action="store_true", help="one JSON object a check on standard output")
    test.set_defaults(command="connector test")


def _add_keys(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("keys", help="the log key (create, show, rotate --log) and data keys (generate, status, rotate)",
                       description="The log key signs the exchange log's checkpoints ([log] key_file; Ed25519 or "
                       "SM2). Data keys: important and core payloads are sealed at rest (SM4-GCM, or AES-256-GCM) "
                       "under the key ring that data_key_env or data_key_file names: base64 keys, the current one "
                       "first.")
    inner = p.add_subparsers(dest="keys_command", metavar="{create,show,generate,status,rotate}", required=True)
    create = inner.add_parser("create", help="create the log key (or, with --witness, a witness's key)",
                              description="Create the log key at [log] key_file (mode 0600; never overwritten) and "
                              "print its verifier key to publish. With --witness NAME --output FILE, create an "
                              "Ed25519 witness key instead and print the verifier key a gateway's [[log.witness]] "
                              "names.")
    create.add_argument("--config", metavar="FILE", help="the gateway's configuration (for the log key)")
    create.add_argument("--algorithm", choices=["ed25519", "sm2"], help="default: [log] signature")
    create.add_argument("--witness", metavar="NAME", help="create a witness key of this name instead")
    create.add_argument("--output", type=Path, metavar="FILE", help="where the witness key goes")
    create.set_defaults(command="keys create")
    show = inner.add_parser("show", help="print the log's verifier key (public)",
                            description="Print the log's verifier key, name+id+key, for departments and auditors to "
                            "check receipts and checkpoints with; --json adds the algorithm, the key id and the keys "
                            "it signed with before.")
    show.add_argument("--config", required=True, metavar="FILE", help="the gateway's configuration")
    show.add_argument("--json", action="store_true", help="all of it as JSON")
    show.set_defaults(command="keys show")
    generate = inner.add_parser("generate", help="print a new random data key (base64 of 32 bytes)",
                                description="Print a new random data key, to put first in the key ring, or write "
                                "it to a new key file (mode 0600; an existing file is never overwritten).")
    generate.add_argument("--output", type=Path, metavar="FILE", help="write the key to this new file instead")
    generate.set_defaults(command="keys generate")
    status = inner.add_parser("status", help="how many payloads each key seals",
                              description="Count the sealed payloads by key id, and important or core payloads "
                              "still in plaintext.")
    rotate = inner.add_parser("rotate", help="seal everything again under the current key",
                              description="Seal again, under the first key of the ring, every payload another key "
                              "(or none) seals, a batch a transaction, beside the running gateway (whose ring must "
                              "hold the old and the new key). Interrupted, it goes on from where it stopped when run "
                              "again. Logged as config_changed.")
    rotate.add_argument("--batch", type=int, default=500, metavar="N", help="payloads a transaction (default 500)")
    rotate.add_argument("--log", action="store_true", help="rotate the log key instead: a new key signs from the "
                        "gateways' next start; the old verifier key is kept listed as retired")
    rotate.set_defaults(command="keys rotate")
    status.set_defaults(command="keys status")
    for command in (status, rotate):
        command.add_argument("--config", required=True, metavar="FILE", help="the gateway's configuration")


def _add_witness(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("witness", help="cosign a gateway's checkpoints while they stay consistent",
                       description="Poll a gateway's signed checkpoint; cosign each one that a consistency proof "
                       "shows extends the last one cosigned, and return the cosignature to the gateway (which "
                       "publishes it). A checkpoint that does not verify or is inconsistent is not cosigned: both "
                       "are kept in the state folder as evidence, the alert is printed and counted in "
                       "witness.prom, and the exit code is 3. One gateway can witness another.")
    p.add_argument("--gateway", required=True, metavar="URL", help="the gateway watched")
    p.add_argument("--key", required=True, type=Path, metavar="FILE",
                   help="the witness's key (supex keys create --witness NAME --output FILE)")
    p.add_argument("--log-key", required=True, metavar="KEY", help="the watched log's verifier key")
    p.add_argument("--log-hash", choices=["sm3", "sha256"], default="sm3", help="the watched log's hash (sm3)")
    p.add_argument("--token-env", default="SUPEX_WITNESS_TOKEN", metavar="VAR",
                   help="the variable holding an auditor token of the gateway (default SUPEX_WITNESS_TOKEN)")
    p.add_argument("--state", required=True, type=Path, metavar="FOLDER",
                   help="where the last cosigned checkpoint, evidence and witness.prom are kept")
    p.add_argument("--every", type=_seconds(1), default=10.0, metavar="SECONDS",
                   help="seconds between polls (10; 1 to 86400)")
    p.add_argument("--once", action="store_true", help="poll once and exit")
    p.set_defaults(command="witness")


def _add_backup(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("backup", help="a consistent copy of the store, beside the running gateways",
                       description="Write a consistent copy of the store while gateways go on serving: a SQLite "
                       "file (VACUUM INTO) to open as it is, or for PostgreSQL a pg_dump archive (custom format) for "
                       "pg_restore. Prints the log checkpoint that the restored store must verify against. Logged "
                       "as audit_query. See docs/operations.md.")
    p.add_argument("--config", required=True, metavar="FILE", help="the gateway's configuration")
    p.add_argument("target", type=Path, metavar="FILE", help="the new file to write (never overwritten)")
    p.set_defaults(command="backup")


def _add_demo(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("demo", help="a one-minute tour: the gateway and simulated systems together",
                       description="Start the gateway and simulators of the 12345 hotline, a department, the "
                       "enforcement oversight system, Internet+ Supervision and a city platform on loopback ports, "
                       "and walk through: a sharing request approved with masks, a clue routed through the matter "
                       "catalogue under the rule it granted, its feedback late and escalated, an objection to the "
                       "clue answered by a correction, the month's quality report, a "
                       "penalty delivered in Internet+'s format, a GB18030 CSV dropped in a folder reaching the city "
                       "masked, and the exchange log verified.")
    p.add_argument("--keep", type=Path, metavar="DIR", help="run in DIR and keep the store, files and configuration")
    p.set_defaults(command="demo")


def _add_quality(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("quality", help="producers' timeliness and acceptance (及时率, 合格率)",
                       description="Reports on the quality of what departments send and owe.")
    inner = p.add_subparsers(dest="quality_command", metavar="{report}", required=True)
    report = inner.add_parser("report", help="a month's report per producing department, as xlsx or CSV",
                              description="Per producing connector and department, for a month of the province's "
                              "calendar: records received, accepted, rejected and late (against [timeliness]), "
                              "objections corrected, feedback duties due and late, with 及时率 and 合格率. The "
                              "workbook links each figure to the records behind it.")
    report.add_argument("--config", required=True, metavar="FILE", help="the gateway's configuration")
    report.add_argument("--month", metavar="YYYY-MM", help="the month (default: this month)")
    report.add_argument("--format", choices=("xlsx", "csv"), default="csv", help="xlsx or csv (default csv)")
    report.add_argument("--output", type=Path, metavar="FILE",
                        help="the file to write (default: quality-YYYY-MM.xlsx here for xlsx, standard output "
                        "for csv)")
    report.set_defaults(command="quality report")


def _whole(low: int, high: int) -> Callable[[str], int]:
    """An argument's type: a whole number from ``low`` to ``high``, refused with that range named."""
    def whole(text: str) -> int:
        if not (text.isascii() and text.isdigit() and low <= int(text) <= high):
            raise argparse.ArgumentTypeError(f"expected a whole number from {low} to {high}, not {text[:40]!r}")
        return int(text)
    return whole


def _seconds(low: float) -> Callable[[str], float]:
    """An argument's type: a wait from ``low`` seconds to a day (a smaller one would poll in a busy loop)."""
    def seconds(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = -1.0
        if not low <= value <= 86_400:
            raise argparse.ArgumentTypeError(f"expected seconds from {low:g} to 86400, not {text[:40]!r}")
        return value
    return seconds


def _checkpoint(text: str) -> tuple[int, str]:
    seq, _, digest = text.partition(":")
    if not seq.isdigit() or len(digest) != 64:
        raise argparse.ArgumentTypeError("expected SEQ:HASH as printed by 'supex log checkpoint' (e.g. 42:9f86…)")
    return int(seq), digest.lower()


def build_parser() -> argparse.ArgumentParser:
    """The whole command line, every command with its ``--help``."""
    parser = argparse.ArgumentParser(
        prog="supex",
        description="supex — the supervision data exchange gateway (行政监管数据对接网关).",
    )
    parser.add_argument("--debug", action="store_true",
                        help="on an unexpected error, show its traceback instead of one line")
    sub = parser.add_subparsers(metavar="COMMAND", required=True)
    for add in (_add_gateway, _add_validate, _add_map, _add_mapping, _add_schemas, _add_log, _add_policy,
                _add_deadletter, _add_connector, _add_quality, _add_keys, _add_witness, _add_backup, _add_demo):
        add(sub)
    return parser


def _command(name: str) -> Command:
    """The function of a command, its module imported only now: a command loads what it uses."""
    module, _, function = _COMMANDS[name].partition(":")
    found: Command = getattr(importlib.import_module(f"gateway.cli.{module}"), function)
    return found


_COMMANDS = {
    "validate": "files:validate",
    "map": "files:map_files",
    "mapping test": "files:mapping_test",
    "mapping draft": "files:mapping_draft",
    "schemas list": "files:schemas_list",
    "schemas show": "files:schemas_show",
    "serve": "serve:serve",
    "check-config": "serve:check_config",
    "push": "exchange:push",
    "pull": "exchange:pull",
    "log verify": "log:log_verify",
    "log checkpoint": "log:log_checkpoint",
    "log query": "log:log_query",
    "log export": "log:log_export",
    "log check-receipt": "transparency:log_check_receipt",
    "log archive": "transparency:log_archive",
    "log check-archive": "transparency:log_check_archive",
    "log prune": "transparency:log_prune",
    "keys create": "transparency:keys_create",
    "keys show": "transparency:keys_show",
    "witness": "transparency:witness",
    "policy explain": "admin:policy_explain",
    "deadletter list": "admin:deadletter_list",
    "deadletter replay": "admin:deadletter_replay",
    "connector test": "connector:connector_test",
    "quality report": "quality:quality_report",
    "demo": "demo:demo",
    "keys generate": "store:keys_generate",
    "keys status": "store:keys_status",
    "keys rotate": "store:keys_rotate",
    "backup": "store:backup",
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command and return its exit code: every error one line a person can act on, and
    exit 2 for what must be fixed before running again (``--debug``: the traceback of the
    unexpected ones)."""
    args = build_parser().parse_args(argv)
    try:
        return _command(args.command)(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        sys.stderr.close()
        return EXIT_OK
    except Exception as exc:
        if args.debug and not isinstance(exc, SupexError):
            raise
        print(f"supex: {_said(exc)}", file=sys.stderr)
        return EXIT_INVALID if isinstance(exc, SupexError) and not isinstance(exc, ConfigurationError) else EXIT_USAGE


def _said(exc: Exception) -> str:
    """An error as one line: supex's own as they say it; a file or address the command could not
    use with its name; anything else as unexpected."""
    if isinstance(exc, SupexError):
        return str(exc)
    if isinstance(exc, OSError):
        return f"{exc.filename}: " * bool(exc.filename) + f"{exc.strerror or exc} (--debug shows where)"
    return (f"意外错误 / unexpected error: {type(exc).__name__}: {exc} (run again with --debug for the traceback, "
            "and report it)")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
