"""Runs every suite and prints one summary line `N passed, N failed`:
  1. GoogleTest units (the sanitizer build when present),
  1b. the libFuzzer targets of build-fuzz, each for a bounded time (tests/fuzz/run.py),
  2. the pg_regress schedule, which must list every tests/regress/sql file,
  3. the integration tests (tests/integration), against real clusters and the sandbox broker.
Exits non-zero on any failure, on a suite that ran no test, or when a server log shows a
process terminated by a signal that no test sent."""

import glob
import json
import os
import re
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

import harness  # noqa: E402


class Tally:
    def __init__(self):
        self.passed = 0
        self.failed = 0
        self.failures = []

    def add(self, suite, passed, failed, failures=()):
        self.passed += passed
        self.failed += failed
        self.failures += [f"{suite}: {name}" for name in failures]
        print(f"--- {suite}: {passed} passed, {failed} failed", flush=True)


def run_units(tally):
    candidates = [os.path.join(REPO, "build-sanitize", "streamrec_unit_tests"),
                  os.path.join(harness.BUILD, "streamrec_unit_tests")]
    binary = next((c for c in candidates if os.path.exists(c)), None)
    if binary is None:
        tally.add("units", 0, 1, ["streamrec_unit_tests was not built"])
        return
    print(f"=== GoogleTest units: {binary}", flush=True)
    report = tempfile.NamedTemporaryFile(suffix=".json", delete=False).name
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=0",
               UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
    proc = subprocess.run([binary, f"--gtest_output=json:{report}", "--gtest_brief=1"], env=env)
    try:
        with open(report) as f:
            data = json.load(f)
        failures = [f"{s['name']}.{t['name']}" for s in data["testsuites"] for t in s["testsuite"]
                    if t.get("failures")]
        total = data["tests"]
        failed = len(failures)
        if proc.returncode != 0 and failed == 0:  # a sanitizer report or a crash after the tests
            failures, failed = [f"exit status {proc.returncode}"], 1
        tally.add("units", total - len(failures) if total >= len(failures) else 0, failed, failures)
    except (OSError, ValueError, KeyError):
        tally.add("units", 0, 1, [f"no report (exit status {proc.returncode})"])
    finally:
        os.unlink(report)


def run_fuzz(tally):
    print("=== libFuzzer targets (tests/fuzz/run.py)", flush=True)
    proc = subprocess.run([sys.executable, os.path.join(REPO, "tests", "fuzz", "run.py")],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    print(proc.stdout, flush=True)
    m = re.search(r"^(\d+) passed, (\d+) failed", proc.stdout, re.M)
    if not m:
        tally.add("fuzz", 0, 1, [f"tests/fuzz/run.py exited {proc.returncode} without a summary"])
        return
    failures = re.findall(r"^FAIL: (.*)$", proc.stdout, re.M)
    failed = int(m.group(2))
    if proc.returncode != 0 and failed == 0:
        failed, failures = 1, [f"tests/fuzz/run.py exited {proc.returncode}"]
    tally.add("fuzz", int(m.group(1)), failed, failures)


def run_regress(tally):
    print("=== pg_regress (make -f Makefile.pgxs installcheck)", flush=True)
    regress = os.path.join(REPO, "tests", "regress")
    with open(os.path.join(regress, "schedule")) as f:
        scheduled = {name for line in f if line.startswith("test:") for name in line.split()[1:]}
    files = {os.path.splitext(os.path.basename(p))[0] for p in glob.glob(os.path.join(regress, "sql", "*.sql"))}
    unlisted = sorted(files - scheduled)
    if unlisted:
        tally.add("regress schedule", 0, 1, [f"not in tests/regress/schedule: {', '.join(unlisted)}"])

    cluster = harness.Cluster("regress").init().start()
    try:
        env = dict(os.environ, **cluster.psql_env())
        proc = subprocess.run(["make", "-s", "-f", "Makefile.pgxs", "installcheck", f"PG_CONFIG={harness.PG_CONFIG}"],
                              cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        print(proc.stdout, flush=True)
        results = re.findall(r"^\s*(?:test\s+)?(\S+)\s+\.\.\.\s+(ok|FAILED|failed)", proc.stdout, re.M)
        failures = [name for name, status in results if status != "ok"]
        passed = len(results) - len(failures)
        if proc.returncode != 0 and not failures:
            failures = [f"make installcheck exited {proc.returncode}"]
        if not results:
            failures = failures or ["no test ran"]
        tally.add("regress", passed, len(failures), failures)
        if failures and os.path.exists(os.path.join(regress, "regression.diffs")):
            with open(os.path.join(regress, "regression.diffs")) as f:
                print(f.read()[:20000])
        deaths = cluster.unexpected_signal_deaths()
        if deaths:
            tally.add("regress server log", 0, 1, deaths)
    finally:
        cluster.destroy()


def run_integration(tally):
    print("=== integration tests", flush=True)
    proc = subprocess.run([sys.executable, os.path.join(REPO, "tests", "integration", "run.py")],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    print(proc.stdout, flush=True)
    m = re.search(r"^(\d+) passed, (\d+) failed", proc.stdout, re.M)
    if not m:
        tally.add("integration", 0, 1, [f"runner exited {proc.returncode} without a summary"])
        return
    failures = re.findall(r"^(?:FAIL|ERROR): (.*)$", proc.stdout, re.M)
    failed = int(m.group(2))
    if proc.returncode != 0 and failed == 0:
        failed, failures = 1, [f"runner exited {proc.returncode}"]
    tally.add("integration", int(m.group(1)), failed, failures)


def main():
    tally = Tally()
    run_units(tally)
    run_fuzz(tally)
    run_regress(tally)
    run_integration(tally)
    if tally.failures:
        print("\nFailed:\n  " + "\n  ".join(tally.failures))
    print(f"{tally.passed} passed, {tally.failed} failed")
    return 0 if tally.failed == 0 and tally.passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
