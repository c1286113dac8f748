"""What an attacker tried against a running gateway, each tried again: replays after a restart and
at another gateway, hostile header and parameter values, bodies sent before authenticating,
half-open connections, guessed tokens, DTDs hidden from a pattern, routes without roles."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import select
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import structlog
from aiohttp import web
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.signing import sign, signature_headers
from gateway.config import Config
from gateway.http import app as app_module
from gateway.http.app import create_app
from gateway.http.context import STORE
from gateway.http.routes import ACCESS, CONSOLE, PUBLIC
from gateway.http.security import BodyBudget, FailureThrottle, client_key
from gateway.http.serving import ConnectionGuard, raise_open_files_limit, start_gateway
from gateway.observability import configure_logging
from tests.backends import Backend
from tests.conftest import SAMPLES, served_in_thread
from tests.gateway.conftest import ADMIN_TOKEN, AUDITOR_TOKEN, NOW, SECRETS, Signed, config_in, inspection

Client = Callable[[Any], Awaitable[TestClient[Any, Any]]]


# ---- replays: nonces kept in the store -------------------------------------------------------------

async def test_a_request_replayed_after_a_restart_or_at_another_gateway_is_refused(
        backend: Backend, tmp_path: Path, aiohttp_client: Client) -> None:
    """The nonce of a signed request is kept in the store for its timestamp's window: the same
    request sent again to the gateway started anew, or to another gateway on the database, is 401."""
    config = config_in(tmp_path, backend.setting)
    path = "/v1/inbox?limit=10"
    headers = signature_headers("jinan", SECRETS["jinan"], "GET", path, b"", now=lambda: NOW)
    first = await aiohttp_client(create_app(config, clock=lambda: NOW, deliver=False))
    assert (await first.get(path, headers=headers)).status == 200
    assert (await first.get(path, headers=headers)).status == 401  # at the same gateway
    if backend.name == "sqlite":  # one gateway serves a SQLite file: the other comes after it
        await first.close()
    other = await aiohttp_client(create_app(config, clock=lambda: NOW, deliver=False))  # beside it, or after it
    await first.close()
    answer = await other.get(path, headers=headers)
    assert answer.status == 401 and "replay" in (await answer.json())["error"]["message"]
    fresh = signature_headers("jinan", SECRETS["jinan"], "GET", path, b"", now=lambda: NOW)
    assert (await other.get(path, headers=fresh)).status == 200  # a new nonce is served


async def test_a_push_replayed_at_another_gateway_is_refused_and_stores_nothing(
        backend: Backend, tmp_path: Path, aiohttp_client: Client) -> None:
    """A push's nonce is recorded in the transaction that stores its batch: the replay, at a
    gateway that has not seen it, is refused there, with nothing stored or logged as received."""
    config = config_in(tmp_path, backend.setting)
    body = json.dumps([inspection(1)]).encode()
    headers = {**signature_headers("amr", SECRETS["amr"], "POST", "/v1/records", body, now=lambda: NOW),
               "Content-Type": "application/json"}
    first = await aiohttp_client(create_app(config, clock=lambda: NOW, deliver=False))
    assert (await first.post("/v1/records", data=body, headers=headers)).status == 200
    if backend.name == "sqlite":  # one gateway serves a SQLite file: the other is the same started anew
        await first.close()
    other = await aiohttp_client(create_app(config, clock=lambda: NOW, deliver=False))
    answer = await other.post("/v1/records", data=body, headers=headers)
    assert answer.status == 401 and "replay" in (await answer.json())["error"]["message"]
    store = other.app[STORE].store
    assert store.counts()["records"] == 1
    assert [e.event for e in store.log.entries()].count("received") == 1


def test_nonces_are_forgotten_once_their_window_has_passed(backend: Backend) -> None:
    store = backend.open()
    records = store.records
    assert records.commit_group([], [("amr", "n" * 16, NOW + 301), ("amr", "m" * 16, NOW + 10)])[1] == [True, True]
    assert records.commit_group([], [("amr", "n" * 16, NOW + 301), ("jinan", "n" * 16, NOW + 301)])[1] == [False, True]
    assert records.forget_nonces(NOW + 100) == 1  # only the one whose window closed
    assert records.commit_group([], [("amr", "m" * 16, NOW + 400), ("amr", "n" * 16, NOW + 400)])[1] == [True, False]
    store.close()


# ---- hostile header and parameter values -------------------------------------------------------------

@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, int]]:
    """A gateway on a loopback port, its clock the real one (the raw requests sign with it)."""
    with served_in_thread(create_app(config_in(tmp_path), deliver=False)) as url:
        host, port = url.removeprefix("http://").split(":")
        yield host, int(port)


def _exchange(address: tuple[str, int], head: bytes, body: bytes = b"") -> tuple[int, dict[str, Any], bytes]:
    """Send one raw request; its status, JSON answer and raw answer."""
    with socket.create_connection(address, timeout=10) as connection:
        connection.sendall(head + body)
        answer = b""
        while b"\r\n\r\n" not in answer or len(answer.partition(b"\r\n\r\n")[2]) < _length(answer):
            more = connection.recv(65536)
            if not more:
                break
            answer += more
    status = int(answer.split(b" ", 2)[1])
    text = answer.partition(b"\r\n\r\n")[2]
    return status, json.loads(text) if text.startswith(b"{") else {}, answer


def _length(answer: bytes) -> int:
    for line in answer.partition(b"\r\n\r\n")[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":")[1])
    return 0


def _signed_head(method: str, target: str, body: bytes = b"", **replace: bytes) -> bytes:
    """A request head signed as jinan over ``body``, with any header's raw value replaced."""
    timestamp, nonce = str(int(time.time())), secrets.token_hex(16)
    headers = {"X-Supex-Key": b"jinan", "X-Supex-Timestamp": timestamp.encode(), "X-Supex-Nonce": nonce.encode(),
               "X-Supex-Signature": sign(SECRETS["jinan"], method, target, timestamp, nonce, body).encode(),
               "Content-Type": b"application/json", "Content-Length": str(len(body)).encode()}
    headers.update({name.replace("_", "-"): value for name, value in replace.items()})
    lines = b"".join(name.encode() + b": " + value + b"\r\n" for name, value in headers.items())
    return f"{method} {target} HTTP/1.1\r\nHost: gateway\r\n".encode() + lines + b"\r\n"


