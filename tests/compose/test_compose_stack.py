"""The docker compose stack, for real: build the images, start docker-compose.yml, drive it
through its published ports only, as an operator's client would.

- a BA event reaches exactly the right CSOs and media (counted in the mail catcher's API);
- three invitation workers share the queue and send nothing twice;
- the invitation workers are killed and restarted in the middle of a fan-out: nothing is lost;
- Prometheus scrapes every process (all targets up) and sees the mail counters move after a BA
  event;
- every stateless service at two replicas (APIs, relays, workers) runs the BA scenario again.

The compose file is used unchanged: the harness only sets its variables (test secrets, free host
ports, short retry delays and health-check interval, an image tag of its own) and a project name.
pytest-docker brings the stack up (``docker_services``: the overridden ``docker_compose_file``,
``docker_compose_project_name``, ``docker_compose_command``, ``docker_setup`` and
``docker_cleanup`` below), waits for it (``wait_until_responsive``) and tears everything down,
volumes included, at the end. Run with ``make test-compose``.
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from pytest_docker.plugin import Services

from support.api_client import ApiClient
from support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
PROJECT = os.environ.get("TACSO_COMPOSE_PROJECT", "tacsocomposetest")
LOG_DIR = Path(os.environ.get("TACSO_COMPOSE_LOG_DIR", "/tmp/tacso-compose"))
ADMIN_KEY = "compose-test-admin-key"
RABBITMQ_USER, RABBITMQ_PASSWORD, RABBITMQ_VHOST = "tacso", "compose-test-mq", "tacso"
LONG_RUNNING = (
    "postgres",
    "rabbitmq",
    "redis",
    "mailpit",
    "prometheus",
    "registry",
    "registry-relay",
    "events",
    "events-relay",
    "events-scheduler",
    "notify",
    "notify-invitations",
    "notify-press-notices",
    "notify-registrations",
    "notify-updates",
    "notify-reminders",
    "notify-accounts",
    "notify-webhooks",
    "notify-registry",
)
# Variables the harness passes through to docker / docker-compose; everything else is set here,
# so nothing from the caller's environment or a developer's .env leaks into the stack.
PASSED_THROUGH = ("PATH", "HOME", "DOCKER_HOST", "DOCKER_CONFIG", "DOCKER_CONTEXT", "LANG")
#: The APIs and the port each listens on inside its container.
APIS = {"registry": 5001, "events": 5002, "notify": 5003}
#: Every service that keeps no state of its own: all of them may run as several replicas.
STATELESS = (
    "registry",
    "registry-relay",
    "events",
    "events-relay",
    "events-scheduler",
    "notify",
    "notify-invitations",
    "notify-press-notices",
    "notify-registrations",
    "notify-updates",
    "notify-reminders",
    "notify-accounts",
    "notify-webhooks",
    "notify-registry",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def free_port_pair() -> int:
    """A port ``p`` such that ``p`` and ``p + 1`` are both free: room for two API replicas."""
    for _ in range(100):
        port = free_port()
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no two consecutive free ports")


def compose_command() -> list[str]:
    """``docker compose`` (v2) if the plugin is there, else ``docker-compose`` (v1)."""
    override = os.environ.get("TACSO_COMPOSE_CMD")
    if override:
        return override.split()
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
    if probe.returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    raise RuntimeError("neither `docker compose` nor `docker-compose` is installed")


def port_range(first: int) -> str:
    return f"{first}-{first + 1}"


class ComposeStack(ApiClient):
    """One compose project of docker-compose.yml; an ApiClient of its published ports."""

    def __init__(self) -> None:
        self.cmd = compose_command()
        self.ports = {
            name: free_port() for name in ("mailpit", "rabbitmq_management", "prometheus")
        }
        # Each API publishes a range of two host ports (REGISTRY_PUBLISHED_PORT=p-p+1): Docker
        # gives each replica a free one of them, so the APIs can be scaled to two.
        self.ports.update({name: free_port_pair() for name in APIS})
        self.env = {k: os.environ[k] for k in PASSED_THROUGH if k in os.environ}
        self.env.update(
            {
                "ADMIN_API_KEY": ADMIN_KEY,
                "LINK_SIGNING_KEYS": "compose-test-link-key",
                "PUBLIC_BASE_URL": f"http://127.0.0.1:{self.ports['events']}",
                "POSTGRES_PASSWORD": "compose-test-pg",
                "RABBITMQ_USER": RABBITMQ_USER,
                "RABBITMQ_PASSWORD": RABBITMQ_PASSWORD,
                "RABBITMQ_VHOST": RABBITMQ_VHOST,
                "TACSO_VERSION": os.environ.get("TACSO_COMPOSE_TAG", "compose-test"),
                "HEALTHCHECK_INTERVAL": "3s",
                "RETRY_DELAYS": "1,1,2,2,5,5,10",
                "OUTBOX_POLL_INTERVAL": "0.05",
                # Slow enough that a fan-out of a few hundred is still going when a worker is
                # killed; short leases so that the survivors take its deliveries over quickly.
                "SMTP_RATE_LIMIT": "150",
                "DELIVERY_LEASE_SECONDS": "5",
                "API_BIND": "127.0.0.1",
                "MANAGEMENT_BIND": "127.0.0.1",
                "REGISTRY_PUBLISHED_PORT": port_range(self.ports["registry"]),
                "EVENTS_PUBLISHED_PORT": port_range(self.ports["events"]),
                "NOTIFY_PUBLISHED_PORT": port_range(self.ports["notify"]),
                "MAILPIT_UI_PORT": str(self.ports["mailpit"]),
                "RABBITMQ_MANAGEMENT_PORT": str(self.ports["rabbitmq_management"]),
                "PROMETHEUS_PORT": str(self.ports["prometheus"]),
            }
        )
        super().__init__(
            {name: f"http://127.0.0.1:{port}" for name, port in self.ports.items()},
            ADMIN_KEY,
            timeout=30,
        )
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        #: pytest-docker's handle of the started project (set by the ``compose`` fixture).
        self.services: Services | None = None

    def command_line(self) -> str:
        """The compose command as one shell string, for pytest-docker (``docker_compose_command``):
        only this harness's variables (``env -i``), and our empty env file, so nothing from the
        caller's environment or a developer's .env at the root reaches the stack."""
        assignments = [f"{k}={shlex.quote(v)}" for k, v in sorted(self.env.items())]
        argv = [*self.cmd, "--env-file", shlex.quote(str(HERE / "test.env"))]
        return " ".join(["env", "-i", *assignments, *argv])

    # ---- docker compose --------------------------------------------------------------------
    def compose(
        self, *args: str, timeout: float = 600, check: bool = True, log: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        # --env-file: an empty file of ours, so a developer's .env at the root is not read.
        argv = [*self.cmd, "-p", PROJECT, "--env-file", str(HERE / "test.env")]
        argv += ["-f", str(ROOT / "docker-compose.yml"), *args]
        result = subprocess.run(
            argv,
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if log is not None:
            (LOG_DIR / log).write_text(result.stdout + result.stderr)
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(argv)} exited {result.returncode}:\n{result.stdout[-3000:]}"
                f"\n{result.stderr[-3000:]}"
            )
        return result

    def up(self, invitation_workers: int = 1, scale: dict[str, int] | None = None) -> None:
        replicas = {"notify-invitations": invitation_workers, **(scale or {})}
        args: tuple[str, ...] = ("up", "-d", "--no-build")
        for service, count in replicas.items():
            args += ("--scale", f"{service}={count}")
        # On a busy host a health check can time out once while compose waits on it, and compose
        # (v1) then gives up; `up` is idempotent, so try again before calling it a failure.
        for attempt in range(3):
            result = self.compose(*args, timeout=600, log="compose-up.log", check=attempt == 2)
            if result.returncode == 0:
                break
            time.sleep(5)
        # Which port of its range the (first) replica of each API got.
        for api, port in APIS.items():
            self.base_urls[api] = f"http://127.0.0.1:{self.replica_ports(api, port)[0]}"

    def replica_ports(self, service: str, port: int) -> list[int]:
        """The host port of each replica of ``service`` that publishes container ``port``."""
        ports = []
        for index in range(1, len(self.containers(service)) + 1):
            out = self.compose("port", "--index", str(index), service, str(port)).stdout.strip()
            ports.append(int(out.rsplit(":", 1)[1]))
        return ports

    def down(self) -> None:
        self.compose("down", "-v", "--remove-orphans", "-t", "5", check=False, timeout=300)

    def containers(self, service: str) -> list[str]:
        out = self.compose("ps", "-q", service).stdout
        return [line.strip() for line in out.splitlines() if line.strip()]

    def state(self, container: str) -> str:
        fmt = (
            "{{.State.Status}} {{.State.ExitCode}} "
            "{{if .State.Health}}{{.State.Health.Status}}{{end}}"
        )
        result = subprocess.run(
            ["docker", "inspect", "--format", fmt, container],
            capture_output=True,
            text=True,
            check=True,
            env=self.env,
        )
        return result.stdout.strip()

    def wait_healthy(self, timeout: float = 300) -> None:
        """Every long-running container running and healthy, and the registry seeded."""

        def all_healthy() -> bool:
            for service in LONG_RUNNING:
                ids = self.containers(service)
                if not ids or any(self.state(c) != "running 0 healthy" for c in ids):
                    return False
            return all(
                self.state(c).startswith("exited 0") for c in self.containers("registry-seed")
            )

        assert self.services is not None, "the stack is not up (the compose fixture)"
        try:
            self.services.wait_until_responsive(check=all_healthy, timeout=timeout, pause=1)
        except Exception as exc:
            states = {s: [self.state(c) for c in self.containers(s)] for s in LONG_RUNNING}
            raise AssertionError(f"compose stack not healthy after {timeout:g}s: {states}") from exc

    def logs(self, container: str) -> str:
        result = subprocess.run(
            ["docker", "logs", container], capture_output=True, text=True, env=self.env, check=False
        )
        return result.stdout + result.stderr

    def dump_logs(self) -> None:
        self.compose("ps", check=False, log="compose-ps.txt")
        self.compose("logs", "--no-color", "--timestamps", check=False, log="compose-logs.txt")
        print(f"compose logs: {LOG_DIR / 'compose-logs.txt'}")

    # ---- the mail catcher (Mailpit's API v1, the subset the stand-in implements) ------------
    def mail_total(self) -> int:
        response = requests.get(
            self.url("mailpit", "/api/v1/messages"), params={"limit": 1}, timeout=30
        )
        response.raise_for_status()
        total: int = response.json()["total"]
        return total

    def mail(self) -> list[dict[str, Any]]:
        """Every stored message's summary (ID, To, Subject, ...), newest first."""
        messages: list[dict[str, Any]] = []
        while True:
            response = requests.get(
                self.url("mailpit", "/api/v1/messages"),
                params={"start": len(messages), "limit": 1000},
                timeout=30,
            )
            response.raise_for_status()
            body = response.json()
            messages.extend(body["messages"])
            if len(messages) >= body["total"] or not body["messages"]:
                return messages

    def mail_about(self, event: dict[str, Any], kind: str) -> list[dict[str, Any]]:
        prefix = "Invitation: " if kind == "invitation" else "Press notice: "
        return [m for m in self.mail() if m["Subject"] == prefix + event["title"]]

    def headers(self, message_id: str) -> dict[str, list[str]]:
        response = requests.get(
            self.url("mailpit", f"/api/v1/message/{message_id}/headers"), timeout=30
        )
        response.raise_for_status()
        headers: dict[str, list[str]] = response.json()
        return headers

    def wait_fan_outs_done(self, event_id: str, timeout: float = 60) -> None:
        """Wait until both workers logged the end of their fan-out of ``event_id``.

        A worker logs "<kind> for event <id> ...: N sent" once its pass is over, and acks the
        message after it: from then on no more mail about the event can come, so counting the
        mail is final, where a sleep would only make it likely. (rabbitmqctl's and the management
        API's queue figures of a quorum queue are samples, seconds old: no help here.)
        """
        services = {"invitation": "notify-invitations", "press_notice": "notify-press-notices"}

        def done() -> bool:
            return all(
                any(f"{kind} for event {event_id}" in self.logs(c) for c in self.containers(name))
                for kind, name in services.items()
            )

        wait_until(done, timeout=timeout, interval=0.5, message=f"fan-outs of {event_id} done")

    def queue_consumers(self, queue: str) -> int:
        response = requests.get(
            self.url("rabbitmq_management", f"/api/queues/{RABBITMQ_VHOST}/{queue}"),
            auth=(RABBITMQ_USER, RABBITMQ_PASSWORD),
            timeout=30,
        )
        response.raise_for_status()
        consumers: int = response.json()["consumers"]
        return consumers

    # ---- Prometheus (its HTTP API) ----------------------------------------------------------
    def targets(self) -> list[dict[str, Any]]:
        response = requests.get(self.url("prometheus", "/api/v1/targets"), timeout=30)
        response.raise_for_status()
        active: list[dict[str, Any]] = response.json()["data"]["activeTargets"]
        return active

    def query(self, promql: str) -> float:
        """The value of an instant query that yields one number (0 when it yields nothing)."""
        response = requests.get(
            self.url("prometheus", "/api/v1/query"), params={"query": promql}, timeout=30
        )
        response.raise_for_status()
        result = response.json()["data"]["result"]
        return float(result[0]["value"][1]) if result else 0.0


