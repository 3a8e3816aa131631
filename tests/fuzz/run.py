#!/usr/bin/python3
"""Runs every libFuzzer target of a fuzz build (build-fuzz/fuzz_targets.txt, written by
tests/fuzz/CMakeLists.txt) for a bounded time on its seed corpus, one target at a time, under the
ASan + UBSan it was built with. A crash, a sanitizer report, a broken invariant, a timeout or an
out-of-memory fails that target; its input is kept as build-fuzz/artifacts/<target>-crash-...
Prints one line per target and then `N passed, N failed`; exits non-zero on any failure.

    tests/fuzz/run.py                       # about a minute in all (tools/check)
    tests/fuzz/run.py --seconds 600 --nice  # 10 minutes per target (the long run)
    tests/fuzz/run.py fuzz_json             # only these targets

A target's dictionary of tokens, tests/fuzz/<target>.dict, is used when present. New inputs the
fuzzer finds go to a scratch folder, never into the committed seeds (keep one as
a seed by copying it into tests/fuzz/corpus/<target>/ and adding it to make_corpus.py)."""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("targets", nargs="*", help="targets to run (default: all of fuzz_targets.txt)")
    parser.add_argument("--build", default=os.path.join(REPO, "build-fuzz"), help="the fuzz build folder")
    parser.add_argument("--seconds", type=int, default=None,
                        help="seconds per target (default: --total spread over the targets, at least 5 each)")
    parser.add_argument("--total", type=int, default=60, help="seconds for all targets together (default 60)")
    parser.add_argument("--nice", action="store_true", help="run the fuzzers under nice")
    parser.add_argument("--keep-corpus", metavar="DIR", help="keep each target's grown corpus in DIR/<target>")
    return parser.parse_args()


def run_target(build, target, seconds, nice, corpus_dir):
    binary = os.path.join(build, "fuzz", target)
    seeds = os.path.join(REPO, "tests", "fuzz", "corpus", target)
    if not os.path.exists(binary):
        return False, f"{binary} was not built", {}
    if not os.path.isdir(seeds) or not os.listdir(seeds):
        return False, f"no seed corpus in {seeds}", {}
    artifacts = os.path.join(build, "artifacts")
    os.makedirs(artifacts, exist_ok=True)
    os.makedirs(corpus_dir, exist_ok=True)
    command = (["nice", "-n", "19"] if nice else []) + [
        binary, f"-max_total_time={seconds}", "-timeout=10", "-rss_limit_mb=2048", "-malloc_limit_mb=1024",
        "-print_final_stats=1", f"-artifact_prefix={artifacts}/{target}-"]
    dictionary = os.path.join(REPO, "tests", "fuzz", f"{target}.dict")
    if os.path.exists(dictionary):
        command.append(f"-dict={dictionary}")
    command += [corpus_dir, seeds]
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:symbolize=1",
               UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
    proc = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
                          env=env, timeout=seconds + 300)
    stats = dict(re.findall(r"^stat::(\w+):\s+(\d+)", proc.stdout, re.M))
    if proc.returncode != 0:
        # The report: from the first sanitizer or libFuzzer error line on, bounded.
        lines = proc.stdout.splitlines()
        start = next((i for i, l in enumerate(lines)
                      if re.search(r"ERROR: |runtime error|invariant violated|deadly signal", l)), max(0, len(lines) - 40))
        sys.stdout.write("\n".join(lines[start:start + 60]) + "\n")
        return False, f"exit status {proc.returncode}", stats
    return True, "", stats


def main():
    args = parse_args()
    listing = os.path.join(args.build, "fuzz_targets.txt")
    if not os.path.exists(listing):
        print(f"{listing} is missing: build the fuzz targets first (tools/lib.sh build_fuzz_targets)")
        print("0 passed, 1 failed")
        return 1
    with open(listing) as f:
        targets = [line.strip() for line in f if line.strip()]
    if args.targets:
        unknown = sorted(set(args.targets) - set(targets))
        if unknown:
            print(f"unknown fuzz targets: {', '.join(unknown)} (known: {', '.join(targets)})")
            return 2
        targets = [t for t in targets if t in args.targets]
    seconds = args.seconds or max(5, args.total // max(1, len(targets)))
    scratch = tempfile.mkdtemp(prefix="streamrec-fuzz-")
    passed = failed = 0
    try:
        for target in targets:
            corpus = os.path.join(args.keep_corpus or scratch, target)
            ok, why, stats = run_target(args.build, target, seconds, args.nice, corpus)
            runs = stats.get("number_of_executed_units", "?")
            if ok:
                passed += 1
                print(f"ok     {target}: {runs} executions in {seconds} s, "
                      f"{stats.get('new_units_added', '?')} new inputs, peak rss {stats.get('peak_rss_mb', '?')} MB",
                      flush=True)
            else:
                failed += 1
                print(f"FAIL: {target}: {why} after {runs} executions "
                      f"(input kept in {os.path.join(args.build, 'artifacts')})", flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
