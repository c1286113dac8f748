"""Hostile input: each refused cleanly with a precise answer, nothing else harmed, and the gateway
serving on — XML bombs and external entities, control characters (NUL included) on both stores,
mixed encodings, bodies far over the limit sent or declared, and clients that trickle."""

from __future__ import annotations

import json
import secrets
import select
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from aiohttp.test_utils import TestClient

from gateway.http.app import create_app
from tests.backends import Backend
from tests.conftest import SAMPLES, served_in_thread
from tests.gateway.conftest import AUDITOR_TOKEN, NOW, Signed, config_in, inspection


@pytest.fixture
async def hostile(backend: Backend, tmp_path: Path,
                  aiohttp_client: Callable[[Any], Awaitable[TestClient[Any, Any]]]) -> Signed:
    """A gateway on either store."""
    return Signed(await aiohttp_client(create_app(config_in(tmp_path, backend.setting), clock=lambda: NOW)))


async def _still_serving(gw: Signed) -> None:
    assert (await gw.call("GET", "/healthz"))[0] == 200
    status, body = await gw.push("amr", [inspection(900)])
    assert status == 200 and body["accepted"] + body["duplicates"] == 1


class _Listener:
    """A TCP port that counts who connects to it (an external entity must never be fetched)."""

    def __init__(self) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:
                return
            self.connections += 1
            connection.close()


LAUGHS = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
          + b"".join(b'<!ENTITY lol%d "%s">' % (n, (b"&lol%d;" % (n - 1) if n > 1 else b"&lol;") * 10)
                     for n in range(1, 10))
          + b"]><XZCF_LIST><XZCF><XZCF_WSH>&lol9;</XZCF_WSH></XZCF></XZCF_LIST>")
BLOWUP = (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "' + b"x" * 50_000 + b'">]><XZCF_LIST><XZCF><XZCF_WSH>'
          + b"&a;" * 2_000 + b"</XZCF_WSH></XZCF></XZCF_LIST>")
FILE_ENTITY = (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY f SYSTEM "file:///etc/passwd">]>'
               b"<XZCF_LIST><XZCF><XZCF_WSH>&f;</XZCF_WSH></XZCF></XZCF_LIST>")
DEEP = b"<XZCF_LIST>" + b"<a>" * 5_000 + b"</a>" * 5_000 + b"</XZCF_LIST>"


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize("name", ["billion laughs", "quadratic blowup", "file entity", "network entity",
                                  "network DTD", "deep nesting"])
async def test_xml_bombs_and_external_entities_are_refused(hostile: Signed, name: str) -> None:
    listener = _Listener()
    body = {"billion laughs": LAUGHS, "quadratic blowup": BLOWUP, "file entity": FILE_ENTITY,
            "network entity": b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY n SYSTEM "http://127.0.0.1:%d/x">]>'
                              b"<XZCF_LIST><XZCF><XZCF_WSH>&n;</XZCF_WSH></XZCF></XZCF_LIST>" % listener.port,
            "network DTD": b'<?xml version="1.0"?><!DOCTYPE XZCF_LIST SYSTEM "http://127.0.0.1:%d/d.dtd">'
                           b"<XZCF_LIST/>" % listener.port,
            "deep nesting": DEEP}[name]
    started = time.monotonic()
    status, answer = await hostile.call("POST", "/v1/records", body, connector="eo", content_type="application/xml")
    assert status == 400 and answer["error"]["code"] == "malformed", answer
    assert time.monotonic() - started < 5  # refused, not expanded
    assert "root:" not in json.dumps(answer) and listener.connections == 0
    listener.socket.close()
    await _still_serving(hostile)


