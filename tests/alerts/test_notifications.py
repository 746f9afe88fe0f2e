"""Notifications to real receivers on loopback: an SMTP server (aiosmtpd), HTTP receivers
that fail then succeed, or never answer; grouping, silences, repeats, at most once."""

from __future__ import annotations

import email
import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from email import policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller

from finops.alerts.evaluation import rules_evaluate
from finops.alerts.models import Alert, AlertRule, Channel, Notification, Silence
from finops.alerts.notify import notifications_record, tick_notify
from finops.fleet.models import Gpu, Node, Site
from tests.alerts.test_evaluation import T0, minute

pytestmark = pytest.mark.django_db


class _Receiver(BaseHTTPRequestHandler):
    answers: list[int] = []
    received: list[tuple[dict[str, str], dict]] = []
    hang_s = 0.0

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.hang_s:
            time.sleep(self.hang_s)
        code = self.answers.pop(0) if self.answers else 200
        self.received.append((dict(self.headers), json.loads(body)))
        self.send_response(code)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver(settings) -> Iterator[type[_Receiver]]:  # type: ignore[no-untyped-def]
    handler = type("Receiver", (_Receiver,), {"answers": [], "received": [], "hang_s": 0.0})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings.ALERT_WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    settings.ALERT_DELIVERY_BACKOFF_S = 0
    handler.url = f"http://127.0.0.1:{server.server_address[1]}/hook"  # type: ignore[attr-defined]
    yield handler
    server.shutdown()
    server.server_close()


def _fleet(gpus: int = 1) -> list[Gpu]:
    node = Node.objects.create(
        site=Site.objects.create(slug="lab", provider="on-prem"), hostname="hot-1"
    )
    return [Gpu.objects.create(node=node, uuid=f"GPU-hot-{i}", index=i) for i in range(gpus)]


def _fire(gpus: list[Gpu], channel: Channel) -> list[int]:
    rule = AlertRule.objects.get(name="Thermal throttling")
    AlertRule.objects.exclude(pk=rule.pk).update(enabled=False)
    rule.channels.add(channel)
    fired: list[int] = []
    for m in range(6):
        for g in gpus:
            minute(g, m, 30.0)
        fired += rules_evaluate(now=T0 + timedelta(minutes=m + 1)).fired or []
    return fired


def test_ten_throttling_gpus_on_one_node_make_one_alertmanager_message(receiver):
    channel = Channel.objects.create(name="ops-hook", kind="webhook", target=receiver.url)
    fired = _fire(_fleet(10), channel)
    assert len(fired) == 10
    assert tick_notify(fired=fired, resolved=[], now=T0 + timedelta(minutes=6)) == 1
    ((headers, body),) = receiver.received
    assert body["version"] == "4" and body["status"] == "firing"
    assert body["groupLabels"] == {"node": "hot-1"}
    assert body["commonLabels"]["alertname"] == "Thermal throttling"
    assert sorted(a["labels"]["gpu"] for a in body["alerts"]) == [f"GPU-hot-{i}" for i in range(10)]
    assert set(body) >= {
        "groupKey",
        "truncatedAlerts",
        "receiver",
        "commonAnnotations",
        "externalURL",
    }
    assert {"startsAt", "endsAt", "generatorURL", "fingerprint"} <= set(body["alerts"][0])
    assert headers["Idempotency-Key"].startswith("frameops-")
    # A retried tick records nothing twice and sends nothing more.
    assert notifications_record(fired=fired, resolved=[], now=T0 + timedelta(minutes=6)) == []
    assert Notification.objects.filter(status="sent").count() == 10


def test_a_receiver_failing_twice_gets_exactly_one_delivery(receiver):
    receiver.answers = [500, 500]
    channel = Channel.objects.create(name="flaky", kind="webhook", target=receiver.url)
    fired = _fire(_fleet(), channel)
    tick_notify(fired=fired, resolved=[], now=T0 + timedelta(minutes=6))
    assert [n.status for n in Notification.objects.all()] == ["sent"]
    assert Notification.objects.get().attempts == 3
    assert len(list(receiver.received)) == 3  # two refused, one taken
    assert receiver.answers == []


