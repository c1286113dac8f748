"""The store, on SQLite and on PostgreSQL, and the exchange log's hash chain."""

from __future__ import annotations

import datetime as dt
import json
import threading
from types import SimpleNamespace

import orjson
import pytest
from cryptography.hazmat.primitives import hashes

from gateway.config import ConnectorConfig
from gateway.exceptions import StoreUnavailableError
from gateway.exchange_log import (
    GENESIS,
    ChainCheck,
    LogEntry,
    against_checkpoint,
    chain_hash,
    check_bodies,
    check_stretch,
    verify_chain,
)
from gateway.flow.prepare import RecordPreparer
from gateway.merkle import hash_function
from gateway.store import PostgresStore, SQLStore, routing
from gateway.store import log as log_store
from gateway.store import sqlite as sqlite_store
from gateway.store.versions import decide
from policy import Policy
from policy.procedure import Terms
from tests.backends import Backend
from tests.backends import page as inbox_page
from tests.gateway.conftest import inspection


@pytest.mark.parametrize(("stored", "version", "digest", "status", "number"), [
    (None, None, "a", "accepted", 1),
    (None, 7, "a", "accepted", 7),
    ((1, "a", 1), None, "a", "duplicate", 1),
    ((1, "a", 1), None, "b", "accepted", 2),
    ((3, "a", 1), 2, "b", "stale", 3),
    ((3, "a", 1), 3, "a", "duplicate", 3),
    ((3, "a", 1), 3, "b", "rejected", None),
    ((3, "a", 1), 4, "b", "accepted", 4),
])
def test_version_decisions(stored: tuple[int, str, int] | None, version: int | None, digest: str, status: str,
                           number: int | None) -> None:
    """The version rules as a table."""
    verdict = decide(stored, version, digest)
    assert (verdict.status, verdict.version) == (status, number)


AMR = ConnectorConfig(id="amr", name="x", department_code="11370000FE1KM2U90Y", region_code="370000",
                      produces=["inspection"])
JINAN = ConnectorConfig(id="jinan", name="y", department_code="11370100MB2857939K", region_code="370100",
                        consumes=["inspection"])


POLICY = Policy([AMR, JINAN], [])


def _store(backend: Backend, *, routing: bool = True) -> SQLStore:
    store = backend.open()
    if routing:
        store.routing.catch_up(POLICY)
    return store


def _ingest(store: SQLStore, *records: dict, policy: Policy | None = POLICY) -> list:
    connector = AMR
    prepared = RecordPreparer(log_hash="sha256", max_records=100).prepare(
        connector, None, json.dumps(list(records)).encode(), "application/json", store.now())
    return store.records.ingest("amr", "batch-1", prepared.incoming, prepared.rejected, policy=policy)


def test_records_and_their_log_entries_survive_a_reopen(backend: Backend) -> None:
    """What a committed ingest stored is there after the store is closed and opened again."""
    store = _store(backend)
    outcomes = _ingest(store, inspection(1), inspection(2))
    assert [o.status for o in outcomes] == ["accepted", "accepted"]
    head = store.log.head()
    store.close()
    again = _store(backend)
    assert again.log.head() == head == (5, again.log.head()[1])  # received, 2 stored, 2 routed
    page = inbox_page(again, POLICY, "jinan", None, 10)
    assert [r.record_id for r in page.records] == ["in-1", "in-2"]
    assert again.schema_version == len(type(again).MIGRATIONS) == 11


def test_records_stored_without_a_policy_are_routed_when_one_is_set(backend: Backend) -> None:
    """Routing has a durable cursor: what was stored before routing ran is routed, once, later."""
    store = _store(backend, routing=False)
    _ingest(store, inspection(1), inspection(2), policy=None)
    assert store.routing.catch_up(Policy([AMR, JINAN], [])) == 2
    assert store.routing.catch_up(Policy([AMR, JINAN], [])) == 0
    assert [r.record_id for r in inbox_page(store, POLICY, "jinan", None, 10).records] == ["in-1", "in-2"]


