"""The verifiable log over HTTP: the signed checkpoint with its cosignatures, inclusion and
consistency proofs (RFC 9162), receipts of records, witnesses' cosignatures taken in, and the log's
public key where anyone can fetch it.

Proofs and checkpoints hold hashes only; they are not logged as audit queries (a witness polling
the checkpoint would otherwise grow the log it watches at every poll).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.exceptions import ArchivedError, NotFoundError, ParameterError
from gateway.exchange_log import LogEntry
from gateway.http.context import CHECKPOINTS, CONFIG, IDENTITY, STORE, json_response
from gateway.http.docs import errors, json_body, obj, path_param
from gateway.http.params import int_param, json_object
from gateway.http.routes import PUBLIC, Route, route
from gateway.signing import retired_keys
from gateway.verify_receipt import VerifierKey

__all__ = ["ROUTES", "receipt_entry"]

_HEX = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
_HEXES = {"type": "array", "items": _HEX}


def receipt_entry(entry: LogEntry) -> dict[str, Any]:
    """An entry whole, as a receipt carries it: every field its leaf hash covers, and its hashes."""
    return {**entry.content(), "prev_hash": entry.prev_hash, "hash": entry.hash}


def _may_see(request: web.Request, entry: LogEntry) -> bool:
    """An auditor sees every entry's proof; a connector those of entries it is a party to."""
    identity = request[IDENTITY]
    if identity.role != "connector":
        return True
    return identity.name in (entry.connector, entry.counterpart, entry.source)


async def checkpoint(request: web.Request) -> web.Response:
    """GET /v1/audit/checkpoint: the latest signed checkpoint (or the one of ``size``), cosigned."""
    size = int_param(request, "size", 0, 0)
    return json_response(await request.app[CHECKPOINTS].published(size or None))


async def inclusion(request: web.Request) -> web.Response:
    """GET /v1/audit/proof/inclusion: the audit path of entry ``seq`` in the tree of ``tree_size``."""
    seq = int_param(request, "seq", 0, 1)
    if not seq:
        raise ParameterError("缺少 seq / the seq parameter is required")
    store = request.app[STORE]
    size = int_param(request, "tree_size", 0, 1) or (await request.app[CHECKPOINTS].covering(seq)).size
    entry = await store.call(store.store.log.entry, seq)
    if entry is None:
        through = (await store.call(store.store.log.pruned))[0]
        if seq > through:
            raise NotFoundError.of_entry(seq)
        if request[IDENTITY].role == "connector":  # whose it was, only the archive tells
            raise ArchivedError(seq, through)
    elif not _may_see(request, entry):
        raise NotFoundError.of_entry(seq)
    leaf, path = await store.call(store.store.tree.inclusion, seq, size)
    return json_response({"seq": seq, "leaf_index": seq - 1, "tree_size": size, "leaf_hash": leaf.hex(),
                          "audit_path": [p.hex() for p in path]})


async def consistency(request: web.Request) -> web.Response:
    """GET /v1/audit/proof/consistency: that the tree of ``second`` extends the one of ``first``."""
    first, second = int_param(request, "first", 0, 1), int_param(request, "second", 0, 1)
    if not first or not second:
        raise ParameterError("缺少 first 或 second / the first and second parameters are required")
    store = request.app[STORE]
    proof = await store.call(store.store.tree.consistency, first, second)
    return json_response({"first": first, "second": second, "proof": [p.hex() for p in proof]})


async def receipt(request: web.Request) -> web.Response:
    """GET /v1/records/{record_id}/receipt: the caller's receipt of a record — the entry that stored
    it (its producer) or shared it with the caller (``as=consumer``), its inclusion proof and the
    signed checkpoint the proof leads to."""
    record_id = request.match_info["record_id"]
    version = int_param(request, "version", 0, 1) or None
    side = request.query.get("as", "producer")
    if side not in ("producer", "consumer"):
        raise ParameterError("as 应为 producer 或 consumer / the as parameter is producer or consumer")
    store = request.app[STORE]
    entry = await store.call(store.store.log.receipted, request[IDENTITY].name, record_id, version,
                             as_consumer=side == "consumer")
    if entry is None:
        through = (await store.call(store.store.log.pruned))[0]
        pruned = (f"（第 1-{through} 条已归档并删除）", f" (entries 1-{through} are archived and pruned "
                                                    "from the store)") if through else ("", "")
        role = {"producer": "报送方", "consumer": "接收方"}[side]
        raise NotFoundError(record_id, said=(f"你作为{role}的记录 {record_id!r} 的回执{pruned[0]}",
                                             f"receipt of record {record_id!r} for you as its {side}{pruned[1]}"))
    return json_response(await _receipt(request, entry))


