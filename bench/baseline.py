"""Runs the Celery baseline (bench/celery_baseline) against the same broker vhost and sink."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import ROOT, event_data, log
from bench.procs import CpuMeter, RssPoller, SystemMeter, by_name, tree
from bench.sink import SmtpSink

CONCURRENCY = 2


def run_baseline(
    sink: SmtpSink, amqp_url: str, registry_db: str, n: int, workdir: Path
) -> dict[str, Any]:
    env = {
        **os.environ,
        "BENCH_BROKER_URL": amqp_url,
        "BENCH_DATABASE_URL": registry_db,
        "BENCH_SMTP_HOST": sink.host,
        "BENCH_SMTP_PORT": str(sink.port),
    }
    os.environ.update({k: v for k, v in env.items() if k.startswith("BENCH_")})
    from bench.celery_baseline import tasks

    # The app may have published to another run's vhost: give every run its own connection.
    connection = tasks.app.connection_for_write(amqp_url)
    workdir.mkdir(parents=True, exist_ok=True)
    logfile = open(workdir / "celery-worker.log", "ab")  # noqa: SIM115 - closed below
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "bench.celery_baseline.tasks",
            "worker",
            "--pool",
            "prefork",
            "--concurrency",
            str(CONCURRENCY),
            "--loglevel",
            "WARNING",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-Q",
            "bench_invitations",
            "-n",
            f"bench-{os.getpid()}@%h",
        ],
        cwd=ROOT,
        env=env,
        stdout=logfile,
        stderr=subprocess.STDOUT,
    )
    try:
        # Warm up: both processes up and holding an SMTP connection before the clock starts.
        base = sink.mark()
        warm = event_data()
        for i in range(4):
            tasks.send_invitation.apply_async(
                (warm, {"id": f"w{i}", "name": "Warm up", "email": f"warm-{i}@bench.example.org"}),
                connection=connection,
            )
        sink.wait_for(base + 4, stall_timeout=60)
        event = event_data()
        system = SystemMeter()
        meter = CpuMeter(
            {
                "celery_worker": lambda: tree(worker.pid),
                "rabbitmq": by_name("beam.smp"),
                "postgres": by_name("postgres"),
                "smtp_sink": lambda: tree(sink.pid),
            }
        )
        base = sink.mark()
        meter.start()
        system.start()
        with RssPoller([worker.pid]) as rss:
            t0 = time.monotonic()
            tasks.fan_out.apply_async((event,), connection=connection)
            t_returned = time.monotonic()
            done = sink.wait_for(base + n, stall_timeout=60)
        cpu = meter.stop()
        machine_load = system.stop()
        first = sink.first_after(base)
        seconds = done - t0
        result = {
            "n": n,
            "seconds": round(seconds, 3),
            "emails_per_s": round(n / seconds, 1),
            "first_accepted_after_enqueue_s": round(first - t_returned, 4) if first else None,
            "peak_rss_tree_mib": round(rss.peak_bytes / 2**20, 1),
            "cpu_seconds": cpu,
            "machine": machine_load,
            "processes": f"celery prefork, concurrency {CONCURRENCY}, acks_late, prefetch x4",
            "message_bytes": len(
                tasks.build_message(
                    event, {"name": "Civic Association 1", "email": "a@b.org"}
                ).as_bytes()
            ),
        }
        log(f"baseline N={n}: {result['emails_per_s']}/s in {result['seconds']} s")
        return result
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(timeout=5)
        logfile.close()
        connection.release()
