"""Guards for views: who may open a page, and where a form may send the person next."""

import functools
from collections.abc import Callable

from django.contrib import messages
from django.shortcuts import redirect
from django.utils.http import url_has_allowed_host_and_scheme


def coach_required(*, message: str, redirect_to: str) -> Callable:
    """A view decorator: a person who is not a coach is told `message` (an info message) and
    sent to `redirect_to` (a URL name or path) instead of seeing the page.

    Put it under `login_required`, which sends visitors to the login page first:

        @login_required
        @require_GET
        @coach_required(message="Offerings are for coaches. ...", redirect_to="accounts:profile")
        def offerings(request): ...
    """

    def decorator(view: Callable) -> Callable:
        @functools.wraps(view)
        def guarded(request, *args, **kwargs):
            if not getattr(request.user, "is_coach", False):
                messages.info(request, message)
                return redirect(redirect_to)
            return view(request, *args, **kwargs)

        return guarded

    return decorator


def safe_next_url(request, default: str = "") -> str:
    """The page the person came from (POST or GET `next`) if it is on this site (same host, and
    https when the request is), else `default`. Never an open redirect."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return default
