"""Runs streamrec-sandbox (mock Kafka broker + schema registry) for integration tests.

    with Sandbox(build_dir, topics={"clicks": 3}) as sandbox:
        sandbox.bootstrap       # "127.0.0.1:PORT"
        sandbox.registry_url    # "http://127.0.0.1:PORT"
        sandbox.broker_down(1)

Standard library only, so any test harness can import it.
"""

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

DEFAULT_BUILD_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "build")


def build_dir_from_env():
    """The CMake build directory named by STREAMREC_BUILD (default: build/ in the repo)."""
    return os.environ.get("STREAMREC_BUILD", DEFAULT_BUILD_DIR)


def find_sandbox_binary(build_dir):
    for relative in ("streamrec-sandbox", "tools/sandbox_broker/streamrec-sandbox"):
        candidate = os.path.join(build_dir, relative)
        if os.access(candidate, os.X_OK):
            return candidate
    raise FileNotFoundError(
        f"streamrec-sandbox not found in {build_dir}: build the target streamrec-sandbox "
        "or point STREAMREC_BUILD at the build directory")


class SandboxError(RuntimeError):
    pass


class Sandbox:
    """One streamrec-sandbox process. start() returns once its topics exist and its HTTP server
    listens (the program writes the bootstrap file last); stop() sends SIGTERM and checks the
    exit status is 0."""

    def __init__(self, build_dir=None, topics=None, workdir=None, brokers=1, registry_port=0,
                 start_timeout=10.0):
        self.binary = find_sandbox_binary(build_dir or build_dir_from_env())
        self.topics = dict(topics or {})
        self.brokers = brokers
        self.registry_port = registry_port
        self.start_timeout = start_timeout
        self._own_workdir = workdir is None
        self.workdir = workdir or tempfile.mkdtemp(prefix="streamrec-sandbox-")
        os.makedirs(self.workdir, exist_ok=True)
        self.bootstrap_file = os.path.join(self.workdir, "bootstrap")
        self.registry_url_file = os.path.join(self.workdir, "registry_url")
        self.pid_file = os.path.join(self.workdir, "sandbox.pid")
        self.log_file = os.path.join(self.workdir, "sandbox.log")
        self.process = None
        self.bootstrap = None
        self.registry_url = None

    # --- lifecycle --------------------------------------------------------------------------------

    def command(self):
        argv = [self.binary, "--bootstrap-file", self.bootstrap_file,
                "--registry-url-file", self.registry_url_file, "--pid-file", self.pid_file,
                "--brokers", str(self.brokers), "--registry-port", str(self.registry_port)]
        for name, partitions in self.topics.items():
            argv += ["--topic", f"{name}:{int(partitions)}"]
        return argv

    def start(self):
        if self.process is not None:
            raise SandboxError("sandbox already started")
        for stale in (self.bootstrap_file, self.registry_url_file):
            if os.path.exists(stale):
                os.unlink(stale)
        with open(self.log_file, "ab") as log:
            self.process = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                            stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.start_timeout
        while not os.path.exists(self.bootstrap_file):
            if self.process.poll() is not None:
                code = self.process.returncode
                self.process = None
                raise SandboxError(f"streamrec-sandbox exited with {code}:\n{self.log()}")
            if time.monotonic() > deadline:
                self._kill()
                raise SandboxError(
                    f"streamrec-sandbox not ready after {self.start_timeout} s:\n{self.log()}")
            time.sleep(0.02)
        with open(self.bootstrap_file) as f:
            self.bootstrap = f.read().strip()
        with open(self.registry_url_file) as f:
            self.registry_url = f.read().strip()
        return self

    @property
    def pid(self):
        """The sandbox's process id while it runs (for `kill` hints), else None."""
        return self.process.pid if self.process is not None else None

    def stop(self, timeout=10.0):
        """SIGTERM, wait, and assert a clean exit (status 0)."""
        if self.process is None:
            return
        process, self.process = self.process, None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise SandboxError(f"streamrec-sandbox ignored SIGTERM for {timeout} s:\n{self.log()}")
        assert code == 0, f"streamrec-sandbox exited with {code}:\n{self.log()}"

    def _kill(self):
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def cleanup(self):
        self._kill()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, exc_type, exc, traceback):
        try:
            self.stop()
        except Exception:
            if exc_type is None:
                raise  # otherwise the test's own failure is the one to report
        finally:
            self.cleanup()
        return False

    def log(self):
        try:
            with open(self.log_file, errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    # --- HTTP -------------------------------------------------------------------------------------

    def http(self, method, path, body=None, timeout=5.0):
        """(status, parsed JSON body or raw text) for a request to the sandbox's HTTP port;
        error statuses are returned, not raised."""
        data = None
        headers = {}
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            headers["Content-Type"] = "application/vnd.schemaregistry.v1+json"
        request = urllib.request.Request(self.registry_url + path, data=data, method=method,
                                         headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        text = raw.decode()
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text

    def _admin(self, path):
        status, body = self.http("POST", path)
        if status != 200:
            raise SandboxError(f"POST {path} -> {status} {body}")
        return body

    # --- fault injection --------------------------------------------------------------------------

    def broker_down(self, broker_id):
        """Closes the broker's connections and refuses new ones (no leader change)."""
        return self._admin(f"/admin/brokers/{broker_id}/down")

    def broker_up(self, broker_id):
        return self._admin(f"/admin/brokers/{broker_id}/up")

    def create_topic(self, name, partitions=1):
        return self._admin(f"/admin/topics/{urllib.parse.quote(name, safe='')}"
                           f"?partitions={int(partitions)}")

    def topic_missing(self, name, partitions=1):
        """Metadata reports the topic as UNKNOWN_TOPIC_OR_PART (creating it hidden, with
        `partitions`, if absent). Needed because the mock creates any topic a client asks about."""
        return self._admin(f"/admin/topics/{urllib.parse.quote(name, safe='')}/missing"
                           f"?partitions={int(partitions)}")

    def topic_present(self, name):
        return self._admin(f"/admin/topics/{urllib.parse.quote(name, safe='')}/present")

    def fail_produce(self, error, count=1):
        """The next `count` Produce requests are refused with Kafka error code `error`."""
        return self._admin(f"/admin/produce/fail?error={int(error)}&count={int(count)}")

    def registry_down(self, seconds):
        """Registry endpoints answer 503 for `seconds` (0: back up now)."""
        return self._admin(f"/admin/registry/down?seconds={seconds}")
