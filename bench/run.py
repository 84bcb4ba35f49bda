"""``make bench``: the fan-out benchmark (limit, Celery baseline, ours) and the HTTP benchmark.

Environment (the make target passes them through):
  BENCH_N              audience sizes, default 1000,10000,50000,200000
  BENCH_BASELINE_MAX_N largest N the Celery baseline runs (default 10000: at ~100/s, 50,000
                       would take 8 minutes)
  BENCH_LIMIT_K        connections of the multi-connection limit (default 4)
  BENCH_PROFILE_N      N of the extra run profiled with py-spy (default 10000; 0 skips)
  BENCH_DATABASE       postgres (default) or sqlite
  BENCH_HTTP           1 (default) runs the HTTP part; 0 skips it
  BENCH_HTTP_SECONDS   seconds of load per HTTP endpoint (default 10)
  BENCH_SHARED_N       N of one event sent by one, then by three invitations workers
                       (default 10000; 0 skips)
  BENCH_FAIRNESS_N     size of the big event of the fairness row (default 50000; 0 skips)
  BENCH_IMPORT_N       rows of the CSV import row (default 10000; 0 skips)
  BENCH_OFFER_SAMPLES  cancellations timed to the waitlist's offer mail (default 10; 0 skips)
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import psutil

from bench.common import DOCS_DIR, RESULTS_DIR, ROOT, env_list, fresh, log

DEFAULT_NS = [1000, 10000, 50000, 200000]


def fan_out_part(stamp: str, ns: list[int]) -> dict[str, Any]:
    from bench.baseline import run_baseline
    from bench.limit import run_limit
    from bench.ours import run_ours
    from bench.sink import SmtpSink

    baseline_max = int(os.environ.get("BENCH_BASELINE_MAX_N", "10000"))
    k = int(os.environ.get("BENCH_LIMIT_K", "4"))
    profile_n = int(os.environ.get("BENCH_PROFILE_N", "10000"))
    rundir = RESULTS_DIR / stamp
    sink = SmtpSink()
    sink.start()
    rows: list[dict[str, Any]] = []
    profile: dict[str, Any] | None = None
    try:
        for n in ns:
            run = uuid.uuid4().hex[:8]
            row: dict[str, Any] = {"n": n}
            workdir = rundir / f"n{n}"
            with fresh(workdir) as (amqp_url, urls):
                row["ours"] = _attempt("ours", n, run_ours, sink, amqp_url, urls, n, run, workdir)
                row["limit_1"] = _attempt("limit_1", n, run_limit, sink, n, 1)
                log(f"limit N={n}, 1 connection: {row['limit_1'].get('emails_per_s')}/s")
                row[f"limit_{k}"] = _attempt(f"limit_{k}", n, run_limit, sink, n, k)
                log(f"limit N={n}, {k} connections: {row[f'limit_{k}'].get('emails_per_s')}/s")
                if n <= baseline_max:
                    row["baseline"] = _attempt(
                        "baseline", n, run_baseline, sink, amqp_url, urls["registry"], n, workdir
                    )
            rows.append(row)
            # Kept as it goes: a run that dies later still leaves what it measured.
            (rundir / "fan_out.partial.json").write_text(json.dumps(rows, indent=2) + "\n")
        if profile_n:
            log(f"profiled run of ours at N={profile_n} (py-spy, not counted in the table)")
            workdir = rundir / f"profile-n{profile_n}"
            with fresh(workdir) as (amqp_url, urls):
                profiled = _attempt(
                    "ours (profiled)",
                    profile_n,
                    run_ours,
                    sink,
                    amqp_url,
                    urls,
                    profile_n,
                    uuid.uuid4().hex[:8],
                    workdir,
                    profile_dir=rundir,
                )
            from bench.profile_summary import REGISTRY_BUCKETS, WORKER_BUCKETS, summarise

            profile = {
                "n": profile_n,
                "run": profiled,
                "invitations_worker_cpu": summarise(
                    rundir / "profile-notify-invitations.gil.txt", WORKER_BUCKETS
                ),
                "invitations_worker_threads": summarise(
                    rundir / "profile-notify-invitations.txt", WORKER_BUCKETS
                ),
                "registry_api_cpu": summarise(
                    rundir / "profile-registry.gil.txt", REGISTRY_BUCKETS
                ),
            }
    finally:
        sink.stop()
    return {"k": k, "rows": rows, "profile": profile}


def shared_part(stamp: str, n: int, workers: int = 3) -> dict[str, Any]:
    """One event's fan-out by one invitations worker, then by ``workers`` of them, side by side
    (each on a fresh stack, virtual host and databases): each worker's share, and the times."""
    from bench.ours import run_ours
    from bench.sink import SmtpSink

    sink = SmtpSink()
    sink.start()
    runs: dict[str, Any] = {}
    try:
        for count in (1, workers):
            workdir = RESULTS_DIR / stamp / f"shared-n{n}-w{count}"
            with fresh(workdir) as (amqp_url, urls):
                runs[str(count)] = _attempt(
                    f"ours with {count} invitations worker(s)",
                    n,
                    run_ours,
                    sink,
                    amqp_url,
                    urls,
                    n,
                    uuid.uuid4().hex[:8],
                    workdir,
                    invitation_workers=count,
                )
    finally:
        sink.stop()
    return {"n": n, "workers": workers, "runs": runs}


