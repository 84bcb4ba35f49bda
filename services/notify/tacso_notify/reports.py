"""The per-event report: what became of every mail about one event, for people and spreadsheets.

Built from the delivery ledger alone: counts by kind and status, failures grouped by their
reason, suppressed recipients, and mail accepted over time. ``report_csv`` and ``report_svg``
turn it into a CSV file (UTF-8 with a BOM, so spreadsheets read the Cyrillic and the accents) and
a small chart drawn on the server (no script, no CDN).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from xml.sax.saxutils import escape

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from tacso_notify.models import FAILED, SENT, Delivery, RegistrationState, Suppression

#: The RSVP funnel's steps, in order: invited (an invitation accepted by the SMTP server), then
#: the organisations whose registration is now in each status (notify's registration mirror).
FUNNEL = ("invited", "confirmed", "offered", "waitlisted", "declined", "cancelled", "expired")


@dataclass(frozen=True)
class ReportRow:
    """How many deliveries of one kind ended in one status, for one reason (failures only)."""

    kind: str
    status: str
    reason: str
    count: int


@dataclass(frozen=True)
class TimelinePoint:
    """Mail accepted by the SMTP server in one minute (``at`` is the minute's start)."""

    at: datetime
    kind: str
    sent: int


@dataclass(frozen=True)
class EventReport:
    """Everything the ledger knows about one event's mail."""

    event_id: str
    rows: list[ReportRow]
    timeline: list[TimelinePoint]
    suppressed_recipients: int
    first_sent_at: datetime | None
    last_sent_at: datetime | None
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    #: The RSVP funnel (:data:`FUNNEL`): invited, then registrations by their current status.
    funnel: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(row.count for row in self.rows)


class NoDeliveries(Exception):
    """The ledger has nothing about this event."""


def event_report(sessions: sessionmaker[Session], event_id: str) -> EventReport:
    """The report of one event; :class:`NoDeliveries` if notify never sent anything about it."""
    d = Delivery
    with sessions() as session:
        grouped = session.execute(
            sa.select(d.kind, d.status, d.last_error, sa.func.count())
            .where(d.event_id == event_id)
            .group_by(d.kind, d.status, d.last_error)
        ).all()
        if not grouped:
            raise NoDeliveries(event_id)
        sent_at = session.execute(
            sa.select(d.kind, d.sent_at).where(
                d.event_id == event_id, d.status == SENT, d.sent_at.is_not(None)
            )
        ).all()
        statuses = session.execute(
            sa.select(RegistrationState.status, sa.func.count())
            .where(RegistrationState.event_id == event_id)
            .group_by(RegistrationState.status)
        ).all()
        suppressed = session.scalar(
            sa.select(sa.func.count(sa.distinct(d.recipient))).where(
                d.event_id == event_id,
                d.recipient.in_(sa.select(Suppression.email)),
            )
        )
    merged: dict[tuple[str, str, str], int] = {}
    counts: dict[str, dict[str, int]] = {}
    for kind, status, reason, count in grouped:
        # Only failures carry a reason worth grouping by; a pending row's last error is history.
        key = (kind, status, (reason or "") if status == FAILED else "")
        merged[key] = merged.get(key, 0) + count
        counts.setdefault(kind, {})[status] = counts.get(kind, {}).get(status, 0) + count
    rows = [ReportRow(k, s, r, n) for (k, s, r), n in sorted(merged.items())]
    buckets: dict[tuple[datetime, str], int] = {}
    for kind, moment in sent_at:
        if moment is None:  # pragma: no cover - the query excludes them
            continue
        minute = moment.replace(second=0, microsecond=0)
        buckets[(minute, kind)] = buckets.get((minute, kind), 0) + 1
    timeline = [TimelinePoint(at, kind, n) for (at, kind), n in sorted(buckets.items())]
    moments = [moment for _, moment in sent_at if moment is not None]
    funnel = dict.fromkeys(FUNNEL, 0)
    funnel["invited"] = counts.get("invitation", {}).get(SENT, 0)
    for status, count in statuses:
        if status in funnel:
            funnel[status] += count
    return EventReport(
        event_id=event_id,
        rows=rows,
        timeline=timeline,
        suppressed_recipients=int(suppressed or 0),
        first_sent_at=min(moments) if moments else None,
        last_sent_at=max(moments) if moments else None,
        counts=counts,
        funnel=funnel,
    )


def report_csv(report: EventReport) -> bytes:
    """The report's rows as CSV: ``kind,status,reason,count``; the counts sum to the ledger's."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["kind", "status", "reason", "count"])
    for row in report.rows:
        writer.writerow([row.kind, row.status, row.reason, row.count])
    # The BOM tells spreadsheet programs the file is UTF-8.
    return "\ufeff".encode() + out.getvalue().encode("utf-8")


def funnel_svg(report: EventReport, width: int = 560, bar: int = 22) -> str:
    """The RSVP funnel as horizontal bars (one per step, longest = the largest): inline SVG."""
    steps = list(report.funnel.items())
    top = max([count for _, count in steps] + [1])
    label_width, gap = 110, 6
    height = len(steps) * (bar + gap)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="RSVP funnel">'
    ]
    for index, (step, count) in enumerate(steps):
        y = index * (bar + gap)
        length = round((width - label_width - 60) * count / top)
        parts.append(
            f'<text x="0" y="{y + bar - 6}" font-size="13">{escape(step)}</text>'
            f'<rect x="{label_width}" y="{y}" width="{length}" height="{bar}" fill="#1f5f8b"/>'
            f'<text x="{label_width + length + 6}" y="{y + bar - 6}" font-size="13">{count}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def report_svg(report: EventReport, width: int = 560, height: int = 180) -> str:
    """Mail accepted over time, cumulative, one line per kind: an inline SVG element."""
    pad = 30
    if not report.timeline or report.first_sent_at is None or report.last_sent_at is None:
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'role="img" aria-label="No mail accepted yet"><text x="{pad}" y="{height // 2}">'
            "No mail accepted yet</text></svg>"
        )
    start = report.timeline[0].at
    end = max(report.timeline[-1].at, start) + timedelta(minutes=1)
    span = max((end - start).total_seconds(), 60.0)
    kinds = sorted({p.kind for p in report.timeline})
    totals = {k: sum(p.sent for p in report.timeline if p.kind == k) for k in kinds}
    top = max(totals.values()) or 1
    colours = ("#1f5fa8", "#b3541e", "#2e7d32", "#6a1b9a")
    lines = []
    for index, kind in enumerate(kinds):
        total = 0
        points = [f"{pad},{height - pad}"]
        for point in (p for p in report.timeline if p.kind == kind):
            total += point.sent
            x = pad + (width - 2 * pad) * ((point.at - start).total_seconds() + 60) / span
            y = height - pad - (height - 2 * pad) * total / top
            points.append(f"{x:.1f},{y:.1f}")
        lines.append(
            f'<polyline fill="none" stroke="{colours[index % len(colours)]}" stroke-width="2" '
            f'points="{" ".join(points)}"><title>{escape(kind)}: {total}</title></polyline>'
        )
    label = f"Mail accepted over time, {start:%Y-%m-%d %H:%M} to {end:%H:%M} UTC"
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="{escape(label)}">'
        f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" '
        'stroke="#555"/>'
        f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{height - pad}" stroke="#555"/>'
        f'<text x="{pad}" y="{pad - 8}" font-size="12">{top}</text>'
        f'<text x="{pad}" y="{height - 8}" font-size="12">{start:%H:%M}</text>'
        f'<text x="{width - pad - 30}" y="{height - 8}" font-size="12">{end:%H:%M}</text>'
        + "".join(lines)
        + "</svg>"
    )
