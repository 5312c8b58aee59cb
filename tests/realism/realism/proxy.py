"""The HTTP proxy: control API, validation, injections, faults, the timing behaviours, and
forwarding to the emulator."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Optional
from urllib.parse import parse_qsl

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from realism import awserrors, quirks
from realism.awserrors import AwsError, Envelope
from realism.botomodel import Identified, ModelIndex, ParseError, Request, Signature, parse_params, parse_signature
from realism.calllog import CallLog, key_params
from realism.config import Config
from realism.upstream import HOP_BY_HOP, Resp, Upstream
from realism.validate import Patterns, Validator

log = logging.getLogger("realism")

CONTROL_PREFIX = "/_realism/"

# Services whose patterns are compiled at start (the ones this project calls); the others
# are compiled when first used.
PRELOAD = ("s3", "cloudfront", "ec2", "rds", "iam", "sts", "lambda", "apigateway", "events", "ses", "sesv2",
           "transcribe", "secretsmanager", "mediaconvert", "logs", "sqs", "cloudformation")


class Answer:
    """An answer the proxy gives itself (without the emulator)."""

    def __init__(self, status: int = 200, headers=None, body: bytes = b"", drop: bool = False):
        self.status = status
        self.headers = headers or {}
        self.body = body
        self.drop = drop


class Ctx:
    """One request on its way through the proxy."""

    def __init__(self, seq: int, req: Request, path_qs: str):
        self.seq = seq
        self.start = time.monotonic()
        self.req = req
        self.path_qs = path_qs
        self.sig: Optional[Signature] = None
        self.ident: Optional[Identified] = None
        self.params: Optional[dict] = None
        self.parse_error: Optional[str] = None
        self.verdict = "forwarded"
        self.behaviours: list = []
        self.env: Optional[Envelope] = None
        self.status: Optional[int] = None
        self.note: Optional[str] = None
        self.state: dict = {}  # scratch space of the behaviours for this request
        self.transport = None  # the client's connection (iam.py finds the calling process by it)

    @property
    def service(self) -> str:
        if self.ident:
            return self.ident.service
        return self.sig.service if self.sig else ""

    @property
    def op(self) -> str:
        return self.ident.operation if self.ident else ""

    @property
    def access_key(self) -> str:
        return self.sig.access_key if self.sig else ""

    @property
    def region(self) -> str:
        return self.sig.region if self.sig else "us-east-1"

    def is_(self, service: str, *ops: str) -> bool:
        return self.ident is not None and self.ident.service == service and self.ident.operation in ops

    def p(self, *path, default=None):
        v = self.params
        for k in path:
            if not isinstance(v, dict) or k not in v:
                return default
            v = v[k]
        return v

    def error(self, err: AwsError, verdict: str) -> Answer:
        self.verdict = verdict
        status, headers, body = awserrors.render(self.env, err)
        return Answer(status, headers, b"" if self.req.method == "HEAD" else body)

    def saw(self, behaviour: str):
        """A behaviour learned from or acted on this request (listed in its call-log line)."""
        if behaviour not in self.behaviours:
            self.behaviours.append(behaviour)

    def touched(self, behaviour: str):
        """A behaviour changed the answer: the verdict says so."""
        self.saw(behaviour)
        if self.verdict == "forwarded":
            self.verdict = "timing:" + behaviour


class Injection:
    def __init__(self, doc: dict, ident: int):
        self.id = ident
        self.service = doc.get("service") or ""
        self.operation = doc.get("operation") or ""
        self.code = doc.get("code") or doc.get("error_code") or doc.get("error")
        if not self.code and not doc.get("lose_answer"):
            raise ValueError("code is required (or lose_answer)")
        self.message = doc.get("message") or ""
        self.status = int(doc.get("status") or doc.get("http_status") or 400)
        self.count = int(doc.get("count", 1))
        self.access_key = doc.get("access_key") or ""
        self.match = doc.get("match") or ""
        # Armed only once a call of this operation has been answered (e.g. "DeleteDBInstance":
        # the reads of the wait that follows fail, not the ones before).
        self.after = doc.get("after") or ""
        self.armed = not self.after
        # Forward the call, then drop the connection: AWS acted, the caller never hears.
        self.lose_answer = bool(doc.get("lose_answer"))
        if self.lose_answer:
            self.code = self.code or "lost"

    def matches(self, ctx: Ctx) -> bool:
        if self.count <= 0 or not self.armed:
            return False
        if self.service and self.service not in (ctx.service, ctx.sig.service if ctx.sig else ""):
            return False
        if self.operation and self.operation not in ("*", ctx.op):
            return False
        if self.access_key and self.access_key != ctx.access_key:
            return False
        if self.match:
            hay = ctx.req.body.decode("utf-8", "replace") + "\n" + ctx.path_qs + "\n" + "\n".join(
                "%s=%s" % kv for kv in ctx.req.query)
            if ctx.params is not None:
                hay += "\n" + json.dumps(ctx.params, default=str, ensure_ascii=False)
            if self.match not in hay:
                return False
        return True

    def to_json(self) -> dict:
        return {"id": self.id, "service": self.service, "operation": self.operation, "code": self.code,
                "message": self.message, "status": self.status, "count": self.count,
                "access_key": self.access_key, "match": self.match, "after": self.after, "armed": self.armed,
                "lose_answer": self.lose_answer}


class Proxy:
    def __init__(self, config: Config, upstream_url: str, name: str, log_dir: str,
                 index: Optional[ModelIndex] = None, listen: str = ""):
        from realism.behaviours import World  # noqa: PLC0415 - behaviours import Ctx from here

        self.config = config
        self.name = name
        self.listen = listen
        self.upstream_url = upstream_url
        self.upstream = Upstream(upstream_url)
        self.index = index or ModelIndex()
        self.patterns = Patterns()
        self.validator = Validator(self.patterns)
        self.calls = CallLog(log_dir, name)
        self.injections: list = []
        self._injection_ids = 0
        self.world = World(self)
        from realism.iam import Iam  # noqa: PLC0415
        from realism.mediaconvert import MediaConvert  # noqa: PLC0415 - imports Ctx from here

        self.iam = Iam(self)
        self.mediaconvert = MediaConvert(self)
        self._iam_start: Optional[asyncio.Future] = None
        self.started = time.time()

    async def start(self):
        await self.upstream.start()
        # The IAM simulator starts in the background: the proxy listens at once, and a Lambda
        # call arriving meanwhile waits for it (iam.py bounds every wait).
        self._iam_start = asyncio.ensure_future(self.iam.start())

    def preload(self) -> int:
        failed = 0
        for s in PRELOAD:
            if s in self.index.meta:
                failed += self.patterns.precompile(self.index.model(s))
        return failed

    async def close(self):
        if self._iam_start is not None and not self._iam_start.done():
            self._iam_start.cancel()
        await self.iam.close()
        await self.world.close()
        await self.upstream.close()
        self.calls.close()

    # -- the request handler -------------------------------------------------------------
    async def handle(self, request: web.BaseRequest):
        raw = request.raw_path
        if raw.startswith(CONTROL_PREFIX):
            return await self.control(request)
        if request.headers.get("Expect", "").lower() == "100-continue":
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = await request.content.read()
        path, _, qs = raw.partition("?")
        req = Request(request.method, path, parse_qsl(qs, keep_blank_values=True), request.headers, body,
                      request.headers.get("Host", ""))
        ctx = Ctx(self.calls.next_seq(), req, raw)
        ctx.transport = request.transport
        try:
            return await self._handle(request, ctx)
        finally:
            self.world.finish(ctx)
            self.iam.observe(ctx)

    async def _handle(self, request, ctx: Ctx):
        req = ctx.req
        ctx.sig = parse_signature(req.headers, req.query)
        if ctx.sig is None or self.config.mode == "off":
            if ctx.sig is not None:
                self._identify(ctx)
            ctx.verdict = "passthrough"
            return await self._forward_stream(request, ctx)
        self._identify(ctx)
        try:
            answer = self._pre(ctx)
            if answer is None and self.config.validating:
                answer = await self.iam.check(ctx)
            if answer is None and self.config.validating:
                answer = await self.iam.check_execution_role(ctx)
            if answer is None and self.config.validating and ctx.ident is not None and ctx.params is not None:
                answer = await self.world.semantic(ctx)
            if answer is None and self.config.mode == "test":
                answer = self._fault(ctx)
            if answer is None and self.config.validating:
                answer = await self.mediaconvert.answer(ctx)
            if answer is None:
                answer = await self.world.before(ctx)
        except Exception as e:  # noqa: BLE001 - a bug of the proxy must not cost the request: forward it
            log.exception("realism failed before forwarding %s.%s; forwarding it as is", ctx.service, ctx.op)
            ctx.note = "realism error: %s" % e
            answer = None
        if answer is not None:
            return await self._answer(request, ctx, answer)
        quirks.before(ctx, self.name)
        lost = ctx.state.get("lose_answer")
        if lost is not None and lost.count > 0:
            self._consume(lost)
            resp = await self._forward_buffered(ctx)
            if resp is not None:
                resp = await self.world.after(ctx, resp)
            ctx.verdict = "injected:lost-answer"
            ctx.status = resp.status if resp is not None else None
            return await self._answer(request, ctx, Answer(drop=True))
        if self.world.wants_response(ctx):
            resp = await self._forward_buffered(ctx)
            if resp is None:
                return await self._answer(request, ctx, self._bad_gateway(ctx))
            instead = self.iam.upstream_status(ctx, resp.status)
            if instead is not None:
                return await self._answer(request, ctx, instead)
            resp = await self.world.after(ctx, resp)
            return await self._answer(request, ctx, Answer(resp.status, resp.headers, resp.body))
        return await self._forward_stream(request, ctx)

    def _identify(self, ctx: Ctx):
        try:
            ctx.ident = self.index.identify(ctx.sig, ctx.req)
        except Exception as e:  # noqa: BLE001 - never fail a request for the proxy's own sake
            log.exception("identifying request %s failed: %s", ctx.path_qs[:200], e)
            ctx.ident = None
        if ctx.ident is not None:
            md = self.index.meta[ctx.ident.service]
            ctx.env = Envelope(ctx.ident.service, ctx.ident.protocol, md.get("jsonVersion"), md.get("xmlNamespace"))
            if ctx.ident.protocol != "smithy-rpc-v2-cbor":
                try:
                    ctx.params = parse_params(ctx.ident, ctx.req)
                except ParseError as e:
                    ctx.parse_error = str(e)
                except Exception as e:  # noqa: BLE001
                    log.exception("parsing %s.%s failed", ctx.ident.service, ctx.ident.operation)
                    ctx.parse_error = "internal: %s" % e
        else:
            names = self.index.candidates(ctx.sig.service) if ctx.sig else []
            if names:
                md = self.index.meta[names[0]]
                ctx.env = Envelope(names[0], md["protocol"], md.get("jsonVersion"), md.get("xmlNamespace"))
            else:
                ctx.env = Envelope("", "json")

    def _pre(self, ctx: Ctx) -> Optional[Answer]:
        """Injections, then validation."""
        for inj in self.injections:
            if inj.matches(ctx):
                if inj.lose_answer:
                    # Counted where the answer is lost: a call another behaviour answers first
                    # (EC2 not yet knowing the VPC the call names) leaves it for the next one.
                    ctx.state["lose_answer"] = inj
                    break
                self._consume(inj)
                return ctx.error(AwsError(inj.code, inj.message or inj.code, inj.status,
                                          sender=inj.status < 500), "injected:%s" % inj.code)
        if not self.config.validating or ctx.ident is None or ctx.params is None:
            return None
        try:
            violations = self.validator.validate(ctx.ident.op_model, ctx.params, ctx.ident.protocol)
        except Exception:  # noqa: BLE001
            log.exception("validating %s.%s failed", ctx.ident.service, ctx.ident.operation)
            return None
        if violations:
            err = awserrors.validation_error(ctx.ident.service, ctx.ident.protocol, violations)
            ctx.note = err.message
            return ctx.error(err, "invalid:%s" % err.code)
        return None

    def _consume(self, inj) -> None:
        inj.count -= 1
        self.injections = [i for i in self.injections if i.count > 0]

    def _fault(self, ctx: Ctx) -> Optional[Answer]:
        rate = self.config.effective_fault_rate
        if rate <= 0 or ctx.access_key in self.config.exempt_access_keys:
            return None
        if "X-Amz-Credential" in dict(ctx.req.query):  # presigned URL: a browser, which does not retry
            return None
        rng = self.config.rng
        if rng.random() >= rate:
            return None
        kind = self.config.draw_fault_kind()
        service = ctx.env.service
        if kind == "throttle":
            return ctx.error(awserrors.throttling_error(service, ctx.env.protocol), "fault:throttle")
        if kind == "500":
            return ctx.error(awserrors.internal_error(service), "fault:500")
        if kind == "503":
            return ctx.error(awserrors.unavailable_error(service), "fault:503")
        ctx.verdict = "fault:drop"
        return Answer(drop=True)

    def _bad_gateway(self, ctx: Ctx) -> Answer:
        ctx.note = "upstream unreachable"
        return Answer(502, {"Content-Type": "text/plain"}, b"realism: the emulator behind the proxy did not answer\n")

    # -- forwarding ------------------------------------------------------------------------
    async def _forward_buffered(self, ctx: Ctx) -> Optional[Resp]:
        try:
            return await self.upstream.call(ctx.req.method, ctx.path_qs, ctx.req.headers, ctx.req.body)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
            log.warning("upstream error for %s: %s", ctx.path_qs[:200], e)
            return None

    async def _forward_stream(self, request, ctx: Ctx):
        try:
            upstream = await self.upstream.open(ctx.req.method, ctx.path_qs, ctx.req.headers, ctx.req.body)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
            log.warning("upstream error for %s: %s", ctx.path_qs[:200], e)
            return await self._answer(request, ctx, self._bad_gateway(ctx))
        async with upstream:
            instead = self.iam.upstream_status(ctx, upstream.status)
            if instead is not None:
                return await self._answer(request, ctx, instead)
            resp = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            for k, v in upstream.headers.items():
                if k.lower() not in HOP_BY_HOP:
                    resp.headers.add(k, v)
            length = upstream.headers.get("Content-Length")
            if length is not None and "chunked" not in upstream.headers.get("Transfer-Encoding", "").lower():
                try:
                    resp.content_length = int(length)
                except ValueError:
                    pass
            ctx.status = upstream.status
            try:
                await resp.prepare(request)
                if ctx.req.method != "HEAD":
                    async for chunk in upstream.content.iter_chunked(1 << 16):
                        await resp.write(chunk)
                await resp.write_eof()
            except (aiohttp.ClientError, ConnectionResetError, asyncio.TimeoutError) as e:
                ctx.note = "stream interrupted: %s" % e
            finally:
                self._log(ctx)
            return resp

    async def _answer(self, request, ctx: Ctx, answer: Answer):
        if answer.drop:
            self._log(ctx)
            if request.transport is not None:
                request.transport.close()
            raise asyncio.CancelledError()
        ctx.status = answer.status
        headers = CIMultiDict()
        for k, v in (answer.headers.items() if hasattr(answer.headers, "items") else answer.headers):
            if k.lower() not in HOP_BY_HOP or (k.lower() == "content-length" and request.method == "HEAD"):
                headers.add(k, v)
        if request.method == "HEAD":
            resp = web.Response(status=answer.status, headers=headers)
        else:
            resp = web.Response(status=answer.status, headers=headers, body=answer.body)
        self._log(ctx)
        return resp

    def _log(self, ctx: Ctx):
        if ctx.state.get("logged"):
            return
        ctx.state["logged"] = True
        entry = {
            "seq": ctx.seq,
            "method": ctx.req.method,
            "path": ctx.path_qs if len(ctx.path_qs) <= 200 else ctx.path_qs[:200] + "...",
            "access_key": ctx.access_key,
            "signing_name": ctx.sig.service if ctx.sig else "",
            "service": ctx.service,
            "operation": ctx.op,
            "params": key_params(ctx.ident.op_model, ctx.params) if ctx.ident and ctx.params else {},
            "status": ctx.status,
            "verdict": ctx.verdict,
            "ms": round((time.monotonic() - ctx.start) * 1000, 1),
        }
        if ctx.behaviours:
            entry["behaviours"] = ctx.behaviours
        if ctx.note:
            entry["note"] = ctx.note[:500]
        if ctx.parse_error:
            entry["parse_error"] = ctx.parse_error[:200]
        if ctx.state.get("iam") is not None:
            entry["iam"] = ctx.state["iam"]
        self.calls.write(entry)
        if ctx.op and ctx.status is not None and ctx.status < 300:
            for inj in self.injections:
                if not inj.armed and inj.after == ctx.op:
                    inj.armed = True
        if ctx.verdict not in ("forwarded", "passthrough"):
            log.info("#%d %s.%s -> %s %s%s", ctx.seq, ctx.service, ctx.op, ctx.status, ctx.verdict,
                     (" (%s)" % ctx.note[:200]) if ctx.note else "")

    # -- control API ---------------------------------------------------------------------
    async def control(self, request: web.BaseRequest):
        what = request.path[len(CONTROL_PREFIX):].strip("/")
        method = request.method
        try:
            if what == "health" and method == "GET":
                return _json({"status": "ok", "name": self.name, "mode": self.config.mode,
                              "upstream": self.upstream_url, "listen": self.listen, "seq": self.calls.seq,
                              "uptime": round(time.time() - self.started, 1)})
            if what == "config":
                if method == "GET":
                    return _json(self.config.to_json())
                if method in ("PUT", "POST", "PATCH"):
                    doc = await _read_json(request)
                    self.config.update(doc)
                    await self.iam.apply_config()
                    log.info("config changed: %s", self.config.banner())
                    return _json(self.config.to_json())
            if what == "calls" and method == "GET":
                q = request.query
                calls = self.calls.query(int(q.get("since", 0) or 0), q.get("service", ""), q.get("operation", ""),
                                         q.get("verdict", ""), q.get("access_key", ""),
                                         int(q.get("limit", 10_000) or 10_000))
                return _json({"calls": calls, "last_seq": self.calls.seq,
                              "counts": dict(self.calls.counts)})
            if what == "inject":
                if method == "POST":
                    doc = await _read_json(request)
                    self._injection_ids += 1
                    inj = Injection(doc, self._injection_ids)
                    self.injections.append(inj)
                    return _json(inj.to_json())
                if method == "GET":
                    return _json({"injections": [i.to_json() for i in self.injections]})
                if method == "DELETE":
                    self.injections = []
                    return _json({"injections": []})
            if what == "reset" and method == "POST":
                self.injections = []
                await self.world.reset()
                self.iam.reset()
                self.mediaconvert.reset()
                return _json({"status": "reset"})
            if what == "state" and method == "GET":
                state = self.world.describe()
                state["iam"] = self.iam.describe()
                state["mediaconvert"] = self.mediaconvert.describe()
                return _json(state)
            if what == "iam/evaluate" and method == "POST":
                return _json(await self.iam.evaluate_request(await _read_json(request)))
            if what == "iam/authorizations" and method == "GET":
                q = request.query
                return _json({"authorizations": self.iam.logged_authorizations(int(q.get("since", 0) or 0),
                                                                               q.get("function", "")),
                              "last_seq": self.calls.seq})
        except (ValueError, TypeError, KeyError) as e:
            return _json({"error": str(e)}, 400)
        return _json({"error": "unknown control endpoint %s %s" % (method, request.path),
                      "endpoints": ["GET health", "GET|PUT config", "GET calls", "POST|GET|DELETE inject",
                                    "POST reset", "GET state", "POST iam/evaluate", "GET iam/authorizations"]},
                     404)


async def _read_json(request) -> dict:
    raw = await request.content.read()
    if not raw.strip():
        return {}
    doc = json.loads(raw)
    if not isinstance(doc, dict):
        raise ValueError("expected a JSON object")
    return doc


def _json(doc, status: int = 200):
    return web.Response(status=status, body=json.dumps(doc, default=str).encode(),
                        headers={"Content-Type": "application/json"})
