from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

from sessions_app import views as sessions_views

admin.site.site_header = "Coachbook administration"
admin.site.site_title = "Coachbook admin"
# The index is one click away (the header's links); its sidebar would take a quarter of the
# width the changelists need at 1280 px.
admin.site.enable_nav_sidebar = False
# A database outage anywhere (not only in a view) answers the branded 503 page (core/views.py).
handler500 = "core.views.server_error"


class FaviconRedirect(RedirectView):
    """/favicon.ico -> the static SVG (resolved per request: the manifest may not exist yet)."""

    permanent = False

    def get_redirect_url(self, *args, **kwargs):
        return static("favicon.svg")


urlpatterns = [
    path("favicon.ico", FaviconRedirect.as_view()),
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("profile/", include("accounts.urls")),
    path("sessions/", include("sessions_app.urls")),
    path("coaches/", include("catalog.urls")),
    path("availability/", include("calendars.urls")),
    path("calendar/", include("calendars.feed_urls")),
    path("payments/", include("refunds.urls")),
    path("policy/", include("policies.urls")),
    path("", sessions_views.home, name="home"),
]