async def _receipt(request: web.Request, entry: LogEntry) -> dict[str, Any]:
    checkpoints = request.app[CHECKPOINTS]
    signed = await checkpoints.covering(entry.seq)
    published = await checkpoints.published(signed.size)
    store = request.app[STORE]
    leaf, path = await store.call(store.store.tree.inclusion, entry.seq, signed.size)
    return {"log_hash": store.store.log_hash, "origin": checkpoints.key.name, "entry": receipt_entry(entry),
            "inclusion_proof": {"leaf_index": entry.seq - 1, "tree_size": signed.size, "leaf_hash": leaf.hex(),
                                "audit_path": [p.hex() for p in path]},
            "checkpoint": published["cosigned"]}


async def entry_receipt(request: web.Request) -> web.Response:
    """GET /v1/audit/receipt?seq=N: the receipt of any entry (an auditor), or of one the calling
    connector is a party to."""
    seq = int_param(request, "seq", 0, 1)
    if not seq:
        raise ParameterError("缺少 seq / the seq parameter is required")
    store = request.app[STORE]
    entry = await store.call(store.store.log.entry, seq)
    if entry is None and seq <= (through := (await store.call(store.store.log.pruned))[0]):
        raise ArchivedError(seq, through)
    if entry is None or not _may_see(request, entry):
        raise NotFoundError.of_entry(seq)
    return json_response(await _receipt(request, entry))


async def cosignature(request: web.Request) -> web.Response:
    """POST /v1/audit/cosignatures: a witness returns its cosignature of a checkpoint."""
    body = json_object(request) or {}
    size, line = body.get("tree_size"), body.get("cosignature")
    if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= 2**62 or not isinstance(line, str):
        raise ParameterError("需要 tree_size（正整数）和 cosignature（签名行）/ tree_size (a whole number from 1) and "
                             "cosignature (the signature line) are required")
    if not line.startswith("\u2014 ") or len(line) > 4096 or len(line.strip().split(" ")) != 3:
        raise ParameterError("cosignature 应为签名行 / cosignature must be one signature line of a signed note, "
                             "'\u2014 <witness name> <signature in base64>'")
    store = request.app[STORE]
    name = await request.app[CHECKPOINTS].keep_cosignature(size, line.strip(), store.store.now())
    return json_response({"tree_size": size, "witness": name, "kept": True})


async def log_key(request: web.Request) -> web.Response:
    """GET /.well-known/supex/log-key: the log's verifier key, for anyone to check its checkpoints."""
    checkpoints, config, store = request.app[CHECKPOINTS], request.app[CONFIG], request.app[STORE]
    latest = await store.call(store.store.tree.checkpoint)
    signer = VerifierKey(latest.signer) if latest is not None else VerifierKey(checkpoints.key.verifier)
    return json_response({"origin": signer.name, "algorithm": signer.algorithm,
                          "log_hash": config.gateway.log_hash, "verifier_key": signer.text,
                          "this_gateway_signs": signer.text == checkpoints.key.verifier,
                          "retired": retired_keys(config.key_path()),
                          "witnesses": [{"name": w.name, "key": w.key} for w in config.log.witness]})


_READERS = {"auditor", "connector"}
_SIZE = {"name": "size", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 1}}
_CHECKPOINT = obj(["origin", "tree_size", "signed_at", "signer", "checkpoint", "cosigned", "cosignatures"],
                  origin={"type": "string"}, tree_size={"type": "integer"}, signed_at={"type": "string"},
                  signer={"type": "string", "description": "the verifier key that signed it"},
                  checkpoint={"type": "string", "description": "C2SP signed note"},
                  cosigned={"type": "string", "description": "the note with the witnesses' cosignatures"},
                  cosignatures={"type": "integer"})