def recipients(messages: list[dict[str, Any]]) -> list[str]:
    return sorted(to["Address"] for m in messages for to in m["To"])


# ---- pytest-docker: which compose file, project and command; how to set up and tear down ----
@pytest.fixture(scope="session")
def compose_config() -> ComposeStack:
    """The harness's settings (free ports, test secrets, the compose command); no container."""
    return ComposeStack()


@pytest.fixture(scope="session")
def docker_compose_file() -> str:
    return str(ROOT / "docker-compose.yml")


@pytest.fixture(scope="session")
def docker_compose_project_name() -> str:
    return PROJECT


@pytest.fixture(scope="session")
def docker_compose_command(compose_config: ComposeStack) -> str:
    # ``docker compose`` (v2) where the plugin is installed, else ``docker-compose`` (v1: what
    # prepare.sh installs from Debian), with the harness's variables.
    return compose_config.command_line()


@pytest.fixture(scope="session")
def docker_setup(
    docker_compose_command: str, docker_compose_file: str, docker_compose_project_name: str
) -> list[str]:
    """Leftovers of an interrupted run down, the images built, the stack up.

    On a busy host a health check can time out once while compose waits on it, and compose
    (v1) then gives up; ``up`` is idempotent, so it is tried again (twice, 5 s apart) before
    it counts as a failure.
    """
    project = (
        f'{docker_compose_command} -f "{docker_compose_file}" -p "{docker_compose_project_name}"'
    )
    up = "up -d --no-build --scale notify-invitations=1"
    again = f"(sleep 5; {project} {up})"
    return ["down -v --remove-orphans -t 5", "build", f"{up} || {again} || {again}"]


