# Owned by the availability work (issue 3): open slots, weekly patterns.
from django.urls import path
from django.views.generic import TemplateView

app_name = "calendars"
placeholder = TemplateView.as_view(template_name="placeholder.html")

urlpatterns = [
    path("", placeholder, name="availability"),
]
