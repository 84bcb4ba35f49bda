"""Machinery of the fault suite: the audience, a timed SMTP recorder, broker controls, counting.

One stack serves the whole suite. Every case publishes an event of its own to the same audience
(2,000 matching CSOs and a few media of one country) and tells its mail apart by the
``X-TACSO-Event-Id`` header, so the cases share the 2,000 organisations but never their counts.
"""

from __future__ import annotations

import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pika
import sqlalchemy as sa
from sqlalchemy.orm import Session

from support.smtp import RecordingSMTPServer
from support.stack import ProcessSpec, Stack
from support.waiting import wait_until
from tacso_devtools.smtp_catcher import ReceivedMail
from tacso_events.models import ScheduledJob
from tacso_notify.handlers import Dependencies
from tacso_registry.models import Organisation, OrganisationTopic
from tacso_shared.db import make_engine

# ---- the suite's configuration ---------------------------------------------------------------

COUNTRY = "RS"
TOPIC = "human-rights"
CSO_COUNT = 2000
MEDIA_COUNT = 5
INVITATION, PRESS_NOTICE = "invitation", "press_notice"
#: The topic of the bad recipients of case 9 (so the other cases' audience is untouched).
BAD_TOPIC = "quality-assurance"


def _ledger_flush_size() -> int:
    """The default of ``handlers.Dependencies.flush_every``, read from where it is defined."""
    default = next(f.default for f in fields(Dependencies) if f.name == "flush_every")
    assert isinstance(default, int), default
    return default


#: The ledger records ``sent`` at least every this many messages (so the crash window below
#: follows the workers' setting instead of a copy of it).
LEDGER_FLUSH_SIZE = _ledger_flush_size()
#: SMTP connections one worker keeps sending on at once (SMTP_CONNECTIONS below).
SMTP_CONNECTIONS = 4
#: The documented duplicate window of one worker killed inside SMTP: mail the server accepted
#: but the ledger had not recorded yet (one unflushed batch plus two messages per connection).
CRASH_WINDOW = LEDGER_FLUSH_SIZE + 2 * SMTP_CONNECTIONS

#: Fast recovery: the retry schedule outlasts a 20 s outage; a dead worker's claims expire in
#: 10 s. The rate limit stretches a 2,000-mail fan-out over about 10 s, so that each fault lands
#: while mail is flowing (unthrottled, the fan-out is over in about 3 s on this machine).
SMTP_RATE_LIMIT = 200
#: Reminders are due this long before the start (one offset, in seconds): a case makes them due
#: within the test by starting its event this long, plus a little, after it registers people.
REMINDER_OFFSET_SECONDS = 600
FAULT_ENV = {
    "RETRY_DELAYS": "1,2,4,8,15,30,60",
    "DELIVERY_LEASE_SECONDS": "10",
    "SMTP_CONNECTIONS": str(SMTP_CONNECTIONS),
    "SMTP_RATE_LIMIT": str(SMTP_RATE_LIMIT),
    "REMINDER_OFFSETS": f"{REMINDER_OFFSET_SECONDS}s",
    "SCHEDULER_POLL_INTERVAL": "0.2",
}

INVITATION_WORKERS = tuple(f"notify-invitations-{n}" for n in (1, 2, 3))
#: The families an event's publication fans out on (their dead letters are counted per case).
FAN_OUT_QUEUES = ("notify.invitations", "notify.press_notices")
#: Every family a case's mail goes through: all must be empty (acked) when a case settles.
WORK_QUEUES = (*FAN_OUT_QUEUES, "notify.updates", "notify.reminders", "notify.registrations")
DEAD_LETTER_QUEUES = tuple(f"{q}.dead" for q in FAN_OUT_QUEUES)

#: How many messages must have arrived before a fault is injected ("while mail is flowing").
FLOWING = 300

Key = tuple[str, str]  # (recipient address, kind of mail)


def configure(stack: Stack) -> None:
    """Three competing invitations workers instead of one."""
    spec = stack.specs.pop("notify-invitations")
    for name in INVITATION_WORKERS:
        stack.specs[name] = ProcessSpec(spec.process, spec.port, dict(spec.env))


# ---- the audience ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Audience:
    """Who must get mail about an event of ``country`` on ``topic``, and who must not."""

    country: str
    topic: str
    csos: frozenset[str]
    media: frozenset[str]
    bystanders: frozenset[str]

    @property
    def expected(self) -> frozenset[Key]:
        return frozenset(
            {(e, INVITATION) for e in self.csos} | {(e, PRESS_NOTICE) for e in self.media}
        )


