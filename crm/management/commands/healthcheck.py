"""`manage.py healthcheck`: what GET /healthz checks, with the detail it shows only to staff.
Prints one JSON object and exits 0 when everything answers, 1 otherwise."""

import json

from django.core.management.base import BaseCommand, CommandError

from crm.health import run_checks


class Command(BaseCommand):
    help = "Check the database, Redis and a Celery worker; print what is down and why."

    def handle(self, *args, **options):
        results = run_checks()
        down = [name for name, result in results.items() if not result["ok"]]
        self.stdout.write(json.dumps({"status": "down" if down else "ok", "checks": results}))
        if down:
            raise CommandError(f"down: {', '.join(down)}")