def test_a_record_nobody_could_receive_is_not_read_yet_its_timeliness_and_correction_count(
        backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    """Routing reads no payload of a record that no connector consumes and that corrects nothing:
    a late one is still marked late; a correction still goes to whoever had the record before."""
    store = _store(backend)
    _ingest(store, inspection(1))  # jinan receives it while it subscribes
    alone = Policy([AMR, JINAN.model_copy(update={"consumes": []})], [], Terms(timeliness={"inspection": "1wd"}))
    read = []
    monkeypatch.setattr(routing, "orjson", SimpleNamespace(loads=lambda raw: read.append(raw) or orjson.loads(raw)))
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    in_time = {**inspection(3), "occurred_at": now}
    _ingest(store, inspection(2), in_time, policy=alone)  # inspection(2) occurred in May
    assert read == []
    with store.query() as db:
        assert [r[0] for r in db.execute("SELECT record_id FROM late_records ORDER BY seq")] == ["in-2"]
    corrected = {**inspection(1), "occurred_at": now, "corrects": "obj-0000000000000001"}
    corrected["data"]["action_name"] += "（更正）"
    _ingest(store, corrected, policy=alone)
    assert len(read) == 1  # a correction is read: it may have recipients still
    [routed] = [e for e in store.log.entries() if e.event == "routed" and e.record_id == "in-1" and e.version == 2]
    assert (routed.connector, routed.reason) == ("jinan", "correction")


def test_a_failed_transaction_stores_nothing_and_keeps_the_chain(backend: Backend) -> None:
    """If the commit fails, neither the records nor the log entries remain, and the chain head is unchanged."""
    store = _store(backend)
    _ingest(store, inspection(1))
    head = store.log.head()
    backend.fail_log_appends(after_seq=3)
    with pytest.raises(StoreUnavailableError):
        _ingest(store, inspection(2))
    backend.heal_log_appends()
    assert store.log.head() == head
    assert store.counts()["records"] == 1
    _ingest(store, inspection(3))
    assert list(store.log.verify())[-1].ok


def test_the_inbox_cursor_and_acks(backend: Backend) -> None:
    """Pages continue from `after`; an ack moves the starting point, never backwards."""
    store = _store(backend)
    _ingest(store, *(inspection(n) for n in range(5)))
    first = inbox_page(store, POLICY, "jinan", None, 2)
    second = inbox_page(store, POLICY, "jinan", first.next, 2)
    assert [r.record_id for r in first.records + second.records] == ["in-0", "in-1", "in-2", "in-3"]
    assert store.inbox.ack("jinan", second.next) == second.next
    assert store.inbox.ack("jinan", 1) == second.next
    assert [r.record_id for r in inbox_page(store, POLICY, "jinan", None, 10).records] == ["in-4"]


def _tamper(backend: Backend, sql: str) -> int | None:
    store = _store(backend)
    if store.log.head()[0] == 0:
        _ingest(store, *(inspection(n) for n in range(4)))
    store.close()
    backend.execute(sql)
    return list(_store(backend).log.verify())[-1].first_bad_seq


def test_verify_names_a_changed_entry(backend: Backend) -> None:
    """Changing any field of an entry breaks its hash: verify names that entry."""
    assert _tamper(backend, "UPDATE exchange_log SET record_id = record_id || 'x' WHERE seq = 5") == 5


def test_verify_names_a_removed_entry(backend: Backend) -> None:
    """Removing an entry breaks the sequence at its place."""
    assert _tamper(backend, "DELETE FROM exchange_log WHERE seq = 4") == 4
    assert _tamper(backend, "DELETE FROM exchange_log WHERE seq = 3") == 3


def test_verify_names_reordered_entries(backend: Backend) -> None:
    """Swapping two entries' contents breaks the chain at the first of them."""
    swap = ("UPDATE exchange_log SET record_id = CASE seq WHEN 2 THEN 'in-1' ELSE 'in-0' END WHERE seq IN (2, 3)")
    assert _tamper(backend, swap) == 2


@pytest.mark.parametrize(("sql", "first_bad"), [
    ("UPDATE exchange_log SET reason = 'x' WHERE seq = 5", 5),  # the first entry of a stretch
    ("UPDATE exchange_log SET prev_hash = hash WHERE seq = 5", 5),  # its link to the stretch before
    ("DELETE FROM exchange_log WHERE seq = 5", 5),  # a whole stretch's first entry gone
    ("UPDATE exchange_log SET record_id = 'x' WHERE seq = 7", 7),
    ("SELECT 1", None),
])
def test_verifying_in_stretches_side_by_side_finds_what_one_pass_finds(
        backend: Backend, monkeypatch: pytest.MonkeyPatch, sql: str, first_bad: int | None) -> None:
    """Large logs are verified in stretches by worker processes; joined, they name the same entry."""
    store = _store(backend)
    _ingest(store, *(inspection(n) for n in range(4)))  # 9 entries: received, 4 stored, 4 routed
    store.close()
    backend.execute(sql)
    serial = list(_store(backend).log.verify(processes=1))[-1]
    monkeypatch.setattr(log_store, "_VERIFY_STRETCH", 4)
    monkeypatch.setattr(log_store, "_PARALLEL_FROM", 0)
    side_by_side = list(_store(backend).log.verify(processes=2))
    assert side_by_side[-1] == serial and serial.first_bad_seq == first_bad
    assert first_bad is not None or len(side_by_side) == 4  # progress after each of three stretches, the outcome


def _bodies(count: int) -> list[tuple[int, str, str, bytes]]:
    """Rows of a tree's entries 1 … ``count`` as ``check_bodies`` reads them."""
    h, rows, prev = hash_function("sm3"), [], GENESIS
    for seq in range(1, count + 1):
        canonical = LogEntry("stored", "2026-01-01T00:00:00Z", record_id=f"r{seq}").canonical(seq)
        rows.append((seq, prev, h(b"\x00" + canonical).hex(), b"\x00" + canonical))
        prev = rows[-1][2]
    return rows


@pytest.mark.parametrize("change", ["none", "removed", "relinked", "changed", "hash", "first", "last"])
def test_entries_checked_a_column_at_a_time_agree_with_the_one_verifier_or_defer_to_it(change: str) -> None:
    """The fast check gives the very stretch ``check_stretch`` gives when all holds, and nothing at
    all (so that ``check_stretch`` says where and why) when anything does not."""
    rows, first, last = _bodies(9), 1, 9
    if change == "removed":
        del rows[4]
    elif change == "relinked":
        rows[4] = (5, rows[3][3].hex(), *rows[4][2:])
    elif change == "changed":
        rows[4] = (*rows[4][:3], rows[4][3].replace(b"r5", b"r6"))
    elif change == "hash":
        rows[4] = (5, rows[4][1], rows[4][2].upper(), rows[4][3])
    elif change in ("first", "last"):  # rows that start or end elsewhere than asked
        first, last = (2, 10) if change == "first" else (1, 10)
    exact = check_stretch([(seq, prev, stored, body[1:]) for seq, prev, stored, body in rows], "sm3", first, last)
    fast = check_bodies(rows, "sm3", first, last)
    assert (fast == exact) if change == "none" else (fast is None and exact.bad_seq is not None)


@pytest.mark.parametrize("sql_agrees", [True, False])
def test_entries_with_awkward_text_verify_and_their_changes_are_found(
        backend: Backend, monkeypatch: pytest.MonkeyPatch, sql_agrees: bool) -> None:
    """The chain is checked with a canonical JSON built by SQLite where it can, and again by the
    definition where that differs: text JSON escapes differently is never taken for a change."""
    if not sql_agrees:  # as if SQLite escaped every entry otherwise: each is checked by the definition
        monkeypatch.setattr(sqlite_store, "_SQL_CANONICAL", "'{}'")
    store = _store(backend, routing=False)
    awkward = ['line\nbreak', 'quote " and \\ backslash', "tab\tand\u0001control", "汉字 and 😀", "\u2028", ""]
    store.log.append([LogEntry("config_changed", store.now(), reason=text, purpose=text, connector="amr",
                               fields=("a.b", "c", text) if text else ("a.b", "c"), masked=()) for text in awkward])
    store.log.append([LogEntry("audit_query", store.now())])  # every field empty
    assert list(store.log.verify(processes=1))[-1].ok
    backend.execute("UPDATE exchange_log SET reason = ? WHERE seq = 1", ("line\nbreaK",))
    assert list(store.log.verify(processes=1))[-1].first_bad_seq == 1


def test_a_field_list_changed_to_the_escape_of_what_it_held_is_found(backend: Backend) -> None:
    """A field path holding a backspace, changed to the two characters that escape one in JSON: the
    database's JSON would read them as what was there, the entry's definition does not."""
    store = _store(backend, routing=False)
    store.log.append([LogEntry("config_changed", store.now(), connector="amr", fields=("a\b",), reason=f"n{n}")
                      for n in range(3)])
    store.close()
    backend.execute("UPDATE exchange_log SET fields = ? WHERE seq = 2", ("a\\b",))
    assert list(_store(backend).log.verify(processes=1))[-1].first_bad_seq == 2


@pytest.mark.parametrize("sql", [
    """UPDATE exchange_log SET fields = 'a"b' WHERE seq = 3""",  # a list SQLite cannot read as JSON
    "UPDATE exchange_log SET masked = 'tab\tthere' WHERE seq = 3",
    "UPDATE exchange_log SET reason = X'ff00' WHERE seq = 3",  # bytes, which no entry holds
    "UPDATE exchange_log SET purpose = CAST('监管' AS BLOB) WHERE seq = 3",  # the same bytes, but bytes
])
def test_verify_names_an_entry_changed_to_what_no_entry_holds(backend: Backend, sql: str) -> None:
    """A row changed to a value the database cannot make JSON of, or to one of another type, is
    named as changed: verification never fails on it."""
    if ("X'" in sql or "BLOB" in sql) and backend.name != "sqlite":
        pytest.skip("a typed column of PostgreSQL holds no bytes where text belongs")
    store = _store(backend, routing=False)
    store.log.append([LogEntry("config_changed", store.now(), connector="amr", purpose="监管", fields=("a",),
                               masked=("b",), reason=f"n{n}") for n in range(6)])
    store.close()
    backend.execute(sql)
    assert list(_store(backend).log.verify(processes=1))[-1].first_bad_seq == 3


def test_verify_notices_a_dropped_tail_only_against_a_checkpoint() -> None:
    """Entries written before the tree verify as a chain from genesis; each one's hash covers the
    previous hash and all its fields."""
    entries, prev = [], GENESIS
    for n in range(1, 4):
        entry = LogEntry("received", "2026-01-01T00:00:00Z", record_id=f"r{n}", seq=n, prev_hash=prev)
        digest = chain_hash("sm3", prev, entry)
        entries.append(LogEntry("received", "2026-01-01T00:00:00Z", record_id=f"r{n}", seq=n, prev_hash=prev,
                                hash=digest))
        prev = digest
    assert list(verify_chain("sm3", entries, chained=3))[-1].ok
    assert list(verify_chain("sm3", entries, chained=3))[-1].head == prev
    assert not list(verify_chain("sha256", entries, chained=3))[-1].ok
    assert not list(verify_chain("sm3", entries))[-1].ok  # a chain hash is no leaf hash
    assert list(verify_chain("sm3", entries[:2], chained=3))[-1].head != prev  # a checkpoint reveals a dropped tail


def test_log_entries_hold_no_payload_values(backend: Backend) -> None:
    """No value of the record's data appears in the exchange log table."""
    store = _store(backend)
    _ingest(store, inspection(1))
    rows = backend.rows("SELECT * FROM exchange_log")
    text = repr(rows)
    for value in ("济南鲁达食品有限公司", "91370102CXCY5NUM1A", "张伟", "3701000001"):
        assert value not in text


@pytest.mark.parametrize(("hash_at", "ok", "words"), [
    ("a" * 64, True, None),
    ("b" * 64, False, "differs from the checkpoint"),
    (None, False, "entries removed"),
])
def test_a_recorded_checkpoint_reveals_a_changed_or_removed_tail(hash_at: str | None, ok: bool,
                                                                  words: str | None) -> None:
    """A verified chain still fails against a checkpoint whose entry is gone or holds another hash."""
    outcome = against_checkpoint(ChainCheck(True, 10, head="c" * 64), (7, "a" * 64), hash_at)
    assert outcome.ok is ok
    assert words is None or words in (outcome.reason or "")


@pytest.mark.parametrize("algorithm", ["sm3", "sha256"])
def test_the_chain_hash_is_the_documented_formula(algorithm: str) -> None:
    """hash = H(prev_hash || canonical JSON of the entry): sorted keys, no spaces, UTF-8, as an
    auditor would recompute it from an export with any JSON library."""
    entry = LogEntry("delivered", "2026-11-26T08:00:00.000+00:00", connector="jinan", counterpart="amr",
                     source="amr", record_type="clue", record_id="xs-1", version=2, rule="r", purpose="核查",
                     fields=("clue_id", "reporter.phone"), masked=("reporter.phone",), digest="ab" * 32,
                     reason="omitted: subject", seq=41)
    exported = {**entry.content(), "seq": 42}
    canonical = json.dumps(exported, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    expected = hashes.Hash(hashes.SM3() if algorithm == "sm3" else hashes.SHA256())
    expected.update(("7" * 64).encode() + canonical)
    assert chain_hash(algorithm, "7" * 64, entry, 42) == expected.finalize().hex()


# ---- several gateways on one database -----------------------------------------------------------

COUNTY = ConnectorConfig(id="county", name="z", department_code="11370000FE1KM2U90Y", region_code="370102",
                         consumes=["inspection"], delivery="push", endpoint="http://127.0.0.1:9/in")
WITH_COUNTY = Policy([AMR, JINAN, COUNTY], [])


def _gateways(backend: Backend, count: int = 2) -> list[SQLStore]:
    """``count`` stores on one database, as that many gateways hold them."""
    stores = [backend.open(lease_seconds=30) for _ in range(count)]
    for store in stores:
        store.routing.catch_up(WITH_COUNTY)
    return stores


def test_gateways_writing_at_once_keep_one_chain_and_store_each_record_once(backend: Backend) -> None:
    """Three writers at once, each with records of its own and the same shared ones: each record
    stored once, seqs without gaps or doubles, one chain."""
    stores = _gateways(backend, 3)
    shared = [inspection(n) for n in range(1000, 1010)]

    def write(k: int) -> None:
        for batch in range(4):
            first = k * 100 + batch * 20
            _ingest(stores[k], *(inspection(n) for n in range(first, first + 20)), *shared, policy=WITH_COUNTY)

    threads = [threading.Thread(target=write, args=(k,)) for k in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert backend.rows("SELECT count(*), count(DISTINCT record_id), max(seq) FROM changes") == [(250, 250, 250)]
    assert backend.rows("SELECT count(*) FROM exchange_log WHERE event = 'duplicate'") == [(110,)]
    outcome = list(stores[0].log.verify())[-1]
    assert outcome.ok and outcome.entries == stores[2].log.head()[0]
    for store in stores:
        store.close()


def test_a_claimed_delivery_is_left_to_its_claimant_until_its_lease_runs_out(backend: Backend) -> None:
    """A gateway that claimed deliveries and died has them taken over when the lease ends, or at
    once by itself when it starts again."""
    a, b = (store.outbox for store in _gateways(backend))
    _ingest(a.store, *(inspection(n) for n in range(4)), policy=WITH_COUNTY)
    now = 1_000.0
    claimed = a.due("county", now, 10, "gateway-a")
    assert [d.record["record_id"] for d in claimed] == ["in-0", "in-1", "in-2", "in-3"]
    assert b.due("county", now + 29, 10, "gateway-b") == []
    assert b.next_due("county") == now + 30  # when the claim runs out
    taken = b.due("county", now + 31, 10, "gateway-b")
    assert [d.seq for d in taken] == [d.seq for d in claimed]
    assert b.release_claims("gateway-b") == 4  # gateway-b started again
    assert len(a.due("county", now + 31, 3, "gateway-a")) == 3
    b.release("county", a.due("county", now + 31, 10, "gateway-a"))  # the fourth, given back untried
    assert len(b.due("county", now + 31, 10, "gateway-b")) == 1


def test_gateways_claiming_at_once_never_claim_the_same_delivery(backend: Backend) -> None:
    a, b = _gateways(backend)
    for first in range(0, 200, 50):
        _ingest(a, *(inspection(n) for n in range(first, first + 50)), policy=WITH_COUNTY)
    claims: dict[str, list[int]] = {"a": [], "b": []}

    def claim(name: str, store: SQLStore) -> None:
        while taken := store.outbox.due("county", 1_000.0, 7, name):
            claims[name].extend(d.seq for d in taken)

    threads = [threading.Thread(target=claim, args=(name, store)) for name, store in (("a", a), ("b", b))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(claims["a"] + claims["b"]) == sorted(set(claims["a"] + claims["b"]))
    assert len(claims["a"]) + len(claims["b"]) == 200


def test_an_inbox_goes_on_at_another_gateway(backend: Backend) -> None:
    """A consumer's cursor is the database's: acknowledged at one gateway, read at another."""
    a, b = _gateways(backend)
    _ingest(a, *(inspection(n) for n in range(5)), policy=WITH_COUNTY)
    first = inbox_page(a, WITH_COUNTY, "jinan", None, 2)
    b.inbox.ack("jinan", first.next)
    assert [r.record_id for r in inbox_page(b, WITH_COUNTY, "jinan", None, 10).records] == ["in-2", "in-3", "in-4"]


def test_an_unreachable_database_is_named_without_its_password() -> None:
    with pytest.raises(StoreUnavailableError) as caught:
        PostgresStore("postgresql://supex:hunter2@127.0.0.1:1/supex", connect_timeout=0.5)
    message = str(caught.value)
    assert "hunter2" not in message and "postgresql://supex@127.0.0.1:1/supex" in message


def test_a_large_batch_of_updates_keeps_each_records_latest_version(backend: Backend) -> None:
    """Many rows of an upsert at once (set-based on PostgreSQL), and a batch naming one record twice."""
    store = _store(backend)
    _ingest(store, *(inspection(n) for n in range(80)))
    _ingest(store, *(inspection(n, action_name=f"复查{n}") for n in range(80)))
    twice = [inspection(500), inspection(500, action_name="更正")]
    assert [o.version for o in _ingest(store, *twice, *(inspection(n) for n in range(600, 660)))][:2] == [1, 2]
    assert backend.rows("SELECT count(*), sum(version) FROM current_versions") == [(141, 80 * 2 + 2 + 60)]
    assert backend.rows("SELECT version, seq FROM current_versions WHERE record_id = 'in-500'") == \
        backend.rows("SELECT max(version), max(seq) FROM changes WHERE record_id = 'in-500'")


def test_one_gateway_at_a_time_takes_a_turn(backend: Backend) -> None:
    a, b = _gateways(backend)
    assert a.runtime.take_turn("source:x", "gw-a", 100.0, 60)
    assert not b.runtime.take_turn("source:x", "gw-b", 150.0, 60)  # gw-a holds it until 160
    assert a.runtime.take_turn("source:x", "gw-a", 150.0, 60)  # and renews it until 210
    assert not b.runtime.take_turn("source:x", "gw-b", 209.0, 60)
    assert b.runtime.take_turn("source:x", "gw-b", 211.0, 60)  # gw-a stopped renewing: gw-b takes over
    assert not a.runtime.take_turn("source:x", "gw-a", 212.0, 60)
    assert a.runtime.take_turn("source:y", "gw-a", 212.0, 60)  # another source, another turn


def test_a_store_url_that_cannot_be_read_is_refused() -> None:
    with pytest.raises(StoreUnavailableError, match="not valid"):
        PostgresStore("postgresql://supex@127.0.0.1:5432/supex?sslmode=whatever&=x")