def _organisation_rows(
    tag: str, kind: str, country: str, count: int, *, topic: str | None, consent: bool = True
) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    return [
        {
            "id": str(uuid.uuid4()),
            "name": f"Fault suite {tag} {i:04d}",
            "kind": kind,
            "country": country,
            "email": f"{tag}-{i:04d}@faults.example.org",
            "language": "en",
            "mailing_consent": consent,
            "created_at": now,
            "updated_at": now,
            "topic": topic,
        }
        for i in range(count)
    ]


def insert_organisations(stack: Stack, rows: list[dict[str, Any]]) -> None:
    """Insert organisation rows (each with its one ``topic``, or None) into registry's database.

    Straight into the database: 2,000 through HTTP would take minutes, and some cases need rows
    that registry's validation refuses today.
    """
    engine = make_engine(stack.env["REGISTRY_DATABASE_URL"])
    try:
        with Session(engine) as session, session.begin():
            session.execute(
                sa.insert(Organisation),
                [{k: v for k, v in r.items() if k != "topic"} for r in rows],
            )
            session.execute(
                sa.insert(OrganisationTopic),
                [{"organisation_id": r["id"], "topic": r["topic"]} for r in rows if r["topic"]],
            )
    finally:
        engine.dispose()


def insert_bad_recipients(stack: Stack, audience: Audience, every: int = 25) -> frozenset[Key]:
    """CSOs with addresses nobody can send to, one after every ``every``-th CSO of the audience.

    Their ids sort right after those CSOs' ids, so every page of the fan-out (50 first, then 500)
    holds some. Inserted straight into registry's database, past its validation, as an address
    accepted by an older version would be; half are refused by the SMTP server at RCPT instead.
    Returns the (recipient, kind) pairs that must end ``failed``.
    """
    engine = make_engine(stack.env["REGISTRY_DATABASE_URL"])
    try:
        with Session(engine) as session:
            ids = sorted(
                session.scalars(
                    sa.select(Organisation.id).where(Organisation.email.in_(audience.csos))
                )
            )
    finally:
        engine.dispose()
    now = datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    for n, after in enumerate(ids[::every]):
        # The same id with its last hex digit raised sorts right after it.
        last = after[-1]
        if last == "f":
            continue
        email = (
            f'"bad {n}"@faults.example.org'
            if n % 2
            else f"refused-{n}-{uuid.uuid4().hex[:6]}@faults.example.org"
        )
        rows.append(
            {
                "id": after[:-1] + format(int(last, 16) + 1, "x"),
                "name": f"Bad recipient {n}",
                "kind": "cso",
                "country": audience.country,
                "email": email,
                "language": "en",
                "mailing_consent": True,
                "created_at": now,
                "updated_at": now,
                "topic": BAD_TOPIC,
            }
        )
    insert_organisations(stack, rows)
    return frozenset((str(r["email"]).lower(), INVITATION) for r in rows)


def organisation_ids(stack: Stack, emails: Iterable[str]) -> dict[str, str]:
    """Registry's ids of the organisations with these addresses (address -> id)."""
    engine = make_engine(stack.env["REGISTRY_DATABASE_URL"])
    try:
        with Session(engine) as session:
            rows = session.execute(
                sa.select(Organisation.email, Organisation.id).where(
                    Organisation.email.in_(list(emails))
                )
            ).all()
    finally:
        engine.dispose()
    return {str(email): str(id_) for email, id_ in rows}


def jobs_left(events_db: sa.Engine, keys: Iterable[str], *, claimed: bool = False) -> int:
    """How many of these scheduled jobs are still in events' database (not run yet).

    ``claimed``: only those a scheduler holds a claim on now (``locked_until`` in the future).
    """
    query = sa.select(sa.func.count()).select_from(ScheduledJob)
    query = query.where(ScheduledJob.key.in_(list(keys)))
    if claimed:
        query = query.where(ScheduledJob.locked_until > datetime.now(UTC))
    with events_db.connect() as conn:
        return int(conn.execute(query).scalar_one())


