# The calendar sync work (issue 6): week view, subscription feed, external calendars.
from django.urls import path, re_path

from calendars import feed_views

app_name = "feeds"

urlpatterns = [
    path("week/", feed_views.week, name="week"),
    re_path(r"^feed/(?P<token>[A-Za-z0-9_-]{16,64})\.ics$", feed_views.feed, name="feed"),
    path("feed/regenerate/", feed_views.feed_regenerate, name="regenerate"),
    path("external/add/", feed_views.external_calendar_add, name="external_add"),
    path("external/<int:pk>/remove/", feed_views.external_calendar_remove, name="external_remove"),
    path("external/<int:pk>/pause/", feed_views.external_calendar_pause, name="external_pause"),
    path("external/<int:pk>/resume/", feed_views.external_calendar_resume, name="external_resume"),
    path("external/sync/", feed_views.external_calendars_sync, name="external_sync"),
]
