# Owned by the profile work (issue 3): display name, timezone, becoming a coach.
from django.urls import path

from accounts import views

app_name = "accounts"

urlpatterns = [
    path("", views.profile, name="profile"),
    path("update/", views.profile_update, name="profile_update"),
    path("coach/become/", views.coach_become, name="coach_become"),
    path("coach/", views.coach_update, name="coach_update"),
    path("get-started/", views.get_started, name="get_started"),
]