def seed_second_country(stack: Stack, country: str = "MK", count: int = 2000) -> Audience:
    """``count`` CSOs of another country on the suite's topic, for two events in flight at once."""
    rows = _organisation_rows(f"second-{country.lower()}", "cso", country, count, topic=TOPIC)
    insert_organisations(stack, rows)
    return Audience(
        country=country,
        topic=TOPIC,
        csos=frozenset(r["email"] for r in rows),
        media=frozenset(),
        bystanders=frozenset(),
    )


def seed_audience(stack: Stack) -> Audience:
    """Bulk-insert the audience into registry's database (HTTP would take minutes for 2,000)."""
    other = "BA"
    groups = {
        "cso": _organisation_rows("cso", "cso", COUNTRY, CSO_COUNT, topic=TOPIC),
        "media": _organisation_rows("media", "media", COUNTRY, MEDIA_COUNT, topic=None),
        # Organisations that must get nothing: another topic, no consent, another country.
        "off-topic": _organisation_rows("off-topic", "cso", COUNTRY, 20, topic="youth"),
        "no-consent": _organisation_rows(
            "no-consent", "cso", COUNTRY, 10, topic=TOPIC, consent=False
        ),
        "elsewhere": _organisation_rows("elsewhere", "cso", other, 10, topic=TOPIC),
        "media-elsewhere": _organisation_rows("media-elsewhere", "media", other, 3, topic=None),
    }
    insert_organisations(stack, [row for group in groups.values() for row in group])
    emails = {name: frozenset(r["email"] for r in group) for name, group in groups.items()}
    audience = Audience(
        country=COUNTRY,
        topic=TOPIC,
        csos=emails["cso"],
        media=emails["media"],
        bystanders=frozenset().union(
            *(emails[g] for g in ("off-topic", "no-consent", "elsewhere", "media-elsewhere"))
        ),
    )
    # What notify will ask registry for must be exactly what was inserted.
    for kind, topics, count in (("cso", [TOPIC], CSO_COUNT), ("media", [], MEDIA_COUNT)):
        response = stack.get(
            "registry",
            "/api/v1/organisations",
            country=COUNTRY,
            kind=kind,
            topic=topics,
            mailing_consent="true",
            page_size=1,
        )
        assert response.status_code == 200, response.text
        assert response.json()["total"] == count, f"registry sees {response.json()['total']} {kind}"
    return audience


# ---- the SMTP server -------------------------------------------------------------------------


@dataclass(frozen=True)
class Arrival:
    """One message the SMTP server accepted: for which event, to whom, what kind, when."""

    recipient: str
    kind: str
    at: float


class TimedSMTPServer(RecordingSMTPServer):
    """A RecordingSMTPServer that keeps only (recipient, kind, arrival time) per event.

    Fourteen thousand full messages would cost memory and parsing time for nothing: the suite
    counts, it does not read the bodies (the end-to-end suite does).
    """

    def __init__(self) -> None:
        super().__init__()
        self._arrivals: dict[str, list[Arrival]] = {}
        self._parser = BytesHeaderParser()

    def _record(self, mail: ReceivedMail) -> None:
        headers = self._parser.parsebytes(mail.data)
        event_id = str(headers.get("X-TACSO-Event-Id", "")).strip()
        kind = str(headers.get("X-TACSO-Kind", "")).strip()
        now = time.monotonic()
        with self._cond:
            arrivals = self._arrivals.setdefault(event_id, [])
            arrivals.extend(Arrival(r.lower(), kind, now) for r in mail.rcpt_tos)
            self._cond.notify_all()

    def arrivals(self, event_id: str) -> list[Arrival]:
        """Every accepted (recipient, kind) of one event so far, oldest first."""
        with self._cond:
            return list(self._arrivals.get(event_id, ()))

    def count(self, event_id: str) -> int:
        with self._cond:
            return len(self._arrivals.get(event_id, ()))


# ---- RabbitMQ --------------------------------------------------------------------------------


def rabbitmqctl(*args: str, timeout: float = 60) -> str:
    """Run ``rabbitmqctl -q``; raise with its output if it fails."""
    done = subprocess.run(
        ["rabbitmqctl", "-q", *args], capture_output=True, text=True, timeout=timeout
    )
    if done.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)}: {done.stdout}{done.stderr}")
    return done.stdout


def vhost_of(amqp_url: str) -> str:
    return unquote(amqp_url.rsplit("/", 1)[1])


def broker_ready() -> bool:
    """Whether the local node has finished booting (quorum queues need it up)."""
    try:
        rabbitmqctl("await_startup", timeout=30)
    except (RuntimeError, subprocess.TimeoutExpired):
        return False
    return True


