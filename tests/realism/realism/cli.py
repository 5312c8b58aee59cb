"""python -m realism: the command line."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys

from aiohttp import web

from realism.config import parse_scale, BEHAVIOURS, DURATIONS, FAULT_KINDS, MODE_DEFAULTS, UNSCALED, Config, parse_duration

DESCRIPTION = """\
An HTTP proxy in front of a local AWS emulator (ministack, moto) that adds what AWS does and
the emulator does not: validation of every SigV4-signed request against botocore's models
(answered with the service's own error code and body), AWS's timing (IAM propagation, Lambda
Pending and update windows, S3/EC2 read-after-create, CloudFront deployment, RDS states,
Lambda's VPC ENIs), transient faults, and IAM on every call a Lambda function makes (its role's
policies, read from the emulator, evaluated by @cloud-copilot/iam-simulate). Unsigned requests
(CloudFront viewers, API Gateway stages, browsers, /_ministack/...) are forwarded untouched. All
knobs can be read and changed at run time: GET/PUT http://LISTEN/_realism/config. See
docs/realism.md."""


def _durations_help() -> str:
    lines = []
    for name, (lo, hi) in DURATIONS.items():
        lines.append("%s=%g-%g%s" % (name, lo, hi, " (not scaled)" if name in UNSCALED else ""))
    return ", ".join(lines)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m realism", description=DESCRIPTION,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--listen", default="127.0.0.1:4566", metavar="HOST:PORT",
                    help="address the proxy listens on (default %(default)s)")
    ap.add_argument("--upstream", required=True, metavar="URL",
                    help="the emulator behind the proxy, e.g. http://127.0.0.1:4567")
    ap.add_argument("--name", default="realism",
                    help="name used in logs and for the call log <log-dir>/<name>.calls.jsonl (default %(default)s)")
    ap.add_argument("--log-dir", default=".local/realism", help="where the call log goes (default %(default)s)")
    ap.add_argument("--mode", choices=("validate", "test", "off"), default="validate",
                    help="validate: validation only; test: validation + timing + faults; off: pure pass-through "
                         "(still logged). Default %(default)s")
    ap.add_argument("--seed", type=int, default=None,
                    help="seed of the one RNG behind every duration and fault (default: random, printed)")
    ap.add_argument("--time-scale", type=float, default=None, metavar="F",
                    help="factor applied to every AWS duration (default {} in test mode)".format(
                        MODE_DEFAULTS["test"]["time_scale"]))
    ap.add_argument("--fault-rate", type=float, default=None, metavar="P",
                    help="probability of a fault per signed request in test mode (default {}): 40%% throttling, "
                         "20%% HTTP 500, 20%% HTTP 503, 20%% dropped connection".format(
                             MODE_DEFAULTS["test"]["fault_rate"]))
    ap.add_argument("--duration", action="append", default=[], metavar="NAME=LO[-HI]",
                    help="override a duration range in real AWS seconds; defaults: " + _durations_help())
    ap.add_argument("--exempt-access-key", action="append", default=[], metavar="KEY",
                    help="requests signed with this access key never get a fault (repeatable)")
    ap.add_argument("--behaviours", default="all", metavar="LIST",
                    help="comma-separated timing behaviours to enable in test mode (default all): "
                         + ", ".join(BEHAVIOURS))
    ap.add_argument("--fault-kinds", default="all", metavar="LIST",
                    help="comma-separated fault kinds to draw from (default all): " + ", ".join(FAULT_KINDS))
    ap.add_argument("--scale", action="append", default=[], metavar="NAME=F",
                    help="a scale factor for one duration, instead of --time-scale (repeatable)")
    ap.add_argument("--constrained-zone", action="append", default=[], metavar="ZONE",
                    help="a zone of the emulated account that offers no interface endpoint service and no DB "
                         "instance class (repeatable; default none)")
    ap.add_argument("--no-iam", dest="iam", action="store_false", default=True,
                    help="do not simulate IAM on the calls Lambda functions make (on by default in validate and "
                         "test modes; config key iam)")
    ap.add_argument("--iam-node", default=os.environ.get("REALISM_IAM_NODE", "node"), metavar="PATH",
                    help="the node binary that runs the IAM simulator tests/realism/iam/simulate.mjs (default "
                         "%(default)s); without node or its packages (make deps) IAM is not checked")
    ap.add_argument("--lambda-concurrency-limit", type=int, default=1000, metavar="N",
                    help="Lambda's concurrency quota of the emulated account (default %(default)s)")
    ap.add_argument("--lambda-min-unreserved", type=int, default=100, metavar="N",
                    help="of it, what AWS keeps unreserved (default %(default)s)")
    ap.add_argument("--mediaconvert", choices=("auto", "on", "off"), default="auto",
                    help="answer MediaConvert (CreateJob, GetJob, ListJobs, DescribeEndpoints) in the proxy: auto "
                         "(default) when --name is ministack, which lacks it")
    ap.add_argument("--cache-dir", default=None,
                    help="where the index of botocore's models is cached (default ~/.cache/realism)")
    ap.add_argument("--log-level", default=os.environ.get("REALISM_LOG_LEVEL", "INFO"),
                    help="logging level of the proxy's own log on stderr (default %(default)s)")
    return ap


def config_from_args(args) -> Config:
    durations = dict(DURATIONS)
    for spec in args.duration:
        name, rng = parse_duration(spec)
        durations[name] = rng
    behaviours = set(BEHAVIOURS) if args.behaviours in ("", "all") else {
        b.strip() for b in args.behaviours.split(",") if b.strip()}
    kinds = set(FAULT_KINDS) if args.fault_kinds in ("", "all") else {
        k.strip() for k in args.fault_kinds.split(",") if k.strip()}
    return Config(mode=args.mode, seed=args.seed, time_scale=args.time_scale, fault_rate=args.fault_rate,
                  durations=durations, exempt_access_keys=set(args.exempt_access_key), behaviours=behaviours,
                  fault_kinds=kinds, constrained_zones=set(args.constrained_zone),
                  scales=dict(parse_scale(spec) for spec in args.scale), iam=args.iam, iam_node=args.iam_node,
                  mediaconvert={"auto": None, "on": True, "off": False}[args.mediaconvert],
                  lambda_concurrency_limit=args.lambda_concurrency_limit,
                  lambda_min_unreserved=args.lambda_min_unreserved)


async def serve(args, config: Config):
    from realism.botomodel import ModelIndex
    from realism.proxy import Proxy

    host, _, port = args.listen.rpartition(":")
    index = ModelIndex(args.cache_dir)
    proxy = Proxy(config, args.upstream, args.name, args.log_dir, index=index, listen=args.listen)
    failed = proxy.preload()
    if failed:
        logging.getLogger("realism").warning(
            "%d model patterns could not be compiled and are not checked", failed)
    await proxy.start()
    server = web.Server(proxy.handle, max_line_size=65536, max_field_size=65536, auto_decompress=False,
                        access_log=None)
    runner = web.ServerRunner(server, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host or "127.0.0.1", int(port), reuse_address=True)
    await site.start()
    print("realism %s: listening on http://%s -> %s; %s" % (args.name, args.listen, args.upstream, config.banner()),
          flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await proxy.close()
    await runner.cleanup()


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=getattr(logging, str(args.log_level).upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    try:
        config = config_from_args(args)
    except ValueError as e:
        print("error: %s" % e, file=sys.stderr)
        return 64
    try:
        asyncio.run(serve(args, config))
    except OSError as e:
        print("error: %s" % e, file=sys.stderr)
        return 1
    return 0
