"""Pages for coaches and students: thin views over sessions_app.selectors and services."""

from django.shortcuts import redirect, render


def home(request):
    """Coaches land on Tasks, students on My sessions, visitors on the landing page."""
    if request.user.is_authenticated:
        return redirect("sessions:tasks" if request.user.is_coach else "sessions:my_sessions")
    return render(request, "home.html")