def start_broker() -> None:
    """``start_app`` (harmless if it runs already) and wait until the node has booted."""
    rabbitmqctl("start_app", timeout=120)
    wait_until(broker_ready, timeout=120, interval=1, message="rabbitmqctl await_startup")


@contextmanager
def broker_down() -> Iterator[None]:
    """``rabbitmqctl stop_app`` for the block; ``start_app`` whatever happens in it."""
    try:
        rabbitmqctl("stop_app", timeout=120)
        yield
    finally:
        start_broker()


def queue_depths(amqp_url: str) -> dict[str, int]:
    """Messages (ready plus unacknowledged) of every queue of the suite's virtual host."""
    out = rabbitmqctl(
        "list_queues", "-p", vhost_of(amqp_url), "name", "messages", "--no-table-headers"
    )
    depths: dict[str, int] = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            depths[parts[0]] = int(parts[1])
    return depths


def unsettled(amqp_url: str) -> dict[str, int]:
    """Work and retry queues that still hold a message (dead letters and unrouted excluded)."""
    return {
        name: n
        for name, n in queue_depths(amqp_url).items()
        if n and name.startswith((*WORK_QUEUES, "tacso.retry.")) and not name.endswith(".dead")
    }


@contextmanager
def amqp_channel(amqp_url: str) -> Iterator[Any]:
    """A pika channel: an AMQP client independent of the services' kombu."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        yield connection.channel()
    finally:
        connection.close()


def dead_letter_counts(amqp_url: str, queues: Iterable[str] = DEAD_LETTER_QUEUES) -> dict[str, int]:
    with amqp_channel(amqp_url) as channel:
        return {q: int(channel.queue_declare(q, passive=True).method.message_count) for q in queues}


def drain(amqp_url: str, queue: str) -> list[tuple[bytes, dict[str, Any]]]:
    """Take every message out of ``queue``: (body, headers) each."""
    taken: list[tuple[bytes, dict[str, Any]]] = []
    with amqp_channel(amqp_url) as channel:
        while True:
            method, properties, body = channel.basic_get(queue, auto_ack=True)
            if method is None:
                return taken
            taken.append((bytes(body), dict(properties.headers or {})))


def publish_raw(amqp_url: str, routing_key: str, bodies: Iterable[bytes]) -> None:
    """Publish to exchange ``tacso``, persistent, mandatory and confirmed."""
    with amqp_channel(amqp_url) as channel:
        channel.confirm_delivery()
        for body in bodies:
            channel.basic_publish(
                "tacso",
                routing_key,
                body,
                pika.BasicProperties(
                    content_type="application/json",
                    delivery_mode=2,
                    message_id=str(uuid.uuid4()),
                ),
                mandatory=True,
            )


# ---- processes -------------------------------------------------------------------------------


def cpu_ticks(pid: int) -> int:
    """User plus system CPU time of a process, in clock ticks (/proc/<pid>/stat)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rpartition(")")[2].split()  # after "(comm)": field 3 (state) is index 0
    return int(fields[11]) + int(fields[12])


def busiest(stack: Stack, names: Iterable[str], timeout: float = 15) -> str:
    """One of ``names`` that is doing work: the first to burn 0.2 s of CPU since the call.

    Workers share an event page by page, so usually all of them are busy; the busiest is taken.
    """
    pids = {name: stack.processes[name].pid for name in names}
    start = {name: cpu_ticks(pid) for name, pid in pids.items()}

    def leader() -> str | None:
        used = sorted(((cpu_ticks(pid) - start[n], n) for n, pid in pids.items()), reverse=True)
        top, name = used[0]
        return name if top >= 20 else None

    found = wait_until(leader, timeout=timeout, message="a worker busy sending")
    assert found is not None
    return found


def ensure_running(stack: Stack) -> list[str]:
    """Start whatever process of the stack is not running; return the ones that had exited."""
    gone = [
        name
        for name in stack.specs
        if name not in stack.processes or stack.processes[name].poll() is not None
    ]
    for name in gone:
        stack.processes.pop(name, None)
        stack.start(name)
    return gone


def crashed(stack: Stack) -> dict[str, int]:
    """Processes that exited on their own (the suite's stop and kill forget the process)."""
    return {
        name: code for name, proc in stack.processes.items() if (code := proc.poll()) is not None
    }


