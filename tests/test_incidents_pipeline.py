"""Mass incidents on the real broker: a burst opens one incident, its tickets are linked and at
least L2, one alert, a close after the quiet period; normal traffic elsewhere opens none."""

import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kafka import KafkaProducer

from tests.harness import REPO, TopicReader, isolated_settings, wait_until, worker_process
from ticketstream.incidents.detector import by_key_record
from ticketstream.simulation import Shares, Simulator
from ticketstream.topology import ALERTS, DLQ, INBOUND, INCIDENTS, INCIDENTS_BY_KEY, TABLE_INCIDENT_KEYS, TRIAGED
from ticketstream.workers.topics import create_topics

pytestmark = pytest.mark.integration
POLICY = Path(__file__).parent / "data" / "fast_incident_policy.toml"


def test_a_burst_opens_one_incident_links_and_regrades_its_tickets(bootstrap, tmp_path: Path):
    settings = isolated_settings(bootstrap, tmp_path, incident_policy=POLICY)
    create_topics(settings)
    sim = Simulator(
        datetime.now(UTC),
        rate=2,
        seed=3,
        id_prefix="INC",
        lifecycle=False,
        shares=Shares(malformed=0, duplicate=0, late=0, out_of_order=0),
    )
    sim.inject_incident("廣州", at=5, duration=20, count=200)
    messages = list(sim.schedule(30))
    burst = {m.key.decode() for m in messages if m.kind == "incident"}
    assert len(burst) == 200
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all", linger_ms=5)
    incidents = TopicReader(settings, settings.topic(INCIDENTS))
    alerts = TopicReader(settings, settings.topic(ALERTS))
    triaged = TopicReader(settings, settings.topic(TRIAGED))
    with worker_process(settings, tmp_path / "worker.log"):
        t0 = time.time()
        for m in messages:  # in real time, as the simulator schedules them
            delay = t0 + m.at - time.time()
            if delay > 0:
                time.sleep(delay)
            producer.send(settings.topic(INBOUND), key=m.key, value=m.value)
        producer.flush()
        wait_until(
            lambda: incidents.poll() and any(json.loads(r.value)["action"] == "close" for r in incidents.records),
            60,
            "the incident to close after the quiet period",
        )
        listed = subprocess.run(
            [sys.executable, "-m", "ticketstream.workers.cli", "incidents", "list"],
            cwd=REPO,
            env=settings.as_env(),
            capture_output=True,
            timeout=60,
        )

        def linked() -> dict[str, dict]:
            triaged.poll()
            latest: dict[str, dict] = {}
            for r in triaged.records:
                body = json.loads(r.value)
                if body["revision"] >= latest.get(body["ticket_id"], {}).get("revision", 0):
                    latest[body["ticket_id"]] = body
            return latest

        wait_until(lambda: all(linked().get(t, {}).get("incident_id") for t in burst), 60, "every burst ticket linked")
    records = [json.loads(r.value) for r in incidents.records]
    opens = [r for r in records if r["action"] == "open"]
    assert len(opens) == 1, records
    incident = opens[0]
    assert incident["city"] == "廣州" and incident["category"] == "technical"
    burst_times = sorted(json.loads(m.value)["occurred_at"] for m in messages if m.key.decode() in burst)
    # Within one window step (5 s) of the burst crossing the floor (its 20th complaint).
    crossing = datetime.fromisoformat(burst_times[19]).timestamp()
    assert incident["opened_at"] - crossing <= 5
    assert [r["action"] for r in records][-1] == "close"
    latest = linked()
    for ticket in burst:
        assert latest[ticket]["incident_id"] == incident["id"]
        assert latest[ticket]["grade"] in ("L1", "L2")
        assert any("mass_incident" in reason for reason in latest[ticket]["grade_reasons"])
    # Normal traffic elsewhere is not linked (a regular technical complaint in 廣州 during the
    # outage is, rightly).
    elsewhere = [t for t, body in latest.items() if body["region"]["city"] != "廣州"]
    assert elsewhere and not any(latest[t]["incident_id"] for t in elsewhere)
    alerts.poll()
    incident_alerts = [
        json.loads(r.value) for r in alerts.records if json.loads(r.value)["labels"]["alertname"] == "MassIncident"
    ]
    assert {a["id"] for a in incident_alerts} == {f"mass_incident:{incident['id']}"}
    assert [a["status"] for a in incident_alerts] == ["firing", "resolved"]
    assert incident_alerts[0]["labels"]["incident"] == incident["id"]
    assert listed.returncode == 0 and incident["id"].encode() in listed.stdout
    for reader in (incidents, alerts, triaged):
        reader.close()


@pytest.mark.parametrize("one_record", [False, True], ids=["a-record-each", "one-record-of-the-city"])
def test_a_message_the_detector_fails_on_is_a_dead_letter_and_the_rest_of_its_batch_counts(
    bootstrap, tmp_path: Path, one_record: bool
):
    """The incident agent steps a city's complaints of a batch together; when the detector fails
    on one, the city's complaints are taken again one at a time: the failing one is dead-lettered
    (stage incidents) and the others are counted in the city's saved state. The same when the
    three come in one record (`by_key_record`, triage's feed): the dead letter holds
    the failing complaint alone."""
    settings = isolated_settings(bootstrap, tmp_path)
    create_topics(settings)
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all", linger_ms=50)
    now = time.time()
    bodies = [
        {"ticket_id": "G-1", "at": now, "category": "network"},
        {"ticket_id": "G-2", "at": "not a time", "category": "network"},
        {"ticket_id": "G-3", "at": now, "category": "network"},
    ]
    if one_record:
        key, value = by_key_record("廣州", bodies)
        producer.send(settings.topic(INCIDENTS_BY_KEY), key=key, value=value)
    for body in [] if one_record else bodies:  # one city's key, sent together: one batch
        producer.send(settings.topic(INCIDENTS_BY_KEY), key="廣州".encode(), value=json.dumps(body).encode())
    producer.flush()
    dead = TopicReader(settings, settings.topic(DLQ))
    changelog = TopicReader(settings, f"{settings.app_id}-{TABLE_INCIDENT_KEYS}-changelog")

    def counted() -> int:
        changelog.poll()
        values = [json.loads(r.value) for r in changelog.records if json.loads(r.key) == "廣州"]
        return sum(values[-1]["c"]["network"]["b"].values()) if values else 0

    with worker_process(settings, tmp_path / "w.log"):
        dead.read_until(1, 60)
        wait_until(lambda: counted() == 2, 30, "the two good complaints in the city's saved state")
        dead.poll()
    assert len(dead.records) == 1
    record = json.loads(dead.records[0].value)
    assert record["stage"] == "incidents" and record["source"]["topic"] == settings.topic(INCIDENTS_BY_KEY)
    if one_record:
        assert record["source"]["offset"] == 0  # the one record
        assert "G-2" in record["original"]["value"] and "G-1" not in record["original"]["value"]
        assert record["id"].endswith("#1")  # the record's second complaint: another one failing would have its own id
    else:
        assert record["source"]["offset"] == 1  # G-2, the second of the three on the city's partition
        assert "#" not in record["id"]  # a message of one complaint: its coordinates alone
    saves = [r for r in changelog.records if json.loads(r.key) == "廣州"]
    assert len(saves) == 2  # G-1 and G-3 saved one at a time by the fallback, G-2 never
    dead.consumer.close()
    changelog.consumer.close()
