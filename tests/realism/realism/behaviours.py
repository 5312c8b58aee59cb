"""AWS's timing, learned from the requests and answers passing through the proxy.

Each behaviour is switched on in test mode (and by name in Config.behaviours); every window is
drawn from the seeded RNG in real AWS seconds and multiplied by the time scale.  The sources
of every message and duration are in docs/realism.md."""

from __future__ import annotations

import asyncio
import base64
import datetime
import fnmatch
import hashlib
import io
import json
import logging
import random
import re
import time
import uuid
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import dataclass, field
from typing import Optional
from urllib.parse import quote, unquote, urlencode

from multidict import CIMultiDict

from realism import quirks
from realism.awserrors import AwsError, render
from realism.proxy import Answer, Ctx
from realism.upstream import Resp

log = logging.getLogger("realism.behaviours")

# -- messages (sources in docs/realism.md) ---------------------------------------------------
MSG_ROLE_NOT_ASSUMABLE = "The role defined for the function cannot be assumed by Lambda."
MSG_NO_ENI_PERMISSION = "The provided execution role does not have permissions to call CreateNetworkInterface on EC2"
MSG_PENDING = "The operation cannot be performed at this time. The function is currently in the following state: Pending"
MSG_UPDATE_IN_PROGRESS = "The operation cannot be performed at this time. An update is in progress for resource: %s"
MSG_CREATING = "The function is being created."
MSG_NO_SUCH_BUCKET = "The specified bucket does not exist"
MSG_QUEUE_DELETED_RECENTLY = ("You must wait 60 seconds after deleting a queue before you can create another with the "
                              "same name.")
MSG_OPERATION_ABORTED = "A conflicting conditional operation is currently in progress against this resource. Please try again."
MSG_DIST_EXISTS = ("The caller reference that you are using to create a distribution is associated with another "
                   "distribution. Already exists: %s")
MSG_DIST_NOT_DISABLED = "The distribution you are trying to delete has not been disabled."
MSG_DB_NOT_AVAILABLE = "Database instance is not in available state."
MSG_DB_CREATING_SNAPSHOT = "Instance is currently creating - a final snapshot cannot be taken."
MSG_SUBNET_GROUP_IN_USE = ("Cannot delete the subnet group '%s' because at least one database instance: %s is "
                           "still using it.")
EC2_NOT_FOUND = {
    "vpc-": ("InvalidVpcID.NotFound", "The vpc ID '%s' does not exist"),
    "subnet-": ("InvalidSubnetID.NotFound", "The subnet ID '%s' does not exist"),
    "sg-": ("InvalidGroup.NotFound", "The security group '%s' does not exist"),
}
MSG_SUBNET_DEPENDENCY = "The subnet '%s' has dependencies and cannot be deleted."
MSG_SG_DEPENDENCY = "resource %s has a dependent object"
MSG_VPC_DEPENDENCY = "The vpc '%s' has dependencies and cannot be deleted."
MSG_ENI_IN_USE = "The network interface '%s' is currently in use."

LAMBDA_PENDING_BLOCKED = {"Invoke", "InvokeAsync", "InvokeWithResponseStream", "UpdateFunctionCode",
                          "UpdateFunctionConfiguration", "AddPermission", "PutFunctionEventInvokeConfig",
                          "UpdateFunctionEventInvokeConfig", "PublishVersion"}
LAMBDA_UPDATE_BLOCKED = {"UpdateFunctionCode", "UpdateFunctionConfiguration", "AddPermission", "PublishVersion"}
LAMBDA_READS = {"GetFunction", "GetFunctionConfiguration", "ListFunctions"}
# Managed policies that allow Lambda to delete its ENIs
ENI_MANAGED_POLICIES = ("AWSLambdaVPCAccessExecutionRole", "AWSLambdaENIManagementAccess")


def now() -> float:
    return time.monotonic()


def fn_name(value) -> str:
    """Function name from a name, a partial or a full ARN (with or without qualifier)."""
    s = str(value or "")
    if "function:" in s:
        s = s.split("function:", 1)[1]
    return s.split(":", 1)[0]


def role_name(arn) -> str:
    return str(arn or "").rsplit("/", 1)[-1].lower()


