"""The alert rules Prometheus loads (docker/prometheus/alerts.yml), tested with promtool.

Each test feeds promtool the series a real incident would produce and says which alert fires
when. promtool comes from Debian's prometheus package (``make install`` and ``make test`` install
it when missing, via ``tests/ensure_tools.sh``).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "docker" / "prometheus" / "alerts.yml"
CONFIG = ROOT / "docker" / "prometheus" / "prometheus.yml"
PROMTOOL = shutil.which("promtool")

pytestmark = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool is not installed (tests/ensure_tools.sh installs Debian's prometheus)",
)


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args], capture_output=True, text=True, timeout=60, check=False
    )


def run_rule_test(tmp_path: Path, tests: list[dict[str, Any]]) -> None:
    """Run promtool's unit tests of the rules; fail with its report if any expectation fails."""
    spec = {"rule_files": [str(RULES)], "evaluation_interval": "1m", "tests": tests}
    path = tmp_path / "alerts_test.yml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    result = promtool("test", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_rules_and_the_scrape_configuration_are_valid(tmp_path: Path) -> None:
    assert promtool("check", "rules", str(RULES)).returncode == 0
    # The configuration names the rules file by its path in the container.
    config = yaml.safe_load(CONFIG.read_text())
    config["rule_files"] = [str(RULES)]
    local = tmp_path / "prometheus.yml"
    local.write_text(yaml.safe_dump(config))
    result = promtool("check", "config", str(local))
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_dead_lettered_poison_message_fires_both_dead_letter_alerts(tmp_path: Path) -> None:
    queue, dead = "notify.invitations.BA", "notify.invitations.dead"
    run_rule_test(
        tmp_path,
        [
            {
                "interval": "1m",
                "input_series": [
                    # The worker dead-letters one poison message between minutes 1 and 2 ...
                    {
                        "series": f'tacso_messages_dead_lettered_total{{queue="{queue}"}}',
                        "values": "0 0 1 1 1 1",
                    },
                    # ... and RabbitMQ then holds it in the dead-letter queue.
                    {
                        "series": f'rabbitmq_queue_messages{{queue="{dead}",vhost="tacso"}}',
                        "values": "0 0 1 1 1 1",
                    },
                ],
                "alert_rule_test": [
                    {"eval_time": "1m", "alertname": "TacsoMessageDeadLettered", "exp_alerts": []},
                    {"eval_time": "1m", "alertname": "TacsoDeadLetters", "exp_alerts": []},
                    {
                        "eval_time": "2m",
                        "alertname": "TacsoMessageDeadLettered",
                        "exp_alerts": [
                            {
                                "exp_labels": {"severity": "warning", "queue": queue},
                                "exp_annotations": {
                                    "summary": f"a message from {queue} was dead-lettered",
                                    "description": (
                                        "The worker's log has the reason (grep its correlation id)."
                                    ),
                                },
                            }
                        ],
                    },
                    # Pending for a minute first: one scrape is not an incident yet.
                    {"eval_time": "2m", "alertname": "TacsoDeadLetters", "exp_alerts": []},
                    {
                        "eval_time": "4m",
                        "alertname": "TacsoDeadLetters",
                        "exp_alerts": [
                            {
                                "exp_labels": {"severity": "warning", "queue": dead},
                                "exp_annotations": {
                                    "summary": f"1 dead-lettered message(s) in {dead}",
                                    "description": (
                                        "See the reason with: tacso-notify dead list --kind "
                                        "<kind>; replay after fixing the cause."
                                    ),
                                },
                            }
                        ],
                    },
                ],
            }
        ],
    )


def test_an_outbox_message_older_than_a_minute_fires(tmp_path: Path) -> None:
    run_rule_test(
        tmp_path,
        [
            {
                "interval": "1m",
                "input_series": [
                    {
                        "series": 'tacso_outbox_oldest_pending_age_seconds{service="events"}',
                        "values": "0 30 90 150",
                    }
                ],
                "alert_rule_test": [
                    {"eval_time": "1m", "alertname": "TacsoOutboxStale", "exp_alerts": []},
                    {
                        "eval_time": "2m",
                        "alertname": "TacsoOutboxStale",
                        "exp_alerts": [
                            {
                                "exp_labels": {"severity": "critical", "service": "events"},
                                "exp_annotations": {
                                    "summary": "events's outbox has a message older than 60 s",
                                    "description": "Check events-relay's log and RabbitMQ.",
                                },
                            }
                        ],
                    },
                ],
            }
        ],
    )


