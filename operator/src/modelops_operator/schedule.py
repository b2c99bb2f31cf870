"""When training.schedule trains: pure functions of the schedule, the model's creation time
and the time now (UTC)."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from croniter import croniter


@dataclass(frozen=True)
class Slots:
    """The schedule's latest time since the model was created (None before its first), and
    its next."""

    latest: datetime.datetime | None
    next: datetime.datetime


def slots(schedule: str, created: datetime.datetime, now: datetime.datetime) -> Slots:
    """The admission pattern keeps out what croniter cannot read, bar impossible dates such as
    '0 0 31 feb *', which raise ValueError here with croniter's words."""
    try:
        latest = croniter(schedule, now).get_prev(datetime.datetime)
        upcoming = croniter(schedule, now).get_next(datetime.datetime)
    except (ValueError, KeyError) as error:
        raise ValueError(f"training.schedule {schedule!r} cannot be followed: {error}") from None
    # The first training ran at creation: only times after it are the schedule's.
    return Slots(latest if latest > created else None, upcoming)


def timestamp(moment: datetime.datetime) -> str:
    """RFC 3339 in UTC, as Kubernetes writes times."""
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_timestamp(value: str) -> datetime.datetime:
    return datetime.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)


@dataclass(frozen=True)
class ScheduledRun:
    """The schedule's time the current training run is for (None: the spec's own run), and
    when the schedule trains next (None without a schedule)."""

    slot: str | None = None
    next: str | None = None

    def retrain_token(self, annotation: str) -> str:
        """The retrain annotation's token, with the slot when there is one: a new slot names a
        new Job, as a new annotation value does."""
        return f"{annotation}@{self.slot}" if self.slot else annotation


def scheduled_run(
    expression: str | None,
    created: str,
    now: datetime.datetime,
    running_for: str | None,
    running: bool,
) -> ScheduledRun:
    """The run to observe now. A slot that comes while a run is `running` (for `running_for`)
    waits for it to end, as a CronJob's concurrencyPolicy Forbid would have it."""
    if expression is None:
        return ScheduledRun()
    found = slots(expression, parse_timestamp(created), now)
    slot = running_for if running else (timestamp(found.latest) if found.latest else None)
    return ScheduledRun(slot, timestamp(found.next))