@pytest.fixture(scope="session")
def docker_cleanup() -> list[str]:
    """Everything down, volumes included (``TACSO_COMPOSE_KEEP=1`` keeps the stack to look at)."""
    if os.environ.get("TACSO_COMPOSE_KEEP") == "1":
        return []
    return ["down -v --remove-orphans -t 5"]


@pytest.fixture(scope="module")
def compose(request: pytest.FixtureRequest, compose_config: ComposeStack) -> Iterator[ComposeStack]:
    """The stack up (pytest-docker's ``docker_services``), healthy and seeded; its logs kept
    under ``LOG_DIR`` when a test failed."""
    stack = compose_config
    failed_before = request.session.testsfailed
    try:
        stack.services = request.getfixturevalue("docker_services")
    except BaseException:
        # pytest-docker tears down only what it set up: a failed ``up`` is ours to clean.
        stack.dump_logs()
        stack.down()
        raise
    try:
        stack.wait_healthy()
        for api, port in APIS.items():
            stack.base_urls[api] = f"http://127.0.0.1:{stack.services.port_for(api, port)}"
        yield stack
    except BaseException:
        stack.dump_logs()
        raise
    finally:
        if request.session.testsfailed > failed_before:
            stack.dump_logs()


@pytest.mark.timeout(120)
def test_the_compose_file_is_valid_and_refuses_to_start_without_secrets() -> None:
    stack = ComposeStack()
    stack.compose("config", "-q")
    del stack.env["ADMIN_API_KEY"]
    result = stack.compose("config", "-q", check=False)
    assert result.returncode != 0
    assert "ADMIN_API_KEY" in result.stderr


