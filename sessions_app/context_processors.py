"""Template context for every page: the main navigation, with the coach's Tasks count."""

from django.urls import reverse
from django.utils.functional import SimpleLazyObject

from sessions_app.selectors import coach_task_count

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


def _nav_items(request) -> list[dict]:
    user = request.user
    current = getattr(getattr(request, "resolver_match", None), "view_name", None)
    entries = (COACH_NAV if user.is_coach else STUDENT_NAV) + COMMON_NAV
    items = []
    for label, name, also in entries:
        badge = coach_task_count(coach=user) if name == "sessions:tasks" else 0
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
    """`nav_items` for a signed-in user (one query for the Tasks count, for coaches only)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"nav_items": []}
    return {"nav_items": SimpleLazyObject(lambda: _nav_items(request))}