HOSTILE_HEADERS = [
    ("a timestamp of '²' (a digit to str.isdigit, not to int)", {"X_Supex_Timestamp": "²".encode()}),
    ("a timestamp of 10^400", {"X_Supex_Timestamp": b"1" * 400}),
    ("a nonce holding bytes that are not UTF-8", {"X_Supex_Nonce": b"\xff\xfe" + b"a" * 20}),
    ("a nonce with a space", {"X_Supex_Nonce": b"aaaaaaaa bbbbbbbbbb"}),
    ("a key that is not UTF-8", {"X_Supex_Key": b"jin\xe9an"}),
    ("a signature that is not UTF-8", {"X_Supex_Signature": b"\xc3" * 64}),
    ("a signature of 100 KB", {"X_Supex_Signature": b"a" * 7000}),
    ("an unknown algorithm", {"X_Supex_Algorithm": b"hmac-md5"}),
    ("a bearer token that is not UTF-8", {"Authorization": b"Bearer \xff\xfe\xfd"}),
    ("a bearer token with control characters", {"Authorization": b"Bearer a\x01b"}),
    ("an authorization of another scheme", {"Authorization": b"Basic YWRtaW46YWRtaW4="}),
]


@pytest.mark.parametrize(("what", "replace"), HOSTILE_HEADERS, ids=[h[0] for h in HOSTILE_HEADERS])
def test_a_hostile_header_is_a_4xx_with_a_code_never_a_500(served: tuple[str, int], what: str,
                                                           replace: dict[str, bytes]) -> None:
    status, answer, _ = _exchange(served, _signed_head("GET", "/v1/inbox?limit=5", **replace))
    assert status in (400, 401), what
    if answer:  # (a control character is refused by the HTTP parser itself, with a plain 400)
        assert answer["error"]["code"] == "unauthorized"


HOSTILE_PARAMETERS = ["/v1/inbox?limit=%C2%B2", "/v1/inbox?limit=99999999999999999999999", "/v1/inbox?after=-1",
                      "/v1/inbox?after=1e3", "/v1/inbox?limit=0", "/v1/rejections?after=%EF%BC%91",
                      "/v1/rejections?limit=%00"]


