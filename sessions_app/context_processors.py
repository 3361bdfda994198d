"""Template context for every page: the main navigation, with the coach's Tasks count.

Coaches see their own pages plus Coaches (so they can buy from other coaches), and My sessions
once they have bought a package; the Tasks count and that check are one query
(`coach_navigation`). Students see the student pages.
"""

from django.urls import reverse
from django.utils.functional import SimpleLazyObject

from sessions_app.selectors import coach_navigation

# (label, route name, extra route names that mark the item as the current page)
COACH_NAV = [
    ("Tasks", "sessions:tasks", ()),
    ("Upcoming", "sessions:upcoming", ()),
    ("Completed", "sessions:completed", ("sessions:canceled",)),
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
# What a coach also sees as a learner: My sessions only once they have bought a package.
COACH_AS_STUDENT_NAV = [
    ("My sessions", "sessions:my_sessions", ()),
    ("Coaches", "catalog:coaches", ("catalog:coach_detail",)),
]


def _nav_items(request) -> list[dict]:
    user = request.user
    current = getattr(getattr(request, "resolver_match", None), "view_name", None)
    task_count = 0
    if user.is_coach:
        coach = coach_navigation(coach=user)
        task_count = coach.task_count
        learner = COACH_AS_STUDENT_NAV
        if not coach.has_packages:
            learner = [entry for entry in learner if entry[1] != "sessions:my_sessions"]
        entries = COACH_NAV + learner + COMMON_NAV
    else:
        entries = STUDENT_NAV + COMMON_NAV
    items = []
    for label, name, also in entries:
        badge = task_count if name == "sessions:tasks" else 0
        items.append(
            {
                "label": label,
                "url": reverse(name),
                "current": current == name or current in also,
                "badge": badge,
            }
        )
    return items


def navigation(request) -> dict:
    """`nav_items` for a signed-in user (one query for coaches, none for students)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"nav_items": []}
    return {"nav_items": SimpleLazyObject(lambda: _nav_items(request))}
