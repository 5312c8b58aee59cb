#!/usr/bin/env python3
"""Run the workspace's test binaries side by side, longest first.

`cargo test` runs one test binary after the other, and each binary's tests two at a time on
this machine's two cores. Most of the suite's time is the system tests waiting on the emulators
(the realism layer's scaled AWS durations), not the CPU: in a whole run, ministack, moto and
their proxies use about 70 s of CPU in 7 minutes. So every binary runs at once, each with up to
8 of its tests at once (RUST_TEST_THREADS), which cuts the wall time without changing what is
tested: every binary cargo would run is run, with the same working directory and environment,
and any failure fails the whole run.

    scripts/run-tests.py [--jobs N] [--extra NAME=COMMAND ...] [--env-for NAME=KEY=VALUE ...]
                         [-- TEST ARGS]

Each binary's output goes to target/test-logs/<name>.log; a failed binary's log is printed at
the end. The durations of the last run (target/test-logs/durations.json) order the next run:
the longest binaries start first, so the run is not left waiting on one started last.
`--extra` adds a shell command run as one more job (the realism layer's pytest).
`--env-for NAME=KEY=VALUE` sets an environment variable for one binary: the tests that change
the realism proxy's settings for every caller or arm faults any caller could meet get an
emulator of their own that way (STT_MINISTACK_ENDPOINT), instead of running alone.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOGS = ROOT / "target" / "test-logs"
DURATIONS = LOGS / "durations.json"
RESULT = re.compile(r"test result: \w+\. (\d+) passed; (\d+) failed; (\d+) ignored")
PYTEST_RESULT = re.compile(r"(\d+) passed(?:, (\d+) failed)?[^\n]* in [\d.]+s")


def test_binaries(cargo_args):
    """Builds the test targets (nothing when built) and lists (name, executable, directory)."""
    cmd = ["cargo", "test", "--workspace", "--no-run", "--message-format=json-render-diagnostics"]
    out = subprocess.run(cmd + cargo_args, cwd=ROOT, stdout=subprocess.PIPE, check=True, text=True)
    found = []
    for line in out.stdout.splitlines():
        msg = json.loads(line)
        if msg.get("reason") != "compiler-artifact" or not msg.get("executable"):
            continue
        if not msg["profile"]["test"]:
            continue
        target = msg["target"]
        # "path+file:///…/handlers/common#stt-common@0.1.0", or "…/tests#0.1.0" when the
        # package is named after its folder.
        location, _, spec = msg["package_id"].partition("#")
        package = spec.split("@")[0] if "@" in spec else location.rsplit("/", 1)[-1]
        kind = {"lib": "lib", "bin": f"bin {target['name']}"}.get(target["kind"][0], target["name"])
        found.append((f"{package}::{kind}", msg["executable"], str(Path(msg["manifest_path"]).parent)))
    return found


class Board:
    """Prints one line per finished job; keeps the counts."""

    def __init__(self, total):
        self.lock = threading.Lock()
        self.total = total
        self.done = 0
        self.passed = 0
        self.failed_tests = 0
        self.failed = []

    def finish(self, name, seconds, code, log):
        text = log.read_text(errors="replace")
        passed = failed = 0
        for m in RESULT.finditer(text):
            passed += int(m.group(1))
            failed += int(m.group(2))
        if not RESULT.search(text):
            # One summary line per pytest run ("5 passed, 1 failed in 1.6s"); an --extra
            # command may run pytest more than once.
            for m in PYTEST_RESULT.finditer(text):
                passed += int(m.group(1))
                failed += int(m.group(2) or 0)
        with self.lock:
            self.done += 1
            self.passed += passed
            self.failed_tests += failed
            verdict = "ok" if code == 0 else f"FAILED (exit {code})"
            if code != 0:
                self.failed.append((name, log))
            print(f"[{self.done}/{self.total}] {name}: {verdict}, {passed} passed, {failed} failed, "
                  f"{seconds:.0f} s", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=int(os.environ.get("TEST_JOBS", "64")),
                        help="binaries run at once (default 64: all of them; or TEST_JOBS)")
    parser.add_argument("--extra", action="append", default=[], metavar="NAME=COMMAND",
                        help="a shell command run as one more job")
    parser.add_argument("--env-for", action="append", default=[], metavar="NAME=KEY=VALUE",
                        help="an environment variable for one binary (package::target)")
    parser.add_argument("test_args", nargs="*", help="arguments for every test binary (after --)")
    args = parser.parse_args()

    os.environ.setdefault("RUST_TEST_THREADS", "8")
    env_for = {}
    for spec in args.env_for:
        name, _, assignment = spec.partition("=")
        key, _, value = assignment.partition("=")
        env_for.setdefault(name, {})[key] = value
    jobs = [(name, [exe, *args.test_args], cwd) for name, exe, cwd in test_binaries([])]
    unknown = set(env_for) - {job[0] for job in jobs}
    if unknown:
        sys.exit(f"--env-for names no test binary: {sorted(unknown)}")
    # Doc tests are not binaries of their own: cargo runs them (none today; this keeps it so).
    jobs.append(("doctests", ["cargo", "test", "--workspace", "--doc", "-q"], str(ROOT)))
    for extra in args.extra:
        name, _, command = extra.partition("=")
        jobs.append((name, ["bash", "-c", command], str(ROOT)))

    LOGS.mkdir(parents=True, exist_ok=True)
    try:
        last = json.loads(DURATIONS.read_text())
    except (OSError, ValueError):
        last = {}
    # Longest first; unknown ones (first run) before the short known ones.
    jobs.sort(key=lambda job: -last.get(job[0], 60.0))
    board = Board(len(jobs))
    durations = {}
    started = time.monotonic()

    def run(job):
        name, cmd, cwd = job
        log = LOGS / (re.sub(r"[^A-Za-z0-9_.-]", "_", name) + ".log")
        begin = time.monotonic()
        with open(log, "w") as out:
            code = subprocess.call(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                   env={**os.environ, **env_for.get(name, {})})
        seconds = time.monotonic() - begin
        durations[name] = round(seconds, 1)
        board.finish(name, seconds, code, log)

    print(f"running {len(jobs)} test jobs, {args.jobs} at a time (logs in {LOGS.relative_to(ROOT)}/)",
          flush=True)
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        list(pool.map(run, jobs))
    DURATIONS.write_text(json.dumps({**last, **durations}, indent=1, sort_keys=True))

    for name, log in board.failed:
        print(f"\n===== {name} ({log.relative_to(ROOT)}) =====")
        print(log.read_text(errors="replace")[-20000:])
    wall = time.monotonic() - started
    print(f"\n{board.passed} passed, {board.failed_tests} failed in {len(jobs)} jobs, "
          f"{len(board.failed)} jobs failed; {wall:.0f} s", flush=True)
    return 1 if board.failed else 0


if __name__ == "__main__":
    sys.exit(main())