@pytest.mark.parametrize("target", HOSTILE_PARAMETERS)
def test_a_hostile_query_parameter_is_a_400(served: tuple[str, int], target: str) -> None:
    status, answer, _ = _exchange(served, _signed_head("GET", target))
    assert status == 400 and answer["error"]["code"] == "bad_parameter"


@pytest.mark.parametrize("body", [b'{"cursor": 1e300}', b'{"cursor": -1}', b'{"cursor": true}', b'{"cursor": 1.5}',
                                  b'{"cursor": "\xc2\xb2"}', b'{"cursor": 99999999999999999999999999}',
                                  b'{"cursor": "1e3"}', b"[]", b"\xff"])
def test_a_hostile_ack_cursor_is_a_400(served: tuple[str, int], body: bytes) -> None:
    status, answer, _ = _exchange(served, _signed_head("POST", "/v1/inbox/ack", body), body)
    assert status == 400 and answer["error"]["code"] == "malformed"


_HEADER_BYTES = st.binary(max_size=300).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"").strip())


@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(name=st.sampled_from(["X_Supex_Key", "X_Supex_Timestamp", "X_Supex_Nonce", "X_Supex_Signature",
                             "X_Supex_Algorithm", "Authorization", "X_Request_Id", "Content_Type"]),
       value=_HEADER_BYTES, query=st.binary(max_size=40))
def test_any_bytes_in_any_header_or_parameter_never_give_a_5xx(served: tuple[str, int], name: str, value: bytes,
                                                               query: bytes) -> None:
    """Beyond the table: arbitrary bytes in each header the gateway reads, and in a parameter."""
    target = "/v1/inbox?limit=" + "".join(f"%{b:02X}" for b in query)
    status, _, _ = _exchange(served, _signed_head("GET", target, **{name: value}))
    assert status < 500


def test_an_ack_cursor_given_as_digits_is_taken(served: tuple[str, int]) -> None:
    body = b'{"cursor": "0"}'
    assert _exchange(served, _signed_head("POST", "/v1/inbox/ack", body), body)[0] == 200


async def test_an_audit_filter_that_is_not_text_is_a_400(gw: Signed) -> None:
    for query in ("record_id=%FF%FE", "event=a%00b", "rule=" + "x" * 300):
        status, answer = await gw.call("GET", f"/v1/audit/events?{query}", bearer=AUDITOR_TOKEN)
        assert status == 400 and answer["error"]["code"] == "bad_parameter", query


def test_a_hostile_request_id_is_not_echoed(served: tuple[str, int]) -> None:
    head = b"GET /healthz HTTP/1.1\r\nHost: g\r\nX-Request-Id: a\xffb\r\nConnection: close\r\n\r\n"
    status, _, raw = _exchange(served, head)
    assert status == 200 and b"a\xffb" not in raw


def test_an_unexpected_failure_logs_its_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging()
    try:
        try:
            _ = 1 / 0
        except ZeroDivisionError:
            structlog.get_logger("supex.test").exception("unhandled_error")
        line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
        assert "Traceback" in line["exception"] and "ZeroDivisionError" in line["exception"]
    finally:
        structlog.reset_defaults()


# ---- authenticate before reading ---------------------------------------------------------------------

UNAUTHENTICATED = [
    ("no credentials", b""),
    ("an unknown key", b"X-Supex-Key: nobody\r\nX-Supex-Timestamp: %d\r\nX-Supex-Nonce: %s\r\n"
                       b"X-Supex-Signature: 00\r\n"),
    ("a stale timestamp", b"X-Supex-Key: amr\r\nX-Supex-Timestamp: 1000\r\nX-Supex-Nonce: %s\r\n"
                          b"X-Supex-Signature: 0\r\n"),
    ("a wrong bearer token", b"Authorization: Bearer wrong-token\r\n"),
]


def _unauthenticated_head(headers: bytes, length: int) -> bytes:
    if headers.count(b"%d"):
        headers = headers.replace(b"%d", str(int(time.time())).encode())
    headers = headers.replace(b"%s", secrets.token_hex(16).encode())
    return (b"POST /v1/records HTTP/1.1\r\nHost: g\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
            % length) + headers + b"\r\n"


