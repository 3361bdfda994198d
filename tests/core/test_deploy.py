"""Production settings pass Django's deployment checklist; HTTPS, CSP and the proxy header."""

import secrets

import pytest
from django.test import override_settings

from tests.test_settings import run_settings

PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": secrets.token_urlsafe(50),
    "ALLOWED_HOSTS": "coachbook.example",
}
_CHECK = "from django.core.management import execute_from_command_line as run; run(['m', {}])"


def _check_deploy(**env):
    code = _CHECK.format("'check', '--deploy', '--fail-level', 'WARNING'")
    return run_settings(code, **{**PRODUCTION, **env})


def test_check_deploy_is_clean_with_production_settings():
    result = _check_deploy()

    assert result.returncode == 0, result.stderr + result.stdout


def test_check_deploy_is_clean_behind_a_trusted_proxy_with_stripe():
    result = _check_deploy(
        FORWARDED_ALLOW_IPS="172.16.0.0/12,10.0.0.7",
        PAYMENT_GATEWAY="stripe",
        STRIPE_SECRET_KEY="sk_live_x",
        STRIPE_PUBLISHABLE_KEY="pk_live_x",
        STRIPE_WEBHOOK_SECRET="whsec_x",
    )

    assert result.returncode == 0, result.stderr + result.stdout


def test_turning_https_off_is_reported_by_the_check():
    result = _check_deploy(SECURE_SSL_REDIRECT="false", SECURE_HSTS_SECONDS="0")

    assert result.returncode == 1
    assert "security.W004" in result.stderr and "security.W008" in result.stderr


_SHOW = "import django; django.setup(); from django.conf import settings as s; print({})"


def test_the_proxy_header_is_trusted_only_when_proxies_are_configured():
    code = _SHOW.format("s.SECURE_PROXY_SSL_HEADER, s.TRUSTED_PROXIES")
    alone = run_settings(code, **PRODUCTION)
    proxied = run_settings(code, FORWARDED_ALLOW_IPS="10.0.0.7", **PRODUCTION)
    bad = run_settings(code, FORWARDED_ALLOW_IPS="proxy.internal", **PRODUCTION)

    assert alone.stdout.strip() == "None []"
    assert proxied.stdout.strip() == "('HTTP_X_FORWARDED_PROTO', 'https') ['10.0.0.7']"
    assert bad.returncode == 1
    assert "'proxy.internal' is not an IP address or network" in bad.stderr


_PROXY = {
    "SECURE_PROXY_SSL_HEADER": ("HTTP_X_FORWARDED_PROTO", "https"),
    "SECURE_SSL_REDIRECT": True,
}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("trusted", "remote", "redirected"),
    [
        (["10.0.0.7"], "10.0.0.7", False),
        (["172.16.0.0/12"], "172.18.0.1", False),
        (["*"], "203.0.113.9", False),
        (["10.0.0.7"], "203.0.113.9", True),  # a client claiming https is not believed
        ([], "10.0.0.7", True),
    ],
)
def test_x_forwarded_proto_counts_only_from_a_trusted_proxy(client, trusted, remote, redirected):
    with override_settings(TRUSTED_PROXIES=trusted, **_PROXY):
        response = client.get(
            "/accounts/login/", REMOTE_ADDR=remote, HTTP_X_FORWARDED_PROTO="https"
        )

    assert (response.status_code == 301) is redirected
    if redirected:
        assert response["Location"].startswith("https://")


@pytest.mark.django_db
def test_every_page_has_a_content_security_policy_without_inline_script(client, settings):
    settings.STRIPE_JS_URL = "http://127.0.0.1:8420/js.stripe.com/v3/"
    settings.STRIPE_API_BASE = "http://127.0.0.1:8420"

    policy = client.get("/accounts/login/")["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))

    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self' http://127.0.0.1:8420"
    assert directives["connect-src"] == "'self' http://127.0.0.1:8420"
    assert "http://127.0.0.1:8420" in directives["frame-src"]
    assert directives["object-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe" not in directives["script-src"]
    assert "unsafe" not in directives["style-src"]


def test_stripes_own_origins_are_allowed_with_the_default_urls(rf, settings):
    from core.middleware import stripe_sources

    settings.STRIPE_JS_URL = "https://js.stripe.com/v3/"
    settings.STRIPE_API_BASE = "https://api.stripe.com"

    sources = stripe_sources()

    assert sources["script-src"] == ["https://js.stripe.com", "https://*.js.stripe.com"]
    assert "https://hooks.stripe.com" in sources["frame-src"]
    assert sources["connect-src"] == ["https://api.stripe.com"]


def test_no_template_has_an_inline_script_or_event_handler():
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "templates"
    offenders = []
    for template in root.rglob("*.html"):
        if template.parts[-2] == "email" or "email" in template.relative_to(root).parts:
            continue
        text = template.read_text()
        for tag in re.findall(r"<script\b[^>]*>", text):
            if "src=" not in tag:
                offenders.append(f"{template}: {tag}")
        offenders += [f"{template}: {m}" for m in re.findall(r"\son[a-z]+\s*=", text)]
        offenders += [f"{template}: javascript:" for _ in re.findall("javascript:", text)]

    assert offenders == []
