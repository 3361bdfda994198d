"""Screenshots of every page, per role, at 1280 and 375 px: `make screenshots`.

A throwaway SQLite database is migrated and seeded with `seed_demo` on a frozen clock (Tue 1 Dec
2026 09:00 London), the app is served in-process on a free loopback port, and Playwright with
the system Chromium logs in through the real form as each demo user. Output:
screenshots/<width>/<set>-<role>-<page>.png and screenshots/index.html. Exit code 2 without
Chromium. Options: --out DIR, --only NAME[,NAME] (e.g. coach-tasks), --sets normal,long-names.
"""

import argparse
import html
import os
import secrets
import shutil
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=ZoneInfo("Europe/London"))
WIDTHS = (1280, 375)
LONG_NAME = "W" * 120
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]


def chromium_path() -> str | None:
    """The system Chromium (CHROMIUM_PATH first), or None; the browser tests use it too."""
    return (
        os.environ.get("CHROMIUM_PATH")
        or shutil.which("chromium")
        or shutil.which("chromium-browser")
    )


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):
        pass


def _setup_django(db_path: Path) -> None:
    sys.path.insert(0, str(ROOT))
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    os.environ["DATABASE_URL"] = f"sqlite:///{db_path}"
    os.environ["DJANGO_READ_DOT_ENV"] = "0"
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    import django

    django.setup()
    from django.conf import settings

    from config.celery import app

    app.conf.broker_url = "memory://localhost/"
    app.conf.task_always_eager = False
    settings.DEBUG = False  # the real 404 page, not the debug one
    settings.SECRET_KEY = secrets.token_urlsafe(50)
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


def _seed(long_names: bool) -> None:
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    call_command("seed_demo", verbosity=0)
    if long_names:
        from accounts.models import User

        User.objects.filter(email__in=["coach@example.com", "student@example.com"]).update(
            display_name=LONG_NAME
        )


def _serve():
    from django.contrib.staticfiles.handlers import StaticFilesHandler
    from django.core.wsgi import get_wsgi_application

    server = make_server(
        "127.0.0.1", 0, StaticFilesHandler(get_wsgi_application()), _Server, _QuietHandler
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}"


def _pages() -> dict[str, list[tuple[str, str]]]:
    """role -> [(page name, path)], discovered from the seeded data."""
    from django.contrib.auth import get_user_model

    from sessions_app.lifecycle import Status
    from sessions_app.models import Session

    users = get_user_model().objects
    coach = users.get(email="coach@example.com")
    student = users.get(email="student@example.com")
    sessions = Session.objects.filter(package__offering__coach=coach).order_by("pk")

    def first(status, who=None):
        qs = sessions.filter(status=status)
        if who is not None:
            qs = qs.filter(student=who)
        found = qs.first() or sessions.filter(status=status).first()
        return found.pk if found else None

    by_status = {s.label.lower(): first(s) for s in Status}
    offering = coach.offerings.order_by("pk").first() if hasattr(coach, "offerings") else None
    if offering is None:
        from catalog.models import Offering

        offering = Offering.objects.filter(coach=coach).order_by("pk").first()
    unscheduled = first(Status.UNSCHEDULED, student)
    confirmed = first(Status.CONFIRMED)
    anonymous = [
        ("home", "/"),
        ("login", "/accounts/login/"),
        ("signup", "/accounts/signup/"),
        ("password-reset", "/accounts/password/reset/"),
        ("404", "/no-such-page/"),
    ]
    student_pages = [
        ("my-sessions", "/sessions/my/"),
        ("coaches", "/coaches/"),
        ("coach-page", f"/coaches/{coach.pk}/"),
        ("buy", f"/coaches/buy/{offering.pk}/"),
        ("calendar-week", "/calendar/week/"),
        ("profile", "/profile/"),
    ]
    if unscheduled:
        student_pages.append(("book-picker", f"/sessions/{unscheduled}/book/"))
        student_pages.append(("book-confirm", "CONFIRM_STEP"))
    coach_pages = [
        ("tasks", "/sessions/tasks/"),
        ("upcoming", "/sessions/upcoming/"),
        ("completed", "/sessions/completed/"),
        ("canceled", "/sessions/canceled/"),
        ("students", "/sessions/students/"),
        ("get-started", "/profile/get-started/"),
        ("availability", "/availability/"),
        ("offerings", "/coaches/offerings/"),
        ("new-offering", "/coaches/offerings/new/"),
        ("calendar-week", "/calendar/week/"),
        ("profile", "/profile/"),
    ]
    if confirmed:
        coach_pages.append(("cancel", f"/sessions/{confirmed}/cancel/"))
        coach_pages.append(("reschedule-picker", f"/sessions/{confirmed}/reschedule/"))
    for label, pk in by_status.items():
        if pk:
            student_pages.append((f"session-{label}", f"/sessions/{pk}/"))
            coach_pages.append((f"session-{label}", f"/sessions/{pk}/"))
    admin_pages = [
        ("admin-index", "/admin/"),
        ("refunds", "/admin/refunds/refund/"),
        ("payments", "/admin/refunds/payment/"),
        ("sessions", "/admin/sessions_app/session/"),
    ]
    return {
        "anonymous": anonymous,
        "student": student_pages,
        "coach": coach_pages,
        "admin": admin_pages,
    }