@pytest.mark.timeout(1800)
def test_a_ba_event_reaches_exactly_the_right_csos_and_media(compose: ComposeStack) -> None:
    hr_ba = compose.register_many(10, "cso", "BA", ["human-rights"], "hr-ba")
    compose.register_many(10, "cso", "BA", ["social-entrepreneurship"], "se-ba")
    compose.register_many(5, "cso", "RS", ["human-rights"], "hr-rs")
    media_ba = compose.register_many(3, "media", "BA", [], "media-ba")
    compose.register_many(2, "media", "RS", [], "media-rs")
    before = compose.mail_total()

    event = compose.publish_event("BA", ["human-rights"])

    rows = compose.wait_all_sent(event["id"], "invitation", 10)
    rows += compose.wait_all_sent(event["id"], "press_notice", 3)
    assert {r["recipient"] for r in rows} == {o["email"] for o in hr_ba + media_ba}
    invitations = compose.mail_about(event, "invitation")
    notices = compose.mail_about(event, "press_notice")
    assert recipients(invitations) == sorted(o["email"] for o in hr_ba)
    assert recipients(notices) == sorted(o["email"] for o in media_ba)
    for message, kind in [(m, "invitation") for m in invitations] + [
        (m, "press_notice") for m in notices
    ]:
        headers = compose.headers(message["ID"])
        assert headers["X-TACSO-Event-Id"] == [event["id"]]
        assert headers["X-TACSO-Kind"] == [kind]
    compose.wait_fan_outs_done(event["id"])
    assert compose.mail_total() - before == 13, "nobody else gets anything"


