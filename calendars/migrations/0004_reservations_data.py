"""Availability without pre-cut slots (part 2 of 3): carry the pre-cut slots over.

- Weekly patterns still running become weekly rules, when they were defined in the coach's
  current timezone (a rule is read in the coach's timezone; one defined elsewhere would move).
  A rule starts at the pattern's first date only if that is still to come: one already running
  has no first date, so the coach's weekly-hours grid (which manages undated rules) shows it.
- Slots not yet ended that were the coach's bookable time (OPEN, HELD, BOOKED) become one-off
  availability windows, adjacent ones merged, unless a pattern that became a rule made them: so
  a booked one-off time that is released later is bookable again, as the reopened slot was.
  (Times the rule covers that the coach had deleted from its slots are bookable again.)
- HELD/BOOKED slots with an active holder (a session holding it, a pending proposal) stay
  reservations of that session, with its student.
- The agreed time of a session being rescheduled was reopened by the old design; it is booked
  again. If another session took that time meanwhile, the rescheduling session keeps a released
  copy of it as its last agreed time (the time itself belongs to the other session now).
- BLOCKED slots not yet ended become busy times (blocked by an external calendar; the next sync
  replaces them) or time off (blocked by the coach).
- Every other slot that a session or a proposal points at is kept as RELEASED history; the rest
  are deleted.

Held and booked reservations are trimmed to their session's length (old slots were cut by the
pattern's slot length). Going back works only on an empty schedule: released reservations and
merged windows have no slot form to return to.
"""

import zoneinfo

from datetime import timedelta

from django.db import migrations
from django.db.models import Q
from django.utils import timezone

HOLDING = ("REQUESTED", "CONFIRMED")
# Slot statuses that were the coach's bookable time (open, or taken by a booking).
BOOKABLE = ("OPEN", "HELD", "BOOKED")


def _today(pattern, now):
    """Today's date where the pattern's wall-clock times are read."""
    try:
        tz = zoneinfo.ZoneInfo(pattern.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        tz = zoneinfo.ZoneInfo("UTC")
    return now.astimezone(tz).date()


def _merge(intervals):
    merged = []
    for begin, finish in sorted(intervals):
        if merged and begin <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(finish, merged[-1][1]))
        else:
            merged.append((begin, finish))
    return merged


