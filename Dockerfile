# The production image: web (gunicorn, the default command), Celery worker and beat all run it
# (see docker-compose.yml). Settings come from the environment with DJANGO_ENV=production.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_ENV=production \
    STATIC_ROOT=/app/staticfiles \
    MEDIA_ROOT=/app/media

WORKDIR /app

RUN groupadd --system crm \
    && useradd --system --gid crm --home-dir /app --no-create-home --shell /usr/sbin/nologin crm

# Dependencies first, so code changes reuse this layer. psycopg[binary] and the other wheels
# need no compiler.
COPY requirements.txt ./
RUN pip install -r requirements.txt

COPY . .

# Production settings refuse to load without their secrets. collectstatic touches neither the
# database nor Redis, so throwaway values (not secrets, never used at run time) let it run here;
# the real ones come from the environment when a container starts.
RUN SECRET_KEY=collectstatic-at-build-time-only \
    DATABASE_URL=postgres://build@127.0.0.1:1/build \
    REDIS_URL=redis://127.0.0.1:1/0 \
    ALLOWED_HOSTS=localhost \
    python manage.py collectstatic --noinput \
    && mkdir -p /app/media \
    && chown -R crm:crm /app/media

USER crm

EXPOSE 8000

# /healthz is 200 only when the database, Redis and a Celery worker answer. ALLOWED_HOSTS must
# include localhost for this probe (docker-compose.yml always adds it).
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://localhost:8000/healthz', timeout=8).status != 200)"]

# WEB_CONCURRENCY (read by gunicorn) sets the number of worker processes.
CMD ["gunicorn", "crm.wsgi:application", "--bind", "0.0.0.0:8000", "--access-logfile", "-", "--no-control-socket", "--graceful-timeout", "20"]
