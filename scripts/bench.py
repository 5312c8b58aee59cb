#!/usr/bin/env python3
"""`make bench`: the figures that matter to someone choosing this tool, as one table.

Runs on the local target (ministack behind the realism proxy on 127.0.0.1:4566, the machine's
MariaDB), with a stack of its own (`bench-*`, both systems, the repository's stack.yaml with
another name, network and database) so that the stack `make local` made is left alone:

1. cold `up` with AWS's real durations replayed by the realism layer, scaled by --time-scale:
   the makespan against the critical path of the same graph with the same durations;
2. no-op `up` and `drift`: wall time (median of --runs), CPU time, read calls per resource;
3. upload to mail: a spoken MP3, and a 30 MB recording, sent as the page sends them (the
   API's presigned POST, or parts and `complete`, straight to S3) until the transcript mail
   reaches ministack's SES (median of --runs each);
4. each handler's cold start (init duration) and peak memory, its zip run under a minimal
   Lambda Runtime API with the environment the stack gave it; next to it, the same init in the
   console build's runtimes (file_upload on Node.js, audio_transcribe on Python:
   tests/bench/console-runtimes);
then `down`. Prints the table and writes it with the machine's description as JSON
(target/bench/bench.json). docs/performance.md says what each figure means.
"""

import argparse
import json
import os
import platform
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROVISION = ROOT / "target" / "provision"
OUT = ROOT / "target" / "bench"
ENDPOINT = os.environ.get("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
STACK = "bench-stack"
HANDLERS = ["file_upload", "audio_transcribe", "save_text", "send_email", "db_migrate", "vod_convert"]


def log(message):
    print(message, file=sys.stderr, flush=True)


def stack_file(directory):
    """The repository's stack.yaml under another name, network and database, paths absolute,
    and an upload quota the timed uploads cannot exhaust."""
    text = (ROOT / "stack.yaml").read_text()
    text = re.sub(r"(?m)^  name: .*$", f"  name: {STACK}", text, count=1)
    text = re.sub(r"(?m)^    cidr: .*$", "    cidr: 10.90.0.0/16", text, count=1)
    text = re.sub(r"(?m)^    database_name: .*$", "    database_name: bench_stt", text, count=1)
    text = re.sub(r"(?m)^(\s+(?:source_dir|zips_dir): )([^#\s]+)",
                  lambda m: m.group(1) + str(ROOT / m.group(2)), text)
    text = text.replace("transcripts@example.com", "bench@example.com")  # `down` deletes its identity
    text = re.sub(r"upload_quota: \{[^}]*\}", "upload_quota: {per_address_per_hour: 5, per_ip_per_hour: 1000}",
                  text)
    path = Path(directory) / "stack.yaml"
    path.write_text(text)
    return path


def provision(stack, *args, check=True):
    """Runs `provision --local`; returns (report, wall seconds, CPU seconds)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run([str(PROVISION), "--local", "--stack", str(stack), "--output", "json", *args],
                          cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if check and proc.returncode not in (0, 2):
        sys.exit(f"provision {' '.join(args)} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout) if proc.stdout.strip() else {}, wall, cpu


def realism(**knobs):
    """Sets the realism proxy's knobs (docs/realism.md, `PUT /_realism/config`)."""
    status, answer = http(f"{ENDPOINT}/_realism/config", json.dumps(knobs).encode(),
                          {"Content-Type": "application/json"}, "PUT")
    if status != 200:
        sys.exit(f"the realism proxy refused {knobs}: {answer[:300]!r}")


def critical_path(report):
    """The run's makespan and the critical path of its graph with the run's own durations."""
    lines = {l["resource"]: l for l in report["resources"] if l.get("timing")}
    finish = {}

    def earliest_finish(name):
        if name not in finish:
            line = lines[name]
            t = line["timing"]
            before = max((earliest_finish(w) for w in line.get("waited_for", []) if w in lines), default=0)
            finish[name] = before + (t["finished_ms"] - t["started_ms"])
        return finish[name]

    path = 0
    chain_end = None
    for name, line in lines.items():
        t = line["timing"]
        settle = (t["settled_ms"] - t["finished_ms"]) if t.get("settled_ms") else 0
        end = earliest_finish(name) + settle
        if end > path:
            path, chain_end = end, name
    start = min(l["timing"]["started_ms"] for l in lines.values())
    makespan = max(max(l["timing"]["finished_ms"], l["timing"].get("settled_ms") or 0)
                   for l in lines.values()) - start
    return makespan / 1000, path / 1000, chain_end


def cold_up(stack, time_scale, seed):
    realism(mode="test", time_scale=time_scale, fault_rate=0, seed=seed, scales={})
    try:
        report, wall, _ = provision(stack, "up")
    finally:
        realism(mode="validate")
    if report["summary"]["failed"]:
        failed = [l for l in report["resources"] if l["result"] in ("failed", "skipped")]
        sys.exit(f"cold up failed: {json.dumps(failed[:3], indent=1)}")
    makespan, path, chain_end = critical_path(report)
    slowest = sorted(((l["timing"]["finished_ms"] - l["timing"]["started_ms"], l["resource"])
                      for l in report["resources"] if l.get("timing")), reverse=True)[:3]
    return {
        "time_scale": time_scale,
        "resources": len(report["resources"]),
        "wall_s": round(wall, 2),
        "makespan_s": round(makespan, 2),
        "critical_path_s": round(path, 2),
        "ratio": round(makespan / path, 3),
        "critical_path_ends_at": chain_end,
        "slowest_steps": [{"resource": r, "s": round(ms / 1000, 2)} for ms, r in slowest],
        "write_calls": report["api_calls"]["write"],
    }


def no_op(stack, command, runs):
    walls, cpus, reads, resources = [], [], [], 0
    for _ in range(runs):
        report, wall, cpu = provision(stack, command)
        if report["api_calls"]["write"]:
            sys.exit(f"{command} was not a no-op: {report['api_calls']['write']} write calls")
        walls.append(wall)
        cpus.append(cpu)
        reads.append(report["api_calls"]["read"])
        resources = len(report["resources"])
    return {
        "runs": runs,
        "wall_median_s": round(statistics.median(walls), 3),
        "wall_min_s": round(min(walls), 3),
        "cpu_median_s": round(statistics.median(cpus), 3),
        "resources": resources,
        "read_calls": statistics.median(reads),
        "read_calls_per_resource": round(statistics.median(reads) / resources, 2),
    }


def http(url, data=None, headers=None, method=None):
    request = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def multipart(fields, filename, content):
    boundary = "----provision-bench-" + uuid.uuid4().hex
    body = b""
    for name, value in fields:
        body += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").encode()
    body += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n"
             "Content-Type: audio/mpeg\r\n\r\n").encode() + content + f"\r\n--{boundary}--\r\n".encode()
    return f"multipart/form-data; boundary={boundary}", body


