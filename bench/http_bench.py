"""HTTP APIs under load from wrk (a separate process): requests/s and p50/p99 latency."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

from bench.common import ROOT, log, require_tool
from bench.ours import STACK_ENV
from support.infra import postgres_databases, rabbitmq_vhost
from support.stack import ADMIN_KEY, Stack, free_port

CONNECTIONS = 16
THREADS = 1
EVENTS = 50

POST_LUA = """\
-- POST /api/v1/organisations with a unique email per request (id: the wrk thread).
local counter = 0
local prefix = "@PREFIX@"
local n = 0
function setup(thread)
  n = n + 1
  thread:set("id", n)
end
request = function()
  counter = counter + 1
  local body = string.format(
    '{"name":"Bench association %%d","kind":"cso","country":"RS","language":"sr",' ..
    '"email":"bench-%%s-%%d-%%d@example.org","topics":["youth","environment"]}',
    counter, prefix, id, counter)
  return wrk.format("POST", "/api/v1/organisations",
    {["Content-Type"] = "application/json", ["Authorization"] = "Bearer %(key)s"}, body)
end
"""

RSVP_LUA = """\
-- POST /rsvp/<token>: personal links of many organisations for the 50 events, answers alternating
-- attend and decline, so every request is a real status change (and an outbox message).
local paths = {@PATHS@}
local counter = 0
request = function()
  counter = counter + 1
  local i = (counter %% #paths) + 1
  local answer = (math.floor(counter / #paths) %% 2 == 0) and "attend" or "decline"
  return wrk.format("POST", paths[i],
    {["Content-Type"] = "application/x-www-form-urlencoded"}, "answer=" .. answer .. "&seats=1")
end
"""
RSVP_ORGANISATIONS = 8


def rsvp_paths(env: dict[str, str], event_ids: list[str]) -> list[str]:
    """RSVP links of :data:`RSVP_ORGANISATIONS` organisations for each event."""
    from tacso_shared.links import LinkSigner, LinkToken, link_keys

    signer = LinkSigner(link_keys(env))
    expires = datetime.now(UTC) + timedelta(days=90)
    return [
        "/rsvp/" + signer.sign(LinkToken("rsvp", f"bench-org-{n}", expires, event_id, "bs"))
        for event_id in event_ids
        for n in range(RSVP_ORGANISATIONS)
    ]


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not match:
        raise ValueError(text)
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_wrk(output: str) -> dict[str, Any]:
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.M)
    total = re.search(r"(\d+) requests in", output)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    return {
        "requests_per_s": float(rps.group(1)) if rps else 0.0,
        "p50_ms": _ms(p50.group(1)) if p50 else None,
        "p99_ms": _ms(p99.group(1)) if p99 else None,
        "requests": int(total.group(1)) if total else 0,
        "errors": (int(non2xx.group(1)) if non2xx else 0)
        + (sum(int(x) for x in socket.groups()) if socket else 0),
    }


def wrk(url: str, seconds: int, script: Path | None = None) -> dict[str, Any]:
    args = [require_tool("wrk"), f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency"]
    if script is not None:
        # A fresh prefix per run of wrk: the emails never repeat (a repeat would be a 409).
        lua = script.with_name(f"{script.stem}-{uuid.uuid4().hex[:8]}.lua")
        lua.write_text(script.read_text().replace("@PREFIX@", uuid.uuid4().hex[:8]))
        args += ["-s", str(lua)]
    out = subprocess.run([*args, url], capture_output=True, text=True, timeout=seconds + 60)
    result = parse_wrk(out.stdout)
    result["raw"] = out.stdout
    return result


def _wait_healthy(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not become healthy")


def http_part(rundir: Path) -> dict[str, Any]:
    seconds = int(os.environ.get("BENCH_HTTP_SECONDS", "10"))
    workdir = rundir / "http"
    workdir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    with ExitStack() as resources:
        amqp_url = resources.enter_context(rabbitmq_vhost("tacso-bench"))
        if os.environ.get("BENCH_DATABASE", "postgres") == "sqlite":
            urls = {
                n: f"sqlite:///{workdir / f'{n}.sqlite3'}" for n in ("registry", "events", "notify")
            }
        else:
            urls = resources.enter_context(postgres_databases("registry", "events", "notify"))
        stack = Stack(workdir, amqp_url, urls, "127.0.0.1", 9, extra_env=STACK_ENV)
        stack.migrate()
        stack.start("registry", "events")
        bare_port = free_port()
        bare_log = open(workdir / "bare-flask.log", "ab")  # noqa: SIM115 - closed below
        bare = subprocess.Popen(
            [sys.executable, "-m", "bench.bare_flask"],
            cwd=ROOT,
            env={**stack.env, "BARE_PORT": str(bare_port)},
            stdout=bare_log,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_healthy(f"http://127.0.0.1:{bare_port}/healthz")
            organiser = stack.organisation("BA", "resource_centre")
            event_ids: list[str] = []
            # Days ahead of today, so the RSVP row never answers an event that has begun (409).
            first_day = datetime.now(UTC).date() + timedelta(days=30)
            for i in range(EVENTS):
                day = (first_day + timedelta(days=i % 28)).isoformat()
                response = stack.post(
                    "events",
                    "/api/v1/events",
                    {
                        "title": f"Workshop {i} on civic participation",
                        "description": "A day of talks and workshops. " * 10,
                        "type": "workshop",
                        "country": "BA",
                        "topics": ["human-rights", "youth"],
                        "starts_at": f"{day}T09:00:00+01:00",
                        "ends_at": f"{day}T17:00:00+01:00",
                        "venue": {"name": "Hotel Europe", "city": "Sarajevo"},
                        "organiser_id": organiser["id"],
                    },
                )
                response.raise_for_status()
                event_ids.append(response.json()["id"])
            rsvp_lua = workdir / "post_rsvp.lua"
            paths = ", ".join(f'"{path}"' for path in rsvp_paths(stack.env, event_ids))
            rsvp_lua.write_text((RSVP_LUA % {}).replace("@PATHS@", paths))
            lua = workdir / "post_organisation.lua"
            lua.write_text(POST_LUA % {"key": ADMIN_KEY})
            targets = [
                (
                    "bare_flask",
                    "bare Flask JSON endpoint (ceiling)",
                    f"http://127.0.0.1:{bare_port}/api/v1/events",
                    None,
                ),
                (
                    "events_list",
                    "GET /api/v1/events?country=BA (50 events)",
                    stack.url("events", "/api/v1/events?country=BA"),
                    None,
                ),
                (
                    "organisations_post",
                    "POST /api/v1/organisations",
                    stack.url("registry", ""),
                    lua,
                ),
                (
                    "rsvp_post",
                    "POST /rsvp/<token> (answer changes)",
                    stack.url("events", ""),
                    rsvp_lua,
                ),
            ]
            for name, label, url, script in targets:
                wrk(url, 2, script)  # warm-up: connections, caches, the JIT of nothing
                result = wrk(url, seconds, script)
                result["label"] = label
                results[name] = result
                log(
                    f"http {name}: {result['requests_per_s']:.0f} req/s, "
                    f"p50 {result['p50_ms']} ms, "
                    f"p99 {result['p99_ms']} ms, errors {result['errors']}"
                )
        finally:
            bare.terminate()
            bare.wait(timeout=20)
            bare_log.close()
            stack.stop()
    return {
        "gunicorn": f"gthread, WEB_CONCURRENCY={STACK_ENV['WEB_CONCURRENCY']} workers x "
        f"WEB_THREADS={STACK_ENV['WEB_THREADS']} threads (tacso_shared.runtime.serve)",
        "load": f"wrk -t{THREADS} -c{CONNECTIONS} -d{seconds}s --latency, on the same 2 cores",
        "database": "sqlite" if urls["registry"].startswith("sqlite") else "postgresql",
        "results": results,
    }
