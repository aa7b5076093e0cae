"""Run the whole test suite in two passes; `make test` calls this inside `devstack.py exec`.

1. Everything except browser (e2e) and process-starting (slow) tests, spread over
   $TEST_WORKERS pytest-xdist workers (default 2, the machine's cores). Each worker gets its
   own test database (test_crm_gw0, test_crm_gw1, ...) and its own cache key prefix.
2. The e2e and slow tests, one at a time: they start live servers, Chromium, Celery workers
   and whole `make run` stacks, which share a broker and compete for the same two cores.

Extra arguments go to both passes (`make test PYTEST_ARGS="-k health -x"`). The exit code is
0 only when both passes pass; a pass that selects no test at all is not a failure unless
neither pass ran anything. With CI set, the test databases are created afresh (--create-db)
so a database left by an older run on the same machine cannot hide a migration problem.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter

NO_TESTS_COLLECTED = 5
SERIAL_MARKERS = "e2e or slow"
# pytest's closing line, e.g. "==== 3 failed, 120 passed, 2 errors in 41.20s ====".
OUTCOME = re.compile(r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed)\b")


def pytest(args: list[str], totals: Counter) -> int:
    """Runs pytest, echoing its output, and adds the counts of its closing line to totals."""
    command = [sys.executable, "-m", "pytest", *args]
    print(f"\n[testsuite] {' '.join(command[1:])}", flush=True)
    last_line = ""
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as proc:
        for raw in proc.stdout:
            sys.stdout.buffer.write(raw)
            sys.stdout.flush()
            if raw.strip():
                last_line = raw.decode(errors="replace")
    counts = Counter()
    for count, outcome in OUTCOME.findall(last_line):
        counts["error" if outcome.startswith("error") else outcome] += int(count)
    if proc.returncode not in (0, NO_TESTS_COLLECTED) and not counts["failed"] + counts["error"]:
        # Interrupted, or pytest itself broke (a conftest that does not import): one failure.
        counts["error"] += 1
    totals.update(counts)
    return proc.returncode


def main(extra: list[str]) -> int:
    common = ["--create-db"] if os.environ.get("CI", "").lower() in {"1", "true", "yes"} else []
    workers = os.environ.get("TEST_WORKERS", "2")
    parallel = ["-n", workers, "--dist", "loadfile"] if workers not in {"", "0", "1"} else []

    totals: Counter = Counter()
    first = pytest([*common, *parallel, "-m", f"not ({SERIAL_MARKERS})", *extra], totals)
    second = pytest([*common, "-m", SERIAL_MARKERS, *extra], totals)

    print(f"\n[testsuite] parallel pass exit code {first}, serial pass exit code {second}")
    # One closing line for both passes together (errors count as failures here).
    print(f"testsuite: {totals['passed']} passed, {totals['failed'] + totals['error']} failed")
    codes = [first, second]
    if all(code == NO_TESTS_COLLECTED for code in codes):
        return NO_TESTS_COLLECTED
    failed = [code for code in codes if code not in (0, NO_TESTS_COLLECTED)]
    return failed[0] if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