@pytest.mark.timeout(900)
def test_three_invitation_workers_share_the_queue_and_send_nothing_twice(
    compose: ComposeStack,
) -> None:
    compose.up(invitation_workers=3)
    compose.wait_healthy()
    workers = compose.containers("notify-invitations")
    assert len(workers) == 3
    wait_until(
        lambda: compose.queue_consumers("notify.invitations.MK") == 3,
        timeout=60,
        interval=0.5,
        message="three consumers on notify.invitations.MK",
    )
    # Several events of one country: they go to the same queue (notify.invitations.MK), which
    # hands them out round-robin to its three consumers.
    audience = compose.register_many(15, "cso", "MK", ["youth"], "youth-mk")
    expected = sorted(o["email"] for o in audience)

    events = [compose.publish_event("MK", ["youth"]) for _ in range(6)]

    for event in events:
        rows = compose.wait_all_sent(event["id"], "invitation", 15)
        assert sorted(r["recipient"] for r in rows) == expected
        assert recipients(compose.mail_about(event, "invitation")) == expected, "sent twice?"
    logs = {worker: compose.logs(worker) for worker in workers}
    handled_by = {
        worker
        for worker, log in logs.items()
        for event in events
        if f"invitation for event {event['id']}" in log
    }
    assert len(handled_by) >= 2, "the events were not shared between the workers"