async def test_control_characters_are_refused_or_kept_whole(hostile: Signed) -> None:
    """A NUL in an identifier is refused with the rule it breaks and kept in quarantine, escaped (a
    database's text cannot hold it); a NUL inside the record's data is stored and served as it came;
    a raw NUL byte is not JSON. The batch's other records, and the store, are unharmed."""
    in_data, in_id = inspection(1, action_name="检查\u0000项目"), inspection(2)
    in_id["record_id"] = "in-\u00002"
    status, body = await hostile.push("amr", [inspection(0), in_data, in_id])
    assert status == 200 and [r["status"] for r in body["results"]] == ["accepted", "accepted", "rejected"]
    assert body["results"][2]["errors"][0]["path"] == "/record_id"
    status, rejections = await hostile.call("GET", "/v1/rejections", connector="amr")
    assert status == 200 and rejections["rejections"][0]["record_id"] == "in-\\u00002"
    records = (await hostile.inbox("jinan"))[1]["records"]
    assert [r["data"]["action_name"] for r in records if r["record_id"] == "in-1"] == ["检查\u0000项目"]
    status, answer = await hostile.call("POST", "/v1/records", b'[{"record_id": "a\x00b"}]', connector="amr")
    assert status == 400 and answer["error"]["code"] == "malformed"
    status, verified = await hostile.call("GET", "/v1/audit/verify", bearer=AUDITOR_TOKEN)
    assert status == 200 and verified["ok"] is True
    await _still_serving(hostile)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_a_utf8_row_in_a_gb18030_csv_is_refused_not_stored_garbled(hostile: Signed) -> None:
    """A UTF-8 line in a GB18030 file is refused with the reason (whether its bytes are not GB18030 or,
    as tests/mappings show, are GB18030 of other characters), and the file's other rows are taken."""
    sample = (SAMPLES / "results.gb18030.csv").read_bytes()
    lines = sample.decode("gb18030").splitlines()
    body = sample + ("\n" if not sample.endswith(b"\n") else "").encode() + (lines[1] + "\n").encode()
    status, answer = await hostile.call("POST", "/v1/records", body, connector="dr", content_type="text/csv")
    assert status == 200
    results = answer["results"]
    assert results[-1]["status"] == "rejected" and "gb18030" in results[-1]["errors"][0]["message"]
    assert all("gb18030" not in str(r.get("errors")) for r in results[:-1])  # the others read as they are
    await _still_serving(hostile)


# ---- a real server, spoken to over a socket -----------------------------------------------------

@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, int]]:
    """A gateway on a loopback port (max_body 256 KiB, bodies due within half a second)."""
    app = create_app(config_in(tmp_path, extra="\nread_timeout_seconds = 0.5"))
    with served_in_thread(app) as url:
        host, port = url.removeprefix("http://").split(":")
        yield host, int(port)


def _head(length: str, chunked: bool = False, signed: bool = True) -> bytes:
    """A push's head; ``signed``: with a connector's signature headers as far as they can be right
    before the body is known (the key, the time, a fresh nonce), so that the body is read."""
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {length}"
    claim = (f"X-Supex-Key: dr\r\nX-Supex-Timestamp: {int(time.time())}\r\nX-Supex-Nonce: {secrets.token_hex(16)}\r\n"
             f"X-Supex-Signature: {'0' * 64}\r\n") if signed else ""
    return (f"POST /v1/records HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n{claim}{framing}\r\n"
            "\r\n").encode()


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


@pytest.mark.parametrize("declared", [2**30, 100 * 2**20])
def test_a_body_declared_far_over_the_limit_is_refused_before_it_is_read(served: tuple[str, int],
                                                                        declared: int) -> None:
    with socket.create_connection(served, timeout=10) as connection:
        connection.sendall(_head(str(declared)) + b"[")
        assert _status(connection.recv(4096)) == 413


def test_a_gigabyte_sent_without_a_length_is_refused_once_the_limit_is_passed(served: tuple[str, int]) -> None:
    """Chunked, with no length to refuse it by: the gateway reads up to its limit, answers 413 and
    the client never gets to send more than a little past it."""
    chunk = b"%x\r\n%s\r\n" % (1 << 20, b"x" * (1 << 20))
    sent, before = 0, psutil.Process().memory_info().rss  # the gateway runs in this process
    with socket.create_connection(served, timeout=10) as connection:
        connection.sendall(_head("", chunked=True))
        answer = b""
        while sent < 2**30:
            readable, writable, _ = select.select([connection], [connection], [], 10)
            if readable:
                answer = connection.recv(4096)
                break
            if writable:
                try:
                    sent += connection.send(chunk)
                except OSError:
                    break
        answer = answer or connection.recv(4096)
    assert _status(answer) == 413
    assert sent < 64 * 2**20  # of the gigabyte offered
    assert psutil.Process().memory_info().rss - before < 64 * 2**20  # memory stays bounded


def test_a_client_trickling_its_body_is_answered_408_and_others_are_served(served: tuple[str, int]) -> None:
    with socket.create_connection(served, timeout=10) as slow:
        slow.sendall(_head("1000") + b"[" * 10)  # and nothing more
        with socket.create_connection(served, timeout=10) as other:  # served meanwhile
            other.sendall(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n\r\n")
            assert _status(other.recv(4096)) == 200
        assert _status(slow.recv(4096)) == 408
