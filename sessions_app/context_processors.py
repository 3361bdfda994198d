"""Template context for every page: the main navigation, with the coach's Tasks count.

Coaches see Get started while its steps are not all done, their own pages (Students among them)
plus Coaches (so they can buy from other coaches), and My sessions once they have
bought a package; the Tasks count, Get started and that check are one query
(`coach_navigation`). Students see the student pages, with a badge on My sessions counting the
reschedule proposals waiting on them (one query, `student_navigation`). Staff also see Admin.
"""

from functools import lru_cache

from django.conf import settings
from django.urls import get_script_prefix, get_urlconf, reverse
from django.utils.functional import SimpleLazyObject

from sessions_app.selectors import TASK_BADGE_MAX, coach_navigation, student_navigation

# (label, route name, extra route names that mark the item as the current page)
GET_STARTED_NAV = [("Get started", "accounts:get_started", ())]
COACH_NAV = [
    ("Tasks", "sessions:tasks", ()),
    ("Upcoming", "sessions:upcoming", ()),
    ("Completed", "sessions:completed", ("sessions:canceled",)),
    ("Students", "sessions:students", ("sessions:student_detail",)),
    ("Availability", "calendars:availability", ()),
    ("Offerings", "catalog:offerings", ()),
    ("Calendar", "feeds:week", ()),
]
STUDENT_NAV = [
    ("My sessions", "sessions:my_sessions", ()),
    ("Coaches", "catalog:coaches", ("catalog:coach_detail",)),
    ("Calendar", "feeds:week", ()),
]
COMMON_NAV = [("Profile", "accounts:profile", ())]
STAFF_NAV = [("Admin", "admin:index", ())]
# What a coach also sees as a learner: My sessions only once they have bought a package.
COACH_AS_STUDENT_NAV = [
    ("My sessions", "sessions:my_sessions", ()),
    ("Coaches", "catalog:coaches", ("catalog:coach_detail",)),
]


def _badge(count: int, words: str) -> dict:
    """A navigation count; past TASK_BADGE_MAX (where the count stops reading) it is "99+"."""
    if count > TASK_BADGE_MAX:
        return {"badge": f"{TASK_BADGE_MAX}+", "aria_label": f"More than {TASK_BADGE_MAX} {words}"}
    return {"badge": count, "aria_label": f"{count} {words}" if count else ""}


def _proposal_badge(count: int) -> dict:
    return _badge(
        count,
        "new time waiting for your answer" if count == 1 else "new times waiting for your answer",
    )


@lru_cache(maxsize=256)
def _reversed(name: str, root_urlconf: str, urlconf: str | None, prefix: str) -> str:
    return reverse(name, urlconf=urlconf)


def _nav_url(name: str) -> str:
    """`reverse(name)`, once per URL configuration and script prefix: the navigation's ten
    links are the same on every page."""
    return _reversed(name, settings.ROOT_URLCONF, get_urlconf(), get_script_prefix())


def _nav_items(request) -> list[dict]:
    user = request.user
    current = getattr(getattr(request, "resolver_match", None), "view_name", None)
    badges: dict[str, dict] = {}
    if user.is_coach:
        coach = coach_navigation(coach=user)
        badges["sessions:tasks"] = _badge(coach.task_count, "waiting")
        badges["sessions:my_sessions"] = _proposal_badge(coach.proposal_count)
        learner = COACH_AS_STUDENT_NAV
        if not coach.has_packages:
            learner = [entry for entry in learner if entry[1] != "sessions:my_sessions"]
        start = [] if coach.get_started_done else GET_STARTED_NAV
        entries = start + COACH_NAV + learner + COMMON_NAV
    else:
        student = student_navigation(student=user)
        badges["sessions:my_sessions"] = _proposal_badge(student.proposal_count)
        entries = STUDENT_NAV + COMMON_NAV
    if user.is_staff:
        entries = entries + STAFF_NAV
    items = []
    for label, name, also in entries:
        items.append(
            {
                "label": label,
                "name": name,
                "url": _nav_url(name),
                "current": current == name or current in also,
                **badges.get(name, {"badge": 0, "aria_label": ""}),
            }
        )
    return items


def navigation(request) -> dict:
    """`nav_items` for a signed-in user (one query for coaches and for students), and
    `get_started_pending`: the coach has Get started steps left (from the same query)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"nav_items": [], "get_started_pending": False}
    items = SimpleLazyObject(lambda: _nav_items(request))
    pending = SimpleLazyObject(lambda: any(item["name"] == GET_STARTED_NAV[0][1] for item in items))
    return {"nav_items": items, "get_started_pending": pending}
