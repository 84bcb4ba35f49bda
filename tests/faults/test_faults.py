"""Nothing lost, nothing sent twice: one real fan-out per case, one fault injected while it runs.

Each case publishes an event to 2,000 matching CSOs and the country's media, injects its fault
while mail is flowing, and then checks at the SMTP server that every expected (recipient, kind)
arrived, none twice (beyond the documented crash window where a process dies inside SMTP), that
the ledger says ``sent`` for exactly what the server received, and what the dead-letter queues
hold. See ``faults.harness`` for the counting and ``docs/reliability.md`` for the guarantees.
Cases 13 and 14 follow the event's later life: the update notice of a moved event to the same
audience, and the reminders of 200 confirmed registrants; they count only that kind of mail.
"""

from __future__ import annotations

import concurrent.futures
import json
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from faults.harness import (
    BAD_TOPIC,
    CRASH_WINDOW,
    DEAD_LETTER_QUEUES,
    INVITATION_WORKERS,
    PRESS_NOTICE,
    REMINDER_OFFSET_SECONDS,
    Audience,
    FaultReport,
    FaultRun,
    TimedSMTPServer,
    broker_down,
    busiest,
    drain,
    insert_bad_recipients,
    jobs_left,
    organisation_ids,
    publish_raw,
    seed_second_country,
)
from support.stack import Stack
from support.waiting import wait_until
from tacso_shared.contracts import EVENT_PUBLISHED, load_data
from tacso_shared.db import make_engine
from tacso_shared.envelope import PoisonMessage, parse_envelope

pytestmark = [pytest.mark.faults, pytest.mark.postgres, pytest.mark.slow]

NewRun = Callable[[str], FaultRun]

#: How long each outage lasts (deliberate fault durations, not waits for a condition).
BROKER_DOWN_SECONDS = 5
SMTP_DOWN_SECONDS = 20
THROTTLE_SECONDS = 10
REGISTRY_DOWN_SECONDS = 20


@pytest.mark.timeout(300)
def test_a_broker_restart_mid_fan_out_loses_nothing_and_sends_nothing_twice(
    new_run: NewRun,
) -> None:
    run = new_run("1. RabbitMQ stop_app / start_app")
    run.publish()
    run.wait_until_flowing()
    with broker_down():
        run.fault_now()
        time.sleep(BROKER_DOWN_SECONDS)
    run.finish()
    run.assert_guarantees()


@pytest.mark.timeout(240)
def test_a_worker_killed_mid_fan_out_hands_it_over_and_resends_at_most_the_crash_window(
    new_run: NewRun, fault_stack: Stack
) -> None:
    run = new_run("2. SIGKILL 1 of 3 invitations workers")
    run.publish()
    run.wait_until_flowing()
    victim = busiest(fault_stack, INVITATION_WORKERS)
    fault_stack.kill(victim)
    run.fault_now()
    run.result.note = f"killed {victim}, the one sending"
    # One killed worker: one unflushed ledger batch plus one message per SMTP connection.
    run.finish(duplicate_bound=CRASH_WINDOW)
    fault_stack.start(victim)
    run.assert_guarantees()
    survivors = [w for w in INVITATION_WORKERS if w != victim]
    assert any(run.event_id in fault_stack.log(w) for w in survivors), (
        f"no surviving worker logged event {run.event_id}: was the message redelivered?"
    )


@pytest.mark.timeout(240)
def test_an_smtp_server_down_for_20_seconds_delays_mail_but_loses_and_repeats_none(
    new_run: NewRun, fault_smtp: TimedSMTPServer
) -> None:
    run = new_run("3. SMTP server down 20 s")
    run.publish()
    run.wait_until_flowing()
    fault_smtp.stop()
    try:
        run.fault_now()
        time.sleep(SMTP_DOWN_SECONDS)
    finally:
        fault_smtp.start()
    run.finish()
    run.assert_guarantees()