EMAILS = {
    "student": "student@example.com",
    "coach": "coach@example.com",
    "admin": "admin@example.com",
}


def _log_in(page, email: str) -> None:
    from sessions_app.management.commands.seed_demo import PASSWORD

    page.goto("/accounts/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").first.fill(PASSWORD)
    page.locator("main form button[type=submit]").first.click()
    page.wait_for_load_state()


def _shoot(browser, base_url, role, pages, out, set_name, only, report):
    for width in WIDTHS:
        context = browser.new_context(
            viewport={"width": width, "height": 900 if width > 600 else 740}, base_url=base_url
        )
        context.set_default_timeout(10_000)
        page = context.new_page()
        if role in EMAILS:
            _log_in(page, EMAILS[role])
        for name, path in pages:
            key = f"{role}-{name}"
            if only and key not in only:
                continue
            if path == "CONFIRM_STEP":
                link = page.locator("main a.slot").first
                if not link.count():
                    report["skipped"].add(f"{key} (no picker time to choose)")
                    continue
                link.click()
                page.wait_for_load_state()
                status = 200
            else:
                response = page.goto(path)
                status = response.status if response else 0
            if status == 404 and name != "404":
                report["skipped"].add(f"{key} ({path} answers 404: not built yet?)")
                continue
            if status != 200 and name != "404":
                report["non_200"].add(f"{key} {path} -> {status}")
            overflow = page.evaluate("document.documentElement.scrollWidth")
            if overflow > width:
                report["overflow"].add(f"{set_name}/{key} at {width}px: scrollWidth {overflow}")
            target = out / str(width) / f"{set_name}-{key}.png"
            target.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(target), full_page=True)
            report["files"].append((set_name, key, width, target))
        context.close()


def _index(out: Path, files) -> None:
    keys = sorted({(s, k) for s, k, _w, _t in files})
    cells = []
    for set_name, key in keys:
        imgs = "".join(
            f'<a href="{w}/{set_name}-{key}.png"><img src="{w}/{set_name}-{key}.png" '
            f'alt="{html.escape(key)} at {w}px" loading="lazy" class="w{w}"></a>'
            for w in WIDTHS
            if (out / str(w) / f"{set_name}-{key}.png").exists()
        )
        cells.append(
            f"<figure><div class=pair>{imgs}</div>"
            f"<figcaption>{html.escape(set_name)} · {html.escape(key)}</figcaption></figure>"
        )
    (out / "index.html").write_text(
        "<!doctype html><html lang=en><meta charset=utf-8><title>Coachbook screenshots</title>"
        "<style>body{font:14px system-ui;margin:1rem}main{display:grid;"
        "grid-template-columns:repeat(auto-fill,minmax(340px,1fr));gap:1rem}"
        "figure{margin:0;border:1px solid #ccc;padding:.5rem}.pair{display:flex;gap:.5rem;"
        "align-items:flex-start;max-height:420px;overflow:hidden}.w1280{width:70%}"
        ".w375{width:28%}img{border:1px solid #eee}</style>"
        f"<h1>Coachbook screenshots ({len(files)} images, 1280 and 375 px)</h1>"
        f"<main>{''.join(cells)}</main></html>",
        encoding="utf-8",
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "screenshots"))
    parser.add_argument("--only", default="", help="comma-separated role-page names")
    parser.add_argument("--sets", default="normal,long-names")
    args = parser.parse_args(argv)
    path = chromium_path()
    if path is None:
        print("No Chromium found (apt-get install chromium, or set CHROMIUM_PATH): skipping.")
        return 2
    out = Path(args.out)
    only = {name.strip() for name in args.only.split(",") if name.strip()}
    started = time.monotonic()
    report = {"files": [], "skipped": set(), "non_200": set(), "overflow": set()}
    import time_machine
    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="coachbook-shots-"))
    try:
        _setup_django(tmp / "db.sqlite3")
        from django.db import connection

        with time_machine.travel(NOW, tick=False), sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
            for set_name in [s.strip() for s in args.sets.split(",") if s.strip()]:
                connection.close()
                db = tmp / f"{set_name}.sqlite3"
                connection.settings_dict["NAME"] = str(db)
                _seed(long_names=set_name == "long-names")
                pages = _pages()
                server, base_url = _serve()
                try:
                    for role, role_pages in pages.items():
                        if only and not any(k.startswith(role + "-") for k in only):
                            continue
                        _shoot(browser, base_url, role, role_pages, out, set_name, only, report)
                finally:
                    server.shutdown()
                    server.server_close()
            browser.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    _index(out, report["files"])
    print(f"{len(report['files'])} screenshots in {out} ({time.monotonic() - started:.0f} s)")
    print(f"Review them at a glance: {out / 'index.html'}")
    for title, key in (("Skipped", "skipped"), ("Non-200", "non_200"), ("Overflow", "overflow")):
        print(f"{title}: {len(report[key])}")
        for line in sorted(report[key]):
            print(f"  {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
