"""A local Stripe-compatible server (localstripe, from PyPI) on a loopback port only.

    python -m scripts.localstripe_server [--port 8420] [--webhook URL --webhook-secret SECRET]

localstripe's own command listens on every interface and pickles its whole store to
/tmp/localstripe.pickle after each write; this launcher serves the same application on
127.0.0.1 only and keeps the store in memory, so parallel test runs never share a file. With
`--webhook` it registers Coachbook's webhook endpoint and signing secret at start, so events
(payment_intent.succeeded, ...) reach the app signed like Stripe's. Tests start it through
`tests.stripe_support`; `make run-stripe` starts it beside the app.
"""

import argparse
import asyncio
import logging
import sys


def build_app(*, webhook_url: str = "", webhook_secret: str = ""):
    from localstripe import resources, server
    from localstripe.webhooks import register_webhook

    # In memory only: no file written after each request, none read at start.
    resources.store.dump_to_disk = lambda: None
    if webhook_url:
        register_webhook("coachbook", webhook_url, webhook_secret, None)
    return server.app


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8420)
    parser.add_argument("--webhook", default="", help="Coachbook's webhook URL")
    parser.add_argument("--webhook-secret", default="", help="its signing secret (whsec_...)")
    args = parser.parse_args(argv)
    if args.webhook and not args.webhook_secret:
        parser.error("--webhook needs --webhook-secret")
    from aiohttp import web

    logging.basicConfig(level=logging.INFO, format="localstripe: %(message)s")
    app = build_app(webhook_url=args.webhook, webhook_secret=args.webhook_secret)
    print(f"localstripe on http://127.0.0.1:{args.port}", flush=True)
    web.run_app(app, host="127.0.0.1", port=args.port, print=None, loop=asyncio.new_event_loop())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
