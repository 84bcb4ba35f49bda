"""The fault suite's machinery, checked without running the suite (no broker, no processes)."""

from __future__ import annotations

from pathlib import Path

from faults.harness import (
    CRASH_WINDOW,
    INVITATION_WORKERS,
    LEDGER_FLUSH_SIZE,
    SMTP_CONNECTIONS,
    CaseResult,
    FaultReport,
    configure,
)

from support.stack import Stack
from tacso_devtools.processes import by_name
from tacso_notify.handlers import Dependencies


def test_the_crash_window_follows_the_workers_ledger_flush_size() -> None:
    assert Dependencies.flush_every == LEDGER_FLUSH_SIZE
    assert CRASH_WINDOW == LEDGER_FLUSH_SIZE + 2 * SMTP_CONNECTIONS


def test_the_suite_runs_three_invitation_workers_with_the_manifests_command(
    tmp_path: Path,
) -> None:
    urls = {n: f"sqlite:///{tmp_path / n}.sqlite3" for n in ("registry", "events", "notify")}
    stack = Stack(tmp_path, "amqp://guest:guest@127.0.0.1:1//", urls, "127.0.0.1", 1)
    configure(stack)
    workers = [name for name, spec in stack.specs.items() if spec.process.role == "worker"]
    others = {name for name in by_name() if name.startswith("notify-")} - {"notify-invitations"}
    assert sorted(workers) == sorted([*INVITATION_WORKERS, *others])
    for name in INVITATION_WORKERS:
        assert stack.specs[name].process == by_name()["notify-invitations"]


def test_the_report_is_a_markdown_table_rewritten_after_each_case(tmp_path: Path) -> None:
    report = FaultReport(tmp_path / "report.md")
    report.add(CaseResult("2. kill", expected=10, delivered=10, duplicated=1, duplicate_bound=58))
    report.add(CaseResult("1. broker", expected=10, delivered=9, lost=1))
    lines = report.path.read_text().splitlines()
    assert lines[0].startswith("| case | expected | delivered | lost |")
    assert [line.split("|")[1].strip() for line in lines[2:]] == ["1. broker", "2. kill"]
    assert "not reached" in lines[2] and "1 (58)" in lines[3]