def _lambda_time() -> str:
    t = datetime.datetime.now(datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + "%03d+0000" % (t.microsecond // 1000)


def _xml_text(body: str, tag: str) -> Optional[str]:
    m = re.search(r"<%s>([^<]*)</%s>" % (tag, tag), body)
    return m.group(1) if m else None


def _xml_texts(body: str, tag: str) -> list:
    return re.findall(r"<%s>([^<]*)</%s>" % (tag, tag), body)


def _xml_escape(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@dataclass
class Fn:
    name: str
    arn: str = ""
    role: str = ""
    subnets: list = field(default_factory=list)
    sgs: list = field(default_factory=list)
    vpc_id: str = ""
    pending_until: float = 0.0
    update_until: float = 0.0
    deferred: Optional["Deferred"] = None
    failed_reason: Optional[str] = None

    @property
    def in_vpc(self) -> bool:
        return bool(self.subnets)

    def pending(self, t: float) -> bool:
        return t < self.pending_until

    def updating(self, t: float) -> bool:
        return t < self.update_until or self.deferred is not None


@dataclass
class Deferred:
    method: str
    path_qs: str
    headers: CIMultiDict
    body: bytes
    sha: str
    size: int
    task: Optional[asyncio.Task] = None
    access_key: str = ""


@dataclass
class Role:
    created_until: float = 0.0
    policy_until: float = 0.0


@dataclass
class Eni:
    id: str
    subnet: str
    sgs: tuple
    vpc: str
    az: str
    ip: str
    description: str
    owner: str
    functions: set = field(default_factory=set)
    status: str = "in-use"
    release_at: Optional[float] = None
    kept_reason: Optional[str] = None
    task: Optional[asyncio.Task] = None
    attach_id: str = ""
    mac: str = ""
    created: str = ""


@dataclass
class Db:
    id: str
    state: str = "available"
    until: float = 0.0
    xml: str = ""  # the last <DBInstance> seen
    subnet_group: str = ""
    sgs: list = field(default_factory=list)


class World:
    def __init__(self, proxy):
        self.proxy = proxy
        self.config = proxy.config
        self.upstream = proxy.upstream
        self.tasks: set = set()
        self._reset_state()
        from realism.account import Account  # noqa: PLC0415 - account imports Ctx from proxy

        self.account = Account(self)

    def _reset_state(self):
        self.roles: dict = {}
        self.functions: dict = {}
        self.new_buckets: dict = {}
        self.bucket_writes: dict = {}
        self.new_ec2: dict = {}
        self.dists: dict = {}
        self.dbs: dict = {}
        self.enis: dict = {}
        self.subnets: dict = {}  # id -> {"vpc", "cidr", "az"}
        self.sg_names: dict = {}
        self.deleted_queues: dict = {}  # (account, region, name) -> until
        self.client_tokens: dict = {}  # (account, region, operation, token) -> (params, Resp)
        self.eni_rng = random.Random(self.config.seed)

    # -- lifecycle ----------------------------------------------------------------------------
    async def reset(self):
        await self._flush_deferred()
        for t in list(self.tasks):
            t.cancel()
        self.tasks.clear()
        self._reset_state()

    async def close(self):
        await self.reset()

    def _spawn(self, coro) -> asyncio.Task:
        t = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(t)
        t.add_done_callback(self.tasks.discard)
        return t

    async def _flush_deferred(self):
        """Forwards at once every UpdateFunctionCode still held (nothing sent is lost)."""
        for fn in list(self.functions.values()):
            d = fn.deferred
            if d is not None:
                if d.task is not None:
                    d.task.cancel()
                await self._send_deferred(fn, d)

    def describe(self) -> dict:
        t = now()

        def left(until):
            return round(max(0.0, until - t), 3)

        return {
            "mode": self.config.mode,
            "roles": {k: {"propagating": left(r.created_until), "policy_propagating": left(r.policy_until)}
                      for k, r in self.roles.items()},
            "functions": {k: {"arn": f.arn, "role": f.role, "subnets": f.subnets, "security_groups": f.sgs,
                              "vpc": f.vpc_id, "pending": left(f.pending_until), "updating": left(f.update_until),
                              "deferred_code": f.deferred is not None, "failed_reason": f.failed_reason}
                          for k, f in self.functions.items()},
            "new_buckets": {k: left(v) for k, v in self.new_buckets.items() if v > t},
            "queues_deleted_recently": {"/".join(k): left(v) for k, v in self.deleted_queues.items() if v > t},
            "bucket_writes_in_flight": dict(self.bucket_writes),
            "new_ec2_ids": {k: left(v) for k, v in self.new_ec2.items() if v > t},
            "distributions_in_progress": {k: left(v) for k, v in self.dists.items() if v > t},
            "db_instances": {k: {"state": d.state if d.until > t else "available", "left": left(d.until),
                                 "subnet_group": d.subnet_group, "security_groups": d.sgs}
                             for k, d in self.dbs.items()},
            "enis": {e.id: {"subnet": e.subnet, "vpc": e.vpc, "security_groups": list(e.sgs), "status": e.status,
                            "functions": sorted(e.functions), "description": e.description,
                            "release_in": left(e.release_at) if e.release_at else None,
                            "kept_reason": e.kept_reason} for e in self.enis.values()},
        }

    def _event(self, ctx: Optional[Ctx], behaviour: str, note: str, service: str = "", operation: str = "",
               status=None):
        """A call-log line for something the proxy did on its own (a deferred forward, an ENI release)."""
        calls = self.proxy.calls
        calls.write({"seq": calls.next_seq(), "method": "", "path": "", "access_key": ctx.access_key if ctx else "",
                     "signing_name": "", "service": service, "operation": operation, "params": {},
                     "status": status, "verdict": "timing:%s" % behaviour, "note": note, "internal": True})
        log.info("%s: %s", behaviour, note)

    # -- hooks ----------------------------------------------------------------------------------
    async def semantic(self, ctx: Ctx) -> Optional[Answer]:
        """What AWS refuses whatever the timing, where an emulator does not (validate and test modes)."""
        answer = await self.account.semantic(ctx)
        if answer is not None:
            return answer
        if ctx.service == "cloudfront" and ctx.op == "DeleteDistribution" and ctx.p("Id"):
            # moto deletes enabled distributions; AWS wants them disabled first
            r = await self.upstream.signed("cloudfront", ctx.region, ctx.access_key, "GET",
                                           "/2020-05-31/distribution/%s/config" % quote(ctx.p("Id"), safe=""))
            if r is not None and r.status == 200 and _top_level_text(r.body, "Enabled") == "true":
                ctx.note = "distribution %s is enabled" % ctx.p("Id")
                return ctx.error(AwsError("DistributionNotDisabled", MSG_DIST_NOT_DISABLED, 409),
                                 "invalid:DistributionNotDisabled")
        return None

    def wants_response(self, ctx: Ctx) -> bool:
        if ctx.ident is None:
            return False
        if quirks.wants(ctx, self.proxy.name):
            return True
        s, op = ctx.service, ctx.op
        if s == "cloudfront" and op.startswith("CreateDistribution"):
            return True
        if not self.config.timing:
            return False
        if s == "lambda":
            return op in LAMBDA_READS or op in ("CreateFunction", "UpdateFunctionConfiguration",
                                                "UpdateFunctionCode", "DeleteFunction")
        if s == "iam":
            return op in ("CreateRole", "PutRolePolicy", "AttachRolePolicy", "DeleteRole")
        if s in ("cloudfront", "rds"):
            return True
        if s == "ec2":
            return op.startswith("Create") or op in ("DescribeNetworkInterfaces", "DescribeSubnets",
                                                     "DescribeSecurityGroups")
        if s == "s3":
            return op == "CreateBucket"
        if s == "sqs":
            return op == "DeleteQueue"
        return False

    async def before(self, ctx: Ctx) -> Optional[Answer]:
        if not self.config.timing or ctx.ident is None or ctx.params is None:
            return None
        s = ctx.service
        if s == "lambda":
            return await self._lambda_before(ctx)
        if s == "s3":
            return await self._s3_before(ctx)
        if s == "ec2":
            return self._ec2_token_before(ctx) or self._ec2_before(ctx)
        if s == "cloudfront":
            return self._cf_before(ctx)
        if s == "rds":
            return self._rds_before(ctx)
        if s == "sqs":
            return self._sqs_before(ctx)
        return None

    async def after(self, ctx: Ctx, resp: Resp) -> Resp:
        s = ctx.service
        resp = quirks.fix(ctx, resp)
        if self.proxy.name == "moto" and ctx.is_("apigateway", "CreateRestApi"):
            resp = await quirks.after_create_rest_api(ctx, resp, self.upstream)
        try:
            if s == "cloudfront":
                return self._cf_after(ctx, resp)
            if not self.config.timing or ctx.params is None:
                return resp
            if s == "lambda":
                return await self._lambda_after(ctx, resp)
            if s == "iam":
                return self._iam_after(ctx, resp)
            if s == "s3":
                return self._s3_after(ctx, resp)
            if s == "ec2":
                self._ec2_token_after(ctx, resp)
                return await self._ec2_after(ctx, resp)
            if s == "rds":
                return self._rds_after(ctx, resp)
            if s == "sqs":
                return self._sqs_after(ctx, resp)
        except Exception:  # noqa: BLE001 - a bug here must not lose the emulator's answer
            log.exception("behaviour after %s.%s failed", ctx.service, ctx.op)
        return resp

    def finish(self, ctx: Ctx):
        bucket = ctx.state.get("bucket_write")
        if bucket is not None and self.bucket_writes.get(bucket) == ctx.seq:
            del self.bucket_writes[bucket]

    # -- IAM ------------------------------------------------------------------------------------
    def _iam_after(self, ctx: Ctx, resp: Resp) -> Resp:
        if resp.status != 200 or not self.config.enabled("iam_propagation"):
            if resp.status == 200 and ctx.op == "DeleteRole":
                self.roles.pop(role_name(ctx.p("RoleName")), None)
            return resp
        op = ctx.op
        name = role_name(ctx.p("RoleName"))
        if op == "CreateRole":
            self.roles.setdefault(name, Role()).created_until = now() + self.config.draw("iam_propagation")
            ctx.saw("iam_propagation")
        elif op in ("PutRolePolicy", "AttachRolePolicy"):
            self.roles.setdefault(name, Role()).policy_until = now() + self.config.draw("iam_propagation")
            ctx.saw("iam_propagation")
        elif op == "DeleteRole":
            self.roles.pop(name, None)
        return resp

    # -- Lambda ---------------------------------------------------------------------------------
    def _lambda_error(self, ctx: Ctx, status: int, code: str, message: str, behaviour: str) -> Answer:
        ctx.note = message
        ctx.saw(behaviour)
        return ctx.error(AwsError(code, message, status), "timing:%s" % behaviour)

    async def _lambda_before(self, ctx: Ctx) -> Optional[Answer]:
        op = ctx.op
        name = fn_name(ctx.p("FunctionName"))
        fn = self.functions.get(name)
        t = now()
        cfg = self.config
        if fn is not None:
            if cfg.enabled("lambda_pending") and fn.pending(t) and op in LAMBDA_PENDING_BLOCKED:
                return self._lambda_error(ctx, 409, "ResourceConflictException", MSG_PENDING, "lambda_pending")
            if cfg.enabled("lambda_update") and fn.updating(t) and op in LAMBDA_UPDATE_BLOCKED:
                return self._lambda_error(ctx, 409, "ResourceConflictException",
                                          MSG_UPDATE_IN_PROGRESS % (fn.arn or name), "lambda_update")
        if op in ("CreateFunction", "UpdateFunctionConfiguration") and cfg.enabled("iam_propagation"):
            role_arn = ctx.p("Role") or (fn.role if fn else "")
            role = self.roles.get(role_name(role_arn)) if role_arn else None
            if role is not None:
                if ctx.p("Role") and t < role.created_until:
                    return self._lambda_error(ctx, 400, "InvalidParameterValueException", MSG_ROLE_NOT_ASSUMABLE,
                                              "iam_propagation")
                if ctx.p("VpcConfig", "SubnetIds") and t < role.policy_until:
                    return self._lambda_error(ctx, 400, "InvalidParameterValueException", MSG_NO_ENI_PERMISSION,
                                              "iam_propagation")
        if op == "UpdateFunctionCode" and cfg.enabled("lambda_update"):
            return await self._defer_code(ctx, name, fn)
        if op == "DeleteFunction" and cfg.enabled("lambda_eni") and (fn is None or not fn.role):
            await self._learn_function(ctx, name)
        return None

    async def _read_function(self, ctx: Ctx, name: str) -> Optional[dict]:
        r = await self.upstream.signed("lambda", ctx.region, ctx.access_key, "GET",
                                       "/2015-03-31/functions/%s/configuration" % quote(name, safe=""))
        if r is None or r.status != 200:
            return None
        try:
            return json.loads(r.body)
        except ValueError:
            return None

    async def _learn_function(self, ctx: Ctx, name: str):
        conf = await self._read_function(ctx, name)
        if conf is not None:
            await self._learn_config(ctx, conf)

    async def _learn_config(self, ctx: Ctx, conf: dict, vpc_from_request: Optional[dict] = None) -> Fn:
        name = conf.get("FunctionName") or ""
        fn = self.functions.get(name)
        if fn is None:
            fn = self.functions[name] = Fn(name)
        fn.arn = conf.get("FunctionArn") or fn.arn
        fn.role = conf.get("Role") or fn.role
        vpc = conf.get("VpcConfig") or {}
        if vpc_from_request is not None:
            subnets = list(vpc_from_request.get("SubnetIds") or [])
            sgs = list(vpc_from_request.get("SecurityGroupIds") or [])
        else:
            subnets = list(vpc.get("SubnetIds") or [])
            sgs = list(vpc.get("SecurityGroupIds") or [])
        changed = (subnets, sorted(sgs)) != (fn.subnets, sorted(fn.sgs))
        if changed and self.config.enabled("lambda_eni"):
            self._eni_detach(ctx, fn)
        fn.subnets, fn.sgs = subnets, sgs
        fn.vpc_id = vpc.get("VpcId") or fn.vpc_id
        if changed and subnets and self.config.enabled("lambda_eni"):
            await self._eni_attach(ctx, fn)
        return fn

    def _rewrite_config(self, fn: Fn, c: dict, t: float, ctx: Ctx):
        if fn.pending(t) and self.config.enabled("lambda_pending"):
            c["State"] = "Pending"
            c["StateReason"] = MSG_CREATING
            c["StateReasonCode"] = "Creating"
            for k in ("LastUpdateStatus", "LastUpdateStatusReason", "LastUpdateStatusReasonCode"):
                c.pop(k, None)
            ctx.touched("lambda_pending")
            return
        if not self.config.enabled("lambda_update"):
            return
        if fn.deferred is not None:
            c["CodeSha256"] = fn.deferred.sha
            c["CodeSize"] = fn.deferred.size
        if fn.updating(t):
            if c.get("State") in (None, "", "Pending"):
                c["State"] = "Active"
                c.pop("StateReason", None)
                c.pop("StateReasonCode", None)
            c["LastUpdateStatus"] = "InProgress"
            c["LastUpdateStatusReason"] = MSG_CREATING
            c["LastUpdateStatusReasonCode"] = "Creating"
            ctx.touched("lambda_update")
        elif fn.failed_reason:
            c["LastUpdateStatus"] = "Failed"
            c["LastUpdateStatusReason"] = fn.failed_reason
            c["LastUpdateStatusReasonCode"] = "InternalError"
            ctx.touched("lambda_update")

    async def _lambda_after(self, ctx: Ctx, resp: Resp) -> Resp:
        op = ctx.op
        t = now()
        if resp.status >= 300:
            return resp
        if op == "DeleteFunction":
            name = fn_name(ctx.p("FunctionName"))
            fn = self.functions.pop(name, None)
            if fn is not None:
                if fn.deferred is not None and fn.deferred.task is not None:
                    fn.deferred.task.cancel()
                if self.config.enabled("lambda_eni"):
                    self._eni_detach(ctx, fn)
            return resp
        if op not in LAMBDA_READS and op not in ("CreateFunction", "UpdateFunctionConfiguration",
                                                  "UpdateFunctionCode"):
            return resp
        try:
            doc = json.loads(resp.body)
        except ValueError:
            return resp
        if not isinstance(doc, dict):
            return resp
        if op == "CreateFunction":
            fn = await self._learn_config(ctx, doc, ctx.p("VpcConfig") or {})
            fn.failed_reason = None
            fn.update_until = 0.0
            if self.config.enabled("lambda_pending"):
                fn.pending_until = t + self.config.draw("lambda_pending_vpc" if fn.in_vpc else "lambda_pending")
            self._rewrite_config(fn, doc, t, ctx)
        elif op == "UpdateFunctionConfiguration":
            vpc_req = ctx.p("VpcConfig")
            fn = await self._learn_config(ctx, doc, vpc_req if vpc_req is not None else None)
            fn.failed_reason = None
            if self.config.enabled("lambda_update"):
                fn.update_until = t + self.config.draw("lambda_update_vpc" if fn.in_vpc else "lambda_update")
            self._rewrite_config(fn, doc, t, ctx)
        elif op == "UpdateFunctionCode":  # forwarded at once (S3 code, DryRun, Publish)
            fn = self.functions.get(doc.get("FunctionName", "")) or await self._learn_config(ctx, doc)
            fn.failed_reason = None
            if self.config.enabled("lambda_update"):
                fn.update_until = t + self.config.draw("lambda_update_vpc" if fn.in_vpc else "lambda_update")
            self._rewrite_config(fn, doc, t, ctx)
        elif op == "ListFunctions":
            for c in doc.get("Functions") or []:
                fn = self.functions.get(c.get("FunctionName", ""))
                if fn is None:
                    fn = await self._learn_config(ctx, c)
                self._rewrite_config(fn, c, t, ctx)
        else:
            c = doc.get("Configuration") if op == "GetFunction" else doc
            if not isinstance(c, dict) or not c.get("FunctionName"):
                return resp
            if ctx.p("Qualifier") not in (None, "$LATEST"):
                return resp
            fn = self.functions.get(c["FunctionName"])
            if fn is None or (not fn.role and c.get("Role")):
                fn = await self._learn_config(ctx, c)
            self._rewrite_config(fn, c, t, ctx)
        resp.body = json.dumps(doc).encode()
        return resp

    async def _defer_code(self, ctx: Ctx, name: str, fn: Optional[Fn]) -> Optional[Answer]:
        """UpdateFunctionCode with a ZipFile: answered at once with the function's configuration and
        the new code's hash; the emulator gets the request when the update window ends, so that
        invocations meanwhile run the previous code (as on AWS)."""
        if ctx.p("DryRun") or ctx.p("Publish"):
            return None
        try:
            raw = json.loads(ctx.req.body)
            zip_b64 = raw.get("ZipFile")
        except (ValueError, AttributeError):
            return None
        if not isinstance(zip_b64, str) or not zip_b64:
            return None
        try:
            zip_bytes = base64.b64decode(zip_b64)
        except ValueError:
            return None
        if not zipfile.is_zipfile(io.BytesIO(zip_bytes)):
            return None  # refused at once by Lambda ("Could not unzip uploaded file"): the emulator answers
        conf = await self._read_function(ctx, name)
        if conf is None:
            return None  # unknown function: the emulator answers ResourceNotFoundException itself
        fn = await self._learn_config(ctx, conf) if fn is None else fn
        if fn.pending(now()) and self.config.enabled("lambda_pending"):
            return self._lambda_error(ctx, 409, "ResourceConflictException", MSG_PENDING, "lambda_pending")
        sha = base64.b64encode(hashlib.sha256(zip_bytes).digest()).decode()
        delay = self.config.draw("lambda_update_vpc" if fn.in_vpc else "lambda_update")
        d = Deferred(ctx.req.method, ctx.path_qs, CIMultiDict(ctx.req.headers), ctx.req.body, sha, len(zip_bytes),
                     access_key=ctx.access_key)
        fn.deferred = d
        fn.failed_reason = None
        fn.update_until = now() + delay
        d.task = self._spawn(self._deferred_later(fn, d, delay))
        conf["CodeSha256"] = sha
        conf["CodeSize"] = len(zip_bytes)
        conf["LastModified"] = _lambda_time()
        conf["RevisionId"] = str(uuid.uuid4())
        self._rewrite_config(fn, conf, now(), ctx)
        ctx.note = "UpdateFunctionCode held for %.2fs; invocations meanwhile run the previous code" % delay
        ctx.verdict = "timing:lambda_update"
        return Answer(200, {"Content-Type": "application/json", "x-amzn-RequestId": str(uuid.uuid4())},
                      json.dumps(conf).encode())

    async def _deferred_later(self, fn: Fn, d: Deferred, delay: float):
        await asyncio.sleep(delay)
        await self._send_deferred(fn, d)

    async def _send_deferred(self, fn: Fn, d: Deferred):
        if fn.deferred is not d:
            return
        try:
            r = await self.upstream.call(d.method, d.path_qs, d.headers, d.body)
        except Exception as e:  # noqa: BLE001
            r = None
            reason = "the emulator did not answer: %s" % e
        if r is not None and r.status < 300:
            fn.failed_reason = None
            note = "deferred UpdateFunctionCode of %s forwarded: %d" % (fn.name, r.status)
        else:
            if r is not None:
                reason = _error_message(r) or "HTTP %d" % r.status
            fn.failed_reason = reason
            note = "deferred UpdateFunctionCode of %s failed: %s" % (fn.name, reason)
        if fn.deferred is d:
            fn.deferred = None
        self._event(None, "lambda_update", note, "lambda", "UpdateFunctionCode", r.status if r else None)

    # -- S3 -------------------------------------------------------------------------------------
    def _is_bucket_subresource_write(self, ctx: Ctx) -> bool:
        if ctx.req.method not in ("PUT", "DELETE"):
            return False
        uri = ctx.ident.op_model.http.get("requestUri", "")
        return uri.startswith("/{Bucket}?")

    async def _s3_before(self, ctx: Ctx) -> Optional[Answer]:
        if not self._is_bucket_subresource_write(ctx):
            return None
        bucket = ctx.p("Bucket")
        if not bucket:
            return None
        t = now()
        if self.config.enabled("read_after_create") and t < self.new_buckets.get(bucket, 0):
            ctx.note = "bucket %s was created %.2fs before its window ends" % (bucket, self.new_buckets[bucket] - t)
            ctx.saw("read_after_create")
            return ctx.error(AwsError("NoSuchBucket", MSG_NO_SUCH_BUCKET, 404, extra={"BucketName": bucket}),
                             "timing:read_after_create")
        if self.config.enabled("s3_conflicting_writes"):
            if bucket in self.bucket_writes:
                ctx.saw("s3_conflicting_writes")
                ctx.note = "write #%d to the same bucket is in flight" % self.bucket_writes[bucket]
                return ctx.error(AwsError("OperationAborted", MSG_OPERATION_ABORTED, 409),
                                 "timing:s3_conflicting_writes")
            self.bucket_writes[bucket] = ctx.seq
            ctx.state["bucket_write"] = bucket
            ctx.saw("s3_conflicting_writes")
            await asyncio.sleep(self.config.draw("s3_conflicting_writes"))
        return None

    def _s3_after(self, ctx: Ctx, resp: Resp) -> Resp:
        if ctx.op == "CreateBucket" and resp.status == 200 and self.config.enabled("read_after_create"):
            bucket = ctx.p("Bucket")
            if bucket:
                self.new_buckets[bucket] = now() + self.config.draw("s3_read_after_create")
                ctx.saw("read_after_create")
        return resp

    # -- SQS ------------------------------------------------------------------------------------
    def _queue_key(self, ctx: Ctx, name: str) -> tuple:
        return (ctx.access_key, ctx.region, name)

    def _sqs_before(self, ctx: Ctx) -> Optional[Answer]:
        """A queue name deleted less than 60 seconds ago cannot be created again (SQS API
        reference, CreateQueue: "You must wait 60 seconds after deleting a queue before you can
        create another queue with the same name")."""
        if ctx.op != "CreateQueue" or not self.config.enabled("sqs_deleted_recently"):
            return None
        name = str(ctx.p("QueueName") or "")
        until = self.deleted_queues.get(self._queue_key(ctx, name), 0)
        if now() >= until:
            return None
        ctx.saw("sqs_deleted_recently")
        ctx.note = "queue %s was deleted; %.2fs left" % (name, until - now())
        return ctx.error(AwsError("QueueDeletedRecently", MSG_QUEUE_DELETED_RECENTLY, 400,
                                  query_code="AWS.SimpleQueueService.QueueDeletedRecently"),
                         "timing:sqs_deleted_recently")

    def _sqs_after(self, ctx: Ctx, resp: Resp) -> Resp:
        if ctx.op == "DeleteQueue" and resp.status == 200 and self.config.enabled("sqs_deleted_recently"):
            name = str(ctx.p("QueueUrl") or "").rstrip("/").rsplit("/", 1)[-1]
            if name:
                self.deleted_queues[self._queue_key(ctx, name)] = now() + self.config.draw("sqs_queue_deleted")
                ctx.saw("sqs_deleted_recently")
        return resp

    # -- EC2 ------------------------------------------------------------------------------------
    def _ec2_error(self, ctx: Ctx, code: str, message: str, behaviour: str) -> Answer:
        ctx.note = message
        ctx.saw(behaviour)
        return ctx.error(AwsError(code, message, 400), "timing:%s" % behaviour)

    def _token_key(self, ctx: Ctx) -> Optional[tuple]:
        token = (ctx.ident.form or {}).get("ClientToken")
        if not token or not self.config.enabled("ec2_client_tokens"):
            return None
        return (ctx.access_key, ctx.region, ctx.op, token)

    @staticmethod
    def _token_params(ctx: Ctx) -> dict:
        return {k: v for k, v in (ctx.ident.form or {}).items() if k not in ("ClientToken", "Action", "Version")}

    def _ec2_token_before(self, ctx: Ctx) -> Optional[Answer]:
        """EC2's idempotency: a create repeated with the same `ClientToken` is answered what the
        first one made (EC2 API reference, "Ensuring idempotency"); with other parameters,
        `IdempotentParameterMismatch`. The emulators ignore the token."""
        key = self._token_key(ctx)
        seen = self.client_tokens.get(key) if key else None
        if seen is None:
            return None
        params, resp = seen
        ctx.saw("ec2_client_tokens")
        if params != self._token_params(ctx):
            return ctx.error(AwsError("IdempotentParameterMismatch",
                                      "The client token you have provided is associated with a resource that "
                                      "has different parameters.", 400), "invalid:IdempotentParameterMismatch")
        ctx.verdict = "answered:client-token"
        ctx.note = "ClientToken %s was used before: the first answer" % key[3]
        return Answer(resp.status, {"Content-Type": resp.header("Content-Type", "text/xml")}, resp.body)

    def _ec2_token_after(self, ctx: Ctx, resp: Resp):
        key = self._token_key(ctx)
        if key and resp.status == 200:
            self.client_tokens[key] = (self._token_params(ctx), resp)

    def _ec2_before(self, ctx: Ctx) -> Optional[Answer]:
        form = ctx.ident.form or {}
        op = ctx.op
        t = now()
        if self.config.enabled("read_after_create") and self.new_ec2:
            for k, v in form.items():
                if k.startswith("Filter.") or k in ("Action", "Version"):
                    continue
                until = self.new_ec2.get(v)
                if until is not None and t < until:
                    for prefix, (code, msg) in EC2_NOT_FOUND.items():
                        if v.startswith(prefix):
                            return self._ec2_error(ctx, code, msg % v, "read_after_create")
        if self.config.enabled("lambda_eni"):
            if op == "DeleteSubnet":
                sid = form.get("SubnetId")
                if any(e.subnet == sid for e in self.enis.values()):
                    return self._ec2_error(ctx, "DependencyViolation", MSG_SUBNET_DEPENDENCY % sid, "lambda_eni")
            elif op == "DeleteSecurityGroup":
                gid = form.get("GroupId")
                if gid and any(gid in e.sgs for e in self.enis.values()):
                    return self._ec2_error(ctx, "DependencyViolation", MSG_SG_DEPENDENCY % gid, "lambda_eni")
            elif op == "DeleteVpc":
                vid = form.get("VpcId")
                if any(e.vpc == vid for e in self.enis.values()):
                    return self._ec2_error(ctx, "DependencyViolation", MSG_VPC_DEPENDENCY % vid, "lambda_eni")
            elif op == "DeleteNetworkInterface":
                eid = form.get("NetworkInterfaceId")
                eni = self.enis.get(eid)
                if eni is not None:
                    if eni.status == "in-use":
                        return self._ec2_error(ctx, "InvalidNetworkInterface.InUse", MSG_ENI_IN_USE % eid,
                                               "lambda_eni")
                    del self.enis[eid]
                    ctx.touched("lambda_eni")
                    body = ('<?xml version="1.0" encoding="UTF-8"?>\n<DeleteNetworkInterfaceResponse '
                            'xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>%s</requestId>'
                            "<return>true</return></DeleteNetworkInterfaceResponse>" % uuid.uuid4())
                    return Answer(200, {"Content-Type": "text/xml;charset=UTF-8"}, body.encode())
            elif op == "DescribeNetworkInterfaces":
                ids = [v for k, v in form.items() if re.fullmatch(r"NetworkInterfaceId\.\d+", k)]
                synthetic = [i for i in ids if i in self.enis]
                if synthetic:
                    ctx.state["eni_ids"] = synthetic
                    if len(synthetic) == len(ids):
                        ctx.touched("lambda_eni")
                        body = ('<?xml version="1.0" encoding="UTF-8"?>\n<DescribeNetworkInterfacesResponse '
                                'xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>%s</requestId>'
                                "<networkInterfaceSet></networkInterfaceSet></DescribeNetworkInterfacesResponse>"
                                % uuid.uuid4())
                        resp = Resp(200, CIMultiDict({"Content-Type": "text/xml;charset=UTF-8"}), body.encode())
                        resp = self._merge_enis(ctx, resp)
                        return Answer(resp.status, resp.headers, resp.body)
                    # ask the emulator for the others only
                    pairs = [(k, v) for k, v in ctx.req.form() if not (k.startswith("NetworkInterfaceId.")
                                                                         and v in self.enis)]
                    ctx.req.body = urlencode(pairs).encode()
                    ctx.req.query = []
                    ctx.path_qs = ctx.path_qs.split("?", 1)[0]
        if self.config.enabled("rds") and op == "DeleteSecurityGroup":
            gid = form.get("GroupId")
            for db in self.dbs.values():
                if db.state == "deleting" and t < db.until and gid in db.sgs:
                    return self._ec2_error(ctx, "DependencyViolation", MSG_SG_DEPENDENCY % gid, "rds")
        return None

    async def _ec2_after(self, ctx: Ctx, resp: Resp) -> Resp:
        if resp.status != 200:
            return resp
        op = ctx.op
        body = resp.body.decode("utf-8", "replace")
        if op in ("CreateVpc", "CreateSubnet", "CreateSecurityGroup"):
            tag = {"CreateVpc": "vpcId", "CreateSubnet": "subnetId", "CreateSecurityGroup": "groupId"}[op]
            rid = _xml_text(body, tag)
            if op == "CreateSubnet" and rid:
                self.subnets[rid] = {"vpc": _xml_text(body, "vpcId") or "", "cidr": _xml_text(body, "cidrBlock") or "",
                                     "az": _xml_text(body, "availabilityZone") or ""}
            if op == "CreateSecurityGroup" and rid:
                self.sg_names[rid] = ctx.p("GroupName") or ""
            if rid and self.config.enabled("read_after_create"):
                self.new_ec2[rid] = now() + self.config.draw("ec2_read_after_create")
                ctx.saw("read_after_create")
        elif op == "DescribeSubnets":
            for item in re.findall(r"<item>(.*?)</item>", body, re.S):
                sid = _xml_text(item, "subnetId")
                if sid:
                    self.subnets[sid] = {"vpc": _xml_text(item, "vpcId") or "", "cidr": _xml_text(item, "cidrBlock")
                                         or "", "az": _xml_text(item, "availabilityZone") or ""}
        elif op == "DescribeSecurityGroups":
            for gid, name in re.findall(r"<groupId>([^<]+)</groupId>\s*<groupName>([^<]*)</groupName>", body):
                self.sg_names[gid] = name
        elif op == "DescribeNetworkInterfaces" and self.config.enabled("lambda_eni") and self.enis:
            return self._merge_enis(ctx, resp)
        return resp

    # -- Lambda's Hyperplane ENIs ------------------------------------------------------------------
    async def _subnet_info(self, ctx: Ctx, subnet: str) -> dict:
        info = self.subnets.get(subnet)
        if info is not None:
            return info
        r = await self.upstream.signed("ec2", ctx.region, ctx.access_key, "POST", "/",
                                       form={"Action": "DescribeSubnets", "Version": "2016-11-15",
                                             "SubnetId.1": subnet})
        info = {"vpc": "", "cidr": "", "az": ""}
        if r is not None and r.status == 200:
            b = r.body.decode("utf-8", "replace")
            info = {"vpc": _xml_text(b, "vpcId") or "", "cidr": _xml_text(b, "cidrBlock") or "",
                    "az": _xml_text(b, "availabilityZone") or ""}
            self.subnets[subnet] = info
        return info

    def _new_eni_id(self) -> str:
        return "eni-%017x" % self.eni_rng.getrandbits(68)

    def _ip_in(self, cidr: str) -> str:
        m = re.match(r"^(\d+)\.(\d+)\.(\d+)\.(\d+)/(\d+)$", cidr or "")
        if not m:
            return "10.0.%d.%d" % (self.eni_rng.randrange(256), self.eni_rng.randrange(4, 250))
        base = sum(int(m.group(i)) << (8 * (4 - i)) for i in range(1, 5))
        bits = int(m.group(5))
        size = 1 << (32 - bits)
        ip = base + (self.eni_rng.randrange(4, max(5, size - 1)) if size > 8 else 0)
        return ".".join(str((ip >> s) & 255) for s in (24, 16, 8, 0))

    async def _eni_attach(self, ctx: Ctx, fn: Fn):
        sgs = tuple(sorted(fn.sgs))
        for subnet in fn.subnets:
            eni = next((e for e in self.enis.values() if e.subnet == subnet and e.sgs == sgs), None)
            if eni is None:
                info = await self._subnet_info(ctx, subnet)
                eid = self._new_eni_id()
                eni = Eni(
                    id=eid, subnet=subnet, sgs=sgs, vpc=info.get("vpc") or fn.vpc_id, az=info.get("az") or "",
                    ip=self._ip_in(info.get("cidr", "")),
                    description="AWS Lambda VPC ENI-%s-%s" % (fn.name, uuid.UUID(int=self.eni_rng.getrandbits(128),
                                                                                 version=4)),
                    owner=(fn.arn.split(":")[4] if fn.arn.count(":") >= 5 else "000000000000"),
                    attach_id="ela-attach-%017x" % self.eni_rng.getrandbits(68),
                    mac="02:%s" % ":".join("%02x" % self.eni_rng.randrange(256) for _ in range(5)),
                    created=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                )
                self.enis[eid] = eni
                self._event(ctx, "lambda_eni", "ENI %s created for %s in %s %s" % (eid, fn.name, subnet, list(sgs)),
                            "ec2", "CreateNetworkInterface")
            eni.functions.add(fn.name)
            if eni.task is not None:  # reused before its release: not released
                eni.task.cancel()
                eni.task = None
            eni.release_at = None
            eni.kept_reason = None
            eni.status = "in-use"
            ctx.saw("lambda_eni")

    def _eni_detach(self, ctx: Ctx, fn: Fn):
        for eni in list(self.enis.values()):
            if fn.name in eni.functions:
                eni.functions.discard(fn.name)
                if not eni.functions and eni.task is None:
                    delay = self.config.draw("lambda_eni_release")
                    eni.release_at = now() + delay
                    eni.task = self._spawn(self._eni_release_later(eni, fn.role, ctx.access_key, ctx.region, delay))
                    ctx.saw("lambda_eni")

    async def _eni_release_later(self, eni: Eni, role_arn: str, access_key: str, region: str, delay: float):
        await asyncio.sleep(delay)
        eni.task = None
        eni.release_at = None
        if eni.functions or eni.id not in self.enis:
            return
        ok, why = await self._role_allows_eni_delete(role_arn, access_key, region)
        if ok:
            del self.enis[eni.id]
            self._event(None, "lambda_eni", "ENI %s released (%s)" % (eni.id, why), "ec2", "DeleteNetworkInterface")
        else:
            eni.kept_reason = why
            self._event(None, "lambda_eni", "ENI %s kept in-use: %s" % (eni.id, why), "ec2", "DeleteNetworkInterface")

    async def _iam(self, access_key: str, form: dict) -> Optional[Resp]:
        form = dict(form, Version="2010-05-08")
        return await self.upstream.signed("iam", "us-east-1", access_key, "POST", "/", form=form)

    async def _role_allows_eni_delete(self, role_arn: str, access_key: str, region: str) -> tuple:
        name = str(role_arn or "").rsplit("/", 1)[-1]
        if not name:
            return False, "the function had no role"
        r = await self._iam(access_key, {"Action": "GetRole", "RoleName": name})
        if r is None:
            return False, "IAM did not answer"
        if r.status != 200:
            return False, "role %s no longer exists" % name
        r = await self._iam(access_key, {"Action": "ListAttachedRolePolicies", "RoleName": name})
        docs = []
        if r is not None and r.status == 200:
            for arn in _xml_texts(r.body.decode("utf-8", "replace"), "PolicyArn"):
                if arn.rsplit("/", 1)[-1] in ENI_MANAGED_POLICIES:
                    return True, "role %s has %s" % (name, arn.rsplit("/", 1)[-1])
                p = await self._iam(access_key, {"Action": "GetPolicy", "PolicyArn": arn})
                version = _xml_text(p.body.decode("utf-8", "replace"), "DefaultVersionId") if p and p.status == 200 \
                    else None
                if version:
                    pv = await self._iam(access_key, {"Action": "GetPolicyVersion", "PolicyArn": arn,
                                                      "VersionId": version})
                    if pv is not None and pv.status == 200:
                        docs.append(_xml_text(pv.body.decode("utf-8", "replace"), "Document"))
        r = await self._iam(access_key, {"Action": "ListRolePolicies", "RoleName": name})
        if r is not None and r.status == 200:
            body = r.body.decode("utf-8", "replace")
            names_block = re.search(r"<PolicyNames>(.*?)</PolicyNames>", body, re.S)
            for pname in _xml_texts(names_block.group(1) if names_block else "", "member"):
                p = await self._iam(access_key, {"Action": "GetRolePolicy", "RoleName": name, "PolicyName": pname})
                if p is not None and p.status == 200:
                    docs.append(_xml_text(p.body.decode("utf-8", "replace"), "PolicyDocument"))
        allowed = False
        for d in docs:
            verdict = _policy_allows(d, "ec2:DeleteNetworkInterface")
            if verdict is False:
                return False, "a policy of role %s denies ec2:DeleteNetworkInterface" % name
            allowed = allowed or bool(verdict)
        if allowed:
            return True, "role %s allows ec2:DeleteNetworkInterface" % name
        return False, "role %s does not allow ec2:DeleteNetworkInterface" % name

    def _merge_enis(self, ctx: Ctx, resp: Resp) -> Resp:
        form = ctx.ident.form or {}
        filters = {}
        for k, v in form.items():
            m = re.fullmatch(r"Filter\.(\d+)\.Name", k)
            if m:
                n = m.group(1)
                filters[v] = [fv for fk, fv in form.items() if re.fullmatch(r"Filter\.%s\.Value\.\d+" % n, fk)]
        wanted_ids = [v for k, v in form.items() if re.fullmatch(r"NetworkInterfaceId\.\d+", k)]
        items = []
        for eni in self.enis.values():
            if wanted_ids and eni.id not in wanted_ids:
                continue
            if not _eni_matches(eni, filters):
                continue
            items.append(self._eni_xml(eni))
        if not items:
            return resp
        body = resp.body.decode("utf-8", "replace")
        xml = "".join(items)
        if "</networkInterfaceSet>" in body:
            body = body.replace("</networkInterfaceSet>", xml + "</networkInterfaceSet>", 1)
        elif "<networkInterfaceSet/>" in body:
            body = body.replace("<networkInterfaceSet/>", "<networkInterfaceSet>%s</networkInterfaceSet>" % xml, 1)
        else:
            return resp
        resp.body = body.encode()
        ctx.touched("lambda_eni")
        return resp

    def _eni_xml(self, e: Eni) -> str:
        groups = "".join("<item><groupId>%s</groupId><groupName>%s</groupName></item>"
                         % (g, _xml_escape(self.sg_names.get(g, ""))) for g in e.sgs)
        dns = "ip-%s.ec2.internal" % e.ip.replace(".", "-")
        return (
            "<item><networkInterfaceId>%(id)s</networkInterfaceId><subnetId>%(subnet)s</subnetId>"
            "<vpcId>%(vpc)s</vpcId><availabilityZone>%(az)s</availabilityZone>"
            "<description>%(desc)s</description><ownerId>%(owner)s</ownerId>"
            "<requesterId>560195301234</requesterId><requesterManaged>true</requesterManaged>"
            "<status>%(status)s</status><macAddress>%(mac)s</macAddress>"
            "<privateIpAddress>%(ip)s</privateIpAddress><privateDnsName>%(dns)s</privateDnsName>"
            "<sourceDestCheck>true</sourceDestCheck><groupSet>%(groups)s</groupSet>"
            "<attachment><attachmentId>%(att)s</attachmentId><instanceOwnerId>amazon-aws</instanceOwnerId>"
            "<deviceIndex>1</deviceIndex><status>attached</status><attachTime>%(created)s</attachTime>"
            "<deleteOnTermination>false</deleteOnTermination></attachment>"
            "<privateIpAddressesSet><item><privateIpAddress>%(ip)s</privateIpAddress>"
            "<privateDnsName>%(dns)s</privateDnsName><primary>true</primary></item></privateIpAddressesSet>"
            "<ipv6AddressesSet/><tagSet/><interfaceType>lambda</interfaceType></item>"
        ) % {"id": e.id, "subnet": e.subnet, "vpc": e.vpc, "az": e.az, "desc": _xml_escape(e.description),
             "owner": e.owner, "status": e.status, "mac": e.mac, "ip": e.ip, "dns": dns, "groups": groups,
             "att": e.attach_id, "created": e.created}

    # -- CloudFront -----------------------------------------------------------------------------
    def _cf_before(self, ctx: Ctx) -> Optional[Answer]:
        if ctx.op == "DeleteDistribution" and self.config.enabled("cloudfront_deploy"):
            did = ctx.p("Id")
            if did and now() < self.dists.get(did, 0):
                ctx.note = "distribution %s is still InProgress" % did
                ctx.saw("cloudfront_deploy")
                return ctx.error(AwsError("DistributionNotDisabled", MSG_DIST_NOT_DISABLED, 409),
                                 "timing:cloudfront_deploy")
        return None

    def _cf_after(self, ctx: Ctx, resp: Resp) -> Resp:
        op = ctx.op
        body = resp.body.decode("utf-8", "replace")
        if op.startswith("CreateDistribution") and self.config.validating:
            if resp.status == 200 and "<Distribution" in body:
                # The emulator gave back the distribution that has this CallerReference; AWS refuses.
                did = _xml_text(body, "Id") or ""
                ctx.note = "CallerReference already used by %s" % did
                status, headers, err_body = render(ctx.env, AwsError("DistributionAlreadyExists",
                                                                     MSG_DIST_EXISTS % did, 409))
                ctx.verdict = "invalid:DistributionAlreadyExists"
                return Resp(status, CIMultiDict(headers), err_body)
        if not self.config.enabled("cloudfront_deploy") or resp.status >= 300:
            return resp
        t = now()
        if op.startswith("CreateDistribution") or op == "UpdateDistribution":
            did = _xml_text(body, "Id")
            if did:
                self.dists[did] = t + self.config.draw("cloudfront_deploy")
        active = [d for d, until in self.dists.items() if until > t]
        if not active or op not in ("CreateDistribution", "CreateDistributionWithTags", "UpdateDistribution",
                                    "GetDistribution", "ListDistributions", "ListDistributionsByWebACLId",
                                    "ListDistributionsByOriginRequestPolicyId", "ListDistributionsByCachePolicyId",
                                    "ListDistributionsByKeyGroup", "ListDistributionsByResponseHeadersPolicyId",
                                    "ListDistributionsByVpcOriginId", "ListDistributionsByAnycastIpListId",
                                    "ListDistributionsByConnectionMode", "ListDistributionsByRealtimeLogConfig"):
            return resp
        changed = False
        for did in active:
            pat = re.compile(r"(<Id>%s</Id>(?:(?!<Id>).)*?<Status>)([^<]*)(</Status>)" % re.escape(did), re.S)
            body, n = pat.subn(r"\1InProgress\3", body)
            changed = changed or n > 0
        if changed:
            resp.body = body.encode()
            ctx.touched("cloudfront_deploy")
        return resp

    # -- RDS ------------------------------------------------------------------------------------
    def _rds_error(self, ctx: Ctx, code: str, message: str) -> Answer:
        ctx.note = message
        ctx.saw("rds")
        return ctx.error(AwsError(code, message, 400), "timing:rds")

    def _db_state(self, db_id: str, t: float) -> Optional[Db]:
        db = self.dbs.get((db_id or "").lower())
        if db is None or t >= db.until:
            return None
        return db

    def _rds_before(self, ctx: Ctx) -> Optional[Answer]:
        if not self.config.enabled("rds"):
            return None
        op = ctx.op
        t = now()
        if op == "ModifyDBInstance":
            db = self._db_state(ctx.p("DBInstanceIdentifier"), t)
            if db is not None and db.state in ("creating", "modifying"):
                return self._rds_error(ctx, "InvalidDBInstanceState", MSG_DB_NOT_AVAILABLE)
        elif op == "DeleteDBInstance":
            db = self._db_state(ctx.p("DBInstanceIdentifier"), t)
            if db is not None and db.state == "creating" and not ctx.p("SkipFinalSnapshot"):
                return self._rds_error(ctx, "InvalidDBInstanceState", MSG_DB_CREATING_SNAPSHOT)
        elif op == "DeleteDBSubnetGroup":
            name = ctx.p("DBSubnetGroupName") or ""
            for db in self.dbs.values():
                if db.state == "deleting" and t < db.until and db.subnet_group.lower() == name.lower():
                    return self._rds_error(ctx, "InvalidDBSubnetGroupStateFault",
                                           MSG_SUBNET_GROUP_IN_USE % (name, db.id))
        return None

    def _learn_db_xml(self, block: str) -> Optional[Db]:
        did = (_xml_text(block, "DBInstanceIdentifier") or "").lower()
        if not did:
            return None
        db = self.dbs.get(did)
        if db is None:
            db = self.dbs[did] = Db(did)
        db.xml = block
        sg_block = re.search(r"<DBSubnetGroup>(.*?)</DBSubnetGroup>", block, re.S)
        if sg_block:
            db.subnet_group = _xml_text(sg_block.group(1), "DBSubnetGroupName") or db.subnet_group
        vpc_sgs = re.search(r"<VpcSecurityGroups>(.*?)</VpcSecurityGroups>", block, re.S)
        if vpc_sgs:
            found = _xml_texts(vpc_sgs.group(1), "VpcSecurityGroupId")
            if found:
                db.sgs = found
        return db

    @staticmethod
    def _db_block_with_state(block: str, state: str) -> str:
        block = re.sub(r"<DBInstanceStatus>[^<]*</DBInstanceStatus>", "<DBInstanceStatus>%s</DBInstanceStatus>"
                       % state, block, count=1)
        if state == "creating":
            block = re.sub(r"\s*<Endpoint>.*?</Endpoint>", "", block, count=1, flags=re.S)
        return block

    def _rds_after(self, ctx: Ctx, resp: Resp) -> Resp:
        if not self.config.enabled("rds"):
            return resp
        op = ctx.op
        t = now()
        body = resp.body.decode("utf-8", "replace")
        blocks = re.findall(r"<DBInstance>.*?</DBInstance>", body, re.S)
        if resp.status == 200 and op in ("CreateDBInstance", "ModifyDBInstance", "DeleteDBInstance"):
            db = self._learn_db_xml(blocks[0]) if blocks else None
            if db is None:
                did = (ctx.p("DBInstanceIdentifier") or "").lower()
                db = self.dbs.setdefault(did, Db(did))
            if op == "CreateDBInstance":
                db.state, db.until = "creating", t + self.config.draw("rds_creating")
                db.subnet_group = db.subnet_group or ctx.p("DBSubnetGroupName") or ""
                db.sgs = db.sgs or list(ctx.p("VpcSecurityGroupIds") or [])
            elif op == "ModifyDBInstance":
                db.state, db.until = "modifying", t + self.config.draw("rds_modifying")
            else:
                db.state, db.until = "deleting", t + self.config.draw("rds_deleting")
            ctx.saw("rds")
        if op not in ("CreateDBInstance", "ModifyDBInstance", "DeleteDBInstance", "DescribeDBInstances",
                      "RebootDBInstance", "StartDBInstance", "StopDBInstance"):
            return resp
        changed = False
        if resp.status == 200:
            seen = set()
            for block in blocks:
                did = (_xml_text(block, "DBInstanceIdentifier") or "").lower()
                seen.add(did)
                db = self._db_state(did, t)
                if db is None or db.state != "deleting":
                    self._learn_db_xml(block)
                db = self._db_state(did, t)
                if db is not None:
                    new = self._db_block_with_state(block, db.state)
                    if new != block:
                        body = body.replace(block, new, 1)
                        changed = True
            if op == "DescribeDBInstances":
                wanted = (ctx.p("DBInstanceIdentifier") or "").lower()
                if not ctx.p("Filters"):
                    missing = [db for db in self.dbs.values() if db.state == "deleting" and t < db.until
                               and db.id not in seen and db.xml and (not wanted or wanted == db.id)]
                    if missing:
                        extra = "".join(self._db_block_with_state(db.xml, "deleting") for db in missing)
                        if "</DBInstances>" in body:
                            body = body.replace("</DBInstances>", extra + "</DBInstances>", 1)
                            changed = True
                        elif "<DBInstances/>" in body:
                            body = body.replace("<DBInstances/>", "<DBInstances>%s</DBInstances>" % extra, 1)
                            changed = True
        elif op == "DescribeDBInstances" and resp.status == 404:
            db = self._db_state(ctx.p("DBInstanceIdentifier"), t)
            if db is not None and db.state == "deleting" and db.xml:
                body = ('<?xml version="1.0" encoding="UTF-8"?>\n<DescribeDBInstancesResponse '
                        'xmlns="http://rds.amazonaws.com/doc/2014-10-31/"><DescribeDBInstancesResult><DBInstances>'
                        "%s</DBInstances></DescribeDBInstancesResult><ResponseMetadata><RequestId>%s</RequestId>"
                        "</ResponseMetadata></DescribeDBInstancesResponse>"
                        % (self._db_block_with_state(db.xml, "deleting"), uuid.uuid4()))
                resp = Resp(200, CIMultiDict({"Content-Type": "text/xml"}), body.encode())
                ctx.touched("rds")
                return resp
        if changed:
            resp.body = body.encode()
            ctx.touched("rds")
        return resp


def _eni_matches(eni: Eni, filters: dict) -> bool:
    values = {
        "group-id": list(eni.sgs),
        "subnet-id": [eni.subnet],
        "vpc-id": [eni.vpc],
        "status": [eni.status],
        "description": [eni.description],
        "interface-type": ["lambda"],
        "network-interface-id": [eni.id],
        "requester-managed": ["true"],
        "availability-zone": [eni.az],
        "owner-id": [eni.owner],
        "private-ip-address": [eni.ip],
        "attachment.status": ["attached"],
    }
    for name, wanted in filters.items():
        have = values.get(name)
        if have is None:
            return False  # a filter this model does not know: the synthetic ENI is not shown
        if wanted and not any(fnmatch.fnmatchcase(h, w) for h in have for w in wanted):
            return False
    return True


def _top_level_text(body: bytes, tag: str) -> Optional[str]:
    """Text of a direct child of the document's root element (namespaces ignored)."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return None
    for child in root:
        if child.tag.rsplit("}", 1)[-1] == tag:
            return (child.text or "").strip()
    return None


def _error_message(r: Resp) -> str:
    try:
        doc = json.loads(r.body)
        return doc.get("message") or doc.get("Message") or ""
    except ValueError:
        return _xml_text(r.body.decode("utf-8", "replace"), "Message") or ""


def _policy_allows(doc: Optional[str], action: str):
    """True if a statement allows the action, False if one denies it, None otherwise."""
    if not doc:
        return None
    try:
        policy = json.loads(doc)
    except ValueError:
        try:
            policy = json.loads(unquote(doc))
        except ValueError:
            return None
    if isinstance(policy, str):
        try:
            policy = json.loads(policy)
        except ValueError:
            return None
    stmts = policy.get("Statement") if isinstance(policy, dict) else None
    if isinstance(stmts, dict):
        stmts = [stmts]
    result = None
    for s in stmts or []:
        if not isinstance(s, dict):
            continue
        acts = s.get("Action")
        if acts is None:
            continue
        if isinstance(acts, str):
            acts = [acts]
        if any(fnmatch.fnmatch(action.lower(), str(a).lower()) for a in acts):
            if s.get("Effect") == "Deny":
                return False
            if s.get("Effect") == "Allow":
                result = True
    return result