def exited(stack: Stack) -> dict[str, int | None]:
    """Processes of the stack that are not running (and their exit codes)."""
    out: dict[str, int | None] = {}
    for name in stack.specs:
        proc = stack.processes.get(name)
        if proc is None or proc.poll() is not None:
            out[name] = None if proc is None else proc.returncode
    return out


def log_tail(stack: Stack, name: str, lines: int = 15) -> str:
    text = stack.log(name).splitlines()
    return "\n".join(f"    {line}" for line in text[-lines:])


# ---- one case --------------------------------------------------------------------------------


@dataclass
class CaseResult:
    """What one case measured, as it goes into the table."""

    case: str
    expected: int
    delivered: int = 0
    lost: int = 0
    duplicated: int = 0
    duplicate_bound: int = 0
    unexpected: int = 0
    at_fault: int | None = None
    seconds_to_full_delivery: float | None = None
    note: str = ""


@dataclass
class FaultReport:
    """The session's table; rewritten to ``path`` after every case."""

    path: Path
    workdir: Path | None = None
    results: list[CaseResult] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, result: CaseResult) -> None:
        with self._lock:
            self.results = [r for r in self.results if r.case != result.case] + [result]
            self.results.sort(key=lambda r: r.case)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(self.markdown())

    def markdown(self) -> str:
        head = (
            "| case | expected | delivered | lost | duplicated (allowed) "
            "| time to full delivery | fault injected after | notes |\n"
            "|---|---:|---:|---:|---:|---:|---:|---|\n"
        )
        rows = []
        for r in self.results:
            seconds = (
                "not reached"
                if r.seconds_to_full_delivery is None
                else f"{r.seconds_to_full_delivery:.1f} s"
            )
            at_fault = "not injected" if r.at_fault is None else f"{r.at_fault} mails"
            extra = f" (+{r.unexpected} to bystanders)" if r.unexpected else ""
            rows.append(
                f"| {r.case} | {r.expected} | {r.delivered}{extra} | {r.lost} "
                f"| {r.duplicated} ({r.duplicate_bound}) | {seconds} | {at_fault} | {r.note} |\n"
            )
        return head + "".join(rows)


