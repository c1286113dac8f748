"""Push delivery to real local HTTP receivers: healthy, flaky, unreachable, slow, redirecting,
and in the consumer's own format; dead letters and their replay; the breaker and the schedule."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from lxml import etree

from gateway.cli import main
from gateway.config import Config, load_config
from gateway.flow.delivery import CircuitBreaker, schedule
from gateway.http.app import create_app
from gateway.http.context import DELIVERER, STORE
from tests.conftest import SAMPLES
from tests.gateway.conftest import ADMIN_TOKEN, NOW, SECRETS, Signed, endpoints, inspection

ATTEMPTS = 4
PUSH_SECRETS = {"healthy": "secret-healthy-0123456789ab", "flaky": "secret-flaky-0123456789abcd",
                "gone": "secret-gone-0123456789abcde", "slow": "secret-slow-0123456789abcde",
                "moved": "secret-moved-0123456789abcd", "oversight": "secret-oversight-0123456789",
                "internet": "secret-internet-0123456789ab"}


@dataclass
class Receiver:
    """A consumer's endpoint: answers ``statuses`` in turn (then 200), records every body it takes."""

    statuses: list[int] = field(default_factory=list)
    delay: float = 0.0
    bodies: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.delay:
            await asyncio.sleep(self.delay)
        status = self.statuses.pop(0) if self.statuses else 200
        if status == 200:
            self.bodies.append((dict(request.headers), body))
        headers = {"Location": "http://127.0.0.1:1/elsewhere"} if 300 <= status < 400 else None
        return web.Response(status=status, text="not json at all {", headers=headers)

    def record_ids(self) -> list[str]:
        return [r["record_id"] for _, body in self.bodies for r in json.loads(body)]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def receivers() -> AsyncIterator[dict[str, tuple[Receiver, str]]]:
    """Running receivers by consumer id, with their URLs; ``gone`` has nothing listening."""
    made = {"healthy": Receiver(), "flaky": Receiver(statuses=[500, 503, 500]), "slow": Receiver(delay=1.0),
            "moved": Receiver(statuses=[302] * 50), "oversight": Receiver(), "internet": Receiver()}
    async with endpoints({name: receiver.handle for name, receiver in made.items()}) as urls:
        yield {**{name: (made[name], url) for name, url in urls.items()},
               "gone": (Receiver(), f"http://127.0.0.1:{_closed_port()}/in")}


def _config(tmp_path: Path, receivers: dict[str, tuple[Receiver, str]], config: Config) -> Config:
    text = (tmp_path / "supex.toml").read_text(encoding="utf-8")
    text = text.replace('log_hash = "sm3"', f'log_hash = "sm3"\ndelivery_attempts = {ATTEMPTS}')
    for name, (_, url) in receivers.items():
        kind, consumes, timeout = "http_json", '["inspection"]', 10
        if name == "oversight":
            kind, consumes = "enforcement_oversight", '["penalty"]'
        if name == "internet":
            kind, consumes = "internet_plus", '["penalty", "inspection"]'
        if name == "slow":
            timeout = 0.2
        text += (f'\n[[connector]]\nid = "{name}"\nname = "{name}"\nkind = "{kind}"\n'
                 f'department_code = "11370000FE1KM2U90Y"\nregion_code = "370000"\nconsumes = {consumes}\n'
                 f'delivery = "push"\nendpoint = "{url}"\npush_timeout_seconds = {timeout}\n')
    (tmp_path / "supex.toml").write_text(text, encoding="utf-8")
    env = {f"SUPEX_SECRET_{k.upper()}": v for k, v in {**SECRETS, **PUSH_SECRETS}.items()}
    return load_config(tmp_path / "supex.toml", environ=env)


