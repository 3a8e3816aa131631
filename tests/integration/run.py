"""Runs the integration tests (tests/integration/test_*.py, or the modules named on the
command line) and prints `N passed, N failed`. Exits non-zero on any failure, including a
server process that died by a signal no test caused."""

import os
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402


class CountingResult(unittest.TextTestResult):
    def startTest(self, test):
        self._started = time.monotonic()
        super().startTest(test)

    def addSuccess(self, test):
        super().addSuccess(test)
        self.stream.write(f"  ({time.monotonic() - self._started:.1f}s)\n")


def main(argv):
    loader = unittest.TestLoader()
    if argv:
        suite = unittest.TestSuite(loader.loadTestsFromName(name) for name in argv)
    else:
        suite = loader.discover(HERE, pattern="test_*.py", top_level_dir=HERE)
    runner = unittest.TextTestRunner(stream=sys.stdout, verbosity=2, resultclass=CountingResult)
    result = runner.run(suite)
    # Errors in setUpClass/tearDownClass are reported against the class, not a test: count
    # them as failures without letting them make `passed` go below the tests that did pass.
    failed_tests = {id(test) for test, _ in result.failures + result.errors} | \
        {id(test) for test in result.unexpectedSuccesses}
    failed = len(failed_tests)
    passed = max(0, result.testsRun - len(result.skipped) - failed)

    # Whatever a test did, no server process may have died by a signal it did not send.
    for cluster in harness.ALL_CLUSTERS:
        deaths = cluster.unexpected_signal_deaths()
        if deaths:
            failed += 1
            print(f"FAIL: server log of cluster {cluster.name} ({cluster.logfile}):\n  " + "\n  ".join(deaths))
        cluster.destroy()

    print(f"{passed} passed, {failed} failed" + (f", {len(result.skipped)} skipped" if result.skipped else ""))
    return 0 if failed == 0 and result.testsRun > 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