class FaultRun:
    """One case: publish an event, let the test inject a fault, then count and compare."""

    def __init__(
        self,
        case: str,
        stack: Stack,
        smtp: TimedSMTPServer,
        audience: Audience,
        report: FaultReport,
        failing: frozenset[Key] = frozenset(),
        expected: frozenset[Key] | None = None,
        dead_letter_queues: tuple[str, ...] = DEAD_LETTER_QUEUES,
    ) -> None:
        self.case = case
        self.stack = stack
        self.smtp = smtp
        self.audience = audience
        self.report = report
        #: Deliveries that must end ``failed`` (bad recipients): in the ledger, never at the server.
        self.failing = failing
        #: What must arrive once each: the publication's audience unless a case says otherwise
        #: (an update notice, reminders); mail of other kinds of the event is not counted.
        self.expected = audience.expected if expected is None else expected
        self.kinds = frozenset(kind for _, kind in self.expected)
        #: The dead-letter queues of the families the case's mail goes through.
        self.dead_letter_queues = dead_letter_queues
        #: The event's topics (the audience's, plus any a case adds).
        self.topics = [audience.topic]
        self.amqp_url = stack.env["AMQP_URL"]
        self.event_id = ""
        self.started = 0.0
        self.at_fault: int | None = None
        self.dead_before = self.dead_letter_counts()
        self.result = CaseResult(case, expected=len(self.expected))
        self.problems: list[str] = []
        self.dead_letters = 0

    # -- the broker (a subclass may ask another broker, e.g. a cluster of its own) --------------

    def dead_letter_counts(self) -> dict[str, int]:
        """Messages in each dead-letter queue now."""
        return dead_letter_counts(self.amqp_url, self.dead_letter_queues)

    def unsettled(self) -> dict[str, int]:
        """Work and retry queues that still hold a message."""
        return unsettled(self.amqp_url)

    # -- driving -------------------------------------------------------------------------------

    def event_body(self) -> dict[str, Any]:
        organiser = self.stack.organisation(self.audience.country, "resource_centre")
        return {
            "title": f"Fault suite: {self.case}",
            "type": "conference",
            "country": self.audience.country,
            "topics": self.topics,
            "starts_at": "2026-12-15T09:00:00+00:00",
            "ends_at": "2026-12-15T15:30:00+00:00",
            "venue": {"name": "Dom omladine", "address": "Makedonska 22", "city": "Beograd"},
            "organiser_id": organiser["id"],
        }

    def publish(self, **overrides: Any) -> str:
        """POST the event (the clock starts here); return its id."""
        body = {**self.event_body(), **overrides}
        self.started = time.monotonic()
        response = self.stack.post("events", "/api/v1/events", body)
        assert response.status_code == 201, response.text
        self.event_id = str(response.json()["id"])
        return self.event_id

    def edit(self, patch: dict[str, Any]) -> dict[str, Any]:
        """PATCH the published event (the clock starts again here); return the new event."""
        self.started = time.monotonic()
        response = self.stack.http.patch(
            self.stack.url("events", f"/api/v1/events/{self.event_id}"), json=patch, timeout=10
        )
        assert response.status_code == 200, response.text
        event: dict[str, Any] = response.json()
        return event

    def arrivals(self) -> list[Arrival]:
        """The event's mail of the kinds the case counts, oldest first."""
        return [a for a in self.smtp.arrivals(self.event_id) if a.kind in self.kinds]

    def arrived(self) -> int:
        return len(self.arrivals())

    def wait_until_flowing(self, count: int = FLOWING, timeout: float = 60) -> None:
        """Wait until ``count`` mails of this event arrived."""
        try:
            wait_until(
                lambda: self.arrived() >= count,
                timeout=timeout,
                message=f"{count} mails of {self.case} before injecting the fault",
            )
        except AssertionError as exc:
            self._measure()
            self.report.add(self.result)
            raise AssertionError(f"{exc}{self.diagnosis()}") from None

    def fault_now(self) -> int:
        """Note that the fault is in effect now: how many mails were in by then."""
        self.at_fault = self.arrived()
        return self.at_fault

    # -- counting ------------------------------------------------------------------------------

    def _all_arrived(self) -> bool:
        got = {(a.recipient, a.kind) for a in self.arrivals()}
        return self.expected <= got

    def _settled(self) -> bool:
        """Ledger all ``sent`` and no message left in a work or retry queue (all acked)."""
        total = sum(
            self.stack.get(
                "notify",
                "/api/v1/deliveries",
                event_id=self.event_id,
                kind=kind,
                status="sent",
                page_size=1,
            ).json()["total"]
            for kind in self.kinds
        )
        return total >= len(self.expected) and not self.unsettled()

    def _dead_letters_grown(self) -> dict[str, int]:
        now = self.dead_letter_counts()
        return {q: now[q] - self.dead_before[q] for q in self.dead_letter_queues}

    def _delivered_or_stuck(self) -> str | None:
        """``delivered`` when all is in; otherwise why waiting longer is pointless, or None."""
        if self._all_arrived():
            return "delivered"
        if gone := crashed(self.stack):
            return f"processes exited on their own before full delivery: {gone}"
        grown = self._dead_letters_grown()
        if any(n > self.dead_letters for n in grown.values()):
            return f"the event was dead-lettered before full delivery: {grown}"
        return None

    def finish(
        self, timeout: float = 150, duplicate_bound: int = 0, dead_letters: int = 0
    ) -> CaseResult:
        """Wait for full delivery and a quiet system, measure, add the row to the report.

        ``dead_letters`` is how many messages each dead-letter queue should gain (the poison
        injected); more than that means a valid event was given up on, and the wait ends early.
        """
        self.result.duplicate_bound = duplicate_bound
        self.result.at_fault = self.at_fault
        self.dead_letters = dead_letters
        deadline = time.monotonic() + timeout
        try:
            outcome = wait_until(
                self._delivered_or_stuck,
                timeout=timeout,
                interval=0.5,
                message="full delivery",
            )
        except AssertionError as exc:
            self.problems.append(str(exc))
        else:
            if outcome and outcome != "delivered":
                self.problems.append(outcome)
        if not self.problems:
            try:
                wait_until(
                    self._settled,
                    timeout=max(deadline - time.monotonic(), 30),
                    interval=1,
                    message="ledger all sent and work and retry queues empty",
                )
            except AssertionError as exc:
                self.problems.append(str(exc))
        self._measure()
        self.report.add(self.result)
        return self.result

    def _measure(self) -> None:
        arrivals = self.arrivals()
        copies = Counter((a.recipient, a.kind) for a in arrivals)
        expected = self.expected
        r = self.result
        r.delivered = len(expected & copies.keys())
        r.lost = len(expected - copies.keys())
        r.duplicated = sum(n - 1 for n in copies.values() if n > 1)
        r.unexpected = len(copies.keys() - expected)
        if r.lost == 0:
            first: dict[Key, float] = {}
            for a in arrivals:
                first.setdefault((a.recipient, a.kind), a.at)
            r.seconds_to_full_delivery = max(first[k] for k in expected) - self.started

    # -- the guarantees ------------------------------------------------------------------------

    def diagnosis(self) -> str:
        """Where things stand: ledger counts, queues, processes, and the workers' last words."""
        try:
            ledger: object = self.stack.get(
                "notify", "/api/v1/deliveries/summary", event_id=self.event_id
            ).json()
        except Exception as exc:  # noqa: BLE001 - a diagnosis must not hide the failure
            ledger = f"unavailable ({exc})"
        try:
            queues: object = self.unsettled()
        except Exception as exc:  # noqa: BLE001
            queues = f"unavailable ({exc})"
        names = [
            n
            for n, spec in self.stack.specs.items()
            if spec.process.role == "worker" or n == "events-relay"
        ]
        tails = "\n".join(f"  {n}:\n{log_tail(self.stack, n)}" for n in names)
        return (
            f"\ncase {self.case}, event {self.event_id}\n  ledger: {ledger}\n"
            f"  queues holding messages: {queues}\n  processes not running: {exited(self.stack)}"
            f"\n  logs in {self.stack.workdir}; last lines:\n{tails}"
        )

    def assert_guarantees(self) -> None:
        """Every promise of issue 3, checked at the SMTP server, in the ledger and the broker."""
        r = self.result
        arrivals = self.arrivals()
        copies = Counter((a.recipient, a.kind) for a in arrivals)
        expected = self.expected
        lost = sorted(expected - copies.keys())
        if self.at_fault is not None:
            assert self.at_fault < r.expected, (
                f"the fault came after all {self.at_fault} mails were in: it proved nothing"
            )
        assert not self.problems and not lost, (
            f"{r.lost} of {r.expected} never arrived (e.g. {lost[:3]}); "
            f"{'; '.join(self.problems)}{self.diagnosis()}"
        )
        strangers = sorted(copies.keys() - expected)
        assert not strangers, f"mail to organisations outside the audience: {strangers[:5]}"
        twice = sorted((k, n) for k, n in copies.items() if n > 1)
        assert r.duplicated <= r.duplicate_bound, (
            f"{r.duplicated} duplicates, at most {r.duplicate_bound} allowed: {twice[:10]}"
            f"{self.diagnosis()}"
        )

        rows = [r for r in self.stack.deliveries(self.event_id) if r["kind"] in self.kinds]
        failed = {
            (str(row["recipient"]).lower(), str(row["kind"]))
            for row in rows
            if row["status"] == "failed" and row["last_error"]
        }
        assert failed == self.failing, (
            f"{len(failed)} deliveries failed with a reason, {len(self.failing)} expected to: "
            f"{sorted(failed ^ self.failing)[:5]}"
        )
        rows = [r for r in rows if (str(r["recipient"]).lower(), str(r["kind"])) not in failed]
        statuses = Counter(row["status"] for row in rows)
        ledger = Counter((str(row["recipient"]).lower(), str(row["kind"])) for row in rows)
        assert len(rows) == len(expected) and ledger.keys() == expected, (
            f"the ledger has {len(rows)} rows for {len(expected)} expected deliveries "
            f"({len(ledger.keys() - expected)} unexpected, {len(expected - ledger.keys())} missing)"
        )
        sent = {
            (str(row["recipient"]).lower(), str(row["kind"]))
            for row in rows
            if row["status"] == "sent"
        }
        received = set(copies)
        assert sent == received, (
            f"ledger and SMTP server disagree: {len(received - sent)} received but not 'sent' "
            f"(e.g. {sorted(received - sent)[:3]}), {len(sent - received)} 'sent' but never "
            f"received (e.g. {sorted(sent - received)[:3]}); ledger statuses {dict(statuses)}"
        )

        grown = self._dead_letters_grown()
        assert grown == dict.fromkeys(self.dead_letter_queues, self.dead_letters), (
            f"dead-letter queues grew by {grown}, expected {self.dead_letters} each"
            f"{self.diagnosis()}"
        )
        assert not exited(self.stack), f"processes exited: {exited(self.stack)}{self.diagnosis()}"
