"""Ours: the real stack as processes (tests/support/stack.py), timed from POST to the last mail."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from bench.common import COUNTRY, event_body, log, require_tool
from bench.procs import CpuMeter, RssPoller, SystemMeter, by_name, tree, vm_hwm_kib
from bench.seed import seed_csos
from bench.sink import SmtpSink
from support.stack import ProcessSpec, Stack

#: Counters of ``pg_stat_user_tables`` (in this order) compared before and after the fan-out:
#: which table is read how (a sequential scan's rows grow with the table, an index scan's with
#: the rows wanted).
TABLE_COUNTERS = ("seq_scan", "seq_tup_read", "idx_scan", "idx_tup_fetch", "n_tup_ins", "n_tup_upd")


def table_stats(database_url: str) -> dict[str, dict[str, int]]:
    """PostgreSQL's per-table access counters of one database ({} for SQLite)."""
    if not database_url.startswith("postgresql"):
        return {}
    import psycopg

    dsn = database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        # The statistics collector reports with a delay; ask for a fresh snapshot.
        conn.execute("SELECT pg_stat_clear_snapshot()")
        rows = conn.execute(
            "SELECT relname, seq_scan, seq_tup_read, coalesce(idx_scan, 0),"
            " coalesce(idx_tup_fetch, 0), n_tup_ins, n_tup_upd FROM pg_stat_user_tables"
        ).fetchall()
    return {str(r[0]): dict(zip(TABLE_COUNTERS, map(int, r[1:]), strict=True)) for r in rows}


def table_growth(
    before: dict[str, dict[str, int]], after: dict[str, dict[str, int]]
) -> dict[str, dict[str, int]]:
    """What each table's counters grew by, tables that did not move left out."""
    grown: dict[str, dict[str, int]] = {}
    for table, counters in after.items():
        delta = {c: v - before.get(table, {}).get(c, 0) for c, v in counters.items()}
        if any(delta.values()):
            grown[table] = delta
    return grown


#: What a worker logs for each ledger write of mail the SMTP server accepted
#: (tacso_notify.handlers): ``... deliveries 101, 102, 103 accepted by SMTP``.
ACCEPTED_LOG_LINE = re.compile(r"deliveries ([0-9][0-9, ]*) accepted by SMTP")


def accepted_count(log_text: str) -> int:
    """How many mails a worker's log says the SMTP server accepted."""
    return sum(len(m.group(1).split(",")) for m in ACCEPTED_LOG_LINE.finditer(log_text))


#: The services' own defaults (README): 2 gunicorn workers x 4 threads per API.
STACK_ENV = {"WEB_CONCURRENCY": "2", "WEB_THREADS": "4", "LOG_LEVEL": "INFO"}
if os.environ.get("BENCH_SMTP_CONNECTIONS"):
    # The workers' SMTP connections (notify's SMTP_CONNECTIONS, default 4).
    STACK_ENV["SMTP_CONNECTIONS"] = os.environ["BENCH_SMTP_CONNECTIONS"]


def queue_consumers(amqp_url: str, queue: str) -> int:
    """Consumers on ``queue`` or, if it is split (``queue.<country>``), on the benchmark's part."""
    vhost = unquote(amqp_url.rsplit("/", 1)[1])
    names = {queue, f"{queue}.{COUNTRY}"}
    out = subprocess.run(
        ["rabbitmqctl", "-q", "list_queues", "-p", vhost, "name", "consumers"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    ).stdout
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] in names and parts[1].isdigit():
            return int(parts[1])
    return 0