def fairness_part(stamp: str, n: int) -> dict[str, Any]:
    """The fairness row: a big event, and one second later a 3-recipient one in another country."""
    from bench.fairness import run_fairness
    from bench.sink import SmtpSink

    sink = SmtpSink()
    sink.start()
    try:
        workdir = RESULTS_DIR / stamp / f"fairness-n{n}"
        with fresh(workdir) as (amqp_url, urls):
            return _attempt("fairness", n, run_fairness, sink, amqp_url, urls, n, workdir)
    finally:
        sink.stop()


def _attempt(what: str, n: int, fn: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """Run one measurement; a failure is recorded (and printed) instead of ending the run."""
    try:
        result: dict[str, Any] = fn(*args, **kwargs)
        return result
    except Exception as exc:  # noqa: BLE001 - any failure of one measurement is reported
        log(f"{what} N={n} FAILED: {type(exc).__name__}: {exc} (logs under bench/results/)")
        return {"n": n, "error": f"{type(exc).__name__}: {exc}"}


def code_version() -> dict[str, Any]:
    """Which code was measured: the commit, and whether services/ or shared/ had local edits."""

    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30, check=False
            ).stdout.strip()
        except OSError:
            return ""

    dirty = git("status", "--short", "--", "services", "shared")
    return {"commit": git("rev-parse", "HEAD"), "uncommitted_changes": dirty.splitlines()}


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_model": _cpu_model(),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main() -> None:
    from bench.report import chart, print_fairness, print_fan_out, print_http

    ns = env_list("BENCH_N", ",".join(map(str, DEFAULT_NS)))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    results: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine(),
        "database": os.environ.get("BENCH_DATABASE", "postgres"),
        "code": code_version(),
    }
    results["fan_out"] = fan_out_part(stamp, ns)
    print_fan_out(results["fan_out"])
    shared_n = int(os.environ.get("BENCH_SHARED_N", "10000"))
    if shared_n:
        from bench.report import print_shared

        results["shared"] = shared_part(stamp, shared_n)
        print_shared(results["shared"])
    fairness_n = int(os.environ.get("BENCH_FAIRNESS_N", "50000"))
    if fairness_n:
        results["fairness"] = fairness_part(stamp, fairness_n)
        print_fairness(results["fairness"])
    import_n = int(os.environ.get("BENCH_IMPORT_N", "10000"))
    if import_n:
        from bench.import_bench import run_import
        from bench.report import print_import

        workdir = RESULTS_DIR / stamp / "import"
        workdir.mkdir(parents=True, exist_ok=True)
        results["import"] = _attempt("import", import_n, run_import, workdir, import_n)
        print_import(results["import"])
    offer_samples = int(os.environ.get("BENCH_OFFER_SAMPLES", "10"))
    if offer_samples:
        from bench.report import print_offer
        from bench.waitlist_bench import run_offer_latency

        workdir = RESULTS_DIR / stamp / "waitlist"
        workdir.mkdir(parents=True, exist_ok=True)
        results["waitlist_offer"] = _attempt(
            "waitlist offer", offer_samples, run_offer_latency, workdir, offer_samples
        )
        print_offer(results["waitlist_offer"])
    if os.environ.get("BENCH_HTTP", "1") != "0":
        from bench.http_bench import http_part

        results["http"] = http_part(RESULTS_DIR / stamp)
        print_http(results["http"])
    results["total_seconds"] = round(time.monotonic() - started, 1)
    out = RESULTS_DIR / stamp / "results.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    png = RESULTS_DIR / stamp / "throughput.png"
    chart(results["fan_out"], png, results["database"])
    # The committed copy of the latest full run (a quick run with other Ns does not replace it,
    # unless BENCH_PUBLISH=1).
    publish = os.environ.get("BENCH_PUBLISH") or ("1" if ns == DEFAULT_NS else "0")
    if publish == "1":
        shutil.copy(out, DOCS_DIR / "performance-results.json")
        shutil.copy(png, DOCS_DIR / "performance.png")
        log("copied to docs/performance-results.json and docs/performance.png")
    log(f"results: {out}, chart: {png}")
    log(f"total {results['total_seconds']} s")
