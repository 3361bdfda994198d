"""Settings for the page and HTTP benchmarks (`bench/pages.py`, `bench/http_throughput.py`):
the project's own, plus the floor view's URL (`bench/floor_urls.py`); with BENCH_STATIC_ROOT a
throwaway STATIC_ROOT the bench fills with `collectstatic` (DEBUG=false reads its static
manifest there); with BENCH_FREEZE_AT (ISO 8601) the process's clock starts at that instant and
runs on from it (time-machine), so a gunicorn worker sees the data the bench seeded around its
frozen instant as current."""

import os

from config.settings import *  # noqa: F403

ROOT_URLCONF = "bench.floor_urls"
if os.environ.get("BENCH_STATIC_ROOT"):
    STATIC_ROOT = os.environ["BENCH_STATIC_ROOT"]
if os.environ.get("BENCH_FREEZE_AT"):
    import datetime as _dt

    import time_machine as _time_machine

    _time_machine.travel(
        _dt.datetime.fromisoformat(os.environ["BENCH_FREEZE_AT"]), tick=True
    ).start()
