# Owned by the calendar sync work (issue 6): week view, subscription feed, external calendars.
from django.urls import path
from django.views.generic import TemplateView

app_name = "feeds"
placeholder = TemplateView.as_view(template_name="placeholder.html")

urlpatterns = [
    path("week/", placeholder, name="week"),
]
