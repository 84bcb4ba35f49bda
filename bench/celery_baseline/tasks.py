"""The invitation fan-out as a competent team would write it with Flask + Celery.

- ``fan_out`` (queued by the web app when an event is published) streams the audience from the
  database and queues one ``send_invitation`` task per recipient;
- ``send_invitation`` renders the Jinja2 templates, builds an ``EmailMessage`` (text + HTML
  alternatives + the .ics attachment) and sends it over an SMTP connection kept open per worker
  process; ``acks_late`` so a crash redelivers; retries on passing SMTP failures.

Run with ``celery -A bench.celery_baseline.tasks worker --pool prefork --concurrency 2``. Settings
come from the environment: ``BENCH_BROKER_URL``, ``BENCH_DATABASE_URL``, ``BENCH_SMTP_HOST``,
``BENCH_SMTP_PORT``.
"""

from __future__ import annotations

import functools
import os
import smtplib
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid
from typing import Any

import icalendar
import jinja2
import sqlalchemy as sa
from celery import Celery
from celery.signals import worker_process_init

app = Celery(
    "bench_baseline", broker=os.environ.get("BENCH_BROKER_URL", "amqp://guest@127.0.0.1//")
)
app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    task_ignore_result=True,
    task_default_queue="bench_invitations",
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)

MAIL_FROM = "events@tacso.local"

TEXT = """\
Dear {{ name }},

{{ event.organiser_name }} invites you to the following workshop
in {{ country }}:

  {{ event.title }}

When:    {{ when }}
Where:   {{ event.venue.name }}, {{ event.venue.address }}, {{ event.venue.city }}
Topics:  {{ topics }}
Places:  {{ event.capacity }}

{{ event.description }}

How to register: open the event page and register there:
{{ event.url }}

The attached invite.ics adds the event to your calendar.

--
TACSO Events
You receive this invitation because your organisation is in the TACSO
registry of civil society organisations.
"""

HTML = """\
<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>{{ event.title }}</title></head>
<body style="font-family: Arial, sans-serif; color: #222;">
<p>Dear {{ name }},</p>
<p>{{ event.organiser_name }} invites you to the following workshop in {{ country }}:</p>
<h1 style="font-size: 20px;">{{ event.title }}</h1>
<table role="presentation" cellpadding="4">
<tr><th align="left">When</th><td>{{ when }}</td></tr>
<tr><th align="left">Where</th><td>{{ event.venue.name }}, {{ event.venue.address }},
{{ event.venue.city }}</td></tr>
<tr><th align="left">Topics</th><td>{{ topics }}</td></tr>
<tr><th align="left">Places</th><td>{{ event.capacity }}</td></tr>
</table>
{% for paragraph in event.description.split("\\n\\n") %}<p>{{ paragraph }}</p>
{% endfor %}
<p><a href="{{ event.url }}">Open the event page and register</a></p>
<p>The attached invite.ics adds the event to your calendar.</p>
<hr>
<p style="font-size: 12px; color: #666;">TACSO Events. You receive this invitation because your
organisation is in the TACSO registry of civil society organisations.</p>
</body>
</html>
"""

_env = jinja2.Environment(
    loader=jinja2.DictLoader({"invitation.txt": TEXT, "invitation.html": HTML}),
    autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default_for_string=False),
)
_text = _env.get_template("invitation.txt")
_html = _env.get_template("invitation.html")

_smtp: smtplib.SMTP | None = None


@worker_process_init.connect
def _fresh_connection(**_: Any) -> None:
    """Each forked worker process opens its own SMTP connection on first use."""
    global _smtp
    _smtp = None


def _connection() -> smtplib.SMTP:
    global _smtp
    if _smtp is None:
        _smtp = smtplib.SMTP(
            os.environ.get("BENCH_SMTP_HOST", "127.0.0.1"),
            int(os.environ.get("BENCH_SMTP_PORT", "25")),
            timeout=30,
        )
    return _smtp


@functools.lru_cache(maxsize=64)
def _calendar(event_id: str, title: str, starts_at: str, ends_at: str, url: str) -> bytes:
    """The .ics of an event (the same for every recipient, so built once per process)."""
    vevent = icalendar.Event()
    vevent.add("uid", f"event-{event_id}@tacso.local")
    vevent.add("sequence", 0)
    vevent.add("dtstamp", datetime.now(UTC).replace(microsecond=0))
    vevent.add("dtstart", datetime.fromisoformat(starts_at).astimezone(UTC))
    vevent.add("dtend", datetime.fromisoformat(ends_at).astimezone(UTC))
    vevent.add("summary", title)
    vevent.add("url", url)
    vevent.add("organizer", f"mailto:{MAIL_FROM}")
    calendar = icalendar.Calendar()
    calendar.add("prodid", "-//TACSO//Events//EN")
    calendar.add("version", "2.0")
    calendar.add("method", "REQUEST")
    calendar.add_component(vevent)
    result: bytes = calendar.to_ical()
    return result


def build_message(event: dict[str, Any], recipient: dict[str, Any]) -> EmailMessage:
    """The personalised invitation: text and HTML alternatives, the .ics attached."""
    context = {
        "name": recipient["name"],
        "event": event,
        "country": "Montenegro",
        "when": f"{event['starts_at']} to {event['ends_at']} (Europe/Podgorica)",
        "topics": ", ".join(event["topics"]),
    }
    message = EmailMessage()
    message["From"] = formataddr(("TACSO Events", MAIL_FROM))
    message["To"] = formataddr((recipient["name"], recipient["email"]))
    message["Subject"] = f"Invitation: {event['title']}"
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = make_msgid(domain="tacso.local")
    message["X-TACSO-Event-Id"] = event["event_id"]
    message.set_content(_text.render(context))
    message.add_alternative(_html.render(context), subtype="html")
    ics = _calendar(
        event["event_id"], event["title"], event["starts_at"], event["ends_at"], event["url"]
    )
    message.add_attachment(
        ics,
        maintype="text",
        subtype="calendar",
        filename="invite.ics",
        params={"method": "REQUEST"},
    )
    return message


@app.task(bind=True, max_retries=5, default_retry_delay=5)
def send_invitation(self: Any, event: dict[str, Any], recipient: dict[str, Any]) -> None:
    global _smtp
    message = build_message(event, recipient)
    try:
        _connection().send_message(message)
    except (smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError, OSError) as exc:
        _smtp = None
        raise self.retry(exc=exc) from exc


_engine: sa.Engine | None = None


@app.task
def fan_out(event: dict[str, Any]) -> int:
    """Queue one ``send_invitation`` per CSO of the event's country working on its topics."""
    global _engine
    if _engine is None:
        url = os.environ["BENCH_DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://", 1)
        _engine = sa.create_engine(url)
    query = sa.text(
        "SELECT o.id, o.name, o.email FROM organisations o WHERE o.country = :country "
        "AND o.kind = 'cso' AND o.mailing_consent AND EXISTS (SELECT 1 FROM organisation_topics t "
        "WHERE t.organisation_id = o.id AND t.topic IN :topics) ORDER BY o.id"
    ).bindparams(sa.bindparam("topics", expanding=True))
    queued = 0
    with _engine.connect() as conn:
        rows = conn.execution_options(stream_results=True, yield_per=1000).execute(
            query, {"country": event["country"], "topics": list(event["topics"])}
        )
        for org_id, name, email in rows:
            send_invitation.delay(event, {"id": org_id, "name": name, "email": email})
            queued += 1
    return queued