@pytest.mark.parametrize(("what", "headers"), UNAUTHENTICATED, ids=[u[0] for u in UNAUTHENTICATED])
def test_an_unauthenticated_push_is_answered_before_its_body_and_cut_off(served: tuple[str, int], what: str,
                                                                        headers: bytes) -> None:
    """The refusal comes while the client still has 15 MiB to send, and the connection is closed."""
    with socket.create_connection(served, timeout=10) as connection:
        connection.sendall(_unauthenticated_head(headers, 15 * 2**20) + b"[" + b" " * 1000)
        answer = connection.recv(65536)
        assert answer.startswith(b"HTTP/1.1 401"), what
        connection.settimeout(5)
        assert _cut_off(connection)


def _cut_off(connection: socket.socket) -> bool:
    """Whether the gateway closed the connection: sending more fails, or the end of it comes."""
    try:
        for _ in range(64):
            connection.sendall(b" " * 65536)
            if not connection.recv(1):
                return True
    except TimeoutError:  # still open, only silent
        return False
    except OSError:
        return True
    return False


def test_twenty_unauthenticated_bodies_leave_memory_where_it_was(served: tuple[str, int]) -> None:
    """The attack: 20 connections each sending an unfinished 15 MiB body before authenticating
    (it held 322 MiB); now each is refused at its head and the gateway holds none of it."""
    before = psutil.Process().memory_info().rss  # the gateway runs in this process
    connections = [socket.create_connection(served, timeout=10) for _ in range(20)]
    try:
        for connection in connections:
            connection.setblocking(False)
            connection.send(_unauthenticated_head(b"", 15 * 2**20))
        sent, deadline = 0, time.monotonic() + 5
        chunk = b" " * 65536
        while connections and time.monotonic() < deadline:
            _, writable, _ = select.select([], connections, [], 0.5)
            for connection in writable:
                try:
                    sent += connection.send(chunk)
                except OSError:
                    connections.remove(connection)
                    connection.close()
    finally:
        for connection in connections:
            connection.close()
    assert psutil.Process().memory_info().rss - before < 16 * 2**20
    # each cut off within a second or so, having sent no more than the sockets' kernel buffers take
    assert not connections and sent < 20 * 8 * 2**20, sent


# ---- slow and idle clients -----------------------------------------------------------------------------

def _client_from(address: str, port: int) -> socket.socket:
    connection = socket.socket()
    connection.bind((address, 0))
    connection.settimeout(5)
    connection.connect(("127.0.0.1", port))
    return connection


async def test_half_open_connections_are_capped_and_timed_out_and_a_new_client_is_served(tmp_path: Path) -> None:
    """300 connections from one address that send half a header and wait: past the address's cap
    they are closed as they open, the others once the header timeout passes, and a client from
    another address is served throughout."""
    config = config_in(tmp_path, extra="\nheader_timeout_seconds = 1\nmax_connections_per_address = 50")
    app = create_app(config, deliver=False)
    runner, site = await start_gateway(app, config.gateway, "127.0.0.1", 0)
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    guard: ConnectionGuard = site.guard
    loop = asyncio.get_running_loop()
    attackers: list[socket.socket] = []
    try:
        def attack() -> None:
            for _ in range(300):
                connection = _client_from("127.0.0.2", port)
                connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: g\r\nX-Half: ")
                attackers.append(connection)

        await loop.run_in_executor(None, attack)
        deadline = time.monotonic() + 5
        while guard.refused < 250 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert guard.refused == 250 and guard.open["127.0.0.2"] == 50

        def fetch() -> bytes:
            with _client_from("127.0.0.1", port) as client:
                client.sendall(b"GET /healthz HTTP/1.1\r\nHost: g\r\nConnection: close\r\n\r\n")
                return client.recv(4096)

        assert (await loop.run_in_executor(None, fetch)).startswith(b"HTTP/1.1 200")
        deadline = time.monotonic() + 10  # the header timeout (1 s) closes the 50 still open
        while guard.open.get("127.0.0.2") and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert "127.0.0.2" not in guard.open and guard.timed_out >= 50
    finally:
        for connection in attackers:
            connection.close()
        await runner.cleanup()


