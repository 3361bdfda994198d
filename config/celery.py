"""The Celery app "coachbook": configured from Django settings (every `CELERY_*` setting),
tasks autodiscovered from each app's `tasks.py`.

    celery -A config worker -B --loglevel=INFO --concurrency=1   # worker with embedded beat
    celery -A config worker --loglevel=INFO                      # worker (docker compose)
    celery -A config beat --loglevel=INFO                        # the one beat (docker compose)

The broker is Redis when REDIS_URL is set, else kombu's filesystem transport (see
config/settings.py and docs/operations.md).
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("coachbook")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
