"""What docs/gateway.md states as fact, held to the code."""

from __future__ import annotations

import json
import re
from pathlib import Path

from connectors.signing import body_digest
from gateway.http.app import all_routes
from gateway.http.openapi import openapi_document
from schemas import Validator

DOC = (Path(__file__).resolve().parents[2] / "docs" / "gateway.md").read_text(encoding="utf-8")


def test_the_hashes_of_the_empty_body_are_those_the_signature_takes() -> None:
    said = re.search(r"`([0-9a-f]{64})` \(SHA-256\), or\s+`([0-9a-f]{64})` \(SM3\)", DOC)
    assert said is not None
    assert said[1] == body_digest(b"", "hmac-sha256") and said[2] == body_digest(b"", "hmac-sm3")


def test_the_inbox_limits_are_those_of_the_document() -> None:
    inbox = openapi_document(all_routes())["paths"]["/v1/inbox"]["get"]
    limit = next(p for p in inbox["parameters"] if p["name"] == "limit")["schema"]
    assert (limit["minimum"], limit["maximum"], limit["default"]) == (1, 1000, 100)
    assert "`limit` is 1 to 1000 (default 100)" in DOC


def test_the_complete_records_of_the_document_are_valid() -> None:
    records = [json.loads(block) for block in re.findall(r"```json\n(\{\n  \"record_type\".*?)```", DOC, re.S)]
    assert [r["record_type"] for r in records] == ["inspection", "penalty"]
    validator = Validator()
    for record in records:
        assert validator.validate(record).ok, record["record_type"]