async def test_a_request_whose_head_comes_in_time_is_not_cut_off(tmp_path: Path) -> None:
    """The header timeout is for the head only: a head sent in pieces within it is answered, and a
    kept-alive connection may send its next request after an answer."""
    config = config_in(tmp_path, extra="\nheader_timeout_seconds = 2")
    app = create_app(config, deliver=False)
    runner, site = await start_gateway(app, config.gateway, "127.0.0.1", 0)
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def talk() -> list[bytes]:
        answers = []
        with _client_from("127.0.0.1", port) as client:
            for piece in (b"GET /healthz HTTP/1.1\r", b"\nHost: g\r\n", b"\r\n"):
                client.sendall(piece)
            answers.append(client.recv(4096))
            client.sendall(b"GET /healthz HTTP/1.1\r\nHost: g\r\nConnection: close\r\n\r\n")
            answers.append(client.recv(4096))
        return answers

    try:
        answers = await asyncio.get_running_loop().run_in_executor(None, talk)
        assert all(a.startswith(b"HTTP/1.1 200") for a in answers)
    finally:
        await runner.cleanup()


def test_the_open_files_limit_is_raised_to_the_hard_limit() -> None:
    soft, hard = raise_open_files_limit()
    assert soft == hard


# ---- guessing --------------------------------------------------------------------------------------

async def test_wrong_bearer_tokens_are_throttled_with_retry_after(gw: Signed) -> None:
    statuses = []
    for _ in range(300):
        status, _ = await gw.call("GET", "/v1/audit/verify", bearer=secrets.token_hex(24))
        statuses.append(status)
        if status == 429:
            break
    assert statuses[:10] == [401] * 10 and statuses[-1] == 429
    answer = await gw.client.get("/v1/audit/verify", headers={"Authorization": f"Bearer {AUDITOR_TOKEN}"})
    assert answer.status == 429 and int(answer.headers["Retry-After"]) >= 1  # even the right token waits
    metrics = await (await gw.client.get("/metrics")).text()
    assert 'supex_auth_failures_total{kind="bearer"} 10.0' in metrics


def test_the_throttle_grows_per_address_and_slows_many_addresses_too() -> None:
    now = [0.0]
    throttle = FailureThrottle(per_address=3, overall=10, clock=lambda: now[0])
    for _ in range(3):
        assert throttle.wait("10.0.0.1") == 0
        throttle.failed("10.0.0.1")
    assert throttle.wait("10.0.0.1") == 1 and throttle.wait("10.0.0.2") == 0  # that address only
    now[0] += 1.1
    throttle.failed("10.0.0.1")
    assert throttle.wait("10.0.0.1") == 2  # doubled
    now[0] += 2.1
    throttle.failed("10.0.0.1")
    assert throttle.wait("10.0.0.1") == 4
    for n in range(6):  # a spray from many addresses, none over its own allowance
        throttle.failed(f"10.1.0.{n}")
    assert throttle.wait("10.9.9.9") >= 1  # the account as a whole is slowed
    now[0] += 300 + 20  # the window passes
    assert throttle.wait("10.0.0.1") == 0 and throttle.wait("10.9.9.9") == 0
    for _ in range(3):
        throttle.failed("10.0.0.3")
    throttle.succeeded("10.0.0.3")  # it knew the token: not a guesser
    assert throttle.wait("10.0.0.3") == 0


# ---- DTDs --------------------------------------------------------------------------------------------

XML = (SAMPLES / "penalties.xml").read_bytes()
_DECLARATION_END = XML.index(b"?>") + 2
_DTD = b'<!DOCTYPE XZCF_LIST [<!ENTITY hidden "entity-declared">]>'


@pytest.mark.parametrize("body", [
    XML[:_DECLARATION_END] + b"\n<!-- <a -->\n" + _DTD + XML[_DECLARATION_END:],
    XML[:_DECLARATION_END] + b"\n<!-- " + b"x" * 70_000 + b" -->\n" + _DTD + XML[_DECLARATION_END:],
    (b'<?xml version="1.0" encoding="UTF-16"?>' + _DTD + XML[_DECLARATION_END:]).decode().encode("utf-16"),
], ids=["after a comment holding '<a'", "behind a 70 KB prolog", "in UTF-16"])
async def test_a_hidden_dtd_is_refused_with_400_and_nothing_stored(gw: Signed, body: bytes) -> None:
    status, answer = await gw.call("POST", "/v1/records", body, connector="eo", content_type="application/xml")
    assert status == 400 and "DTD" in answer["error"]["message"]
    status, answer = await gw.call("POST", "/v1/records", XML, connector="eo", content_type="application/xml")
    assert status == 200 and answer["accepted"] == 3  # nothing of the refused bodies was stored


