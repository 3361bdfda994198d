# Owned by the availability work (issue 3): open slots, weekly patterns.
from django.urls import path

from calendars import views

app_name = "calendars"

urlpatterns = [
    path("", views.availability, name="availability"),
    path("slots/add/", views.slot_add, name="slot_add"),
    path("slots/<int:pk>/remove/", views.slot_remove, name="slot_remove"),
    path("patterns/add/", views.pattern_add, name="pattern_add"),
    path("patterns/<int:pk>/stop/", views.pattern_stop, name="pattern_stop"),
]
