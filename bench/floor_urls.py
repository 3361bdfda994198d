"""The project's URLs plus the benchmarks' floor view: what any signed-in page costs at least
(the middleware, the session and the user, one row of the coach's, a response), without the
page itself. Used through `bench/settings.py`."""

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.urls import include, path

from sessions_app.models import Session

handler500 = "core.views.server_error"


@login_required
def floor(request):
    """Login + one row: the viewer's first session as a coach, in a one-line response."""
    session = Session.objects.filter(coach=request.user).order_by("pk").first()
    return HttpResponse(f"Session {session.pk if session else '-'}: {session and session.status}")


urlpatterns = [
    path("bench/floor/", floor, name="bench_floor"),
    path("", include("config.urls")),
]
