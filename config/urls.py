from django.contrib import admin
from django.urls import include, path

from sessions_app import views as sessions_views

admin.site.site_header = "Coachbook administration"
admin.site.site_title = "Coachbook admin"
# A database outage anywhere (not only in a view) answers the branded 503 page (core/views.py).
handler500 = "core.views.server_error"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("profile/", include("accounts.urls")),
    path("sessions/", include("sessions_app.urls")),
    path("coaches/", include("catalog.urls")),
    path("availability/", include("calendars.urls")),
    path("calendar/", include("calendars.feed_urls")),
    path("payments/", include("refunds.urls")),
    path("", sessions_views.home, name="home"),
]