@pytest.mark.timeout(240)
def test_an_smtp_server_throttling_with_421_and_451_delays_mail_but_loses_and_repeats_none(
    new_run: NewRun, fault_smtp: TimedSMTPServer
) -> None:
    run = new_run("4. SMTP answers 421, then 451, for 10 s")
    run.publish()
    run.wait_until_flowing()
    refused_before = len(fault_smtp.rejections)
    try:
        fault_smtp.set_failure(421, "4.3.2 Too many connections, try later", stage="DATA")
        run.fault_now()
        time.sleep(THROTTLE_SECONDS / 2)
        fault_smtp.set_failure(451, "4.7.1 Rate limit exceeded, slow down", stage="RCPT")
        time.sleep(THROTTLE_SECONDS / 2)
    finally:
        fault_smtp.set_failure(None)
    refused = Counter(r.code for r in fault_smtp.rejections[refused_before:])
    run.result.note = f"refused: {dict(sorted(refused.items()))}"
    run.finish()
    run.assert_guarantees()
    assert refused[421] and refused[451], f"the throttling never hit a send: {refused}"


@pytest.mark.timeout(240)
def test_registry_down_for_20_seconds_mid_fan_out_delays_mail_but_loses_and_repeats_none(
    new_run: NewRun, fault_stack: Stack
) -> None:
    run = new_run("5. registry down 20 s")
    run.publish()
    run.wait_until_flowing()
    fault_stack.stop("registry")
    try:
        run.fault_now()
        time.sleep(REGISTRY_DOWN_SECONDS)
    finally:
        fault_stack.start("registry")
    run.finish()
    run.assert_guarantees()


def _outbox_published_at(stack: Stack, event_id: str) -> Any:
    engine = make_engine(stack.env["EVENTS_DATABASE_URL"])
    try:
        with engine.connect() as conn:
            return conn.execute(
                sa.text("SELECT published_at FROM outbox WHERE body LIKE :id"),
                {"id": f'%"event_id":"{event_id}"%'},
            ).scalar_one()
    finally:
        engine.dispose()


@pytest.mark.timeout(240)
def test_an_event_accepted_just_before_the_events_service_was_killed_still_reaches_everyone(
    new_run: NewRun, fault_stack: Stack
) -> None:
    run = new_run("6. events API SIGKILLed after 201, before relay")
    fault_stack.stop("events-relay")
    try:
        run.publish()
        fault_stack.kill("events")
        run.fault_now()
        assert _outbox_published_at(fault_stack, run.event_id) is None, "the relay was stopped"
    finally:
        fault_stack.start("events")
        fault_stack.start("events-relay")
    # The events service dies before anything is sent: no mail may come twice.
    run.finish()
    run.assert_guarantees()
    assert _outbox_published_at(fault_stack, run.event_id) is not None