def test_a_receiver_that_never_answers_fails_and_delays_no_other_channel(receiver, settings):
    settings.ALERT_WEBHOOK_TIMEOUT_S = 0.5
    settings.ALERT_DELIVERY_ATTEMPTS = 2
    alive_arrived = threading.Event()
    seen_while_hanging: list[bool] = []

    class Hanging(_Receiver):
        def do_POST(self) -> None:  # never answers in time: waits for the live channel
            seen_while_hanging.append(alive_arrived.wait(10))
            time.sleep(1.5)  # and still no answer: the client times out

    class Alive(_Receiver):
        received = []

        def do_POST(self) -> None:
            super().do_POST()
            alive_arrived.set()

    servers = [ThreadingHTTPServer(("127.0.0.1", 0), h) for h in (Hanging, Alive)]
    for s in servers:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    try:
        dead = Channel.objects.create(name="dead", kind="webhook",
                                      target=f"http://127.0.0.1:{servers[0].server_address[1]}/hook")  # fmt: skip
        alive = Channel.objects.create(name="alive", kind="slack",
                                       target=f"http://127.0.0.1:{servers[1].server_address[1]}/hook")  # fmt: skip
        fired = _fire(_fleet(), dead)
        AlertRule.objects.get(name="Thermal throttling").channels.add(alive)
        tick_notify(fired=fired, resolved=[], now=T0 + timedelta(minutes=6))
    finally:
        for s in servers:
            s.shutdown()
            s.server_close()
    by_channel = {n.channel.name: n for n in Notification.objects.select_related("channel")}
    assert by_channel["dead"].status == "failed" and by_channel["dead"].attempts == 2
    assert "timed out" in by_channel["dead"].last_error.lower()
    assert by_channel["alive"].status == "sent"
    ((_, slack),) = Alive.received
    assert slack["text"].startswith("[FIRING] Thermal throttling on hot-1")
    assert slack["blocks"][0]["type"] == "header"
    # The live channel's message arrived while the dead one was still hanging.
    assert seen_while_hanging and seen_while_hanging[0] is True


def test_email_through_a_real_smtp_server(settings):
    messages: list[email.message.EmailMessage] = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
            messages.append(email.message_from_bytes(envelope.content, policy=policy.default))
            return "250 OK"

    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = (
            "127.0.0.1",
            controller.server.sockets[0].getsockname()[1],
        )
        settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
        channel = Channel.objects.create(name="oncall", kind="email", target="ops@studio.example")
        fired = _fire(_fleet(2), channel)
        assert tick_notify(fired=fired, resolved=[], now=T0 + timedelta(minutes=6)) == 1
    finally:
        controller.stop()
    (message,) = messages
    assert message["Subject"] == "[FrameOps firing] Thermal throttling on hot-1 (2)"
    assert message["To"] == "ops@studio.example"
    text = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    assert "GPU-hot-0" in text and "GPU-hot-1" in text and "GPU-hours" in text
    assert "<table" in html and "<script" not in html


def test_a_silence_mutes_and_its_end_unmutes(receiver):
    channel = Channel.objects.create(name="ops-hook", kind="webhook", target=receiver.url)
    fired = _fire(_fleet(), channel)
    Silence.objects.create(
        matchers={"node": "hot-1"}, starts_at=T0, ends_at=T0 + timedelta(minutes=30)
    )
    assert notifications_record(fired=fired, resolved=[], now=T0 + timedelta(minutes=6)) == []
    # After the silence, the still-firing alert is due: it is told as a repeat.
    alert = Alert.objects.get()
    alert.last_notified_at = T0  # as if notified when it started
    alert.save()
    rule = alert.rule
    rule.repeat_interval_s = 600
    rule.save()
    rows = notifications_record(fired=[], resolved=[], now=T0 + timedelta(minutes=31))
    assert [r.kind for r in rows] == ["repeat"]


