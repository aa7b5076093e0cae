"""`make run` on a fresh copy of the repository, with no DATABASE_URL or REDIS_URL: the embedded
PostgreSQL and Redis start, /healthz reaches 200 (database, Redis and a Celery worker), and
Ctrl+C stops every process it started, the embedded servers included."""

import contextlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parent.parent
HEALTHY_WITHIN = 180
STOPPED_WITHIN = 30


def fresh_copy(target: Path) -> Path:
    """What a fresh clone holds: the files of the commit checked out (HEAD), nothing else:
    no .venv, no .data, no file that was never committed."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", "HEAD"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    target.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")
    return target


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def healthz_status(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0


def embedded_server_pids(data_dir: Path) -> set[int]:
    """PostgreSQL (postmaster and its backends) and redis-server run detached from devstack's
    process tree, so find them through the pid files they keep under the data folder."""
    pids = set()
    postmaster = data_dir / "pg" / "postmaster.pid"
    with contextlib.suppress(OSError, ValueError, IndexError, psutil.NoSuchProcess):
        pid = int(postmaster.read_text().splitlines()[0])
        pids.add(pid)
        pids.update(child.pid for child in psutil.Process(pid).children(recursive=True))
    registry = data_dir / "redis.db.settings"
    with contextlib.suppress(OSError, ValueError, KeyError):
        pidfile = Path(json.loads(registry.read_text())["pidfile"])
        pids.add(int(pidfile.read_text().strip()))
    return pids


def descendants(pid: int) -> set[int]:
    try:
        return {child.pid for child in psutil.Process(pid).children(recursive=True)}
    except psutil.NoSuchProcess:
        return set()


def alive(pids: set[int]) -> set[int]:
    living = set()
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                living.add(pid)
        except psutil.NoSuchProcess:
            pass
    return living


def describe(pids: set[int]) -> list[str]:
    described = []
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            described.append(f"{pid}: {' '.join(psutil.Process(pid).cmdline())}")
    return described


@pytest.mark.slow
def test_make_run_on_a_fresh_copy_serves_healthz_and_ctrl_c_stops_everything(tmp_path):
    app_dir = fresh_copy(tmp_path / "app")
    # Not under tmp_path: run as root, pgserver runs PostgreSQL as an unprivileged user that
    # must reach the data folder, and every pytest session resets its base temp folder to 0700.
    data_dir = Path(tempfile.mkdtemp(prefix="crm-make-run-"))
    env = {
        key: value
        for key, value in os.environ.items()
        # A new user has none of these: not the servers, nor the test suite's settings.
        if key
        not in {
            "DATABASE_URL",
            "REDIS_URL",
            "CELERY_BROKER_URL",
            "CELERY_RESULT_BACKEND",
            "DJANGO_ENV",
            "DJANGO_SETTINGS_MODULE",
            "SECRET_KEY",
            "DEBUG",
        }
    }
    env["CRM_DATA_DIR"] = str(data_dir)
    port = free_port()
    log_path = tmp_path / "run.log"

    # `make run` is `devstack.py run` after the install step. That step is left out: the copy
    # runs on this virtualenv's interpreter (sys.executable, with every pinned requirement
    # already installed) instead of building its own .venv, which would take minutes.
    with log_path.open("wb") as log:
        devstack = subprocess.Popen(
            [sys.executable, "scripts/devstack.py", "run", "--port", str(port)],
            cwd=app_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, as a terminal would give it
        )
    started: set[int] = set()

    def output() -> str:
        return log_path.read_text(errors="replace")[-6000:]

    try:
        deadline = time.monotonic() + HEALTHY_WITHIN
        status = 0
        while time.monotonic() < deadline and devstack.poll() is None:
            status = healthz_status(port)
            if status == 200:
                break
            time.sleep(1)
        assert status == 200, f"/healthz answered {status}\n{output()}"

        children = psutil.Process(devstack.pid).children(recursive=True)
        started = {child.pid for child in children} | embedded_server_pids(data_dir)
        commands = " ".join(" ".join(child.cmdline()) for child in children)
        assert "gunicorn" in commands
        assert "celery -A crm worker" in commands
        assert "celery -A crm beat" in commands
        assert "postgres" in " ".join(describe(started))
        assert "redis-server" in " ".join(describe(started))
        # With no SECRET_KEY anywhere, make run made this checkout its own, readable by its
        # owner only (the settings refuse to start without one).
        secret = data_dir / "secret_key"
        assert len(secret.read_text().strip()) >= 50
        assert secret.stat().st_mode & 0o077 == 0

        os.killpg(devstack.pid, signal.SIGINT)  # what Ctrl+C in its terminal sends
        exit_code = devstack.wait(timeout=STOPPED_WITHIN)

        assert exit_code == 0, output()
        settle = time.monotonic() + 5
        while alive(started) and time.monotonic() < settle:
            time.sleep(0.2)
        assert describe(alive(started)) == [], output()
        assert "] stopped" in output()
    finally:
        # Whatever went wrong above, leave no server behind on the machine.
        started |= descendants(devstack.pid) | embedded_server_pids(data_dir)
        if devstack.poll() is None:
            os.killpg(devstack.pid, signal.SIGINT)
            try:
                devstack.wait(timeout=STOPPED_WITHIN)
            except subprocess.TimeoutExpired:
                os.killpg(devstack.pid, signal.SIGKILL)
                devstack.wait()
        for pid in alive(started):
            with contextlib.suppress(psutil.NoSuchProcess):
                psutil.Process(pid).kill()
        shutil.rmtree(data_dir, ignore_errors=True)
