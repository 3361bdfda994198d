# Coachbook: one image for web (gunicorn), worker and beat (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first (pinned by requirements.lock), so code changes reuse this layer.
COPY pyproject.toml requirements.lock ./
RUN pip install -c requirements.lock .

COPY . .

# Static files are collected into the image (whitenoise serves them, compressed and hashed).
# The build key only satisfies the production check (50+ characters); it signs nothing.
RUN DJANGO_READ_DOT_ENV=0 DEBUG=false \
    SECRET_KEY=build-only-not-a-secret-collectstatic-signs-nothing-with-it \
    python manage.py collectstatic --noinput \
    && useradd --system --uid 10001 --home-dir /app coachbook \
    && mkdir -p /app/.celery \
    && chown -R coachbook /app/.celery

USER coachbook
EXPOSE 8000

# docker-compose.yml runs migrations first; gunicorn reads WEB_CONCURRENCY for its workers.
CMD ["gunicorn", "config.wsgi:application", "--bind", "0.0.0.0:8000", "--access-logfile", "-"]