def direct_upload(api, origin, address, filename, content):
    """The page's way: the create request, then the file straight to S3 as the answer says."""
    request = {"email": address, "language": "en-US", "filename": filename, "size": len(content),
               "contentType": "audio/mpeg"}
    status, answer = http(api, json.dumps(request).encode(), {"Content-Type": "application/json", "Origin": origin},
                          "POST")
    if status != 201:
        sys.exit(f"upload answered {status}: {answer[:300]!r}")
    created = json.loads(answer)
    upload = created["upload"]
    if upload["method"] == "POST":
        content_type, body = multipart(list(upload["fields"].items()), filename, content)
        status, answer = http(upload["url"], body, {"Content-Type": content_type, "Origin": origin}, "POST")
        if status // 100 != 2:
            sys.exit(f"S3 refused the form: {status} {answer[:300]!r}")
        return
    start = 0
    for part in upload["parts"]:
        status, answer = http(part["url"], content[start:start + part["size"]], {"Origin": origin}, "PUT")
        if status != 200:
            sys.exit(f"S3 refused part {part['partNumber']}: {status} {answer[:300]!r}")
        start += part["size"]
    status_url = api.rsplit("/", 1)[0] + "/upload-status"
    done = {"uploadId": created["uploadId"], "token": created["token"], "action": "complete"}
    status, answer = http(status_url, json.dumps(done).encode(), {"Content-Type": "application/json",
                                                                   "Origin": origin}, "POST")
    if status != 200:
        sys.exit(f"complete answered {status}: {answer[:300]!r}")