def test_a_scheduled_job_overdue_by_five_minutes_fires(tmp_path: Path) -> None:
    run_rule_test(
        tmp_path,
        [
            {
                "interval": "1m",
                "input_series": [
                    {
                        "series": 'tacso_scheduler_oldest_due_age_seconds{service="events"}',
                        "values": "0 120 240 360",
                    }
                ],
                "alert_rule_test": [
                    {"eval_time": "2m", "alertname": "TacsoSchedulerBehind", "exp_alerts": []},
                    {
                        "eval_time": "3m",
                        "alertname": "TacsoSchedulerBehind",
                        "exp_alerts": [
                            {
                                "exp_labels": {"severity": "warning", "service": "events"},
                                "exp_annotations": {
                                    "summary": "events has a scheduled job overdue by more "
                                    "than 5 minutes",
                                    "description": "Check events-scheduler's log and its "
                                    "database (scheduled_jobs.last_error).",
                                },
                            }
                        ],
                    },
                ],
            }
        ],
    )


def mails(outcome: str, per_minute: int) -> dict[str, str]:
    return {
        "series": f'tacso_mails_total{{kind="invitation",country="BA",outcome="{outcome}"}}',
        "values": f"0+{per_minute}x30",
    }


@pytest.mark.parametrize(("failed", "fires"), [(4, False), (10, True)])
def test_mail_failing_above_five_percent_fires(tmp_path: Path, failed: int, fires: bool) -> None:
    # 100 mails a minute: 4 failed is 4 %, 10 failed is 10 %.
    expected = [
        {
            "exp_labels": {"severity": "warning"},
            "exp_annotations": {
                "summary": "10% of mail failed in the last 10 minutes",
                "description": "The ledger has each failure's reason: "
                "GET /api/v1/deliveries?status=failed.",
            },
        }
    ]
    run_rule_test(
        tmp_path,
        [
            {
                "interval": "1m",
                "input_series": [mails("sent", 100 - failed), mails("failed", failed)],
                "alert_rule_test": [
                    {
                        "eval_time": "20m",
                        "alertname": "TacsoMailFailureRatio",
                        "exp_alerts": expected if fires else [],
                    }
                ],
            }
        ],
    )


def test_a_worker_family_without_any_consumer_fires(tmp_path: Path) -> None:
    def consumers(queue: str, values: str) -> dict[str, str]:
        return {"series": f'rabbitmq_queue_consumers{{queue="{queue}"}}', "values": values}

    run_rule_test(
        tmp_path,
        [
            {
                "interval": "1m",
                "input_series": [
                    # Both press-notice workers stop at minute 2; invitations keep theirs.
                    consumers("notify.press_notices.BA", "2 2 0 0 0 0 0"),
                    consumers("notify.press_notices.RS", "2 2 0 0 0 0 0"),
                    consumers("notify.invitations.BA", "1 1 1 1 1 1 1"),
                    consumers("notify.invitations.RS", "1 1 1 1 1 1 1"),
                    # Nobody ever consumes a dead-letter queue: that is no reason to alert.
                    consumers("notify.invitations.dead", "0 0 0 0 0 0 0"),
                ],
                "alert_rule_test": [
                    {
                        "eval_time": "1m",
                        "alertname": "TacsoWorkerFamilyWithoutConsumer",
                        "exp_alerts": [],
                    },
                    {
                        "eval_time": "5m",
                        "alertname": "TacsoWorkerFamilyWithoutConsumer",
                        "exp_alerts": [
                            {
                                "exp_labels": {"severity": "critical", "family": "press_notices"},
                                "exp_annotations": {
                                    "summary": "no press_notices worker is consuming",
                                    "description": "docker compose ps notify-invitations "
                                    "notify-press-notices notify-webhooks; their logs.",
                                },
                            }
                        ],
                    },
                ],
            }
        ],
    )