def _wait_consumer(amqp_url: str, queue: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while queue_consumers(amqp_url, queue) < 1:
        if time.monotonic() > deadline:
            raise RuntimeError(f"no consumer on {queue} after {timeout}s")
        time.sleep(0.3)


def _ledger_sent(stack: Stack, event_id: str) -> int:
    response = stack.get(
        "notify", "/api/v1/deliveries", event_id=event_id, status="sent", page=1, page_size=1
    )
    response.raise_for_status()
    total: int = response.json()["total"]
    return total


#: What py-spy records per target: (file suffix, format, only samples holding the GIL?).
#: "-gil" files are the CPU view (what keeps the interpreter busy); the others are every thread's
#: wall-clock stack (threads waiting on a socket included), i.e. what the code waits on.
PROFILES = {
    "notify-invitations": [
        ("txt", "raw", False),
        ("gil.txt", "raw", True),
        ("gil.svg", "flamegraph", True),
    ],
    "registry": [("gil.txt", "raw", True)],
}


class Profiler:
    """py-spy record (non-blocking: the target is never paused) on some processes."""

    def __init__(self, targets: dict[str, int], outdir: Path, rate: int = 100) -> None:
        self.targets = targets
        self.outdir = outdir
        self.rate = rate
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def __enter__(self) -> Profiler:
        binary = require_tool("py-spy")
        self.outdir.mkdir(parents=True, exist_ok=True)
        for name, pid in self.targets.items():
            for ext, fmt, gil in PROFILES[name]:
                args = [
                    binary,
                    "record",
                    "--nonblocking",
                    "--rate",
                    str(self.rate),
                    "--format",
                    fmt,
                    "-o",
                    str(self.outdir / f"profile-{name}.{ext}"),
                    "--pid",
                    str(pid),
                ]
                if gil:
                    args.append("--gil")
                if name.endswith("api"):
                    args.append("--subprocesses")
                self.procs[f"{name}.{ext}"] = subprocess.Popen(
                    args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                )
        time.sleep(1.0)  # py-spy attaches before the clock starts
        return self

    def __exit__(self, *_: object) -> None:
        for proc in self.procs.values():
            proc.send_signal(signal.SIGINT)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()


def run_ours(
    sink: SmtpSink,
    amqp_url: str,
    urls: dict[str, str],
    n: int,
    run: str,
    workdir: Path,
    profile_dir: Path | None = None,
    invitation_workers: int = 1,
) -> dict[str, Any]:
    """One fan-out of ``n`` invitations on a fresh stack, timed from the POST to the sink's count.

    ``invitation_workers`` > 1 runs that many invitations workers (``notify-invitations-1``, ...)
    instead of one: they share the event's page tasks, and the row says how much each sent.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    stack = Stack(workdir, amqp_url, urls, sink.host, sink.port, extra_env=STACK_ENV)
    workers = ["notify-invitations"]
    if invitation_workers > 1:
        spec = stack.specs.pop("notify-invitations")
        workers = [f"notify-invitations-{i}" for i in range(1, invitation_workers + 1)]
        for name in workers:
            stack.specs[name] = ProcessSpec(spec.process, spec.port, dict(spec.env))
    stack.migrate()
    seeded = seed_csos(urls["registry"], n, run)
    log(f"ours N={n}: seeded {n} CSOs in {seeded['seconds']} s")
    stack.start()
    try:
        _wait_consumer(amqp_url, "notify.invitations")
        organiser = stack.organisation(COUNTRY, "resource_centre")
        body = event_body(organiser["id"])
        processes = stack.processes
        worker_pid = processes[workers[0]].pid
        system = SystemMeter()
        meter = CpuMeter(
            {
                **{name: (lambda p=p: tree(p.pid)) for name, p in processes.items()},
                "rabbitmq": by_name("beam.smp"),
                "postgres": by_name("postgres"),
                "smtp_sink": lambda: tree(sink.pid),
            }
        )
        profiler = (
            Profiler(
                {
                    workers[0]: worker_pid,
                    "registry": processes["registry"].pid,
                },
                profile_dir,
            )
            if profile_dir is not None
            else contextlib.nullcontext()
        )
        base = sink.mark()
        tables_before = {svc: table_stats(urls[svc]) for svc in ("registry", "notify")}
        with profiler, RssPoller([worker_pid]) as rss:
            meter.start()
            system.start()
            t0 = time.monotonic()
            response = stack.post("events", "/api/v1/events", body)
            t_returned = time.monotonic()
            if response.status_code != 201:
                raise RuntimeError(f"POST /api/v1/events: {response.status_code} {response.text}")
            done = sink.wait_for(base + n, stall_timeout=60)
            cpu = meter.stop()
            machine_load = system.stop()
        first = sink.first_after(base)
        event_id = response.json()["id"]
        # The ledger is exact when the last batch of sent rows is flushed (at most 0.5 s later).
        deadline = time.monotonic() + 30
        sent = _ledger_sent(stack, event_id)
        while sent < n and time.monotonic() < deadline:
            time.sleep(0.2)
            sent = _ledger_sent(stack, event_id)
        time.sleep(1.0)
        # PostgreSQL sends its counters to the collector at most every 0.5 s (after the sleep).
        tables = {
            svc: table_growth(tables_before[svc], table_stats(urls[svc])) for svc in tables_before
        }
        extra = sink.count - (base + n)
        hwm = vm_hwm_kib(worker_pid)
        seconds = done - t0
        result = {
            "n": n,
            "database": "postgresql" if urls["registry"].startswith("postgresql") else "sqlite",
            "seconds": round(seconds, 3),
            "emails_per_s": round(n / seconds, 1),
            "post_seconds": round(t_returned - t0, 4),
            "first_accepted_after_post_s": round(first - t_returned, 4) if first else None,
            "steady_emails_per_s": round((n - 1) / (done - first), 1) if first else None,
            "worker_peak_rss_mib_vmhwm": round(hwm / 1024, 1) if hwm else None,
            "worker_peak_rss_mib_polled": round(rss.peak_bytes / 2**20, 1),
            "ledger_sent": sent,
            "extra_mail_accepted": extra,
            "cpu_seconds": cpu,
            "machine": machine_load,
            "seed": seeded,
            "pg_tables": tables,
            "invitation_workers": len(workers),
            # Each worker logs the deliveries the SMTP server accepted from it, batch by batch.
            "sent_by_worker": {name: accepted_count(stack.log(name)) for name in workers},
        }
        log(
            f"ours N={n}: {result['emails_per_s']}/s in {result['seconds']} s, first after "
            f"{result['first_accepted_after_post_s']} s, worker peak RSS "
            f"{result['worker_peak_rss_mib_vmhwm']} MiB, ledger sent {sent}"
        )
        return result
    finally:
        stack.stop()