def mails_to(address):
    _, body = http(f"{ENDPOINT}/_ministack/ses/messages")
    messages = json.loads(body).get("messages", [])
    lists = messages.values() if isinstance(messages, dict) else [messages]
    return [m for l in lists for m in (l if isinstance(l, list) else []) if address in json.dumps(m.get("To"))]


def upload_to_mail(outputs, mp3, big, runs):
    api, site = outputs["stt_api_url"], outputs["stt_site_url"]
    origin = re.match(r"^(https?://[^/]+)", site).group(1)

    def once(content, filename):
        address = f"bench-{uuid.uuid4().hex[:12]}@example.com"
        # An address that confirmed before: the figure is the transcript's way, not the
        # reader's opening of the confirmation mail.
        subprocess.run(["mysql", "--host=127.0.0.1", "--user=root", "--database=bench_stt", "-e",
                        f"INSERT INTO recipients (email, confirmed_at) VALUES ('{address}', NOW())"],
                       check=True)
        started = time.perf_counter()
        direct_upload(api, origin, address, filename, content)
        while not any(str(m.get("Subject", "")).startswith("Transcript of") for m in mails_to(address)):
            if time.perf_counter() - started > 300:
                sys.exit(f"no mail to {address} within 300 s")
            time.sleep(0.05)
        return time.perf_counter() - started

    small = [once(mp3, "bench.mp3") for _ in range(runs)]
    large = [once(big, "meeting.mp3") for _ in range(runs)]
    return {
        "small_bytes": len(mp3),
        "big_bytes": len(big),
        "runs": runs,
        "small_median_s": round(statistics.median(small), 2),
        "small_max_s": round(max(small), 2),
        "big_median_s": round(statistics.median(large), 2),
        "big_max_s": round(max(large), 2),
    }


class RuntimeApi(BaseHTTPRequestHandler):
    """The Lambda Runtime API's /next: notes when the function asks for its first event
    (the end of its init) and answers nothing more."""

    asked = None

    def do_GET(self):
        if self.path.endswith("/invocation/next") and RuntimeApi.asked is None:
            RuntimeApi.asked = time.perf_counter()
        time.sleep(5)  # the bench kills the process meanwhile
        self.send_response(500)
        self.end_headers()

    def do_POST(self):
        RuntimeApi.asked = ("init error", self.rfile.read(int(self.headers.get("Content-Length", 0))))
        self.send_response(202)
        self.end_headers()

    def log_message(self, *_):
        pass


def function_environment(name):
    """The environment the stack gave a function (Lambda GetFunction), via the realism venv's
    botocore."""
    import botocore.session  # the realism layer's virtualenv has it

    client = botocore.session.get_session().create_client(
        "lambda", region_name="us-east-1", endpoint_url=ENDPOINT,
        aws_access_key_id="test", aws_secret_access_key="test")
    config = client.get_function_configuration(FunctionName=name)
    return config.get("Environment", {}).get("Variables", {})


def peak_rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def measure_init(command, env, runs, port):
    """Starts `command` `runs` times under the minimal Runtime API on `port`: the median time
    from its start to its first `GET /runtime/invocation/next`, and its peak RSS then."""
    env = {**env, "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{port}"}
    inits, peaks = [], []
    for _ in range(runs):
        RuntimeApi.asked = None
        started = time.perf_counter()
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        while RuntimeApi.asked is None and proc.poll() is None and time.perf_counter() - started < 30:
            time.sleep(0.001)
        asked = RuntimeApi.asked
        peak = peak_rss_kib(proc.pid) if proc.poll() is None else 0
        proc.kill()
        _, stderr = proc.communicate()
        if not isinstance(asked, float):
            return {"error": f"init did not finish: {asked!r} {stderr.decode(errors='replace')[-300:]}"}
        inits.append((asked - started) * 1000)
        peaks.append(peak / 1024)
    return {"init_median_ms": round(statistics.median(inits), 1), "peak_rss_mib": round(statistics.median(peaks), 1)}