# ---- deny by default ---------------------------------------------------------------------------------

ROLE_MATRIX = {
    "push": {"connector"}, "inbox": {"connector"}, "ack": {"connector"}, "rejections": {"connector"},
    "trail": {"connector"}, "schemas": {"connector", "auditor", "admin"}, "schema": {"connector", "auditor", "admin"},
    **{name: {"connector"} for name in ("sharing_request_submit", "sharing_request_objection", "record_objection",
                                        "notices")},
    **{name: {"connector", "admin"} for name in ("sharing_request_decision", "sharing_request_revoke",
                                                 "objection_answer")},
    **{name: {"connector", "auditor", "admin"} for name in ("sharing_requests", "sharing_request", "objections",
                                                            "objection", "obligations", "quality",
                                                            "quality_records")},
    "audit_events": {"auditor"}, "audit_verify": {"auditor"}, "audit_export": {"auditor"},
    **{name: {"auditor", "connector"} for name in ("audit_checkpoint", "audit_inclusion", "audit_consistency",
                                                   "audit_receipt")},
    "audit_cosign": {"auditor"}, "receipt": {"connector"}, "log_key": {PUBLIC},
    **{name: {"admin"} for name in ("admin_connectors", "admin_connector_disable", "admin_connector_enable",
                                    "admin_rules", "admin_rule_add", "admin_rule_update", "admin_rule_disable",
                                    "admin_explain", "admin_deadletters", "admin_replay")},
    **{name: {CONSOLE} for name in ("console", "console_logout", "console_verify", "console_events",
                                    "console_procedure", "console_quality", "console_quality_records",
                                    "console_trail", "console_problems")},
    **{name: {PUBLIC} for name in ("healthz", "readyz", "metrics", "openapi", "console_root", "console_login_page",
                                   "console_login", "console_language", "console_static")},
}


async def test_every_route_admits_exactly_the_roles_of_the_matrix(gw: Signed) -> None:
    """Enumerated from the router: a route added without its place in the matrix fails here, and
    every route that is not public refuses a caller without credentials."""
    app = gw.client.app
    assert app is not None
    access = app[ACCESS]
    routes = {route.name for route in app.router.routes()}
    assert routes == set(ROLE_MATRIX) and {n: set(r) for n, r in access.items()} == ROLE_MATRIX
    for route in app.router.routes():
        roles = ROLE_MATRIX[route.name or ""]
        if PUBLIC in roles or route.method == "HEAD":
            continue
        path = route.resource.canonical if route.resource else ""
        path = path.replace("{record_id}", "r-1").replace("{record_type}", "inspection").replace(
            "{connector_id}", "amr").replace("{rule_id}", "x").replace("{request_id}", "req-1").replace(
            "{objection_id}", "obj-1")
        answer = await gw.client.request(route.method, path, allow_redirects=False)
        if CONSOLE in roles:
            assert answer.status == 303 and answer.headers["Location"] == "/console/login", path
        else:
            assert answer.status == 401, path
        if "connector" not in roles and roles != {CONSOLE}:  # a connector's signature does not open it
            signed = signature_headers("amr", SECRETS["amr"], route.method, path, b"", now=lambda: NOW)
            assert (await gw.client.request(route.method, path, headers=signed)).status == 403, path
        if "admin" not in roles and CONSOLE not in roles:
            answer = await gw.client.request(route.method, path, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
            assert answer.status == 403, path


def test_an_app_with_a_route_that_declares_no_roles_refuses_to_start(config: Config,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    declared = app_module.install_routes

    async def forgotten(_request: web.Request) -> web.Response:
        return web.Response(text="open to anyone")

    def with_a_forgotten_route(app: web.Application, routes: Any) -> None:
        declared(app, routes)
        app.router.add_get("/v1/forgotten", forgotten, name="forgotten")

    monkeypatch.setattr(app_module, "install_routes", with_a_forgotten_route)
    with pytest.raises(ValueError, match=r"without declared roles.*/v1/forgotten"):
        create_app(config)


# ---- at rest -------------------------------------------------------------------------------------------

def test_the_store_and_its_wal_are_created_for_the_gateway_user_alone(tmp_path: Path) -> None:
    previous = os.umask(0o022)  # an operator's usual umask
    try:
        store = Backend("sqlite", str(tmp_path / "var" / "s.db")).open()
        store.records.ingest("amr", "b-1", [], [])
        modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "var").iterdir()}
        store.close()
    finally:
        os.umask(previous)
    assert modes.keys() >= {"s.db", "s.db-wal", "s.db-shm"} and set(modes.values()) == {0o600}
    assert (tmp_path / "var").stat().st_mode & 0o777 == 0o700


