from django.urls import path

from calendars import views

app_name = "calendars"

urlpatterns = [
    path("", views.availability, name="availability"),
]
