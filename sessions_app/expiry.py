"""Credit expiry (issue 15): the unused credits of a package expire `Offering.credit_validity_days`
after they came into being; the coach may extend them; the student is reminded 14 and 2 days
before.

An expired credit is an UNSCHEDULED session of a package whose `expires_at` has passed: it can
no longer be booked (`session_book` refuses it). Sessions already booked (requested, confirmed,
rescheduling) are not affected, nor completed or canceled ones; the coach can still cancel an
expired credit with a refund. `expires_at` null means never.

The rules and their wording live here; the writes are `package_extend_expiry` and the sweep
`packages_remind_expiring` (re-exported by `sessions_app.services`, the public surface).
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.db.models import Count, Exists, F, IntegerField, OuterRef, Subquery
from django.db.models.fields.tuple_lookups import TupleGreaterThan
from django.utils import timezone
from django.utils.dateformat import format as date_format

from catalog.models import MAX_CREDIT_VALIDITY_DAYS
from core.errors import DomainError, PermissionDenied
from sessions_app.lifecycle import Status
from sessions_app.models import Package, Session

logger = logging.getLogger(__name__)

# How far ahead a coach may move an expiry (the same bound as an offering's validity).
MAX_EXTENSION = timedelta(days=MAX_CREDIT_VALIDITY_DAYS)
# Within this long of their expiry, pages say "Expires in 5 days" rather than the date alone.
EXPIRY_SOON = timedelta(days=14)
# The reminders: (their name in keys and facts, how long before the expiry), nearest first.
EXPIRY_REMINDERS = (("2d", timedelta(days=2)), ("14d", timedelta(days=14)))
# Packages per chunk of the reminder sweep (one transaction each).
REMINDER_CHUNK = 500


class ExpiryNotExtendable(DomainError):
    default_message = "These credits cannot be extended."


# --- the rules -------------------------------------------------------------------------------


def credits_expire_at(*, package: Package, now: datetime) -> datetime | None:
    """When the credits of `package`, coming into being at `now`, expire: the package's
    validity after `now`. The validity is the whole days between the provisional `expires_at`
    its purchase recorded from the offering and its `purchased_at`, so a card payment that
    succeeds later still gives the full validity, and an offering changed in between does not
    change what was bought. None: never."""
    if package.expires_at is None:
        return None
    days = round((package.expires_at - package.purchased_at) / timedelta(days=1))
    return now + timedelta(days=days)


def expiry_at_purchase(*, validity_days: int | None, now: datetime) -> datetime | None:
    """The provisional expiry a package records at purchase (the offering's validity)."""
    return now + timedelta(days=validity_days) if validity_days else None


def is_expired(expires_at: datetime | None, now: datetime | None = None) -> bool:
    return expires_at is not None and expires_at <= (now or timezone.now())


def expiry_date_label(moment: datetime) -> str:
    """ "3 Mar 2027": the day in the current (viewer's) timezone, always with its year."""
    return date_format(timezone.localtime(moment), "j M Y")


def expiry_moment_label(moment: datetime) -> str:
    """ "3 Mar 2027, 11:00 GMT" in the current timezone."""
    local = timezone.localtime(moment)
    return f"{expiry_date_label(moment)}, {local:%H:%M} {local.tzname()}"


@dataclass(frozen=True)
class CreditExpiry:
    """How a package's expiry reads on a page: `state` is "expired", "soon" (within
    EXPIRY_SOON) or "later"; `label` the words; `moment` the exact time (for a title), `at`
    the instant."""

    state: str
    label: str
    moment: str
    at: datetime

    @property
    def expired(self) -> bool:
        return self.state == "expired"


def _in_days(expires_at: datetime, now: datetime) -> str:
    """ "in 5 days", "in 1 day", "in 11 hours", "in under an hour" (rounded down)."""
    seconds = (expires_at - now).total_seconds()
    if seconds >= 86400:
        days = int(seconds // 86400)
        return f"in {days} day{'s' if days != 1 else ''}"
    if seconds >= 3600:
        hours = int(seconds // 3600)
        return f"in {hours} hour{'s' if hours != 1 else ''}"
    return "in under an hour"


def credit_expiry(expires_at: datetime | None, now: datetime) -> CreditExpiry | None:
    """The wording of an expiry for a page ("Expired on 3 Mar 2027", "Expires in 5 days, on
    8 Mar 2027", "Expires on 8 Jun 2027"); None for credits that never expire."""
    if expires_at is None:
        return None
    day, moment = expiry_date_label(expires_at), expiry_moment_label(expires_at)
    if expires_at <= now:
        return CreditExpiry("expired", f"Expired on {day}", moment, expires_at)
    if expires_at - now <= EXPIRY_SOON:
        label = f"Expires {_in_days(expires_at, now)}, on {day}"
        return CreditExpiry("soon", label, moment, expires_at)
    return CreditExpiry("later", f"Expires on {day}", moment, expires_at)


def expired_refusal(package: Package, coach_name: str) -> str:
    """Why an expired credit cannot be booked, for a message."""
    return (
        f"This session credit expired on {expiry_date_label(package.expires_at)}, so it can't "
        f"be booked. Ask {coach_name} to extend it."
    )


# --- the coach extends --------------------------------------------------------------------------


def extension_until(*, package: Package, days: int, now: datetime) -> datetime:
    """`days` more for the credits: from the current expiry, or from `now` once it passed."""
    return max(package.expires_at or now, now) + timedelta(days=days)


def package_extend_expiry(
    *, package: Package, actor, until: datetime, now: datetime | None = None
) -> Package:
    """The package's coach moves its credits' expiry later, to `until` (aware): booked
    sessions are not affected; expired credits can be booked again once `until` is ahead.

    Refused for anyone but the package's coach, for credits that never expire, for `until`
    not in the future, not later than the current expiry, or more than MAX_EXTENSION (1095
    days) from now. Records who moved it from when to when as an admin history entry of the
    package (the admin's History, and the package page's "Expiry changes"), in the same
    transaction. New reminders follow for the new date (their keys carry it).
    """
    now = now or timezone.now()
    if until.tzinfo is None:
        raise ExpiryNotExtendable("Give the new expiry with its timezone.")
    with transaction.atomic():
        locked = Package.objects.select_for_update().select_related("student").get(pk=package.pk)
        if actor is None or actor.pk != locked.coach_id:
            raise PermissionDenied("Only the coach of this package can extend its credits.")
        if locked.expires_at is None:
            raise ExpiryNotExtendable("These credits never expire; there is nothing to extend.")
        if until <= now:
            raise ExpiryNotExtendable("Choose a new expiry in the future.")
        if until <= locked.expires_at:
            raise ExpiryNotExtendable(
                f"The credits already run until {expiry_moment_label(locked.expires_at)}; "
                "choose a later date to extend them."
            )
        if until > now + MAX_EXTENSION:
            raise ExpiryNotExtendable(
                f"Credits can be extended at most {MAX_CREDIT_VALIDITY_DAYS} days ahead, until "
                f"{expiry_date_label(now + MAX_EXTENSION)}."
            )
        previous = locked.expires_at
        locked.expires_at = until
        locked.save(update_fields=["expires_at"])
        LogEntry.objects.create(
            user_id=actor.pk,
            content_type=ContentType.objects.get_for_model(Package),
            object_id=str(locked.pk),
            object_repr=str(locked)[:200],
            action_flag=CHANGE,
            change_message=extension_message(previous=previous, until=until, actor=actor),
            action_time=now,
        )
    logger.info(
        "package %s: credits extended by user %s from %s to %s",
        locked.pk,
        actor.pk,
        previous.isoformat(),
        until.isoformat(),
    )
    return locked


def extension_message(*, previous: datetime, until: datetime, actor) -> str:
    """The history entry of an extension, in UTC (an auditor compares entries)."""
    return (
        f"Credits expiry extended by the coach ({actor.email}) from "
        f"{previous:%Y-%m-%d %H:%M} UTC to {until:%Y-%m-%d %H:%M} UTC."
    )


# --- the reminder sweep -----------------------------------------------------------------------


def packages_due_for_reminder(*, after: datetime, until: datetime, lead: timedelta):
    """Packages whose credits expire in (after, until], bought at least `lead` before their
    expiry, with unused credits, in the order of the partial index `package_expiring`
    (expires_at, id); each with `unused` and `first_credit_id`."""
    unused = Session.objects.filter(package=OuterRef("pk"), status=Status.UNSCHEDULED)
    return (
        Package.objects.filter(
            expires_at__isnull=False,
            expires_at__gt=after,
            expires_at__lte=until,
            # Bought before this reminder's moment (the expiry minus the lead).
            purchased_at__lte=F("expires_at") - lead,
        )
        # Correlated subqueries, not a join with GROUP BY: the read keeps the index's order
        # and its LIMIT.
        .filter(Exists(unused))
        .annotate(
            unused=Subquery(
                unused.order_by().values("package").annotate(n=Count("pk")).values("n"),
                output_field=IntegerField(),
            ),
            first_credit_id=Subquery(unused.order_by("number", "pk").values("pk")[:1]),
        )
        .order_by("expires_at", "pk")
    )


def packages_remind_expiring(*, now: datetime | None = None) -> int:
    """Write the "credits about to expire" emails to students, 14 days and 2 days before a
    package's credits expire, for packages that still have unused (UNSCHEDULED) credits.

    Each reminder is one outbox row whose key carries the package, its expiry and the lead,
    so a second run writes nothing and an extension (a new expiry) brings new reminders. A
    package whose expiry is within 2 days gets only the 2-day one; a reminder is due only for
    packages bought before its moment (one bought 10 days before expiry gets no 14-day one:
    its receipt just told the date). The packages are read in keyset chunks through the
    partial index `package_expiring` (expires_at, id), each chunk its own transaction; the
    emails are sent once it commits. Returns how many reminders it wrote (or found written
    and still to send).
    """
    # Imported here: the outbox reads sessions_app.selectors, which words expiries with this
    # module.
    from notifications import services as notification_services

    now = now or timezone.now()
    written = 0
    floor = now
    for which, lead in EXPIRY_REMINDERS:
        due = packages_due_for_reminder(after=floor, until=now + lead, lead=lead)
        after = None
        while True:
            chunk = due
            if after is not None:
                chunk = chunk.filter(TupleGreaterThan((F("expires_at"), F("pk")), after))
            with transaction.atomic():
                packages = list(chunk.select_related("coach", "student")[:REMINDER_CHUNK])
                if not packages:
                    break
                ids = notification_services.deliveries_for_expiring_credits(
                    packages=packages, which=which, now=now
                )
            written += len(ids)
            notification_services.deliveries_send_new(delivery_ids=ids)
            if len(packages) < REMINDER_CHUNK:
                break
            after = (packages[-1].expires_at, packages[-1].pk)
        floor = now + lead  # the next, farther reminder covers only what lies beyond this one
    return written
