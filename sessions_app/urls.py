# Owned by the web pages work (issue 3): Tasks, Upcoming, Completed, session details, actions.
from django.urls import path
from django.views.generic import TemplateView

app_name = "sessions"
placeholder = TemplateView.as_view(template_name="placeholder.html")

urlpatterns = [
    path("tasks/", placeholder, name="tasks"),
    path("upcoming/", placeholder, name="upcoming"),
    path("completed/", placeholder, name="completed"),
    path("canceled/", placeholder, name="canceled"),
    path("my/", placeholder, name="my_sessions"),
    path("<int:pk>/", placeholder, name="detail"),
]
