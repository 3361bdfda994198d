"""The coach's Availability page and its actions (weekly hours, one-off windows, time off)."""

from django.urls import path

from calendars import views

app_name = "calendars"

urlpatterns = [
    path("", views.availability, name="availability"),
    path("week/", views.week_update, name="week_update"),
    path("weekly/<int:pk>/remove/", views.rule_remove, name="rule_remove"),
    path("windows/add/", views.window_add, name="window_add"),
    path("windows/<int:pk>/remove/", views.window_remove, name="window_remove"),
    path("time-off/add/", views.time_off_add, name="time_off_add"),
    path("time-off/<int:pk>/remove/", views.time_off_remove, name="time_off_remove"),
]
