# Owned by the profile work (issue 3): display name, timezone, becoming a coach.
from django.urls import path
from django.views.generic import TemplateView

app_name = "accounts"
placeholder = TemplateView.as_view(template_name="placeholder.html")

urlpatterns = [
    path("", placeholder, name="profile"),
]