def _poison(country: str, n: int) -> list[bytes]:
    """``n`` messages that can never be handled: half not JSON, half the wrong schema."""
    valid: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "revision": 1,
        "title": "Poison",
        "type": "workshop",
        "country": country,
        "topics": ["human-rights"],
        "starts_at": "2026-12-15T09:00:00+00:00",
        "ends_at": "2026-12-15T15:30:00+00:00",
        "organiser_id": str(uuid.uuid4()),
        "organiser_name": "Nobody",
        "url": "http://127.0.0.1/events/poison",
    }
    breakages: list[dict[str, Any]] = [
        {"revision": 0},
        {"country": "ZZ"},
        {"title": ""},
        {"topics": ["not-a-topic"]},
        {"starts_at": "next tuesday"},
        {"url": None},
        {"type": "rave"},
        {"event_id": None},
    ]
    not_json = [
        b"",
        b"this is not json {",
        b'{"specversion": "1.0", "id": "truncated',
        b"\xff\xfe\x00\x00 binary garbage",
        b"<event><id>42</id></event>",
    ]
    bodies: list[bytes] = []
    for i in range(n // 2):
        bodies.append(not_json[i % len(not_json)] + (f" #{i}".encode() if i else b""))
    for i in range(n - n // 2):
        data = {**valid, "event_id": str(uuid.uuid4()), **breakages[i % len(breakages)]}
        envelope = {
            "specversion": "1.0",
            "id": str(uuid.uuid4()),
            "source": "/fault-suite",
            "type": EVENT_PUBLISHED,
            "time": datetime.now(UTC).isoformat(),
            "datacontenttype": "application/json",
            "data": data,
        }
        if i % 10 == 9:
            envelope["type"] = "org.tacso.events.event.exploded.v1"  # unknown type
        bodies.append(json.dumps(envelope).encode())
    for body in bodies:  # every one of them must really be poison, or it would send mail
        with pytest.raises(PoisonMessage):
            load_data(parse_envelope(body))
    return bodies


@pytest.mark.timeout(240)
def test_100_poison_messages_among_valid_traffic_all_end_in_the_dead_letter_queues(
    new_run: NewRun, fault_stack: Stack, audience: Audience
) -> None:
    run = new_run("7. 100 poison messages")
    url = fault_stack.env["AMQP_URL"]
    poison = _poison(audience.country, 100)
    routing_key = f"event.published.{audience.country}"
    publish_raw(url, routing_key, poison[::2])
    run.publish()
    run.wait_until_flowing()
    publish_raw(url, routing_key, poison[1::2])
    run.fault_now()
    run.finish(dead_letters=len(poison))
    run.assert_guarantees()
    for queue in DEAD_LETTER_QUEUES:
        dead = drain(url, queue)
        assert Counter(body for body, _ in dead) == Counter(poison), (
            f"{queue} does not hold exactly the poison messages"
        )
        unexplained = [body[:40] for body, headers in dead if not headers.get("x-tacso-reason")]
        assert not unexplained, f"dead letters without a reason in {queue}: {unexplained[:3]}"


@pytest.mark.timeout(240)
def test_a_worker_stopped_with_sigterm_mid_fan_out_exits_cleanly_and_loses_nothing(
    new_run: NewRun, fault_stack: Stack
) -> None:
    run = new_run("8. SIGTERM to the sending invitations worker")
    run.publish()
    run.wait_until_flowing()
    victim = busiest(fault_stack, INVITATION_WORKERS)
    run.fault_now()
    started = time.monotonic()
    codes = fault_stack.stop(victim, timeout=10)
    took = time.monotonic() - started
    run.result.note = f"{victim} exited {codes.get(victim)} after {took:.1f} s"
    assert codes == {victim: 0}, f"{victim} did not exit cleanly within 10 s: {codes}"
    # A clean stop records what it sent before handing the message back: no duplicates at all.
    run.finish()
    fault_stack.start(victim)
    run.assert_guarantees()


@pytest.mark.timeout(240)
def test_bad_recipients_on_every_page_fail_alone_and_everyone_else_gets_mail_once(
    new_run: NewRun, fault_stack: Stack, fault_smtp: TimedSMTPServer, audience: Audience
) -> None:
    failing = insert_bad_recipients(fault_stack, audience)
    refused = {email: (550, "5.1.1 No such mailbox") for email, _ in failing if "refused" in email}
    run = new_run("9. bad recipients on every page")
    run.failing = failing
    run.topics = [audience.topic, BAD_TOPIC]
    fault_smtp.fail_recipients(refused)
    try:
        run.publish()
        run.fault_now()
        run.result.note = (
            f"{len(failing)} bad: {len(refused)} refused at RCPT, "
            f"{len(failing) - len(refused)} unsendable"
        )
        run.finish()
    finally:
        fault_smtp.fail_recipients({})
    run.assert_guarantees()


@pytest.mark.timeout(300)
def test_a_worker_killed_while_two_countries_events_are_in_flight_loses_nothing(
    new_run: NewRun, fault_stack: Stack, fault_smtp: TimedSMTPServer, fault_report: FaultReport
) -> None:
    second = seed_second_country(fault_stack)
    run = new_run("10. SIGKILL with RS and MK events in flight")
    other = FaultRun(
        "10b. (the MK event of case 10)", fault_stack, fault_smtp, second, fault_report
    )
    run.publish()
    other.publish()
    run.wait_until_flowing()
    other.wait_until_flowing(count=1)
    victim = busiest(fault_stack, INVITATION_WORKERS)
    fault_stack.kill(victim)
    run.fault_now()
    other.fault_now()
    run.result.note = f"killed {victim}; MK had {other.at_fault} of {len(second.expected)} in"
    run.finish(duplicate_bound=CRASH_WINDOW)
    other.finish(duplicate_bound=CRASH_WINDOW)
    fault_stack.start(victim)
    run.assert_guarantees()
    other.assert_guarantees()
    # One killed worker: one window for both events together.
    assert run.result.duplicated + other.result.duplicated <= CRASH_WINDOW


def _sent(stack: Stack, event_id: str, kind: str) -> int:
    response = stack.get(
        "notify", "/api/v1/deliveries", event_id=event_id, kind=kind, status="sent", page_size=1
    )
    assert response.status_code == 200, response.text
    total: int = response.json()["total"]
    return total


@pytest.mark.timeout(360)
def test_a_broker_restart_during_an_update_notice_tells_every_invitee_once(
    fault_stack: Stack, fault_smtp: TimedSMTPServer, audience: Audience, fault_report: FaultReport
) -> None:
    told = audience.csos | audience.media
    run = FaultRun(
        "13. RabbitMQ stop_app / start_app during an update notice",
        fault_stack,
        fault_smtp,
        audience,
        fault_report,
        expected=frozenset((email, "update") for email in told),
        dead_letter_queues=("notify.updates.dead",),
    )
    run.publish()
    # Everyone invited first (the ledger of invitations is who an update tells).
    wait_until(
        lambda: (
            _sent(fault_stack, run.event_id, "invitation") == len(audience.csos)
            and _sent(fault_stack, run.event_id, PRESS_NOTICE) == len(audience.media)
        ),
        timeout=120,
        interval=0.5,
        message="the invitations and press notices before the update",
    )
    event = run.edit(
        {"starts_at": "2026-12-16T09:00:00+00:00", "ends_at": "2026-12-16T15:30:00+00:00"}
    )
    assert event["revision"] == 2
    run.wait_until_flowing()
    with broker_down():
        run.fault_now()
        time.sleep(BROKER_DOWN_SECONDS)
    run.finish()
    run.assert_guarantees()


#: Confirmed registrants of case 14, and the time given to register them before their reminders
#: fall due.
REGISTRANTS = 200
REGISTERING_SECONDS = 30


@pytest.mark.timeout(360)
def test_the_scheduler_killed_with_reminders_due_reminds_every_registrant_once(
    fault_stack: Stack, fault_smtp: TimedSMTPServer, audience: Audience, fault_report: FaultReport
) -> None:
    registrants = sorted(audience.csos)[:REGISTRANTS]
    ids = organisation_ids(fault_stack, registrants)
    assert len(ids) == REGISTRANTS
    run = FaultRun(
        "14. SIGKILL events-scheduler with reminders due",
        fault_stack,
        fault_smtp,
        audience,
        fault_report,
        expected=frozenset((email, "reminder") for email in registrants),
        dead_letter_queues=("notify.reminders.dead",),
    )
    due = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=REGISTERING_SECONDS)
    starts = due + timedelta(seconds=REMINDER_OFFSET_SECONDS)
    run.publish(starts_at=starts.isoformat(), ends_at=(starts + timedelta(hours=2)).isoformat())

    def register(organisation_id: str) -> str:
        path = f"/api/v1/events/{run.event_id}/registrations"
        response = fault_stack.post("events", path, {"organisation_id": organisation_id})
        assert response.status_code == 201, response.text
        assert response.json()["status"] == "confirmed", response.text
        return str(response.json()["id"])

    registering = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        registrations = list(pool.map(register, ids.values()))
    registering = time.monotonic() - registering
    keys = [f"reminder:{r}:{REMINDER_OFFSET_SECONDS}s" for r in registrations]
    events_db = make_engine(fault_stack.env["EVENTS_DATABASE_URL"])
    try:
        assert jobs_left(events_db, keys) == REGISTRANTS
        assert datetime.now(UTC) < due, "registering took longer than the time given to it"
        # The scheduler has started on the due reminders (some ran): kill it at once.
        wait_until(
            lambda: jobs_left(events_db, keys) < REGISTRANTS,
            timeout=REGISTERING_SECONDS + 30,
            interval=0.01,
            message="the scheduler running the due reminders",
        )
        fault_stack.kill("events-scheduler")
        run.started = time.monotonic()  # the clock counts from the kill (reminders just due)
        run.fault_now()
        left = jobs_left(events_db, keys)
        held = jobs_left(events_db, keys, claimed=True)
    finally:
        events_db.dispose()
    run.result.note = (
        f"registered in {registering:.0f} s; killed with {left} of {REGISTRANTS} reminders "
        f"not run yet, {held} of them claimed by it"
    )
    assert left > 0, "the scheduler ran every reminder before it was killed: it proved nothing"
    fault_stack.start("events-scheduler")
    # Jobs the dead scheduler had claimed wait for its claim to lapse (60 s) before they run.
    run.finish(timeout=200)
    run.assert_guarantees()