def forward(apps, schema_editor):
    TimeSlot = apps.get_model("calendars", "TimeSlot")
    Pattern = apps.get_model("calendars", "AvailabilityPattern")
    Rule = apps.get_model("calendars", "AvailabilityRule")
    Window = apps.get_model("calendars", "AvailabilityWindow")
    TimeOff = apps.get_model("calendars", "TimeOff")
    BusyTime = apps.get_model("calendars", "BusyTime")
    Session = apps.get_model("sessions_app", "Session")
    Proposal = apps.get_model("sessions_app", "RescheduleProposal")
    now = timezone.now()

    running = [
        pattern
        for pattern in Pattern.objects.filter(is_active=True).select_related("coach").order_by("pk")
        if pattern.valid_until is None or pattern.valid_until >= _today(pattern, now)
    ]
    rules = [pattern for pattern in running if pattern.timezone == pattern.coach.timezone]
    Rule.objects.bulk_create(
        Rule(
            coach_id=pattern.coach_id,
            weekday=pattern.weekday,
            start_time=pattern.start_time,
            end_time=pattern.end_time,
            valid_from=pattern.valid_from if pattern.valid_from > _today(pattern, now) else None,
            valid_until=pattern.valid_until,
        )
        for pattern in rules
    )
    # Slots these patterns made: the rules cover their times.
    by_rule = {pattern.pk for pattern in rules}

    # Who holds or last held each slot: (session id, student id).
    holder: dict[int, tuple[int, int]] = {}
    referenced: dict[int, tuple[int, int]] = {}
    for session_id, student_id, slot_id, status in Session.objects.filter(
        slot__isnull=False
    ).values_list("pk", "student_id", "slot_id", "status"):
        referenced[slot_id] = (session_id, student_id)
        if status in HOLDING:
            holder[slot_id] = (session_id, student_id)
    for session_id, student_id, slot_id, status in Proposal.objects.values_list(
        "session_id", "session__student_id", "slot_id", "status"
    ):
        referenced.setdefault(slot_id, (session_id, student_id))
        if status == "PENDING":
            holder[slot_id] = (session_id, student_id)

    length = dict(Session.objects.values_list("pk", "package__duration_minutes"))
    windows: dict[int, list] = {}
    for slot in TimeSlot.objects.order_by("pk").iterator():
        if slot.status in BOOKABLE and slot.end > now and slot.pattern_id not in by_rule:
            windows.setdefault(slot.coach_id, []).append((slot.start, slot.end))
        elif slot.status == "BLOCKED" and slot.end > now:
            model = BusyTime if slot.block_source == "external" else TimeOff
            model.objects.create(coach_id=slot.coach_id, start=slot.start, end=slot.end)
        if slot.status in ("HELD", "BOOKED") and slot.pk in holder:
            status, (session_id, student_id) = slot.status, holder[slot.pk]
        elif slot.pk in referenced:
            status, (session_id, student_id) = "RELEASED", referenced[slot.pk]
        else:
            slot.delete()
            continue
        # A reservation is exactly its session's length: old slots were cut by the pattern's
        # slot length, whatever the package's; trimming a longer one cannot create an overlap.
        end = min(slot.end, slot.start + timedelta(minutes=length[session_id]))
        TimeSlot.objects.filter(pk=slot.pk).update(
            status=status,
            session_id=session_id,
            student_id=student_id,
            end=end,
            reserved_start=slot.start,
            reserved_end=end,
            released_at=now if status == "RELEASED" else None,
        )

    for coach_id, times in windows.items():
        Window.objects.bulk_create(
            Window(coach_id=coach_id, start=begin, end=finish) for begin, finish in _merge(times)
        )

    # The agreed time of a session being rescheduled is booked again, unless it was taken.
    for session in Session.objects.filter(status="RESCHEDULING", slot__isnull=False):
        slot = TimeSlot.objects.get(pk=session.slot_id)
        clash = TimeSlot.objects.filter(status__in=("HELD", "BOOKED")).exclude(
            session_id=session.pk
        )
        taken = clash.filter(
            Q(coach_id=slot.coach_id) | Q(student_id=session.student_id),
            start__lt=slot.end,
            end__gt=slot.start,
        ).exists()
        if not taken:
            TimeSlot.objects.filter(pk=slot.pk).update(
                status="BOOKED", session_id=session.pk, released_at=None
            )
            continue
        copy = TimeSlot.objects.create(
            coach_id=slot.coach_id,
            student_id=session.student_id,
            session_id=session.pk,
            start=slot.start,
            end=slot.end,
            reserved_start=slot.start,
            reserved_end=slot.end,
            status="RELEASED",
            released_at=now,
        )
        Session.objects.filter(pk=session.pk).update(slot_id=copy.pk)


def backward(apps, schema_editor):
    """Only an empty schedule goes back: reservations, windows, time off and busy times have
    no pre-cut slot to become (the old status check would refuse a released reservation)."""
    names = ("TimeSlot", "AvailabilityWindow", "TimeOff", "BusyTime", "AvailabilityRule")
    if any(apps.get_model("calendars", name).objects.exists() for name in names):
        raise RuntimeError(
            "calendars 0004 cannot be unapplied once availability or reservations exist: "
            "their data has no pre-cut slot form. Restore a backup taken before it instead."
        )


class Migration(migrations.Migration):
    dependencies = [("calendars", "0003_reservations"), ("sessions_app", "0002_package_purchase_token")]

    operations = [migrations.RunPython(forward, backward)]
