"""Fixtures: a ministack and a moto of the tests' own (free ports, state in a temporary
directory), each behind a realism proxy in test mode, and clients that talk through them."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile

import boto3
import pytest
from botocore.config import Config

HERE = os.path.dirname(os.path.abspath(__file__))
REALISM_DIR = os.path.dirname(HERE)
REPO = os.path.dirname(os.path.dirname(REALISM_DIR))
MINISTACK_BIN = os.environ.get("MINISTACK_BIN", os.path.join(REPO, ".venv", "bin", "ministack"))
MOTO_BIN = os.environ.get("MOTO_BIN", os.path.join(REPO, ".venv-moto", "bin", "moto_server"))
REGION = "us-east-1"
ACCOUNT = "000000000000"

# Every duration zero: a test switches on what it checks.
ZERO = {name: [0, 0] for name in (
    "iam_propagation", "lambda_pending", "lambda_pending_vpc", "lambda_update", "lambda_update_vpc",
    "s3_read_after_create", "ec2_read_after_create", "s3_conflicting_writes", "cloudfront_deploy",
    "rds_creating", "rds_modifying", "rds_deleting", "lambda_eni_release")}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status < 500:
                    return
        except urllib.error.HTTPError as e:
            if e.code < 500:
                return
            last = e
        except OSError as e:
            last = e
        time.sleep(0.25)
    raise RuntimeError("%s did not answer within %ss: %s" % (url, timeout, last))


class Process:
    def __init__(self, name, args, env, log_path):
        self.name = name
        self.log_path = log_path
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen(args, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.log.close()

    def output(self) -> str:
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")


class Realism:
    """The control API of one proxy."""

    def __init__(self, url: str, name: str, log_dir: str):
        self.url = url
        self.name = name
        self.log_dir = log_dir

    def _req(self, method, path, doc=None):
        data = json.dumps(doc).encode() if doc is not None else None
        req = urllib.request.Request(self.url + "/_realism/" + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())

    def config(self, **changes):
        if changes:
            return self._req("PUT", "config", changes)
        return self._req("GET", "config")

    def calls(self, **q):
        qs = "&".join("%s=%s" % (k, v) for k, v in q.items())
        return self._req("GET", "calls" + ("?" + qs if qs else ""))["calls"]

    def last_seq(self) -> int:
        return self._req("GET", "health")["seq"]

    def inject(self, **doc):
        return self._req("POST", "inject", doc)

    def reset(self):
        return self._req("POST", "reset", {})

    def state(self):
        return self._req("GET", "state")

    def baseline(self):
        """Test mode, no faults, time scale 1, every duration zero."""
        self.reset()
        return self.config(mode="test", fault_rate=0, time_scale=1, durations=ZERO, behaviours="all",
                           exempt_access_keys=[], fault_kinds="all", constrained_zones=[],
                           lambda_concurrency_limit=1000, lambda_min_unreserved=100)


class Stack:
    """An emulator behind its proxy."""

    def __init__(self, name, emulator, proxy, realism, endpoint):
        self.name = name
        self.emulator = emulator
        self.proxy = proxy
        self.realism = realism
        self.endpoint = endpoint

    def client(self, service, retries=1, validation=False, **kw):
        cfg = Config(parameter_validation=validation, retries={"total_max_attempts": retries, "mode": "standard"},
                     connect_timeout=10, read_timeout=120, **kw)
        return boto3.client(service, endpoint_url=self.endpoint, region_name=REGION, aws_access_key_id="test",
                            aws_secret_access_key="test", config=cfg)


def _start_stack(name, tmp, emulator_args, emulator_env, health_path, proxy_port, emu_port):
    log_dir = os.path.join(tmp, "log")
    os.makedirs(log_dir, exist_ok=True)
    emulator = Process(name, emulator_args, emulator_env, os.path.join(tmp, "%s.log" % name))
    try:
        wait_http("http://127.0.0.1:%d%s" % (emu_port, health_path), 90)
    except RuntimeError:
        emulator.stop()
        raise RuntimeError("%s did not start:\n%s" % (name, emulator.output()[-3000:]))
    env = dict(os.environ, PYTHONPATH=REALISM_DIR + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proxy = Process("realism-" + name, [
        sys.executable, "-m", "realism", "--listen", "127.0.0.1:%d" % proxy_port,
        "--upstream", "http://127.0.0.1:%d" % emu_port, "--name", name, "--log-dir", log_dir,
        "--mode", "test", "--seed", "1234", "--fault-rate", "0",
        "--cache-dir", os.path.join(REPO, ".local", "realism", "cache"),
    ], env, os.path.join(tmp, "realism-%s.log" % name))
    try:
        wait_http("http://127.0.0.1:%d/_realism/health" % proxy_port, 90)
    except RuntimeError:
        proxy.stop()
        emulator.stop()
        raise RuntimeError("the proxy did not start:\n%s" % proxy.output()[-3000:])
    url = "http://127.0.0.1:%d" % proxy_port
    return Stack(name, emulator, proxy, Realism(url, name, log_dir), url)


@pytest.fixture(scope="session")
def ministack():
    if not os.access(MINISTACK_BIN, os.X_OK):
        pytest.skip("ministack is not installed (%s): run make deps" % MINISTACK_BIN)
    tmp = tempfile.mkdtemp(prefix="realism-ministack-")
    emu_port, proxy_port = free_port(), free_port()
    env = dict(os.environ, BIND_HOST="127.0.0.1", GATEWAY_PORT=str(emu_port), STATE_DIR=os.path.join(tmp, "state"),
               AWS_ENDPOINT_URL="http://127.0.0.1:%d" % proxy_port)
    env.pop("PERSIST_STATE", None)
    stack = _start_stack("ministack", tmp, [MINISTACK_BIN], env, "/_ministack/health", proxy_port, emu_port)
    yield stack
    stack.proxy.stop()
    stack.emulator.stop()
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def moto():
    if not os.access(MOTO_BIN, os.X_OK):
        pytest.skip("moto is not installed (%s): run make deps" % MOTO_BIN)
    tmp = tempfile.mkdtemp(prefix="realism-moto-")
    emu_port, proxy_port = free_port(), free_port()
    stack = _start_stack("moto", tmp, [MOTO_BIN, "-H", "127.0.0.1", "-p", str(emu_port)], dict(os.environ),
                         "/moto-api/", proxy_port, emu_port)
    yield stack
    stack.proxy.stop()
    stack.emulator.stop()
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def ms(ministack):
    """ministack behind its proxy, reset to the baseline (test mode, no faults, no waits)."""
    ministack.realism.baseline()
    return ministack


@pytest.fixture
def mt(moto):
    moto.realism.baseline()
    return moto


# -- test material ---------------------------------------------------------------------------

BOOTSTRAP = """#!/bin/sh
# A provided.al2023 function in shell: answers {"version": VERSION, "endpoint": AWS_ENDPOINT_URL, "event": EVENT}.
API="http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime"
while true; do
  HDRS=$(mktemp)
  EVENT=$(curl -sS -D "$HDRS" "$API/invocation/next")
  REQ=$(grep -i '^lambda-runtime-aws-request-id:' "$HDRS" | tr -d '\\r' | awk '{print $2}')
  rm -f "$HDRS"
  curl -sS -X POST "$API/invocation/$REQ/response" -d "{\\"version\\":\\"%s\\",\\"endpoint\\":\\"$AWS_ENDPOINT_URL\\",\\"event\\":$EVENT}" >/dev/null
done
"""


def function_zip(version: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        info = zipfile.ZipInfo("bootstrap")
        info.external_attr = 0o755 << 16
        z.writestr(info, BOOTSTRAP % version)
    return buf.getvalue()


LAMBDA_TRUST = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]})


def unique(prefix: str) -> str:
    return "%s-%d-%d" % (prefix, os.getpid(), time.monotonic_ns() % 10_000_000_000)


def make_role(iam, name=None) -> str:
    name = name or unique("role")
    return iam.create_role(RoleName=name, AssumeRolePolicyDocument=LAMBDA_TRUST)["Role"]["Arn"]


def wait_until(pred, timeout=30.0, interval=0.1, what="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError("%s not reached within %ss (last: %r)" % (what, timeout, last))


def error_of(excinfo):
    e = excinfo.value
    return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"], e.response["Error"].get(
        "Message", "")