@pytest.mark.timeout(900)
@pytest.mark.parametrize(
    ("how", "country"),
    [("graceful", "XK"), ("crash", "TR")],
    ids=["restart-sigterm", "restart-sigkill"],
)
def test_restarting_the_invitation_workers_mid_fan_out_loses_nothing(
    compose: ComposeStack, how: str, country: str
) -> None:
    """`docker compose restart` (SIGTERM: the worker hands back or finishes its fan-out) and
    `restart -t 0` (SIGKILL: a crash) while a fan-out of a few hundred invitations is going on."""
    compose.up(invitation_workers=3)
    compose.wait_healthy()
    n = int(os.environ.get("TACSO_COMPOSE_FANOUT", "500"))
    audience = compose.register_many(n, "cso", country, ["environment"], f"env-{country}")
    before = compose.mail_total()

    event = compose.publish_event(country, ["environment"])
    wait_until(
        lambda: compose.mail_total() - before >= 20,
        timeout=120,
        interval=0.02,
        message="the fan-out started",
    )
    timeout = ["-t", "0"] if how == "crash" else []
    compose.compose("restart", *timeout, "notify-invitations")
    sent_at_restart = compose.mail_total() - before
    assert sent_at_restart < n, f"the fan-out finished ({sent_at_restart}) before the restart"
    compose.wait_healthy()

    rows = compose.wait_all_sent(event["id"], "invitation", n, timeout=300)
    assert {r["recipient"] for r in rows} == {o["email"] for o in audience}
    mail = recipients(compose.mail_about(event, "invitation"))
    assert set(mail) == {o["email"] for o in audience}, "someone got no invitation"
    duplicates = sum(count - 1 for count in Counter(mail).values())
    print(f"{how} restart, fan-out of {n}: {sent_at_restart} sent before, {duplicates} twice")
    if how == "graceful":
        assert duplicates == 0, f"{duplicates} invitations sent twice after a clean stop"
    else:
        # The documented window: mail accepted in the last <= 50 messages / 0.5 s before a
        # crash may go out again (per SMTP connection). Nothing else may.
        assert duplicates <= 50 * 4, f"{duplicates} invitations sent twice"


#: Every process Prometheus must scrape (its ``process`` label), the APIs included.
SCRAPED = {
    "registry",
    "events",
    "notify",
    "registry-relay",
    "events-relay",
    "notify-invitations",
    "notify-press-notices",
    "notify-registrations",
    "notify-updates",
    "notify-reminders",
    "notify-accounts",
    "notify-webhooks",
    "notify-registry",
    "events-scheduler",
    "rabbitmq",
    "prometheus",
}


