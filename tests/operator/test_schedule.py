"""training.schedule: which scheduled time a run is for, and when the next one comes."""

from __future__ import annotations

import datetime

import pytest
from modelops_operator import api, builders, schedule

UTC = datetime.UTC
CREATED = "2026-12-04T09:30:00Z"
NOW = datetime.datetime(2026, 12, 4, 10, 5, 30, tzinfo=UTC)


def test_no_schedule_time_before_the_first_one_after_creation() -> None:
    run = schedule.scheduled_run("@hourly", "2026-12-04T10:01:00Z", NOW, None, False)
    assert run == schedule.ScheduledRun(None, "2026-12-04T11:00:00Z")
    assert run.retrain_token("") == ""


def test_the_latest_time_since_creation_is_the_one_to_run() -> None:
    """Of the times missed while the operator was away, only the latest runs."""
    run = schedule.scheduled_run("*/10 * * * *", "2026-12-04T08:00:00Z", NOW, None, False)
    assert run == schedule.ScheduledRun("2026-12-04T10:00:00Z", "2026-12-04T10:10:00Z")
    assert run.retrain_token("") == "@2026-12-04T10:00:00Z"
    assert run.retrain_token("manual-1") == "manual-1@2026-12-04T10:00:00Z"


def test_a_time_that_comes_while_a_run_runs_waits_for_it() -> None:
    earlier = "2026-12-04T09:50:00Z"
    waiting = schedule.scheduled_run("*/10 * * * *", CREATED, NOW, earlier, True)
    assert waiting.slot == earlier
    first_run_still_going = schedule.scheduled_run("*/10 * * * *", CREATED, NOW, None, True)
    assert first_run_still_going.slot is None
    after = schedule.scheduled_run("*/10 * * * *", CREATED, NOW, earlier, False)
    assert after.slot == "2026-12-04T10:00:00Z"


def test_day_and_month_names_in_either_case() -> None:
    run = schedule.scheduled_run("0 3 * DEC MON-fri", CREATED, NOW, None, False)
    # 2026-12-04 is a Friday: 03:00 that day came before the model was created.
    assert run == schedule.ScheduledRun(None, "2026-12-07T03:00:00Z")


def test_a_date_that_never_comes_is_an_error_in_words() -> None:
    with pytest.raises(ValueError, match=r"training.schedule '0 0 31 feb \*' cannot be followed"):
        schedule.scheduled_run("0 0 31 feb *", CREATED, NOW, None, False)


def test_the_schedule_names_no_job_and_is_not_the_trainers() -> None:
    """Adding or changing a schedule retrains nothing by itself, and the trainer (whose spec
    refuses unknown fields) never sees it."""
    plain = api.TrainingSpec.model_validate(
        {"dataset": {"builtin": "iris"}, "estimator": "LogisticRegression"}
    )
    scheduled = plain.model_copy(update={"schedule": "@daily"})
    assert builders.training_hash(plain) == builders.training_hash(scheduled)
    assert "schedule" not in builders.trainer_spec(scheduled)