class Clock:
    """The gateway's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def pushing(tmp_path: Path, config: Config, receivers: dict[str, tuple[Receiver, str]],
                  aiohttp_client: Callable[[Any], Awaitable[TestClient[Any, Any]]]) -> tuple[Signed, web.Application,
                                                                                             Clock]:
    """A gateway with push consumers whose rounds the test runs itself."""
    clock = Clock()
    app = create_app(_config(tmp_path, receivers, config), clock=clock, deliver=False)
    return Signed(await aiohttp_client(app)), app, clock


async def _rounds(app: web.Application, consumer: str, times: int = 1) -> None:
    for _ in range(times):
        await app[DELIVERER].deliver_once(consumer)


async def _exhaust(app: web.Application, clock: Clock, consumer: str) -> None:
    """Every attempt a delivery has, each when due (the breaker kept closed), all failing."""
    for _ in range(ATTEMPTS):
        app[DELIVERER].breakers[consumer].succeeded()
        await _rounds(app, consumer)
        clock.now += 1000


async def test_a_healthy_consumer_gets_every_record_signed_with_its_own_secret(
        pushing: tuple[Signed, web.Application, Clock], receivers: dict[str, tuple[Receiver, str]]) -> None:
    """One signed POST of the batch, verifiable with the consumer's secret; logged as delivered."""
    gw, app, _ = pushing
    await gw.push("amr", [inspection(n) for n in range(3)])
    await _rounds(app, "healthy")
    receiver = receivers["healthy"][0]
    assert receiver.record_ids() == ["in-0", "in-1", "in-2"]
    headers, body = receiver.bodies[0]
    message = (f"POST\n/in\n{headers['X-Supex-Timestamp']}\n{headers['X-Supex-Nonce']}\n"
               f"{hashlib.sha256(body).hexdigest()}").encode()
    expected = hmac.new(PUSH_SECRETS["healthy"].encode(), message, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-Supex-Signature"], expected) and headers["X-Supex-Key"] == "healthy"
    first = json.loads(body)[0]
    assert (first["source"]["connector"], first["version"], first["seq"]) == ("amr", 1, 1)  # the idempotency key
    await _rounds(app, "healthy")
    assert len(receiver.bodies) == 1  # delivered once
    status, trail = await gw.call("GET", "/v1/records/in-0/trail", connector="amr")
    delivered = [e for e in trail["events"] if e["event"] == "delivered" and e["connector"] == "healthy"]
    assert status == 200 and len(delivered) == 1 and delivered[0]["digest"]
    # each record's receipt: the seq of the entry that shared it with this consumer, in the body's order
    routed = {}
    for n in range(3):
        _, events = await gw.call("GET", f"/v1/records/in-{n}/trail", connector="amr")
        routed[f"in-{n}"] = next(e["seq"] for e in events["events"]
                                 if e["event"] == "routed" and e["connector"] == "healthy")
    assert headers["X-Supex-Receipts"] == ",".join(str(routed[r["record_id"]]) for r in json.loads(body))


async def test_a_flaky_consumer_gets_everything_once_after_it_recovers(
        pushing: tuple[Signed, web.Application, Clock], receivers: dict[str, tuple[Receiver, str]]) -> None:
    """500s are retried on the schedule; the healthy consumer is not held up meanwhile."""
    gw, app, clock = pushing
    await gw.push("amr", [inspection(n) for n in range(2)])
    await _rounds(app, "flaky")
    await _rounds(app, "healthy")
    assert receivers["healthy"][0].record_ids() == ["in-0", "in-1"]
    assert receivers["flaky"][0].bodies == []
    await _rounds(app, "flaky")  # not due yet: nothing is sent
    assert receivers["flaky"][0].statuses == [503, 500]
    for _ in range(2):  # the next two attempts fail too, each after its wait
        clock.now += 60
        app[DELIVERER].breakers["flaky"].succeeded()
        await _rounds(app, "flaky")
    clock.now += 60
    await _rounds(app, "flaky", 2)
    assert receivers["flaky"][0].record_ids() == ["in-0", "in-1"]
    status, events = await gw.call("GET", "/v1/audit/events?connector=flaky&event=delivery_failed",
                                   bearer="auditor-token-for-tests-0001")
    assert status == 200 and len(events["events"]) == 6  # 3 failed attempts × 2 records


async def test_an_unreachable_consumer_ends_in_the_dead_letters_and_replay_delivers(
        pushing: tuple[Signed, web.Application, Clock], receivers: dict[str, tuple[Receiver, str]]) -> None:
    """After ``delivery_attempts`` the deliveries are dead letters; replayed, they are sent once."""
    gw, app, clock = pushing
    await gw.push("amr", [inspection(1)])
    await _exhaust(app, clock, "gone")
    status, body = await gw.call("GET", "/v1/admin/deadletters?consumer=gone", bearer=ADMIN_TOKEN)
    assert status == 200 and [(d["record_id"], d["attempts"]) for d in body["dead_letters"]] == [("in-1", ATTEMPTS)]
    assert "cannot deliver" in body["dead_letters"][0]["last_error"]
    await _rounds(app, "gone")  # dead letters are not retried
    # the consumer comes back: point it at a live receiver and replay
    app[DELIVERER].consumers["gone"] = app[DELIVERER].consumers["gone"].model_copy(
        update={"endpoint": receivers["healthy"][1]})
    app[DELIVERER].breakers["gone"].succeeded()
    status, body = await gw.call("POST", "/v1/admin/deadletters/replay", b'{"consumer": "gone"}', bearer=ADMIN_TOKEN)
    assert (status, body) == (200, {"replayed": 1})
    await _rounds(app, "gone", 2)
    assert receivers["healthy"][0].record_ids() == ["in-1"]
    assert (await gw.call("GET", "/v1/admin/deadletters", bearer=ADMIN_TOKEN))[1]["dead_letters"] == []
    events = (await gw.call("GET", "/v1/audit/events?connector=gone", bearer="auditor-token-for-tests-0001"))[1]
    assert [e["event"] for e in events["events"]].count("dead_lettered") == 1
    assert "replayed" in [e["event"] for e in events["events"]]


async def test_a_slow_consumer_times_out_and_a_redirect_is_not_followed(
        pushing: tuple[Signed, web.Application, Clock]) -> None:
    """Each failure is named in the log; neither consumer blocks the others."""
    gw, app, _ = pushing
    await gw.push("amr", [inspection(1)])
    await _rounds(app, "slow")
    await _rounds(app, "moved")
    events = (await gw.call("GET", "/v1/audit/events?event=delivery_failed", bearer="auditor-token-for-tests-0001"))
    reasons = {e["connector"]: e["reason"] for e in events[1]["events"]}
    assert "TimeoutError" in reasons["slow"]
    assert "302" in reasons["moved"] and "redirect" in reasons["moved"]


async def test_an_answer_that_would_not_change_is_a_dead_letter_at_once(
        pushing: tuple[Signed, web.Application, Clock], receivers: dict[str, tuple[Receiver, str]]) -> None:
    """A redirect (or any refusal) would be answered again: no retries, a dead letter for an admin
    to replay once the consumer is fixed; a 5xx is retried (the flaky consumer above)."""
    gw, app, _ = pushing
    await gw.push("amr", [inspection(1)])
    await _rounds(app, "moved")
    status, body = await gw.call("GET", "/v1/admin/deadletters?consumer=moved", bearer=ADMIN_TOKEN)
    assert status == 200 and [(d["record_id"], d["attempts"]) for d in body["dead_letters"]] == [("in-1", 1)]
    assert len(receivers["moved"][0].statuses) == 49  # asked once


async def test_a_consumer_gets_its_own_format(pushing: tuple[Signed, web.Application, Clock],
                                              receivers: dict[str, tuple[Receiver, str]]) -> None:
    """The enforcement oversight system receives 双公示 XML through its mapping."""
    gw, app, _ = pushing
    xml = (SAMPLES / "penalties.xml").read_bytes()
    status, body = await gw.call("POST", "/v1/records", xml, connector="eo", content_type="application/xml")
    assert status == 200 and body["accepted"] >= 1
    await _rounds(app, "oversight")
    headers, sent = receivers["oversight"][0].bodies[0]
    assert headers["Content-Type"] == "application/xml"
    document = etree.fromstring(sent)
    assert len(document) == body["accepted"]


async def test_a_consumer_gets_each_record_type_in_its_kinds_format(
        pushing: tuple[Signed, web.Application, Clock], receivers: dict[str, tuple[Receiver, str]]) -> None:
    """Internet+ takes inspections as 行政检查行为 rows and penalties as 行政处罚行为 rows: one format a
    body, so a round carries one of them and the next round the other."""
    gw, app, _ = pushing
    xml = (SAMPLES / "penalties.xml").read_bytes()
    await gw.call("POST", "/v1/records", xml, connector="eo", content_type="application/xml")
    await gw.push("amr", [inspection(n) for n in range(2)])
    await _rounds(app, "internet", times=3)
    bodies = [json.loads(body) for _, body in receivers["internet"][0].bodies]
    assert len(bodies) == 2
    penalties, inspections = bodies
    assert all("punish_document_number" in row and "check_action_name" not in row for row in penalties)
    assert penalties[0]["penalty_amount"] == "457000"  # yuan, as the table holds it (万元 in the XML)
    assert [row["record_unique_identity"] for row in inspections] == ["in-0", "in-1"]
    assert all("check_result" in row for row in inspections)


def test_the_circuit_opens_after_failures_and_closes_after_a_good_trial() -> None:
    """Closed → open after three failures → half-open after the cooldown → closed on success."""
    now = [0.0]
    breaker = CircuitBreaker(threshold=3, cooldown=30, clock=lambda: now[0])
    for _ in range(2):
        breaker.failed()
    assert (breaker.state, breaker.wait()) == ("closed", 0.0)
    breaker.failed()
    assert breaker.state == "open" and breaker.wait() == 30
    now[0] = 31
    assert breaker.state == "half-open" and breaker.wait() == 0
    breaker.failed()  # the trial failed: open again
    assert breaker.state == "open"
    now[0] = 62
    breaker.succeeded()
    assert breaker.state == "closed"


def test_the_schedule_backs_off_exponentially_and_gives_up() -> None:
    """Waits grow about twofold with jitter; the last attempt, or too great an age, gives up."""
    waits = [schedule(n, 0, 100, max_attempts=10, max_age=86400) for n in range(1, 6)]
    assert all(w is not None for w in waits)
    delays = [w - 100 for w in waits if w is not None]
    assert all(2 ** (n - 1) <= d <= 2 ** (n - 1) + 1 for n, d in enumerate(delays, 1))
    assert schedule(10, 0, 100, max_attempts=10, max_age=86400) is None
    assert schedule(1, 0, 90000, max_attempts=10, max_age=86400) is None


async def test_deadletter_commands_list_and_replay(tmp_path: Path, pushing: tuple[Signed, web.Application, Clock],
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """``supex deadletter list`` shows them; ``replay`` queues them again and says how many."""
    gw, app, clock = pushing
    await gw.push("amr", [inspection(1)])
    await _exhaust(app, clock, "gone")
    config = str(tmp_path / "supex.toml")
    assert main(["deadletter", "list", "--config", config, "--json"]) == 0
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [(d["consumer"], d["record_id"]) for d in listed] == [("gone", "in-1")]
    assert main(["deadletter", "replay", "--config", config, "--consumer", "gone"]) == 0
    assert "1 deliveries queued again" in capsys.readouterr().out
    assert await app[STORE].call(app[STORE].store.outbox.dead_letters) == []
    assert list(app[STORE].store.log.verify())[-1].ok  # two writers, one chain


@pytest.mark.parametrize("turns", [0, 1, 2, 3])
async def test_the_delivery_tasks_stop_even_when_woken_as_they_are_cancelled(
        pushing: tuple[Signed, web.Application, Clock], turns: int) -> None:
    """A cancellation that arrives just as a consumer's task is woken still stops it (Python 3.11's
    wait_for would swallow it, and shutting the gateway down would wait forever)."""
    _, app, _ = pushing
    deliverer = app[DELIVERER]
    await deliverer.start()
    for _ in range(5):
        await asyncio.sleep(0)  # every task waits on its waker
    deliverer.wake()
    for _ in range(turns):
        await asyncio.sleep(0)
    try:
        async with asyncio.timeout(5):
            await deliverer.stop()
    except TimeoutError:
        for task in deliverer._tasks:  # cancelled again, so that the app can still close
            task.cancel()
        pytest.fail("a delivery task swallowed its cancellation and never stopped")