_RECEIPT = obj(["log_hash", "origin", "entry", "inclusion_proof", "checkpoint"], log_hash={"type": "string"},
               origin={"type": "string"}, entry={"type": "object"}, checkpoint={"type": "string"},
               inclusion_proof=obj(["leaf_index", "tree_size", "leaf_hash", "audit_path"],
                                   leaf_index={"type": "integer"}, tree_size={"type": "integer"}, leaf_hash=_HEX,
                                   audit_path=_HEXES))


def _query(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": {"type": "integer", "minimum": 1}}


ROUTES: list[Route] = [
    route("GET", "/v1/audit/checkpoint", checkpoint, name="audit_checkpoint", roles=_READERS, doc={
        "summary": "The latest signed checkpoint of the exchange log, with its cosignatures", "parameters": [_SIZE],
        "responses": {"200": json_body(_CHECKPOINT, "The checkpoint"), **errors(400, 401, 403, 404)}}),
    route("GET", "/v1/audit/proof/inclusion", inclusion, name="audit_inclusion", roles=_READERS, doc={
        "summary": "The RFC 9162 audit path of an entry",
        "parameters": [_query("seq", "the entry (leaf seq - 1)"),
                       _query("tree_size", "the tree (default: the latest checkpoint's)")],
        "responses": {"200": json_body(obj(["seq", "leaf_index", "tree_size", "leaf_hash", "audit_path"],
                                           seq={"type": "integer"}, leaf_index={"type": "integer"},
                                           tree_size={"type": "integer"}, leaf_hash=_HEX, audit_path=_HEXES),
                                       "The inclusion proof"), **errors(400, 401, 403, 404, 410)}}),
    route("GET", "/v1/audit/proof/consistency", consistency, name="audit_consistency", roles=_READERS, doc={
        "summary": "The RFC 9162 consistency proof between two tree sizes",
        "parameters": [_query("first", "the earlier tree size"), _query("second", "the later tree size")],
        "responses": {"200": json_body(obj(["first", "second", "proof"], first={"type": "integer"},
                                           second={"type": "integer"}, proof=_HEXES), "The consistency proof"),
                      **errors(400, 401, 403)}}),
    route("GET", "/v1/audit/receipt", entry_receipt, name="audit_receipt", roles=_READERS, doc={
        "summary": "The receipt of one log entry", "parameters": [_query("seq", "the entry")],
        "responses": {"200": json_body(_RECEIPT, "The receipt"), **errors(400, 401, 403, 404, 410)}}),
    route("POST", "/v1/audit/cosignatures", cosignature, name="audit_cosign", roles={"auditor"}, doc={
        "summary": "A witness's cosignature of a checkpoint",
        "requestBody": {"required": True, "content": {"application/json": {"schema": obj(
            ["tree_size", "cosignature"], tree_size={"type": "integer", "minimum": 1},
            cosignature={"type": "string"})}}},
        "responses": {"200": json_body(obj(["tree_size", "witness", "kept"], tree_size={"type": "integer"},
                                           witness={"type": "string"}, kept={"type": "boolean"}), "Kept"),
                      **errors(400, 401, 403, 404)}}),
    route("GET", "/v1/records/{record_id}/receipt", receipt, name="receipt", roles={"connector"}, doc={
        "summary": "The caller's receipt (回执) of a record: its log entry, inclusion proof and checkpoint",
        "parameters": [path_param("record_id"), _query("version", "the version (default: the latest)"),
                       {"name": "as", "in": "query", "required": False,
                        "schema": {"type": "string", "enum": ["producer", "consumer"]}}],
        "responses": {"200": json_body(_RECEIPT, "The receipt"), **errors(400, 401, 403, 404)}}),
    route("GET", "/.well-known/supex/log-key", log_key, name="log_key", roles={PUBLIC}, doc={
        "summary": "The exchange log's verifier key",
        "responses": {"200": json_body(obj(["origin", "algorithm", "log_hash", "verifier_key", "this_gateway_signs",
                                            "retired", "witnesses"],
                                           origin={"type": "string"}, algorithm={"type": "string"},
                                           this_gateway_signs={"type": "boolean"},
                                           retired={"type": "array", "items": {"type": "string"}},
                                           log_hash={"type": "string"}, verifier_key={"type": "string"},
                                           witnesses={"type": "array", "items": {"type": "object"}}),
                                       "The key")}}),
]