@pytest.mark.timeout(900)
def test_prometheus_scrapes_every_process_and_sees_the_mail_counters_move(
    compose: ComposeStack,
) -> None:
    def all_up() -> bool:
        targets = compose.targets()
        health = {t["labels"].get("process"): t["health"] for t in targets}
        return health.keys() >= SCRAPED and all(t["health"] == "up" for t in targets)

    wait_until(all_up, timeout=120, interval=2, message="every Prometheus target up")
    # The BA scenario in small: BA CSOs of a topic no other test uses in BA, and a BA medium.
    sent = {
        kind: f'sum(tacso_mails_total{{kind="{kind}",country="BA",outcome="sent"}})'
        for kind in ("invitation", "press_notice")
    }
    before = {kind: compose.query(promql) for kind, promql in sent.items()}
    compose.register_many(3, "cso", "BA", ["youth"], "metrics-ba")
    compose.register_many(1, "media", "BA", [], "metrics-media-ba")
    media = compose.get(
        "registry", "/api/v1/organisations", country="BA", kind="media", page_size=100
    ).json()["items"]

    event = compose.publish_event("BA", ["youth"])

    compose.wait_all_sent(event["id"], "invitation", 3)
    compose.wait_all_sent(event["id"], "press_notice", len(media))
    # Scraped every 15 s: the counters show the mails within a few scrapes.
    wait_until(
        lambda: (
            compose.query(sent["invitation"]) >= before["invitation"] + 3
            and compose.query(sent["press_notice"]) >= before["press_notice"] + len(media)
        ),
        timeout=90,
        interval=3,
        message="tacso_mails_total counted the BA invitations and press notices",
    )
    assert compose.query('sum(tacso_http_requests_total{process="events",status="201"})') >= 1
    assert compose.query('max(tacso_outbox_pending_messages{service="events"})') == 0
    assert compose.query('rabbitmq_queue_consumers{queue="notify.invitations.BA"}') >= 1


@pytest.mark.timeout(1800)
def test_every_stateless_service_at_two_replicas_runs_the_ba_scenario(
    compose: ComposeStack,
) -> None:
    """APIs, relays and workers all at two replicas: the BA event reaches exactly its audience,
    each recipient once, whichever API replica took a write and whichever relay published it."""
    compose.up(invitation_workers=2, scale=dict.fromkeys(STATELESS, 2))
    compose.wait_healthy()
    for service in STATELESS:
        assert len(compose.containers(service)) == 2, service
    replicas: dict[str, list[ApiClient]] = {}
    for api, port in APIS.items():
        ports = compose.replica_ports(api, port)
        assert len(set(ports)) == 2, f"{api}: {ports}"
        for host_port in ports:
            health = requests.get(f"http://127.0.0.1:{host_port}/healthz", timeout=30)
            assert health.status_code == 200, f"{api} replica on {host_port}: {health.text}"
        replicas[api] = [
            ApiClient({**compose.base_urls, api: f"http://127.0.0.1:{p}"}, ADMIN_KEY, timeout=30)
            for p in ports
        ]
    # Writes through both registry replicas, the event through the second events replica.
    first, second = replicas["registry"]
    csos = first.register_many(6, "cso", "BA", ["gender-equality"], "ge-ba-1")
    csos += second.register_many(6, "cso", "BA", ["gender-equality"], "ge-ba-2")
    second.register_many(4, "cso", "BA", ["migration"], "mig-ba")
    second.register_many(3, "cso", "RS", ["gender-equality"], "ge-rs")
    first.register_many(2, "media", "BA", [], "media-ba-2")
    media = compose.get(
        "registry", "/api/v1/organisations", country="BA", kind="media", page_size=100
    ).json()["items"]
    before = compose.mail_total()

    event = replicas["events"][1].publish_event("BA", ["gender-equality"])

    rows = compose.wait_all_sent(event["id"], "invitation", len(csos))
    rows += compose.wait_all_sent(event["id"], "press_notice", len(media))
    assert {r["recipient"] for r in rows} == {o["email"] for o in csos + media}
    compose.wait_fan_outs_done(event["id"])
    invitations = recipients(compose.mail_about(event, "invitation"))
    notices = recipients(compose.mail_about(event, "press_notice"))
    assert invitations == sorted(o["email"] for o in csos), "each CSO once, nobody else"
    assert notices == sorted(o["email"] for o in media), "each medium once, nobody else"
    assert compose.mail_total() - before == len(csos) + len(media), "nobody else gets anything"
    # Both notify replicas read the same ledger.
    for notify in replicas["notify"]:
        assert len(notify.deliveries(event["id"])) == len(csos) + len(media)