def test_a_worker_dying_between_recording_and_sending_delivers_once_on_retry(receiver):
    from finops.alerts.notify import group_deliver, groups_of

    channel = Channel.objects.create(name="ops-hook", kind="webhook", target=receiver.url)
    fired = _fire(_fleet(), channel)
    rows = notifications_record(fired=fired, resolved=[], now=T0 + timedelta(minutes=6))
    # The worker dies here: recorded, not sent. The retried task finds the pending rows.
    assert receiver.received == []
    pending = list(
        Notification.objects.filter(status="pending").select_related("alert__rule", "channel")
    )
    assert [n.pk for n in pending] == [r.pk for r in rows]
    for group in groups_of(pending):
        assert group_deliver(group)
    for group in groups_of(pending):  # a second retry of the same task
        assert group_deliver(group)
    assert len(receiver.received) == 1


def test_webhooks_to_private_addresses_are_refused(settings):
    from finops.alerts.notify import DeliveryError, _safe_url

    settings.ALERT_WEBHOOK_ALLOWED_HOSTS = []
    for url in (
        "http://127.0.0.1:9/x",
        "http://10.1.2.3/x",
        "http://169.254.169.254/latest",
        "ftp://example.com/x",
    ):
        with pytest.raises(DeliveryError):
            _safe_url(url)


def test_a_silent_node_inhibits_its_gpus_stale_alerts(receiver):
    from django.utils import timezone

    channel = Channel.objects.create(name="ops-hook", kind="webhook", target=receiver.url)
    rule = AlertRule.objects.get(name="Telemetry stale")
    AlertRule.objects.exclude(pk=rule.pk).update(enabled=False)
    rule.channels.add(channel)
    gpus = _fleet(3)
    now = timezone.now()
    Gpu.objects.filter(pk__in=[g.pk for g in gpus]).update(last_seen_at=now - timedelta(minutes=10))
    report = rules_evaluate(now=now)
    assert len(report.fired) == 4  # three GPUs and their node
    tick_notify(fired=report.fired, resolved=[], now=now)
    ((_, body),) = receiver.received
    assert [a["labels"].get("gpu") for a in body["alerts"]] == [None]  # the node only
    assert body["alerts"][0]["labels"]["node"] == "hot-1"


def test_alerts_joining_a_notified_group_wait_for_the_group_interval(receiver):
    channel = Channel.objects.create(name="ops-hook", kind="webhook", target=receiver.url)
    gpus = _fleet(4)
    rule = AlertRule.objects.get(name="Thermal throttling")
    rule.params = {**rule.params, "group_wait_s": 0, "group_interval_s": 600}
    rule.save()
    fired = _fire(gpus[:2], channel)  # two GPUs fire at 10:06; the group is told then
    assert tick_notify(fired=fired, resolved=[], now=T0 + timedelta(minutes=6)) == 1
    # The node's two other GPUs throttle from 10:06 and fire at 10:12: their notice waits
    # for the group interval, 10:16.
    told_at = {}
    for m in range(6, 18):
        for g in gpus:
            minute(g, m, 30.0)
        now = T0 + timedelta(minutes=m + 1)
        report = rules_evaluate(now=now)
        if report.fired:
            told_at.setdefault("fired", now)
        if tick_notify(fired=report.fired or [], resolved=[], now=now):
            told_at.setdefault("sent", now)
    assert told_at == {"fired": T0 + timedelta(minutes=12), "sent": T0 + timedelta(minutes=16)}
    assert len(receiver.received) == 2
    second = receiver.received[1][1]
    assert sorted(a["labels"]["gpu"] for a in second["alerts"]) == ["GPU-hot-2", "GPU-hot-3"]


def test_delivery_attempts_are_visible_in_the_api(receiver, api, make_key):
    receiver.answers = [500]
    channel = Channel.objects.create(name="flaky", kind="webhook", target=receiver.url)
    fired = _fire(_fleet(), channel)
    tick_notify(fired=fired, resolved=[], now=T0 + timedelta(minutes=6))
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {make_key('read')}")
    (alert,) = api.get("/api/v1/alerts", {"state": "firing"}).json()["results"]
    (notice,) = alert["notifications"]
    assert (notice["channel"], notice["kind"], notice["status"], notice["attempts"]) == (
        "flaky",
        "firing",
        "sent",
        2,
    )