def function_env(function):
    env = function_environment(function)
    env.update({
        # Lambda sets both region variables; boto3 reads only the second.
        "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_ENDPOINT_URL": ENDPOINT, "AWS_LAMBDA_FUNCTION_NAME": function,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128", "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "PATH": "/usr/bin:/bin",
    })
    return env


def cold_starts(runs):
    server = ThreadingHTTPServer(("127.0.0.1", 0), RuntimeApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    results = {}
    with tempfile.TemporaryDirectory() as work:
        for handler in HANDLERS:
            zip_path = ROOT / "target" / "lambda" / handler / "bootstrap.zip"
            bootstrap = Path(work) / handler / "bootstrap"
            with zipfile.ZipFile(zip_path) as z:
                z.extract("bootstrap", bootstrap.parent)
            bootstrap.chmod(0o755)
            function = f"{STACK}-{handler}"
            try:
                env = function_env(function)
            except Exception as e:  # a stack without that function
                results[handler] = {"error": f"no function {function}: {e}"}
                continue
            results[handler] = {"zip_bytes": zip_path.stat().st_size,
                                **measure_init([str(bootstrap)], env, runs, port)}
        # The console build's runtimes doing the same init (tests/bench/console-runtimes): its
        # file_upload on Node.js 20 with the AWS SDK for JavaScript v3, its audio_transcribe on
        # Python (3.12 in the console; this machine's 3.11) with boto3. Only the init is
        # compared: the managed runtimes' own start (their runtime interface client) is not in it.
        console = ROOT / "tests" / "bench" / "console-runtimes"
        node = shutil.which("node")
        node_version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip() if node else ""
        for handler, label, command in [
            ("file_upload", f"Node.js {node_version}", [node, str(console / "file_upload.mjs")] if node else None),
            ("audio_transcribe", "Python %d.%d" % sys.version_info[:2],
             [sys.executable, str(console / "audio_transcribe.py")]),
        ]:
            if command is None:
                results[f"{handler} ({label})"] = {"error": "node is not installed"}
                continue
            try:
                env = function_env(f"{STACK}-{handler}")
            except Exception as e:
                results[f"{handler} ({label})"] = {"error": f"no function {STACK}-{handler}: {e}"}
                continue
            results[f"{handler} ({label})"] = measure_init(command, env, runs, port)
    server.shutdown()
    return results


def machine():
    cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                if l.startswith("model name")), platform.processor())
    memory = next((int(l.split()[1]) // 1024 // 1024 for l in Path("/proc/meminfo").read_text().splitlines()
                   if l.startswith("MemTotal")), 0)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, stdout=subprocess.PIPE,
                            text=True).stdout.strip()
    rustc = subprocess.run(["rustc", "-V"], stdout=subprocess.PIPE, text=True).stdout.strip()
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": memory, "kernel": platform.release(),
            "rustc": rustc, "commit": commit, "provision": "target/provision (release, the zips' target, as `make local` builds it)",
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def table(results):
    rows = []
    cold = results.get("cold_up")
    if cold:
        rows.append(("cold up, both systems (AWS durations x%s)" % cold["time_scale"],
                     f"makespan {cold['makespan_s']} s / critical path {cold['critical_path_s']} s "
                     f"= {cold['ratio']} ({cold['resources']} resources, {cold['write_calls']} writes)"))
    for command in ("up", "drift"):
        n = results.get(f"noop_{command}")
        if n:
            rows.append((f"no-op {command}, both systems (median of {n['runs']})",
                         f"{n['wall_median_s']} s wall, {n['cpu_median_s']} s CPU, {n['read_calls']:.0f} reads "
                         f"for {n['resources']} resources ({n['read_calls_per_resource']} per resource)"))
    u = results.get("upload_to_mail")
    if u:
        rows.append((f"upload to mail, {u['small_bytes']} B MP3 (median of {u['runs']})",
                     f"{u['small_median_s']} s (max {u['small_max_s']} s)"))
        rows.append((f"upload to mail, {u['big_bytes'] / 1e6:.0f} MB MP3 in parts (median of {u['runs']})",
                     f"{u['big_median_s']} s (max {u['big_max_s']} s)"))
    for handler, s in (results.get("cold_starts") or {}).items():
        if "error" in s:
            rows.append((f"cold start {handler}", s["error"]))
        else:
            size = f", zip {s['zip_bytes'] / 1e6:.2f} MB" if "zip_bytes" in s else ""
            rows.append((f"cold start {handler}", f"init {s['init_median_ms']} ms, peak {s['peak_rss_mib']} MiB{size}"))
    width = max(len(r[0]) for r in rows) if rows else 0
    return "\n".join(f"{a:<{width}}  {b}" for a, b in rows)


