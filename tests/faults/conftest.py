"""Fixtures of the fault suite: one stack on PostgreSQL, a fresh virtual host, 2,000 CSOs.

Select the suite with ``-m faults``. At the end it prints the table (case, expected, delivered,
lost, duplicated, time to full delivery) and writes it as markdown to ``var/faults-report.md``.
``FAULTS_DATABASE=sqlite`` runs it on SQLite files instead (to tell a PostgreSQL-only problem
from a general one); PostgreSQL, what operators run, is the default.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

import pytest

from faults.harness import (
    FAULT_ENV,
    Audience,
    FaultReport,
    FaultRun,
    TimedSMTPServer,
    broker_ready,
    configure,
    ensure_running,
    seed_audience,
    start_broker,
)
from support.stack import Stack, running_stack

REPORT = pytest.StashKey[FaultReport]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[REPORT] = FaultReport(config.rootpath / "var" / "faults-report.md")


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config
) -> None:
    report = config.stash.get(REPORT, None)
    if report is None or not report.results:
        return
    terminalreporter.section("fault suite")
    terminalreporter.write(report.markdown())
    terminalreporter.write_line(f"table written to {report.path}")
    if report.workdir is not None:
        terminalreporter.write_line(f"process logs in {report.workdir}/*.log")


@pytest.fixture(scope="session")
def fault_report(pytestconfig: pytest.Config) -> FaultReport:
    return pytestconfig.stash[REPORT]


@pytest.fixture(scope="session")
def fault_smtp() -> Iterator[TimedSMTPServer]:
    server = TimedSMTPServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def fault_stack(
    tmp_path_factory: pytest.TempPathFactory,
    fault_smtp: TimedSMTPServer,
    fault_report: FaultReport,
) -> Iterator[Stack]:
    workdir: Path = tmp_path_factory.mktemp("faults-stack")
    fault_report.workdir = workdir
    database: Literal["sqlite", "postgres"] = (
        "sqlite" if os.environ.get("FAULTS_DATABASE") == "sqlite" else "postgres"
    )
    with running_stack(
        workdir,
        database,
        fault_smtp.host,
        fault_smtp.port,
        FAULT_ENV,
        vhost_prefix="tacso-faults",
        configure=configure,
    ) as stack:
        yield stack


@pytest.fixture(scope="session")
def audience(fault_stack: Stack) -> Audience:
    return seed_audience(fault_stack)


@pytest.fixture(autouse=True)
def healthy(fault_stack: Stack, fault_smtp: TimedSMTPServer) -> Iterator[None]:
    """Every case starts, and leaves, with the broker, the SMTP server and every process up."""

    def restore() -> None:
        if not broker_ready():
            start_broker()
        fault_smtp.set_failure(None)
        if not fault_smtp.running:
            fault_smtp.start()
        ensure_running(fault_stack)

    restore()
    yield
    restore()


@pytest.fixture
def new_run(
    fault_stack: Stack, fault_smtp: TimedSMTPServer, audience: Audience, fault_report: FaultReport
) -> Callable[[str], FaultRun]:
    def make(case: str) -> FaultRun:
        return FaultRun(case, fault_stack, fault_smtp, audience, fault_report)

    return make