def test_inspection_records_reach_their_consumer_after_all_this(served: tuple[str, int]) -> None:
    """The ordinary path still works through every check: a signed push, then the inbox."""
    body = json.dumps([inspection(1)]).encode()
    head = _signed_head("POST", "/v1/records", body).replace(b"X-Supex-Key: jinan", b"X-Supex-Key: amr")
    timestamp = head.split(b"X-Supex-Timestamp: ")[1].split(b"\r\n")[0].decode()
    nonce = head.split(b"X-Supex-Nonce: ")[1].split(b"\r\n")[0].decode()
    signature = sign(SECRETS["amr"], "POST", "/v1/records", timestamp, nonce, body).encode()
    head = head.replace(head.split(b"X-Supex-Signature: ")[1].split(b"\r\n")[0], signature)
    status, answer, _ = _exchange(served, head, body)
    assert status == 200 and answer["accepted"] == 1
    status, answer, _ = _exchange(served, _signed_head("GET", "/v1/inbox?limit=5"))
    assert status == 200 and [r["record_id"] for r in answer["records"]] == ["in-1"]


# ---- bodies read before their signature can be checked ------------------------------------------------

def test_a_client_has_only_so_many_bytes_of_bodies_in_flight() -> None:
    budget = BodyBudget(100)
    assert budget.take("a", 60) and not budget.take("a", 50) and budget.take("b", 90)
    budget.give_back("a", 60)
    assert budget.take("a", 100) and not budget.take("a", 1)


@pytest.mark.parametrize(("address", "key"), [("10.1.2.3", "10.1.2.3"), ("::ffff:10.1.2.3", "10.1.2.3"),
                                              ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
                                              ("2001:db8:1:2:bbbb::9", "2001:db8:1:2::/64"), (None, "unknown")])
def test_an_ipv6_client_counts_as_its_slash_64(address: str | None, key: str) -> None:
    assert client_key(address) == key


def test_forged_signatures_cannot_make_the_gateway_hold_bodies(served: tuple[str, int]) -> None:
    """A caller that knows a connector's key (not a secret) passes the header checks with a
    made-up signature, and its body is read before the signature can be checked: one client's
    bodies in flight are capped at twice max_body, the next answered 429 at once."""
    limit = 256 * 1024  # the tests' max_body
    connections: list[socket.socket] = []
    try:
        for _ in range(3):
            connection = socket.create_connection(served, timeout=10)
            connection.sendall(_signed_head("POST", "/v1/records").replace(b"Content-Length: 0",
                                                                            b"Content-Length: %d" % limit)
                               + b" " * (limit - 1000))  # most of it, then nothing: held until read_timeout
            connections.append(connection)
        readable, _, _ = select.select(connections, [], [], 5)
        answers = [c.recv(4096) for c in readable]
    finally:
        for connection in connections:
            connection.close()
    assert len(answers) == 1 and answers[0].startswith(b"HTTP/1.1 429") and b"too_many_bodies" in answers[0]


async def test_clients_together_never_take_the_files_the_gateway_needs() -> None:
    """However many addresses they come from, connections beyond the total are closed as they open."""
    guard = ConnectionGuard(per_address=10, header_timeout=5, keepalive_timeout=5, total=3)
    server = await asyncio.get_running_loop().create_server(guard.factory(asyncio.Protocol), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    clients = []
    try:
        for n in range(2, 7):  # five addresses, one connection each
            clients.append(await asyncio.get_running_loop().run_in_executor(None, _client_from, f"127.0.0.{n}", port))
        deadline = time.monotonic() + 5
        while guard.refused < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert guard.open.total() == 3 and guard.refused == 2
    finally:
        for client in clients:
            client.close()
        server.close()
        await server.wait_closed()