def main():
    parser = argparse.ArgumentParser(description="Measure the local target; see docs/performance.md.")
    parser.add_argument("--runs", type=int, default=10, help="repetitions of the timed figures (10)")
    parser.add_argument("--time-scale", type=float, default=0.05,
                        help="AWS's durations replayed at this factor in the cold up (0.05: RDS 6 min -> 18 s)")
    parser.add_argument("--seed", type=int, default=1, help="the realism layer's seed for the cold up")
    parser.add_argument("--skip", action="append", default=[],
                        choices=["cold", "noop", "upload", "starts"], help="leave a part out")
    args = parser.parse_args()
    if not PROVISION.exists():
        sys.exit("target/provision is missing: run `make local` first")
    try:
        http(f"{ENDPOINT}/_realism/health")
    except OSError:
        sys.exit(f"no local target at {ENDPOINT}: run `make local` first")

    OUT.mkdir(parents=True, exist_ok=True)
    results = {"machine": machine()}
    with tempfile.TemporaryDirectory() as work:
        stack = stack_file(work)
        log("removing what an earlier bench left, if anything")
        provision(stack, "down", "--delete-data", "--skip-final-snapshot", "--disable-deletion-protection",
                  check=False)
        subprocess.run(["mysql", "--host=127.0.0.1", "--user=root", "-e", "DROP DATABASE IF EXISTS bench_stt"],
                       check=False)
        try:
            if "cold" not in args.skip:
                log(f"cold up, AWS durations x{args.time_scale}")
                results["cold_up"] = cold_up(stack, args.time_scale, args.seed)
            else:
                provision(stack, "up")
            if "noop" not in args.skip:
                for command in ("up", "drift"):
                    log(f"no-op {command} x{args.runs}")
                    results[f"noop_{command}"] = no_op(stack, command, args.runs)
            if "upload" not in args.skip:
                log(f"upload to mail x{args.runs}")
                mp3 = Path(work) / "bench.mp3"
                subprocess.run([str(ROOT / "tests/browser/make-mp3.sh"), str(mp3), "the bench speaks"], check=True)
                big = Path(work) / "meeting.mp3"
                subprocess.run([str(ROOT / "tests/browser/make-audio.sh"), str(big), "30000000",
                                "the meeting starts with the budget"], check=True, stdout=subprocess.DEVNULL)
                outputs, _, _ = provision(stack, "outputs")
                results["upload_to_mail"] = upload_to_mail(outputs, mp3.read_bytes(), big.read_bytes(), args.runs)
            if "starts" not in args.skip:
                log("cold starts")
                results["cold_starts"] = cold_starts(min(args.runs, 5))
        finally:
            log("down")
            provision(stack, "down", "--delete-data", "--skip-final-snapshot", "--disable-deletion-protection",
                      check=False)

    text = table(results)
    (OUT / "bench.json").write_text(json.dumps(results, indent=1))
    print(f"{results['machine']['cores']} cores, {results['machine']['cpu']}, {results['machine']['memory_gib']} GiB, "
          f"{results['machine']['rustc']}, commit {results['machine']['commit']}\n")
    print(text)
    print(f"\n(written to {(OUT / 'bench.json').relative_to(ROOT)})")


if __name__ == "__main__":
    main()
