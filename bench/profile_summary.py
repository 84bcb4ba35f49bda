"""Summarises a py-spy ``--format raw`` profile (collapsed stacks): where the samples went."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")

#: Buckets by which code a sample is under, in this order: the first that matches any frame of
#: the sample's stack wins (so the loop in handlers.py only gets what no callee took).
WORKER_BUCKETS: list[tuple[str, tuple[str, ...]]] = [
    ("rendering (for_recipient)", ("tacso_notify/rendering.py",)),
    ("SMTP (mailer + smtplib + socket)", ("smtplib.py", "tacso_notify/mailer.py")),
    ("ledger (SQLAlchemy + psycopg)", ("tacso_notify/ledger.py",)),
    ("audience (registry HTTP: requests + JSON)", ("tacso_notify/audience.py",)),
    ("fan-out loop itself (handlers.py)", ("tacso_notify/handlers.py",)),
    ("AMQP consumer / kombu", ("kombu/", "amqp/", "tacso_shared/consumer.py")),
    ("logging", ("logging/",)),
]


REGISTRY_BUCKETS: list[tuple[str, tuple[str, ...]]] = [
    ("marshmallow serialisation", ("marshmallow/",)),
    ("JSON encoding", ("json/", "flask/json")),
    ("SQLAlchemy ORM (objects from rows)", ("sqlalchemy/orm/",)),
    ("SQL execution (SQLAlchemy core + driver)", ("sqlalchemy/", "psycopg/", "sqlite3/")),
    ("auth / flask-smorest / Flask / werkzeug", ("flask_smorest/", "flask/", "werkzeug/")),
    ("gunicorn", ("gunicorn/",)),
    ("logging", ("logging/",)),
]


def _file(frame: str) -> str:
    match = _FRAME.match(frame)
    return match.group("file") if match else frame


def _func(frame: str) -> str:
    match = _FRAME.match(frame)
    if not match:
        return frame
    file = match.group("file")
    short = "/".join(file.split("/")[-2:])
    return f"{match.group('func')} ({short})"


def summarise(
    path: Path, buckets_spec: list[tuple[str, tuple[str, ...]]], top: int = 15
) -> dict[str, Any]:
    if not path.exists():
        return {"error": f"{path.name} missing (py-spy failed?)"}
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    buckets: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if f]
        if not frames:
            continue
        total += count
        self_time[_func(frames[-1])] += count
        for func in {_func(f) for f in frames}:
            inclusive[func] += count
        files = [_file(f) for f in reversed(frames)]
        bucket = "other"
        for name, needles in buckets_spec:
            if any(needle in file for file in files for needle in needles):
                bucket = name
                break
        buckets[bucket] += count

    def pct(counter: Counter[str]) -> list[dict[str, Any]]:
        return [
            {"function": k, "samples": v, "percent": round(100 * v / total, 1)}
            for k, v in counter.most_common(top)
        ]

    return {
        "file": path.name,
        "samples": total,
        "buckets": pct(buckets),
        "self": pct(self_time),
        "inclusive": pct(inclusive),
    }
