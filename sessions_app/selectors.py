"""Reads for sessions, scoped to whoever asks, with the joins that keep query counts flat."""

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import partial

from django.db.models import (
    Count,
    Exists,
    F,
    FloatField,
    Func,
    IntegerField,
    Max,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce
from django.utils import timezone

from core.pagination import Key, Seek, keyset_slice
from core.prepared import PreparedQuery
from sessions_app.expiry import credit_expiry
from sessions_app.lifecycle import (
    ENDED_STATUSES,
    HOLDING_STATUSES,
    PUBLISHED_STATUSES,
    UPCOMING_STATUSES,
    Action,
    Role,
    Status,
    allowed_actions,
)
from sessions_app.models import (
    CoachDailyTally,
    ProposalStatus,
    RescheduleProposal,
    Session,
    SessionEvent,
)


def slot_active_holders(*, slot) -> tuple[QuerySet, QuerySet]:
    """The sessions and pending proposals that hold `slot` (a slot, an id or an OuterRef)."""
    return (
        Session.objects.filter(slot=slot, status__in=HOLDING_STATUSES),
        RescheduleProposal.objects.filter(slot=slot, status=ProposalStatus.PENDING),
    )


def session_pending_proposal(*, session: Session) -> RescheduleProposal | None:
    return (
        RescheduleProposal.objects.select_related("slot", "proposed_by")
        .filter(session=session, status=ProposalStatus.PENDING)
        .first()
    )


def session_roles(
    *, session: Session, user, proposal: RescheduleProposal | None = None
) -> set[Role]:
    """The lifecycle roles `user` holds for `session` (empty for an outsider).

    The pending proposal is `proposal` when given, else the one prefetched into
    `session.pending_proposals` (see `session_detail_for_user`), else it is queried.
    """
    if user is None:
        return {Role.SYSTEM}
    roles: set[Role] = set()
    if user.pk == session.coach_id:
        roles.add(Role.COACH)
    if user.pk == session.student_id:
        roles.add(Role.STUDENT)
    if roles and session.status == Status.RESCHEDULING:
        if proposal is None and hasattr(session, "pending_proposals"):
            proposal = session.pending_proposals[0] if session.pending_proposals else None
        elif proposal is None:
            proposal = session_pending_proposal(session=session)
        if proposal is not None:
            roles.add(Role.PROPOSER if proposal.proposed_by_id == user.pk else Role.RESPONDER)
    return roles


def session_available_actions(
    *, session: Session, user, proposal: RescheduleProposal | None = None
) -> list[str]:
    """What `user` may do with `session` right now, as lifecycle action values: the table's
    rows for the user's roles, less what the session's own facts rule out (a student cancels
    only before the start; only a make-up credit left to the student's choice is refundable).

    Pass the pending `proposal` when it is already at hand, so it is not read again.
    """
    roles = session_roles(session=session, user=user, proposal=proposal)
    actions = list(allowed_actions(session.status, roles))
    if Action.REFUND_CREDIT in actions and not session.makeup_refundable:
        actions.remove(Action.REFUND_CREDIT)
    started = session.starts_at is None or session.starts_at <= timezone.now()
    if Action.CANCEL in actions and Role.COACH not in roles and started:
        actions.remove(Action.CANCEL)
    if Action.BOOK in actions and session_credit_expired(session=session):
        actions.remove(Action.BOOK)  # an expired credit cannot be booked (sessions_app.expiry)
    return actions


def session_credit_expired(*, session: Session, now: datetime | None = None) -> bool:
    """Whether `session` is an expired credit: unscheduled, of a package past its expiry."""
    expires_at = session.package.expires_at
    return (
        session.status == Status.UNSCHEDULED
        and expires_at is not None
        and expires_at <= (now or timezone.now())
    )


# A coach's cancellation rate at or above this share is "High": the refund drawer then advises
# rescheduling instead (Metafy's advice: canceling too often hurts students).
CANCELLATION_RATE_HIGH = 0.10


@dataclass(frozen=True)
class CancellationRate:
    canceled: int
    booked: int
    days: int

    @property
    def rate(self) -> float:
        return self.canceled / self.booked if self.booked else 0.0

    @property
    def percent(self) -> int:
        return round(self.rate * 100)

    @property
    def is_high(self) -> bool:
        return self.booked > 0 and self.rate >= CANCELLATION_RATE_HIGH


def _tally_since(*, days: int, now: datetime | None) -> date:
    """The first UTC day of a `days`-day window ending today (today counts as one)."""
    return ((now or timezone.now()).astimezone(UTC) - timedelta(days=days - 1)).date()


def coach_cancellation_rate(
    *, coach, days: int = 90, now: datetime | None = None
) -> CancellationRate:
    """Bookings the coach canceled (from Requested, Confirmed or Rescheduling) over bookings
    made, in the last `days` UTC days.

    Summed from `CoachDailyTally`, at most `days` rows read through its unique index, so the
    cost does not grow with the coach's history (an unused credit canceled costs no student a
    planned session and is not counted). One query.
    """
    counts = CoachDailyTally.objects.filter(
        coach=coach, day__gte=_tally_since(days=days, now=now)
    ).aggregate(booked=Sum("booked", default=0), canceled=Sum("coach_canceled", default=0))
    return CancellationRate(canceled=counts["canceled"], booked=counts["booked"], days=days)


def coach_cancellation_counts_annotation(
    *, coach, days: int = 90, now: datetime | None = None
) -> dict[str, Coalesce]:
    """The counts of `coach_cancellation_rate` as subquery expressions, to annotate a list of
    coaches in its one query: `{"booked_recent": ..., "canceled_recent": ...}`.

    `coach` names the row's coach, usually an `OuterRef` (the admin's CoachProfile list passes
    `OuterRef("user")`).
    """
    tallies = CoachDailyTally.objects.filter(
        coach=coach, day__gte=_tally_since(days=days, now=now)
    ).order_by()

    def total(field: str) -> Coalesce:
        summed = tallies.values("coach").annotate(n=Sum(field)).values("n")
        return Coalesce(Subquery(summed, output_field=IntegerField()), 0)

    return {"booked_recent": total("booked"), "canceled_recent": total("coach_canceled")}


# --- pages (issue 3): lists scoped to the viewer ---------------------------------------------


def _awaiting_coach_proposal(*, coach, now: datetime) -> Exists:
    return Exists(
        RescheduleProposal.objects.filter(
            session=OuterRef("pk"), status=ProposalStatus.PENDING, expires_at__gt=now
        ).exclude(proposed_by=coach)
    )


@dataclass(frozen=True)
class CoachNavigation:
    task_count: int  # the Tasks badge
    has_packages: bool  # the coach bought packages from other coaches (show My sessions)
    get_started_done: bool = True  # every Get started step done (hide Get started)
    proposal_count: int = 0  # as a student: new times waiting on them (the My sessions badge)


def _count_up_to_badge(sessions: QuerySet) -> Coalesce:
    """How many of `sessions` there are, reading at most TASK_BADGE_MAX + 1: a subquery."""
    limited = sessions.order_by().values("pk")[: TASK_BADGE_MAX + 1]
    counted = (
        Session.objects.filter(pk__in=limited)
        .order_by()
        .annotate(group=Value(1))
        .values("group")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Coalesce(Subquery(counted, output_field=IntegerField()), 0)


def _coach_navigation_query(*, coach_id, now: datetime) -> QuerySet:
    """The one row `coach_navigation` reads: (task count, has packages, proposal count, each
    Get started step done)."""
    from accounts.models import User
    from accounts.selectors import GET_STARTED_KEYS, get_started_annotations
    from calendars.selectors import coach_conflicting_session_ids
    from sessions_app.models import Package

    # What waits on the coach, as the Tasks page lists it: live requests (R), proposals to
    # answer (A) and agreed times a busy time overlaps (C), a session both awaiting and in
    # conflict (O) counted once. Each is its own indexed read that stops one past
    # TASK_BADGE_MAX (the badge then says "99+"), so the badge on every coach page costs the
    # same however many sessions the coach has; one OR over them walked all their sessions.
    requests = Session.objects.filter(
        coach=coach_id, status=Status.REQUESTED, request_expires_at__gt=now
    )
    awaiting = Session.objects.filter(coach=coach_id, status=Status.RESCHEDULING).filter(
        _awaiting_coach_proposal(coach=coach_id, now=now)
    )
    conflicts = Session.objects.filter(
        pk__in=coach_conflicting_session_ids(coach=coach_id, now=now),
        status__in_constants=UPCOMING_STATUSES,
    )
    both = conflicts.filter(status=Status.RESCHEDULING).filter(
        _awaiting_coach_proposal(coach=coach_id, now=now)
    )
    task_count = (
        _count_up_to_badge(requests)
        + _count_up_to_badge(awaiting)
        + _count_up_to_badge(conflicts)
        - _count_up_to_badge(both)
    )
    waiting = (
        _proposals_waiting_on_student(student=OuterRef("pk"), now=now)
        .order_by()
        .values("session__student")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return (
        User.objects.filter(pk=coach_id)
        .annotate(
            task_count=task_count,
            has_packages=Exists(Package.objects.filter(student=OuterRef("pk"))),
            proposal_count=Coalesce(Subquery(waiting, output_field=IntegerField()), 0),
            **get_started_annotations(),
        )
        .values_list("task_count", "has_packages", "proposal_count", *GET_STARTED_KEYS)
    )


# Compiled once per process: building this query takes the ORM ~7 ms, running it ~0.1 ms, and
# it runs on every coach page.
_COACH_NAVIGATION = PreparedQuery(_coach_navigation_query, coach_id="int", now="datetime")


def coach_navigation(*, coach, now: datetime | None = None) -> CoachNavigation:
    """What a coach's navigation needs, in one query: the Tasks count (up to one past
    TASK_BADGE_MAX), whether the coach has bought any package as a student (and the new times
    waiting on them as one), and whether Get started is done."""
    rows = _COACH_NAVIGATION.rows(coach_id=coach.pk, now=now or timezone.now())
    task_count, has_packages, proposal_count, *get_started = rows[0]
    return CoachNavigation(
        task_count=task_count,
        has_packages=bool(has_packages),
        get_started_done=all(get_started),
        proposal_count=proposal_count,
    )


def _pending_proposals() -> Prefetch:
    return Prefetch(
        "proposals",
        queryset=RescheduleProposal.objects.filter(status=ProposalStatus.PENDING).select_related(
            "slot", "proposed_by"
        ),
        to_attr="pending_proposals",
    )


def with_pending_proposals(sessions: list[Session]) -> list[Session]:
    """Give each session `pending_proposals` (its pending proposal, or none), reading them for
    the rescheduling ones only: one query, none when no session is being rescheduled."""
    moving = [session.pk for session in sessions if session.status == Status.RESCHEDULING]
    found: dict[int, list] = {}
    if moving:
        proposals = RescheduleProposal.objects.filter(
            session_id__in=moving, status=ProposalStatus.PENDING
        ).select_related("slot", "proposed_by")
        for proposal in proposals:
            found.setdefault(proposal.session_id, []).append(proposal)
    for session in sessions:
        session.pending_proposals = found.get(session.pk, [])
    return sessions


def _list_base() -> QuerySet:
    return Session.objects.select_related("slot", "package", "coach", "student")


# What a row of Upcoming or Completed shows (`sessions_app.rows`): the session's own time and
# status, its package's title and size, the student's name. Only these columns are read and
# converted (a full row with slot, coach and student is ~40 columns, half of them datetimes).
ROW_FIELDS = (
    "number",
    "status",
    "starts_at",
    "ends_at",
    "updated_at",
    "slot",
    "coach",
    "package__title",
    "package__session_count",
    "student__display_name",
    "student__email",
)


def _row_base() -> QuerySet:
    return Session.objects.select_related("package", "student").only(*ROW_FIELDS)


def _with_refunded_cents(queryset: QuerySet) -> QuerySet:
    """`refunded_cents` on each row: a correlated subquery, so the list keeps its index order
    and LIMIT (a join with GROUP BY would aggregate every row first)."""
    from refunds.selectors import refunded_cents_subquery

    return queryset.annotate(refunded_cents=refunded_cents_subquery(via="session"))


def session_for_user(*, user, pk) -> Session | None:
    """One session that `user` coaches or attends (None for anyone else's or an unknown id)."""
    return (
        _list_base()
        .select_related("package__payment", "coach__coach_profile")
        .filter(Q(coach=user) | Q(student=user), pk=pk)
        .first()
    )


def session_detail_for_user(*, user, pk) -> Session | None:
    """`session_for_user` plus its events (with actors), refunds and pending proposal.

    `refunded_cents` is what was refunded so far, counted from the prefetched refunds (a failed
    refund moved no money, so it does not count).
    """
    from refunds.selectors import COUNTED_STATES

    session = (
        _list_base()
        .select_related("package__payment", "coach__cancellation_policy")
        .prefetch_related(
            Prefetch("events", queryset=SessionEvent.objects.select_related("actor")),
            "refunds",
            _pending_proposals(),
        )
        .filter(Q(coach=user) | Q(student=user), pk=pk)
        .first()
    )
    if session is not None:
        session.refunded_cents = sum(
            refund.amount_cents
            for refund in session.refunds.all()
            if refund.state in COUNTED_STATES
        )
    return session


# Tasks shows at most this many of each kind, the nearest deadline first: answering them brings
# the next ones up (a work queue needs no page 2). The badge counts up to TASK_BADGE_MAX.
TASKS_SHOWN = 25
TASK_BADGE_MAX = 99


@dataclass(frozen=True)
class CoachTasks:
    requests: list[Session]
    proposals: list[Session]
    conflicts: list[Session]  # agreed times an external busy time overlaps
    more_requests: bool = False  # more than TASKS_SHOWN requests wait
    more_proposals: bool = False

    def __len__(self) -> int:
        """How many sessions wait on the coach (a session both awaiting an answer and in
        conflict counts once, as in the navigation badge)."""
        return len({session.pk for session in (*self.requests, *self.proposals, *self.conflicts)})


def coach_tasks(*, coach, now: datetime | None = None) -> CoachTasks:
    """What waits on `coach`: live booking requests, and proposals the coach must answer, up
    to TASKS_SHOWN of each.

    Requests and proposals are ordered oldest expiry first, conflicts soonest first. Four
    queries whatever the number of rows; requests come through the (coach, status, expiry)
    index.
    """
    now = now or timezone.now()
    requests = list(
        _list_base()
        .filter(coach=coach, status=Status.REQUESTED, request_expires_at__gt=now)
        .order_by("request_expires_at", "pk")[: TASKS_SHOWN + 1]
    )
    expires = RescheduleProposal.objects.filter(
        session=OuterRef("pk"), status=ProposalStatus.PENDING
    ).values("expires_at")[:1]
    proposals = list(
        _list_base()
        .filter(coach=coach, status=Status.RESCHEDULING)
        .filter(_awaiting_coach_proposal(coach=coach, now=now))
        .annotate(proposal_expires_at=Subquery(expires))
        .prefetch_related(_pending_proposals())
        .order_by("proposal_expires_at", "pk")[: TASKS_SHOWN + 1]
    )
    return CoachTasks(
        requests=requests[:TASKS_SHOWN],
        proposals=proposals[:TASKS_SHOWN],
        conflicts=coach_busy_conflicts(coach=coach, now=now)[:TASKS_SHOWN],
        more_requests=len(requests) > TASKS_SHOWN,
        more_proposals=len(proposals) > TASKS_SHOWN,
    )


def _filtered(queryset: QuerySet, *, search=None, offering_id=None, status=None) -> QuerySet:
    """A coach list narrowed to a student whose name or email contains `search`, to one
    offering and to one status (each skipped when None or empty)."""
    if search:
        queryset = queryset.filter(
            Q(student__display_name__icontains=search) | Q(student__email__icontains=search)
        )
    if offering_id is not None:
        queryset = queryset.filter(package__offering_id=offering_id)
    if status:
        queryset = queryset.filter(status=status)
    return queryset


# The order of each paginated list (core.pagination keys), each served by one of Session's
# indexes: Upcoming soonest first, Completed latest first, Canceled most recently canceled first.
UPCOMING_KEYS = [Key("starts_at"), Key("pk")]
COMPLETED_KEYS = [Key("starts_at", descending=True), Key("pk", descending=True)]
CANCELED_KEYS = [Key("updated_at", descending=True), Key("pk", descending=True)]
STUDENT_PAST_KEYS = CANCELED_KEYS
STUDENTS_KEYS = [Key("display_name"), Key("email"), Key("pk")]


def _ordered(queryset: QuerySet, keys: list[Key]) -> QuerySet:
    return queryset.order_by(*(key.order() for key in keys))


def coach_upcoming_sessions(
    *, coach, now: datetime | None = None, search=None, offering_id=None, status=None
) -> QuerySet:
    """Confirmed sessions that have not ended, and sessions being rescheduled, soonest first
    (UPCOMING_KEYS; optionally filtered: see `_filtered`). A page of them gets its pending
    proposals from `with_pending_proposals`."""
    now = now or timezone.now()
    return _filtered(
        _ordered(
            _row_base()
            .filter(coach=coach, status__in_constants=UPCOMING_STATUSES)
            .filter(Q(ends_at__gt=now) | Q(status=Status.RESCHEDULING)),
            UPCOMING_KEYS,
        ),
        search=search,
        offering_id=offering_id,
        status=status,
    )


def coach_completed_sessions(*, coach, search=None, offering_id=None) -> QuerySet:
    """Completed sessions, latest first (COMPLETED_KEYS; optionally filtered: see
    `_filtered`)."""
    return _filtered(
        _ordered(_row_base().filter(coach=coach, status=Status.COMPLETED), COMPLETED_KEYS),
        search=search,
        offering_id=offering_id,
    )


@dataclass(frozen=True)
class ListStamp:
    """One row of a coach's day list as its cached table needs it: the row's key in the
    list's order (for the page's cursors), its day, and what its rendered row depends on."""

    pk: int
    starts_at: datetime | None
    updated_at: datetime
    status: str
    proposal_id: int | None  # the pending proposal, if any

    @property
    def mark(self) -> tuple:
        return (self.pk, self.updated_at, self.proposal_id)


# The day lists whose pages can be read as stamps: (selector, keys, its own narrowing kinds).
_STAMPED_LISTS = {
    "upcoming": (coach_upcoming_sessions, UPCOMING_KEYS, {"now": "datetime", "status": "str"}),
    "completed": (coach_completed_sessions, COMPLETED_KEYS, {}),
}
_KEY_KINDS = {"pk": "int", "starts_at": "datetime"}
_PREPARED_STAMPS: dict[tuple[str, int], PreparedQuery] = {}


def _stamps_query(select, keys: list[Key], size: int, *, coach_id, offering_id, **values):
    """The `values_list` of a list page's stamps (see `coach_list_stamps`)."""
    after = [values.pop(f"after_{i}") for i in range(len(keys))]
    before = [values.pop(f"before_{i}") for i in range(len(keys))]
    seek = Seek(
        after=None if after[0] is None else after,
        before=None if before[0] is None else before,
        number=1,
    )
    pending = RescheduleProposal.objects.filter(
        session=OuterRef("pk"), status=ProposalStatus.PENDING
    ).values("pk")[:1]
    stamps = select(coach=coach_id, offering_id=offering_id, **values).values_list(
        "pk", "starts_at", "updated_at", "status", Subquery(pending, output_field=IntegerField())
    )
    return keyset_slice(stamps, keys=keys, seek=seek, size=size)


def coach_list_stamps(
    *, tab: str, coach, seek: Seek, size: int, offering_id=None, **narrowing
) -> list[ListStamp]:
    """The stamps of the page `seek` names of a coach's Upcoming or Completed list (size + 1
    rows at most, as `keyset_slice` reads them), narrowed like the list (`now` and `status`
    for Upcoming; no search: a search runs the list itself). One query, compiled once per
    process for each combination of filters and cursor (building it is most of its cost)."""
    select, keys, kinds = _STAMPED_LISTS[tab]
    prepared = _PREPARED_STAMPS.get((tab, size))
    if prepared is None:
        key_kinds = {}
        for i, key in enumerate(keys):
            key_kinds[f"after_{i}"] = key_kinds[f"before_{i}"] = _KEY_KINDS[key.name]
        prepared = _PREPARED_STAMPS[tab, size] = PreparedQuery(
            partial(_stamps_query, select, keys, size),
            coach_id="int",
            offering_id="int",
            **kinds,
            **key_kinds,
        )
    values = {name: narrowing.get(name) or None for name in kinds}
    if "now" in values:
        values["now"] = values["now"] or timezone.now()
    for i in range(len(keys)):
        values[f"after_{i}"] = seek.after[i] if seek.after else None
        values[f"before_{i}"] = seek.before[i] if seek.before else None
    rows = prepared.rows(coach_id=coach.pk, offering_id=offering_id, **values)
    return [ListStamp(*row) for row in rows]


def coach_canceled_sessions(*, coach, search=None, offering_id=None) -> QuerySet:
    """Canceled sessions, most recently canceled first (CANCELED_KEYS), with what was
    refunded and each of their refunds (prefetched: one query per page, for each refund's
    amount and state); optionally filtered (see `_filtered`)."""
    return _with_refunded_cents(
        _filtered(
            _ordered(
                _list_base()
                .filter(coach=coach, status=Status.CANCELED)
                .prefetch_related("refunds"),
                CANCELED_KEYS,
            ),
            search=search,
            offering_id=offering_id,
        )
    )


def coach_students(*, coach, search=None, now: datetime | None = None) -> QuerySet:
    """The students who bought from `coach`, by name (STUDENTS_KEYS), each annotated
    (subqueries: one query per page) with `packages_count`, `credits_left` (unscheduled
    sessions), `next_start` (the next confirmed or rescheduling session) and `last_start`
    (the latest completed)."""
    from accounts.models import User
    from sessions_app.models import Package

    now = now or timezone.now()

    def sessions(**conditions):
        return Session.objects.filter(coach=coach, student=OuterRef("pk"), **conditions).order_by()

    def count(queryset):
        return Coalesce(
            Subquery(
                queryset.values("student").annotate(n=Count("pk")).values("n"),
                output_field=IntegerField(),
            ),
            0,
        )

    packages = Package.objects.filter(coach=coach, student=OuterRef("pk")).order_by()
    queryset = User.objects.filter(Exists(packages)).annotate(
        packages_count=count(packages),
        credits_left=count(
            sessions(status=Status.UNSCHEDULED).filter(
                Q(package__expires_at__isnull=True) | Q(package__expires_at__gt=now)
            )
        ),
        next_start=Subquery(
            sessions(status__in_constants=UPCOMING_STATUSES, ends_at__gt=now)
            .order_by("starts_at")
            .values("starts_at")[:1]
        ),
        last_start=Subquery(
            sessions(status=Status.COMPLETED).order_by("-starts_at").values("starts_at")[:1]
        ),
    )
    queryset = _ordered(queryset, STUDENTS_KEYS)
    if search:
        queryset = queryset.filter(Q(display_name__icontains=search) | Q(email__icontains=search))
    return queryset


# One student's page lists at most this many packages and booked sessions; history pages.
COACH_STUDENT_SHOWN = 25


@dataclass(frozen=True)
class CoachStudent:
    student: object
    packages: list  # newest first, each with `used` and `credits_left`
    credits_left: int  # over the packages listed
    upcoming: list[Session]
    history: QuerySet  # ended sessions, most recently ended first (STUDENT_PAST_KEYS)
    more_packages: bool = False
    more_upcoming: bool = False


def coach_student(*, coach, student_id) -> CoachStudent | None:
    """One student of `coach` (None when they never bought from this coach): their newest
    packages with progress, their soonest booked sessions (COACH_STUDENT_SHOWN of each) and
    their history, to paginate. Three queries here, each bounded, the history page a fourth."""
    from accounts.models import User
    from sessions_app.models import Package

    student = (
        User.objects.filter(pk=student_id)
        .filter(Exists(Package.objects.filter(coach=coach, student=OuterRef("pk"))))
        .first()
    )
    if student is None:
        return None
    unbooked = (
        Session.objects.filter(package=OuterRef("pk"), status=Status.UNSCHEDULED)
        .order_by()
        .values("package")
        .annotate(n=Count("pk"))
        .values("n")
    )
    packages = list(
        Package.objects.filter(coach=coach, student=student)
        .annotate(credits_left=Coalesce(Subquery(unbooked, output_field=IntegerField()), 0))
        .order_by("-purchased_at", "-pk")[: COACH_STUDENT_SHOWN + 1]
    )
    now = timezone.now()
    for package in packages:
        package.used = package.session_count - package.credits_left
        _mark_expiry(package, package.credits_left, now)
        package.credits_left -= package.expired_credits
    upcoming = list(
        _list_base()
        .filter(coach=coach, student=student, status__in_constants=HOLDING_STATUSES)
        .order_by("starts_at", "pk")[: COACH_STUDENT_SHOWN + 1]
    )
    history = _ordered(
        _list_base().filter(coach=coach, student=student, status__in_constants=ENDED_STATUSES),
        STUDENT_PAST_KEYS,
    )
    return CoachStudent(
        student=student,
        packages=packages[:COACH_STUDENT_SHOWN],
        credits_left=sum(package.credits_left for package in packages[:COACH_STUDENT_SHOWN]),
        upcoming=upcoming[:COACH_STUDENT_SHOWN],
        history=history,
        more_packages=len(packages) > COACH_STUDENT_SHOWN,
        more_upcoming=len(upcoming) > COACH_STUDENT_SHOWN,
    )


# My sessions lists at most this many unbooked credits and this many booked sessions (the
# packages table above them counts every credit); past sessions are paginated.
STUDENT_CREDITS_SHOWN = 25
STUDENT_ACTIVE_SHOWN = 25


def student_credits(*, student, limit: int = STUDENT_CREDITS_SHOWN) -> list[Session]:
    """Up to `limit + 1` of the student's unbooked sessions, in purchase order (one query,
    through the (student, status, starts_at, id) index: a credit has no time)."""
    return list(
        _list_base()
        .filter(student=student, status=Status.UNSCHEDULED, starts_at__isnull=True)
        .order_by("pk")[: limit + 1]
    )


def student_active_sessions(*, student, limit: int = STUDENT_ACTIVE_SHOWN) -> list[Session]:
    """Up to `limit + 1` of the student's requested, confirmed and rescheduling sessions,
    soonest first, with their pending proposal (two queries, through a partial index)."""
    return list(
        _list_base()
        .filter(student=student, status__in_constants=HOLDING_STATUSES)
        .prefetch_related(_pending_proposals())
        .order_by("starts_at", "pk")[: limit + 1]
    )


@dataclass(frozen=True)
class StudentSections:
    """A student's active sessions by what they can do with them (My sessions)."""

    credits: list[Session]  # unscheduled: to book
    requested: list[Session]  # waiting for the coach
    awaiting: list[Session]  # a new time proposed to the student, to answer
    upcoming: list[Session]  # confirmed, or rescheduling on the student's own proposal
    more_credits: bool = False  # more credits than STUDENT_CREDITS_SHOWN
    more_booked: bool = False  # more booked sessions than STUDENT_ACTIVE_SHOWN


def student_session_sections(*, student) -> StudentSections:
    """The student's credits and booked sessions sorted into sections, each keeping its
    order; three queries, each bounded (see STUDENT_CREDITS_SHOWN, STUDENT_ACTIVE_SHOWN).

    Every booked session gets `pending_proposal`: its pending proposal, or None.
    """
    credits = student_credits(student=student)
    booked = student_active_sessions(student=student)
    sections: dict[str, list[Session]] = {"requested": [], "awaiting": [], "upcoming": []}
    for session in booked[:STUDENT_ACTIVE_SHOWN]:
        proposal = session.pending_proposals[0] if session.pending_proposals else None
        session.pending_proposal = proposal
        if session.status == Status.REQUESTED:
            sections["requested"].append(session)
        elif proposal is not None and proposal.proposed_by_id != student.pk:
            sections["awaiting"].append(session)
        else:
            sections["upcoming"].append(session)
    return StudentSections(
        credits=credits[:STUDENT_CREDITS_SHOWN],
        more_credits=len(credits) > STUDENT_CREDITS_SHOWN,
        more_booked=len(booked) > STUDENT_ACTIVE_SHOWN,
        **sections,
    )


def student_past_sessions(*, student) -> QuerySet:
    """The student's completed and canceled sessions, most recently ended first
    (STUDENT_PAST_KEYS), with what was refunded."""
    return _with_refunded_cents(
        _ordered(
            _list_base().filter(student=student, status__in_constants=ENDED_STATUSES),
            STUDENT_PAST_KEYS,
        )
    )


_READ_IT = object()


def session_bookable_starts(
    *,
    session: Session,
    start: datetime,
    end: datetime,
    now: datetime | None = None,
    proposal=_READ_IT,
) -> list[datetime]:
    """The starts in [start, end) this session could be booked at or moved to now: the
    coach's bookable starts for the session's length, free for its student too. The session's
    own reservations do not count (a new time may overlap the current one); while it is being
    rescheduled, the agreed time and the pending proposal's time are left out. Pass the
    pending `proposal` (or None) when it is already at hand, so it is not read again."""
    from calendars.selectors import bookable_starts

    starts = bookable_starts(
        coach=session.coach,
        duration_minutes=session.package.duration_minutes,
        start=start,
        end=end,
        student=session.student,
        now=now,
        session=session,
    )
    taken = set()
    if session.slot_id and session.status in (Status.CONFIRMED, Status.RESCHEDULING):
        taken.add(session.slot.start)
    if proposal is _READ_IT:
        proposal = (
            session_pending_proposal(session=session)
            if session.status == Status.RESCHEDULING
            else None
        )
    if proposal is not None:
        taken.add(proposal.slot.start)
    return [moment for moment in starts if moment not in taken]


def coach_busy_conflicts(*, coach, now: datetime | None = None) -> list[Session]:
    """The coach's confirmed or rescheduling sessions whose agreed time an external busy time
    overlaps (and that the coach has not chosen to keep since), soonest first: one query."""
    from calendars.selectors import coach_conflicting_slot_ids

    return list(
        _list_base()
        .filter(
            coach=coach,
            status__in=[Status.CONFIRMED, Status.RESCHEDULING],
            slot_id__in=coach_conflicting_slot_ids(coach=coach, now=now),
        )
        .order_by("slot__start", "pk")
    )


# --- for calendars.feeds: the subscription feed and the week view -------------------------------

# A canceled session stays in the feed (STATUS:CANCELLED) this long after its cancellation, so
# subscribed calendars see it canceled before it disappears.
CANCELED_VISIBLE_DAYS = 30
# Completed sessions stay in the feed this long after they ended: a subscribed calendar keeps
# the recent history instead of losing each session the moment it is completed.
COMPLETED_VISIBLE_DAYS = 90
# Statuses whose time a subscribed calendar had already been shown; only their cancellation is
# published (a canceled request never appeared, so it never needs a CANCELLED entry).
FEED_PUBLISHED_STATUSES = PUBLISHED_STATUSES
# The sessions a week view shows (at their slot's time).
WEEK_STATUSES = (Status.REQUESTED, Status.CONFIRMED, Status.RESCHEDULING, Status.COMPLETED)


# The feed looks this far ahead. A subscribed calendar needs the coming year, not every session
# ever booked: each poll would carry them all (20,000 sessions were 8.5 MB and 11 s a fetch).
FEED_HORIZON_DAYS = 365


class _Epoch(Func):
    """A datetime column as seconds since 1970 (a number that can be summed), on PostgreSQL
    and on SQLite (the embedded database and the first test pass)."""

    output_field = FloatField()

    def as_sql(self, compiler, connection, **extra_context):
        return super().as_sql(
            compiler, connection, template="EXTRACT(EPOCH FROM %(expressions)s)", **extra_context
        )

    def as_sqlite(self, compiler, connection, **extra_context):
        return super().as_sql(
            compiler,
            connection,
            template="((julianday(%(expressions)s) - 2440587.5) * 86400.0)",
            **extra_context,
        )


class _EpochSeconds(Func):
    """A datetime column as whole seconds since 1970 (an integer, rounded down, as a calendar
    shows times). The feed reads its times this way: Django's loader for PostgreSQL
    timestamps is Python code, about 4 microseconds a value, and a feed reads 8,000 of them."""

    output_field = IntegerField()

    def as_sql(self, compiler, connection, **extra_context):
        return super().as_sql(
            compiler,
            connection,
            template="CAST(FLOOR(EXTRACT(EPOCH FROM %(expressions)s)) AS BIGINT)",
            **extra_context,
        )

    def as_sqlite(self, compiler, connection, **extra_context):
        return super().as_sql(
            compiler,
            connection,
            template="CAST(strftime('%%%%s', %(expressions)s) AS INTEGER)",
            **extra_context,
        )


@dataclass(frozen=True, slots=True)
class CalendarFeedEntry:
    """What the feed shows of one session: its own fields, its agreed time (`start`, `end`),
    its package's `title`, and `coach` and `student` as users carrying their id, display name
    and email only (one object per person, however many sessions they share). Times are in
    UTC, to the second (all a calendar shows)."""

    pk: int
    number: int
    status: str
    sequence: int
    created_at: datetime
    updated_at: datetime
    start: datetime
    end: datetime
    title: str
    coach_id: int
    student_id: int
    coach: object
    student: object


def sessions_for_calendar_feed(*, user, now: datetime | None = None) -> list[CalendarFeedEntry]:
    """The sessions `user`'s calendar feed publishes (as coach and as student), in one query.

    Confirmed, rescheduling (at the last agreed time) and completed sessions that ended at most
    COMPLETED_VISIBLE_DAYS ago (a confirmed one whose time has passed is shown like a completed
    one until the sweep marks it), and sessions canceled in the last CANCELED_VISIBLE_DAYS after
    they had been published; all of them starting before `now` + FEED_HORIZON_DAYS. Ordered by
    start. Plain rows, not models: a feed has thousands, and building five model instances per
    session was most of its time.
    """
    now = now or timezone.now()
    # A session is canceled once (it cannot change after): its one cancel event says when and
    # from which status. Checked for canceled sessions only.
    published_cancel = SessionEvent.objects.filter(
        session=OuterRef("pk"),
        action=Action.CANCEL,
        created_at__gte=now - timedelta(days=CANCELED_VISIBLE_DAYS),
        from_status__in=FEED_PUBLISHED_STATUSES,
    )
    rows = (
        Session.objects.filter(
            Q(coach=user) | Q(student=user),
            slot__isnull=False,
            slot__start__lt=now + timedelta(days=FEED_HORIZON_DAYS),
        )
        .filter(
            Q(
                status__in=[Status.CONFIRMED, Status.RESCHEDULING, Status.COMPLETED],
                slot__end__gte=now - timedelta(days=COMPLETED_VISIBLE_DAYS),
            )
            | Q(Exists(published_cancel), status=Status.CANCELED)
        )
        .order_by("slot__start", "pk")
        .annotate(
            created_s=_EpochSeconds("created_at"),
            updated_s=_EpochSeconds("updated_at"),
            start_s=_EpochSeconds("slot__start"),
            end_s=_EpochSeconds("slot__end"),
        )
        .values_list(
            "pk",
            "number",
            "status",
            "sequence",
            "created_s",
            "updated_s",
            "start_s",
            "end_s",
            "package__title",
            "coach_id",
            "coach__display_name",
            "coach__email",
            "student_id",
            "student__display_name",
            "student__email",
        )
    )

    def moment(seconds: int) -> datetime:
        return datetime.fromtimestamp(seconds, UTC)

    person_model = Session._meta.get_field("coach").related_model
    people: dict = {}

    def person(pk: int, display_name: str, email: str):
        if pk not in people:
            people[pk] = person_model(pk=pk, display_name=display_name, email=email)
        return people[pk]

    return [
        CalendarFeedEntry(
            pk=pk,
            number=number,
            status=status,
            sequence=sequence,
            created_at=moment(created_at),
            updated_at=moment(updated_at),
            start=moment(start),
            end=moment(end),
            title=title,
            coach_id=coach_id,
            student_id=student_id,
            coach=person(coach_id, coach_name, coach_email),
            student=person(student_id, student_name, student_email),
        )
        for (
            pk,
            number,
            status,
            sequence,
            created_at,
            updated_at,
            start,
            end,
            title,
            coach_id,
            coach_name,
            coach_email,
            student_id,
            student_name,
            student_email,
        ) in rows
    ]


@dataclass(frozen=True)
class CalendarFeedStamp:
    """A summary of every session of one user that changes whenever any of them changes.

    `count` sessions, the latest `updated_at` (None without sessions) and `stamps`, the sum of
    all their `updated_at` as a number. The latest alone would miss a change stamped earlier
    than another session's last change (a sweep writes the `now` it started with, and of two
    transactions the later stamp can commit first); the sum moves with every stamp, and the
    count with a session that appears or goes.
    """

    count: int
    latest: datetime | None
    stamps: str


def sessions_for_calendar_feed_stamp(*, user) -> CalendarFeedStamp:
    """The change stamp of all of `user`'s sessions (as coach and as student), in one small
    aggregate query over the sessions' coach and student indexes, whatever the feed's window.

    Every write of a session moves `updated_at` (`auto_now`, and the sweeps' set-based updates
    set it), so any change to a session in the feed changes this stamp. Writes that do not
    touch `updated_at` (the reminder claims) do not change what the feed shows.
    """
    row = Session.objects.filter(Q(coach=user) | Q(student=user)).aggregate(
        count=Count("pk"), latest=Max("updated_at"), stamps=Sum(_Epoch("updated_at"))
    )
    # repr keeps every digit of the float; None (no sessions) is a stamp too.
    return CalendarFeedStamp(count=row["count"], latest=row["latest"], stamps=repr(row["stamps"]))


def sessions_for_calendar_week(*, user, start: datetime, end: datetime) -> list[Session]:
    """`user`'s sessions (as coach and as student) in WEEK_STATUSES whose slot overlaps
    [start, end) (one that started the night before is shown too), with slot, people and
    package: one query."""
    return list(
        Session.objects.filter(
            Q(coach=user) | Q(student=user),
            status__in=WEEK_STATUSES,
            slot__end__gt=start,
            slot__start__lt=end,
        ).select_related("slot", "coach", "student", "package")
    )


def proposals_for_calendar_week(
    *, user, start: datetime, end: datetime
) -> list[RescheduleProposal]:
    """Pending reschedule proposals of `user`'s sessions whose proposed slot overlaps
    [start, end), with slot and session details: one query."""
    return list(
        RescheduleProposal.objects.filter(
            Q(session__coach=user) | Q(session__student=user),
            status=ProposalStatus.PENDING,
            slot__end__gt=start,
            slot__start__lt=end,
        ).select_related("slot", "session__coach", "session__student", "session__package")
    )


# --- for notifications: the facts of events, and the warnings before a deadline -------------------


def sessions_by_id(*, ids) -> dict[int, Session]:
    """The sessions with these ids, with slot, package and both people, by id: one query (none
    for no ids)."""
    ids = {pk for pk in ids if pk is not None}
    return _list_base().in_bulk(ids) if ids else {}


def requests_expiring(*, now: datetime, lead: timedelta) -> list[Session]:
    """Requests still waiting for the coach whose deadline falls within `lead` of `now` and that
    were made before that warning time (a request made closer to its deadline than `lead` has
    just been told about), with slot, package and people: one query."""
    return list(
        _list_base()
        .filter(
            status=Status.REQUESTED,
            request_expires_at__gt=now,
            request_expires_at__lte=now + lead,
            slot__created_at__lte=F("request_expires_at") - lead,
        )
        .order_by("request_expires_at", "pk")
    )


def proposals_expiring(*, now: datetime, lead: timedelta) -> list[RescheduleProposal]:
    """Pending reschedule proposals whose deadline falls within `lead` of `now` and that were
    made before that warning time, with their time, proposer and session (slot, package,
    people): one query."""
    return list(
        RescheduleProposal.objects.filter(
            status=ProposalStatus.PENDING,
            session__status=Status.RESCHEDULING,
            expires_at__gt=now,
            expires_at__lte=now + lead,
            created_at__lte=F("expires_at") - lead,
        )
        .select_related(
            "slot",
            "proposed_by",
            "session__slot",
            "session__package",
            "session__coach",
            "session__student",
        )
        .order_by("expires_at", "pk")
    )


def events_by_id(*, ids, exclude_actions=()) -> list[SessionEvent]:
    """The session events with these ids (without `exclude_actions`), with their actors, in id
    order: one query."""
    return list(
        SessionEvent.objects.select_related("actor")
        .filter(pk__in=list(ids))
        .exclude(action__in=list(exclude_actions))
        .order_by("pk")
    )


# --- packages: repeat purchases and My sessions (appended) ----------------------------------


@dataclass(frozen=True)
class UnusedCredits:
    """A student's sessions of one offering not yet booked, and packages still to be paid."""

    sessions: int
    awaiting_payment: int

    def __bool__(self) -> bool:
        return bool(self.sessions or self.awaiting_payment)


def student_unused_credits(*, student, offering) -> UnusedCredits:
    """How many of `student`'s sessions of `offering` wait to be booked, and how many of their
    packages of it wait for their payment (one query)."""
    from refunds.models import PaymentState
    from sessions_app.models import Package

    live = Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now())  # not expired
    counts = Package.objects.filter(student=student, offering_id=offering.pk).aggregate(
        unbooked=Count("sessions", filter=Q(sessions__status=Status.UNSCHEDULED) & live),
        unpaid=Count(
            "pk",
            filter=Q(sessions__isnull=True) & ~Q(payment__state=PaymentState.DONE),
            distinct=True,
        ),
    )
    return UnusedCredits(sessions=counts["unbooked"], awaiting_payment=counts["unpaid"])


def purchase_token_used(*, student, nonce: str) -> bool:
    """Whether `student` already bought a package from the confirmation page with `nonce`."""
    from sessions_app.models import Package

    return bool(nonce) and Package.objects.filter(student=student, purchase_token=nonce).exists()


STUDENT_PACKAGES_SHOWN = 25  # newest first, on My sessions


def student_packages(*, student, limit: int = STUDENT_PACKAGES_SHOWN) -> list:
    """The student's paid packages (those with sessions), newest first, each with `to_book`
    (unscheduled), `canceled`, `used` (the rest: requested, confirmed or completed),
    `ordinal` (1 for the first package of its offering the student bought) and `of_offering`
    (how many of that offering they bought). One query."""
    from django.db.models import Window
    from django.db.models.functions import RowNumber

    from sessions_app.models import Package

    def sessions_in(*statuses) -> Coalesce:
        counted = (
            Session.objects.filter(package=OuterRef("pk"), status__in=statuses)
            .order_by()
            .values("package")
            .annotate(n=Count("pk"))
            .values("n")
        )
        return Coalesce(Subquery(counted, output_field=IntegerField()), 0)

    packages = list(
        Package.objects.filter(student=student)
        .filter(Exists(Session.objects.filter(package=OuterRef("pk"))))
        .select_related("coach")
        .annotate(
            to_book=sessions_in(Status.UNSCHEDULED),
            canceled=sessions_in(Status.CANCELED),
            ordinal=Window(
                RowNumber(), partition_by=[F("offering_id")], order_by=[F("purchased_at"), F("pk")]
            ),
            of_offering=Window(Count("pk"), partition_by=[F("offering_id")]),
        )
        .order_by("-purchased_at", "-pk")[:limit]
    )
    now = timezone.now()
    for package in packages:
        package.used = package.session_count - package.to_book - package.canceled
        _mark_expiry(package, package.to_book, now)
        package.to_book -= package.expired_credits
    return packages


@dataclass(frozen=True)
class CreditGroup:
    package: object  # a Package, annotated as in `student_packages` when it is listed there
    sessions: list[Session]


def student_credit_groups(*, credits: list[Session], packages: list) -> list[CreditGroup]:
    """`credits` (sessions to book) grouped by package, in the order they come; each group's
    package is the annotated one from `packages` when present, and has its `expiry` wording
    either way. No query."""
    by_pk = {package.pk: package for package in packages}
    groups: dict[int, CreditGroup] = {}
    now = timezone.now()
    for session in credits:
        group = groups.get(session.package_id)
        if group is None:
            package = by_pk.get(session.package_id)
            if package is None:  # beyond the packages listed: worded here
                package = session.package
                _mark_expiry(package, 0, now)
            group = groups[session.package_id] = CreditGroup(package=package, sessions=[])
        group.sessions.append(session)
    return list(groups.values())


# --- navigation (issue 13): the student's badge -----------------------------------------------


@dataclass(frozen=True)
class StudentNavigation:
    proposal_count: int  # reschedule proposals waiting on the student (the My sessions badge)


def student_navigation(*, student, now: datetime | None = None) -> StudentNavigation:
    """What a student's navigation needs, in one count query: the live reschedule proposals
    the student has to answer (pending, not expired, made by someone else on a session being
    rescheduled). Uses the proposals' (status, expires_at) index."""
    now = now or timezone.now()
    count = _proposals_waiting_on_student(student=student, now=now).count()
    return StudentNavigation(proposal_count=count)


def _proposals_waiting_on_student(*, student, now: datetime) -> QuerySet:
    """Live proposals on `student`'s sessions that someone else made (`student` may be an
    OuterRef)."""
    return RescheduleProposal.objects.filter(
        status=ProposalStatus.PENDING,
        expires_at__gt=now,
        session__student=student,
        session__status=Status.RESCHEDULING,
    ).exclude(proposed_by=student)


# --- credit expiry (issue 15) ------------------------------------------------------------------


def package_has_unused_credits(*, package) -> bool:
    """Whether `package` (a package or an id) still has a session to book (UNSCHEDULED)."""
    return Session.objects.filter(package=package, status=Status.UNSCHEDULED).exists()


def _mark_expiry(package, unscheduled: int, now: datetime) -> None:
    """Give `package` its `expiry` wording (`sessions_app.expiry.credit_expiry`, None for
    never) and `expired_credits`: its `unscheduled` sessions once it has expired, else 0."""
    package.expiry = credit_expiry(package.expires_at, now)
    expired = package.expiry is not None and package.expiry.expired
    package.expired_credits = unscheduled if expired else 0


def coach_package(*, coach, pk):
    """One package `coach` sold (None for another coach's or an unknown id), with its student."""
    from sessions_app.models import Package

    return Package.objects.select_related("student").filter(coach=coach, pk=pk).first()
