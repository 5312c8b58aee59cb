"""IAM, simulated on every call a Lambda function makes (docs/realism.md, "IAM").

ministack runs Lambda functions as local processes and enforces no IAM: every function may do
anything.  The proxy finds the process behind each signed request (its TCP peer port, the socket
inode in /proc/net/tcp, the process owning the inode, AWS_LAMBDA_FUNCTION_NAME in its
environment), reads that function's role and the role's identity policies from the emulator, works
out which authorizations the call needs (iamactions.py) and has each one evaluated by
@cloud-copilot/iam-simulate (a Node sidecar, tests/realism/iam/simulate.mjs).  A call whose
authorizations are not all allowed is answered as AWS answers it, without reaching the emulator.

Requests from processes without AWS_LAMBDA_FUNCTION_NAME (provision, the tests) stand for the
account's administrator and are not checked."""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import os
import shutil
import time
import weakref
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Optional
from urllib.parse import quote, unquote

from realism.awserrors import AwsError
from realism.iamactions import Authz, authorizations, iam_prefix

log = logging.getLogger("realism.iam")

IAM_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "iam")
SCRIPT = os.path.join(IAM_DIR, "simulate.mjs")
LAMBDA_ENV = "AWS_LAMBDA_FUNCTION_NAME"
SIM_TIMEOUT = 10.0  # seconds for one simulation
START_TIMEOUT = 30.0  # seconds for the sidecar to say it is ready
RESTART_INTERVAL = 10.0  # a dead sidecar is restarted at most this often
ROLE_TTL = 10.0  # seconds a function's role and the role's policies are cached
SOCK_CACHE = 4096


class SimulatorUnavailable(Exception):
    pass


# -- the sidecar ---------------------------------------------------------------------------------
class Simulator:
    """tests/realism/iam/simulate.mjs, started once: JSON lines in and out, matched by id."""

    def __init__(self, node: str = "node", script: str = SCRIPT):
        self.node = node or "node"
        self.script = script
        self.proc: Optional[asyncio.subprocess.Process] = None
        self.pending: dict = {}
        self.next_id = 0
        self.ready: Optional[asyncio.Future] = None
        self.unavailable: Optional[str] = "not started"
        self.versions: dict = {}
        self.tasks: list = []
        self._lock: Optional[asyncio.Lock] = None
        self._last_start = 0.0
        self._reported: Optional[str] = None
        self.simulations = 0

    def problem(self) -> Optional[str]:
        """Why the sidecar cannot run here, or None."""
        if os.sep in self.node:
            node = self.node if os.access(self.node, os.X_OK) else None
        else:
            node = shutil.which(self.node)
        if not node:
            return "node (%s) was not found" % self.node
        if not os.path.isfile(self.script):
            return "%s is missing" % self.script
        if not os.path.isdir(os.path.join(os.path.dirname(self.script), "node_modules", "@cloud-copilot",
                                          "iam-simulate")):
            return ("the simulator's packages are not installed in %s (make deps runs npm ci there)"
                    % os.path.dirname(self.script))
        return None

    def _down(self, reason: str):
        self.unavailable = reason
        if self._reported != reason:
            self._reported = reason
            log.warning("iam: the IAM simulator is unavailable: %s; calls from Lambda functions are forwarded "
                        "without an IAM check", reason)
        for fut in self.pending.values():
            if not fut.done():
                fut.set_exception(SimulatorUnavailable(reason))
        self.pending.clear()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None and self.unavailable is None

    async def start(self, force: bool = False):
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self.running:
                return
            t = time.monotonic()
            if not force and self._last_start and t - self._last_start < RESTART_INTERVAL:
                return
            self._last_start = t
            await self._stop_proc()
            why = self.problem()
            if why:
                self._down(why)
                return
            try:
                self.proc = await asyncio.create_subprocess_exec(
                    self.node, self.script, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE, cwd=os.path.dirname(self.script), limit=1 << 24)
            except OSError as e:
                self._down("node could not be started: %s" % e)
                return
            self.ready = asyncio.get_running_loop().create_future()
            self.tasks = [asyncio.ensure_future(self._read(self.proc)), asyncio.ensure_future(self._stderr(self.proc))]
            try:
                await asyncio.wait_for(asyncio.shield(self.ready), START_TIMEOUT)
            except (asyncio.TimeoutError, SimulatorUnavailable) as e:
                self._down("the simulator did not start: %s" % (e or "no answer within %ss" % START_TIMEOUT))
                await self._stop_proc()
                return
            self.unavailable = None
            self._reported = None
            log.info("iam: simulator ready (%s)", ", ".join("%s %s" % kv for kv in self.versions.items()))

    async def _read(self, proc):
        try:
            while True:
                line = await proc.stdout.readline()
                if not line:
                    break
                try:
                    doc = json.loads(line)
                except ValueError:
                    log.warning("iam: the simulator wrote %r", line[:200])
                    continue
                if doc.get("ready"):
                    self.versions = doc.get("versions") or {}
                    if self.ready is not None and not self.ready.done():
                        self.ready.set_result(True)
                    continue
                fut = self.pending.pop(doc.get("id"), None)
                if fut is not None and not fut.done():
                    fut.set_result(doc)
        except (asyncio.CancelledError, ValueError):
            pass
        code = await proc.wait() if proc.returncode is None else proc.returncode
        if self.proc is proc:
            if self.ready is not None and not self.ready.done():
                self.ready.set_exception(SimulatorUnavailable("exited with code %s" % code))
            self._down("the simulator exited with code %s" % code)

    async def _stderr(self, proc):
        try:
            while True:
                line = await proc.stderr.readline()
                if not line:
                    return
                log.warning("iam simulator: %s", line.decode("utf-8", "replace").rstrip()[:500])
        except asyncio.CancelledError:
            pass

    async def simulate(self, simulation: dict) -> dict:
        if not self.running:
            await self.start()
        if not self.running:
            raise SimulatorUnavailable(self.unavailable or "not running")
        self.next_id += 1
        rid = self.next_id
        fut = asyncio.get_running_loop().create_future()
        self.pending[rid] = fut
        try:
            self.proc.stdin.write((json.dumps({"id": rid, "simulation": simulation}) + "\n").encode())
            await self.proc.stdin.drain()
        except (BrokenPipeError, ConnectionResetError, RuntimeError) as e:
            self.pending.pop(rid, None)
            self._down("writing to the simulator failed: %s" % e)
            raise SimulatorUnavailable(self.unavailable)
        try:
            doc = await asyncio.wait_for(fut, SIM_TIMEOUT)
        except asyncio.TimeoutError:
            self.pending.pop(rid, None)
            raise SimulatorUnavailable("no answer within %ss" % SIM_TIMEOUT)
        self.simulations += 1
        return doc

    async def _stop_proc(self):
        proc, self.proc = self.proc, None
        for t in self.tasks:
            t.cancel()
        self.tasks = []
        if proc is None or proc.returncode is not None:
            return
        try:
            proc.stdin.close()
        except (OSError, RuntimeError):
            pass
        try:
            await asyncio.wait_for(proc.wait(), 2)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()

    async def close(self):
        self._reported = "stopped"  # stopping on purpose is not worth a warning
        await self._stop_proc()
        self._down("stopped")

    def describe(self) -> dict:
        return {"node": self.node, "script": self.script, "running": self.running, "unavailable": self.unavailable,
                "versions": self.versions, "simulations": self.simulations}


# -- who is calling ------------------------------------------------------------------------------
@dataclass
class Caller:
    pid: int
    function: str
    version: str = ""
    region: str = ""


def _hex_port(addr: str) -> int:
    return int(addr.rsplit(":", 1)[1], 16)


class Callers:
    """The Lambda function (if any) behind a TCP connection to the proxy, found through /proc."""

    def __init__(self, proc_root: str = "/proc"):
        self.proc = proc_root
        self.by_conn = weakref.WeakKeyDictionary()  # transport -> Caller | None
        self.by_sock: dict = {}  # (peer port, inode) -> Caller | None
        self.lambda_pids: dict = {}  # pid -> Caller, looked at first
        self.lookups = 0
        self.lookup_ms = 0.0
        self.own_pid = os.getpid()

    def find(self, transport) -> Optional[Caller]:
        if transport is None:
            return None
        try:
            return self.by_conn[transport]
        except (KeyError, TypeError):
            pass
        t0 = time.perf_counter()
        caller = None
        try:
            peer = transport.get_extra_info("peername")
            sock = transport.get_extra_info("sockname")
            if peer and sock and len(peer) >= 2 and len(sock) >= 2:
                caller = self.lookup(int(peer[1]), int(sock[1]))
        except OSError:
            caller = None
        try:
            self.by_conn[transport] = caller
        except TypeError:
            pass
        self.lookups += 1
        self.lookup_ms += (time.perf_counter() - t0) * 1000
        return caller

    def lookup(self, peer_port: int, server_port: int) -> Optional[Caller]:
        inode = self.socket_inode(peer_port, server_port)
        if not inode:
            return None
        key = (peer_port, inode)
        if key in self.by_sock:
            return self.by_sock[key]
        pid = self.socket_owner(inode)
        caller = self.process_caller(pid) if pid else None
        if len(self.by_sock) >= SOCK_CACHE:
            self.by_sock.clear()
        self.by_sock[key] = caller
        if caller is not None:
            self.lambda_pids[pid] = caller
        return caller

    def socket_inode(self, peer_port: int, server_port: int) -> Optional[int]:
        """The inode of the client's socket: local port = the peer's, remote port = the proxy's."""
        for name in ("tcp", "tcp6"):
            try:
                with open(os.path.join(self.proc, "net", name), "rb") as f:
                    data = f.read()
            except OSError:
                continue
            for line in data.split(b"\n")[1:]:
                parts = line.split()
                if len(parts) < 10:
                    continue
                try:
                    if _hex_port(parts[1].decode()) == peer_port and _hex_port(parts[2].decode()) == server_port:
                        inode = int(parts[9])
                        if inode:
                            return inode
                except ValueError:
                    continue
        return None

    def socket_owner(self, inode: int) -> Optional[int]:
        target = "socket:[%d]" % inode
        tried = set()
        for pid in list(self.lambda_pids):
            tried.add(pid)
            if self._has_fd(pid, target):
                return pid
            if not os.path.exists(os.path.join(self.proc, str(pid))):
                self.lambda_pids.pop(pid, None)
        try:
            pids = sorted((int(p) for p in os.listdir(self.proc) if p.isdigit()), reverse=True)
        except OSError:
            return None
        for pid in pids:
            if pid in tried or pid == self.own_pid:
                continue
            if self._has_fd(pid, target):
                return pid
        return None

    def _has_fd(self, pid: int, target: str) -> bool:
        fd_dir = os.path.join(self.proc, str(pid), "fd")
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            return False
        for fd in fds:
            try:
                if os.readlink(os.path.join(fd_dir, fd)) == target:
                    return True
            except OSError:
                continue
        return False

    def process_caller(self, pid: int) -> Optional[Caller]:
        try:
            with open(os.path.join(self.proc, str(pid), "environ"), "rb") as f:
                raw = f.read()
        except OSError:
            return None
        env = {}
        for item in raw.split(b"\0"):
            k, sep, v = item.partition(b"=")
            if sep and k in (b"AWS_LAMBDA_FUNCTION_NAME", b"AWS_LAMBDA_FUNCTION_VERSION", b"AWS_REGION"):
                env[k.decode()] = v.decode("utf-8", "replace")
        name = env.get(LAMBDA_ENV)
        if not name:
            return None
        return Caller(pid, name, env.get("AWS_LAMBDA_FUNCTION_VERSION", ""), env.get("AWS_REGION", ""))

    def describe(self) -> dict:
        return {"lookups": self.lookups, "lookup_ms_avg": round(self.lookup_ms / self.lookups, 3) if self.lookups else 0,
                "lambda_processes": {str(pid): c.function for pid, c in self.lambda_pids.items()}}


# -- the function's identity policies ------------------------------------------------------------
@dataclass
class FunctionInfo:
    account: str
    name: str
    arn: str = ""
    role_arn: str = ""
    fetched: float = 0.0
    error: str = ""


@dataclass
class RoleInfo:
    account: str
    name: str
    arn: str = ""
    role_id: str = ""
    exists: bool = True
    policies: list = field(default_factory=list)  # [{"name", "policy"}]
    errors: list = field(default_factory=list)
    fetched: float = 0.0


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _xml(body: bytes):
    try:
        return ET.fromstring(body)
    except ET.ParseError:
        return None


def _texts(root, tag: str) -> list:
    return [(e.text or "").strip() for e in root.iter() if _local(e.tag) == tag] if root is not None else []


def _text(root, tag: str) -> str:
    found = _texts(root, tag)
    return found[0] if found else ""


def parse_policy(doc) -> Optional[dict]:
    """A policy document as IAM returns it (JSON, often URL-encoded), or None."""
    if isinstance(doc, dict):
        return doc
    if not isinstance(doc, str) or not doc.strip():
        return None
    for candidate in (doc, unquote(doc)):
        try:
            v = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(v, str):
            try:
                v = json.loads(v)
            except ValueError:
                continue
        if isinstance(v, dict):
            return v
    return None


def role_name_of(arn: str) -> str:
    return str(arn or "").rsplit("/", 1)[-1]


def account_of(arn: str) -> str:
    parts = str(arn or "").split(":")
    return parts[4] if len(parts) > 5 else ""


def principal_of(account: str, role: str, session: str) -> str:
    return "arn:aws:sts::%s:assumed-role/%s/%s" % (account, role, session)


def global_context(principal: str, region: str, via: str = "") -> dict:
    """The global keys AWS puts in every request context of a role session (IAM User Guide,
    "AWS global condition context keys"): aws:PrincipalArn is the role's ARN, not the session's."""
    parts = principal.split(":")
    account = parts[4] if len(parts) > 5 else ""
    role = ""
    if ":assumed-role/" in principal:
        role = principal.split(":assumed-role/", 1)[1].split("/", 1)[0]
    now = datetime.datetime.now(datetime.timezone.utc)
    out = {
        "aws:PrincipalArn": "arn:aws:iam::%s:role/%s" % (account, role) if role else principal,
        "aws:PrincipalAccount": account,
        "aws:PrincipalType": "AssumedRole" if role else "User",
        "aws:SecureTransport": "true",  # the SDKs call AWS over HTTPS; only the local endpoint is plain HTTP
        "aws:CurrentTime": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "aws:EpochTime": str(int(now.timestamp())),
        "aws:ViaAWSService": "true" if via else "false",
    }
    if region:
        out["aws:RequestedRegion"] = region
    return out


class Roles:
    """Reads functions' roles and roles' policies from the emulator with the proxy's own calls."""

    def __init__(self, upstream):
        self.upstream = upstream
        self.functions: dict = {}  # (account, function) -> FunctionInfo
        self.roles: dict = {}  # (account, role name lower) -> RoleInfo
        self._inflight: dict = {}

    async def _once(self, key, coro_fn):
        fut = self._inflight.get(key)
        if fut is not None:
            return await asyncio.shield(fut)
        fut = asyncio.ensure_future(coro_fn())
        self._inflight[key] = fut
        try:
            return await asyncio.shield(fut)
        finally:
            self._inflight.pop(key, None)

    async def function(self, account: str, region: str, access_key: str, name: str) -> FunctionInfo:
        key = (account, name)
        info = self.functions.get(key)
        if info is not None and time.monotonic() - info.fetched < ROLE_TTL:
            return info
        return await self._once(("fn",) + key, lambda: self._read_function(account, region, access_key, name))

    async def _read_function(self, account, region, access_key, name) -> FunctionInfo:
        info = FunctionInfo(account, name, fetched=time.monotonic())
        r = await self.upstream.signed("lambda", region, access_key, "GET",
                                       "/2015-03-31/functions/%s/configuration" % quote(name, safe=""))
        if r is None:
            info.error = "the emulator did not answer GetFunctionConfiguration"
        elif r.status != 200:
            info.error = "GetFunctionConfiguration answered %d" % r.status
        else:
            try:
                conf = json.loads(r.body)
                info.arn = conf.get("FunctionArn") or ""
                info.role_arn = conf.get("Role") or ""
            except ValueError:
                info.error = "GetFunctionConfiguration answered no JSON"
        self.functions[(account, name)] = info
        return info

    async def role(self, account: str, access_key: str, role_arn: str) -> RoleInfo:
        name = role_name_of(role_arn)
        key = (account, name.lower())
        info = self.roles.get(key)
        if info is not None and time.monotonic() - info.fetched < ROLE_TTL:
            return info
        return await self._once(("role",) + key, lambda: self._read_role(account, access_key, role_arn))

    async def _iam(self, access_key: str, form: dict):
        return await self.upstream.signed("iam", "us-east-1", access_key, "POST", "/",
                                          form=dict(form, Version="2010-05-08"))

    async def _paged(self, access_key: str, form: dict, tag: str) -> tuple:
        out, marker = [], None
        for _ in range(50):
            f = dict(form)
            if marker:
                f["Marker"] = marker
            r = await self._iam(access_key, f)
            if r is None or r.status != 200:
                return out, "%s answered %s" % (form["Action"], r.status if r else "nothing")
            root = _xml(r.body)
            out += [t for t in _texts(root, tag) if t]
            if _text(root, "IsTruncated") != "true":
                return out, None
            marker = _text(root, "Marker")
            if not marker:
                return out, None
        return out, None

    async def _read_role(self, account: str, access_key: str, role_arn: str) -> RoleInfo:
        name = role_name_of(role_arn)
        info = RoleInfo(account, name, arn=role_arn, fetched=time.monotonic())
        r = await self._iam(access_key, {"Action": "GetRole", "RoleName": name})
        if r is None:
            info.errors.append("the emulator did not answer GetRole")
        elif r.status != 200:
            info.exists = False  # a deleted role: its sessions are allowed nothing
        else:
            root = _xml(r.body)
            info.role_id = _text(root, "RoleId")
            info.arn = _text(root, "Arn") or role_arn
        if info.exists:
            names, err = await self._paged(access_key, {"Action": "ListRolePolicies", "RoleName": name}, "member")
            if err:
                info.errors.append(err)
            for pname in names:
                p = await self._iam(access_key, {"Action": "GetRolePolicy", "RoleName": name, "PolicyName": pname})
                doc = parse_policy(_text(_xml(p.body), "PolicyDocument")) if p is not None and p.status == 200 else None
                if doc is None:
                    info.errors.append("inline policy %s could not be read" % pname)
                else:
                    info.policies.append({"name": "inline/%s" % pname, "policy": doc})
            arns, err = await self._paged(access_key, {"Action": "ListAttachedRolePolicies", "RoleName": name},
                                          "PolicyArn")
            if err:
                info.errors.append(err)
            for arn in arns:
                doc = None
                p = await self._iam(access_key, {"Action": "GetPolicy", "PolicyArn": arn})
                version = _text(_xml(p.body), "DefaultVersionId") if p is not None and p.status == 200 else ""
                if version:
                    pv = await self._iam(access_key, {"Action": "GetPolicyVersion", "PolicyArn": arn,
                                                      "VersionId": version})
                    if pv is not None and pv.status == 200:
                        doc = parse_policy(_text(_xml(pv.body), "Document"))
                if doc is None:
                    info.errors.append("managed policy %s could not be read" % arn)
                else:
                    info.policies.append({"name": arn, "policy": doc})
        self.roles[(account, name.lower())] = info
        return info

    def drop_role(self, name: str):
        for key in [k for k in self.roles if k[1] == str(name or "").lower()]:
            del self.roles[key]

    def drop_function(self, name: str):
        for key in [k for k in self.functions if k[1] == name]:
            del self.functions[key]

    def drop_all(self):
        self.functions.clear()
        self.roles.clear()

    def describe(self) -> dict:
        t = time.monotonic()
        return {
            "functions": {"%s/%s" % k: {"role": f.role_arn, "error": f.error or None,
                                        "age": round(t - f.fetched, 1)} for k, f in self.functions.items()},
            "roles": {"%s/%s" % (k[0], r.name): {"arn": r.arn, "exists": r.exists,
                                                 "policies": [p["name"] for p in r.policies],
                                                 "errors": r.errors, "age": round(t - r.fetched, 1)}
                      for k, r in self.roles.items()},
        }


# -- the check -----------------------------------------------------------------------------------
# Calls that change what a cached role or function allows.
ROLE_CHANGES = {"PutRolePolicy", "DeleteRolePolicy", "AttachRolePolicy", "DetachRolePolicy", "DeleteRole",
                "UpdateAssumeRolePolicy", "PutRolePermissionsBoundary", "DeleteRolePermissionsBoundary"}
POLICY_CHANGES = {"CreatePolicyVersion", "SetDefaultPolicyVersion", "DeletePolicyVersion", "DeletePolicy"}
FUNCTION_CHANGES = {"UpdateFunctionConfiguration", "DeleteFunction", "CreateFunction"}

MSG_S3_MEDIA = "The S3 URI that you provided can't be accessed. Make sure that you have read permission and try your request again."


def denial_message(service: str, principal: str, a: Authz, explicit: bool) -> str:
    """AWS's message for a refused authorization, in the calling service's words."""
    resource = a.message_resource or a.resource
    if service in ("ses", "sesv2"):
        # SES's own form (v1 and v2): User `arn' is not authorized to perform `ses:SendEmail' on resource `arn'
        return "User `%s' is not authorized to perform `%s' on resource `%s'" % (principal, a.action, resource)
    why = ("with an explicit deny in an identity-based policy" if explicit
           else "because no identity-based policy allows the %s action" % a.action)
    if resource in ("", "*"):
        msg = "User: %s is not authorized to perform: %s %s" % (principal, a.action, why)
    else:
        if service == "s3":
            resource = '"%s"' % resource
        msg = "User: %s is not authorized to perform: %s on resource: %s %s" % (principal, a.action, resource, why)
    if service == "ec2":
        msg = "You are not authorized to perform this operation. " + msg
    return msg


def denial_error(env, principal: str, a: Authz, explicit: bool) -> AwsError:
    if a.error is not None:
        code, status, message = a.error
        return AwsError(code, message, status)
    service, protocol = env.service, env.protocol
    message = denial_message(service, principal, a, explicit)
    if service in ("s3", "s3control"):
        return AwsError("AccessDenied", message, 403)
    if protocol == "ec2":
        return AwsError("UnauthorizedOperation", message, 403)
    if protocol == "query":
        return AwsError("AccessDenied", message, 403)
    if protocol == "rest-json":
        return AwsError("AccessDeniedException", message, 403)
    if protocol == "rest-xml":  # CloudFront, Route 53
        return AwsError("AccessDenied", message, 403)
    return AwsError("AccessDeniedException", message, 400)  # json, rpc-v2-cbor


class Iam:
    def __init__(self, proxy):
        self.proxy = proxy
        self.config = proxy.config
        self.callers = Callers()
        self.roles = Roles(proxy.upstream)
        self.simulator = Simulator(self.config.iam_node)
        self.checked = 0
        self.denied = 0
        self._refused_inputs: set = set()  # actions the simulator refused, warned about once
        self._logged_functions: set = set()  # (function, pid): environments whose log writing was recorded
        self.lookups = IamLookups(self)

    @property
    def enabled(self) -> bool:
        return bool(self.config.iam) and self.config.validating

    async def start(self):
        if self.enabled:
            await self.simulator.start(force=True)

    async def close(self):
        await self.simulator.close()

    async def apply_config(self):
        """After a config change: a new node binary restarts the sidecar."""
        if self.simulator.node != (self.config.iam_node or "node"):
            await self.simulator.close()
            self.simulator = Simulator(self.config.iam_node)
        if self.enabled and not self.simulator.running:
            await self.simulator.start(force=True)

    def reset(self):
        self.roles.drop_all()
        self.lookups.reset()
        self._logged_functions.clear()

    def describe(self) -> dict:
        d = {"enabled": self.enabled, "checked": self.checked, "denied": self.denied,
             "simulator": self.simulator.describe(), "callers": self.callers.describe()}
        d.update(self.roles.describe())
        return d

    def observe(self, ctx):
        """Drops cached roles and functions when a call through the proxy changes them."""
        if ctx.ident is None or ctx.status is None or ctx.status >= 300:
            return
        s, op = ctx.service, ctx.op
        if s == "iam":
            if op in ROLE_CHANGES:
                self.roles.drop_role(ctx.p("RoleName"))
            elif op in POLICY_CHANGES:
                self.roles.roles.clear()
        elif s == "lambda" and op in FUNCTION_CHANGES:
            name = str(ctx.p("FunctionName") or "")
            if "function:" in name:
                name = name.split("function:", 1)[1]
            self.roles.drop_function(name.split(":", 1)[0])

    # -- one request ----------------------------------------------------------------------------
    async def check(self, ctx):
        """None to go on (allowed, not a Lambda call, or not checkable), or the denial's Answer."""
        if not self.enabled or ctx.sig is None:
            return None
        caller = self.callers.find(ctx.transport)
        if caller is None:
            return None
        if ctx.ident is None:
            ctx.state["iam"] = {"principal": "", "role": "", "function": caller.function, "authorizations": [],
                                "error": "request not identified"}
            self._note(ctx, "iam: a call of function %s that the proxy could not identify; not checked"
                       % caller.function)
            return None
        account = ctx.access_key if ctx.access_key.isdigit() and len(ctx.access_key) == 12 else ""
        fn = await self.roles.function(account or "000000000000", caller.region or ctx.region, ctx.access_key,
                                       caller.function)
        account = account_of(fn.arn) or account or "000000000000"
        record = {"principal": "", "role": role_name_of(fn.role_arn), "function": caller.function,
                  "authorizations": []}
        ctx.state["iam"] = record
        if not fn.role_arn:
            record["error"] = fn.error or "the function has no role"
            self._note(ctx, "iam: the role of function %s is unknown (%s); not checked" % (caller.function,
                                                                                       record["error"]))
            return None
        role = await self.roles.role(account, ctx.access_key, fn.role_arn)
        principal = principal_of(account, role.name, caller.function)
        record["principal"] = principal
        if role.errors:
            record["policy_errors"] = role.errors
        try:
            authz, unmapped = await authorizations(ctx, account, self.lookups)
        except Exception as e:  # noqa: BLE001 - a bug of the table must not cost the request
            log.exception("iam: working out the authorizations of %s.%s failed", ctx.service, ctx.op)
            authz, unmapped = [Authz("%s:%s" % (iam_prefix(ctx), ctx.op), "*", {})], True
            record["error"] = "mapping failed: %s" % e
        if unmapped:
            record["unmapped"] = True
            self._note(ctx, "iam: unmapped operation %s.%s, checked as %s on *" % (ctx.service, ctx.op,
                                                                                 authz[0].action if authz else "?"))
        self.checked += 1
        missing_key = asyncio.ensure_future(self._missing_key_rule(ctx, record, principal, role, account,
                                                                   ctx.access_key))
        try:
            results = await asyncio.gather(*(self._evaluate(a, principal, role, account, ctx.access_key,
                                                            ctx.region) for a in authz))
        except BaseException:
            missing_key.cancel()
            raise
        refused = None
        for a, (decision, extra, a_principal) in zip(authz, results):
            a.decision = decision
            entry = {"action": a.action, "resource": a.resource, "context": a.context, "decision": decision}
            if a_principal != principal:
                entry["principal"] = a_principal
            if a.via:
                entry["via"] = a.via
            entry.update(extra)
            record["authorizations"].append(entry)
            if refused is None and decision in ("ImplicitlyDenied", "ExplicitlyDenied"):
                refused = (a, decision, a_principal)
        # Advisory, after the call's own: the logs Lambda writes with the role.
        advisory = await self.lambda_logs(ctx, record, principal, account, caller.pid)
        if advisory:
            results = await asyncio.gather(*(self.evaluate_one(principal, role.policies if role.exists else [],
                                                               a.action, a.resource, a.context, ctx.region, a.via)
                                             for a in advisory))
            for a, (decision, extra) in zip(advisory, results):
                entry = {"action": a.action, "resource": a.resource, "context": a.context, "decision": decision,
                         "via": a.via, "enforced": False}
                entry.update(extra)
                record["authorizations"].append(entry)
        unevaluated = [e for e in record["authorizations"] if e["decision"] not in ("Allowed", "ImplicitlyDenied",
                                                                                  "ExplicitlyDenied")]
        if unevaluated and refused is None:
            self._note(ctx, "iam: %d authorization(s) not evaluated (%s); forwarded" % (
                len(unevaluated), unevaluated[0].get("error", unevaluated[0]["decision"])))
        if refused is None:
            ctx.saw("iam")
            await missing_key
            return None
        missing_key.cancel()
        a, decision, a_principal = refused
        self.denied += 1
        err = denial_error(ctx.env, a_principal, a, decision == "ExplicitlyDenied")
        ctx.note = err.message
        ctx.saw("iam")
        return ctx.error(err, "denied:%s" % a.action)

    # -- what Lambda does with a function's role ------------------------------------------------
    async def check_execution_role(self, ctx):
        """Lambda validates a function's execution role when it is configured, with the role
        itself: a function in a VPC needs the network interface actions ("The provided execution
        role does not have permissions to call CreateNetworkInterface on EC2"), an asynchronous
        destination or dead-letter queue the send ("... to call SendMessage on SQS",
        elastic/beats#13963, aws-samples/aws-serverless-ecommerce-platform#41). The caller is
        whoever configures the function; the authorizations are the role's, logged under the
        function's name so that a replay counts them.  None to go on, or the refusal."""
        if not self.enabled or ctx.ident is None or ctx.params is None or ctx.service != "lambda":
            return None
        op = ctx.op
        if op in ("Invoke", "InvokeAsync"):
            await self.invoked_function_logs(ctx)
            return None
        if op not in ("CreateFunction", "UpdateFunctionConfiguration", "PutFunctionEventInvokeConfig",
                      "UpdateFunctionEventInvokeConfig"):
            return None
        name = str(ctx.p("FunctionName") or "")
        if "function:" in name:
            name = name.split("function:", 1)[1]
        name = name.split(":", 1)[0]
        account = ctx.access_key if ctx.access_key.isdigit() and len(ctx.access_key) == 12 else ""
        role_arn = ctx.p("Role")
        if not role_arn:
            fn = await self.roles.function(account or "000000000000", ctx.region, ctx.access_key, name)
            role_arn = fn.role_arn
        if not role_arn:
            return None
        account = account_of(role_arn) or account or "000000000000"
        region = ctx.region
        authz = []
        subnets = ctx.p("VpcConfig", "SubnetIds") or []
        if subnets:
            groups = ctx.p("VpcConfig", "SecurityGroupIds") or []
            interfaces = "arn:aws:ec2:%s:%s:network-interface/*" % (region, account)
            for subnet in subnets:
                authz.append(Authz("ec2:CreateNetworkInterface", "arn:aws:ec2:%s:%s:subnet/%s" % (region, account, subnet),
                                   via="lambda.amazonaws.com"))
            for group in groups:
                authz.append(Authz("ec2:CreateNetworkInterface",
                                   "arn:aws:ec2:%s:%s:security-group/%s" % (region, account, group),
                                   via="lambda.amazonaws.com"))
            authz.append(Authz("ec2:CreateNetworkInterface", interfaces, via="lambda.amazonaws.com"))
            authz.append(Authz("ec2:DescribeNetworkInterfaces", "*", via="lambda.amazonaws.com"))
            authz.append(Authz("ec2:DeleteNetworkInterface", interfaces, via="lambda.amazonaws.com"))
        queues = []
        for key in ("OnFailure", "OnSuccess"):
            destination = ctx.p("DestinationConfig", key, "Destination")
            if destination:
                queues.append(destination)
        if ctx.p("DeadLetterConfig", "TargetArn"):
            queues.append(ctx.p("DeadLetterConfig", "TargetArn"))
        for arn in queues:
            if str(arn).startswith("arn:aws:sqs:"):
                authz.append(Authz("sqs:SendMessage", arn, via="lambda.amazonaws.com"))
        if not authz:
            return None
        role = await self.roles.role(account, ctx.access_key, role_arn)
        principal = principal_of(account, role.name, name)
        record = {"principal": principal, "role": role.name, "function": name, "authorizations": [],
                  "by": "lambda.amazonaws.com"}
        ctx.state["iam"] = record
        results = await asyncio.gather(*(self.evaluate_one(principal, role.policies if role.exists else [],
                                                           a.action, a.resource, a.context, region, a.via)
                                         for a in authz))
        refused = None
        for a, (decision, extra) in zip(authz, results):
            entry = {"action": a.action, "resource": a.resource, "context": a.context, "decision": decision,
                     "via": a.via}
            entry.update(extra)
            record["authorizations"].append(entry)
            if refused is None and decision in ("ImplicitlyDenied", "ExplicitlyDenied"):
                refused = a
        ctx.saw("iam")
        if refused is None:
            return None
        self.denied += 1
        service, call = refused.action.split(":", 1)
        what = {"ec2": "EC2", "sqs": "SQS"}.get(service, service)
        return ctx.error(AwsError("InvalidParameterValueException",
                                  "The provided execution role does not have permissions to call %s on %s"
                                  % (call, what), 400), "denied:%s" % refused.action)

    async def invoked_function_logs(self, ctx):
        """An invocation makes Lambda write the function's logs with the function's role, even when
        the function itself calls nothing (db_migrate on the local target): recorded, advisory,
        under the invoked function's name so that a replay of its role counts them."""
        name = str(ctx.p("FunctionName") or "")
        if "function:" in name:
            name = name.split("function:", 1)[1]
        name = name.split(":", 1)[0]
        if not name:
            return
        account = ctx.access_key if ctx.access_key.isdigit() and len(ctx.access_key) == 12 else ""
        fn = await self.roles.function(account or "000000000000", ctx.region, ctx.access_key, name)
        if not fn.role_arn:
            return
        account = account_of(fn.role_arn) or account or "000000000000"
        role = await self.roles.role(account, ctx.access_key, fn.role_arn)
        principal = principal_of(account, role.name, name)
        group = "arn:aws:logs:%s:%s:log-group:/aws/lambda/%s" % (ctx.region, account, name)
        needs = [("logs:CreateLogStream", group + ":log-stream:*"), ("logs:PutLogEvents", group + ":log-stream:*")]
        if not await self.lookups.log_group_exists(ctx, "/aws/lambda/" + name):
            needs.insert(0, ("logs:CreateLogGroup", group))
        record = ctx.state.setdefault("iam", {"principal": "", "role": "", "function": "", "authorizations": []})
        results = await asyncio.gather(*(self.evaluate_one(principal, role.policies if role.exists else [],
                                                           action, resource, {}, ctx.region,
                                                           "lambda.amazonaws.com")
                                         for action, resource in needs))
        for (action, resource), (decision, extra) in zip(needs, results):
            entry = {"action": action, "resource": resource, "context": {}, "decision": decision,
                     "principal": principal, "role": role.name, "function": name,
                     "via": "lambda.amazonaws.com", "enforced": False}
            entry.update(extra)
            record["authorizations"].append(entry)

    async def evaluate_with_role(self, ctx, account: str, role_arn: str, needs: list, via: str) -> list:
        """Authorizations a service makes with a role passed to it (MediaConvert's job role):
        evaluated and added to the call's log line; the caller decides what a refusal does
        (MediaConvert: the job ends in ERROR, the call itself succeeded)."""
        if not self.enabled:
            return []
        role = await self.roles.role(account_of(role_arn) or account, ctx.access_key, role_arn)
        principal = principal_of(account_of(role_arn) or account, role.name, "%s-job" % iam_prefix_of(via))
        results = []
        record = ctx.state.setdefault("iam", {"principal": "", "role": "", "function": "", "authorizations": []})
        for action, resource in needs:
            decision, extra = await self.evaluate_one(principal, role.policies if role.exists else [], action,
                                                      resource, {}, ctx.region, via)
            entry = {"action": action, "resource": resource, "context": {}, "decision": decision,
                     "principal": principal, "role": role.name, "via": via}
            entry.update(extra)
            record["authorizations"].append(entry)
            results.append(entry)
        return results

    async def lambda_logs(self, ctx, record: dict, principal: str, account: str, pid: int):
        """What Lambda does with the role when the function runs: write its logs (CloudWatch Logs,
        the log group `/aws/lambda/<function>`, made on first use if it does not exist). Lambda
        does not fail the invocation when it may not, the logs are lost: recorded, never refused.
        `logs:CreateLogGroup` only while the group is missing: a group made beforehand (as
        `provision` makes it, with its retention) needs only the stream and event writes. Once
        per execution environment (the function's process here), as Lambda opens a log stream
        per environment: a function deployed again under the same name is recorded again."""
        name = record.get("function") or ""
        environment = (name, pid)
        if not name or environment in self._logged_functions:
            return []
        self._logged_functions.add(environment)
        group = "arn:aws:logs:%s:%s:log-group:/aws/lambda/%s" % (ctx.region, account, name)
        needs = [Authz("logs:CreateLogStream", group + ":log-stream:*", via="lambda.amazonaws.com"),
                 Authz("logs:PutLogEvents", group + ":log-stream:*", via="lambda.amazonaws.com")]
        if not await self.lookups.log_group_exists(ctx, "/aws/lambda/" + name):
            needs.insert(0, Authz("logs:CreateLogGroup", group, via="lambda.amazonaws.com"))
        return needs

    async def _missing_key_rule(self, ctx, record: dict, principal: str, role, account: str, access_key: str):
        """GetObject/HeadObject of a key that does not exist answer 404 only to a caller that may
        s3:ListBucket the bucket, 403 to any other (S3 API reference, GetObject and HeadObject,
        Permissions).  Evaluated now, applied if the emulator answers 404."""
        if ctx.service != "s3" or ctx.op not in ("GetObject", "HeadObject", "GetObjectAttributes"):
            return
        bucket = ctx.p("Bucket")
        if not bucket:
            return
        a = Authz("s3:ListBucket", "arn:aws:s3:::%s" % bucket)
        decision, extra, _ = await self._evaluate(a, principal, role, account, access_key, ctx.region)
        entry = {"action": a.action, "resource": a.resource, "context": {}, "decision": decision}
        entry.update(extra)
        record["if_key_missing"] = entry
        if decision in ("ImplicitlyDenied", "ExplicitlyDenied"):
            ctx.state["iam_missing_key"] = True

    def upstream_status(self, ctx, status: int):
        """The 403 S3 answers instead of the emulator's 404 to a caller without s3:ListBucket."""
        if status != 404:
            return None
        asked = (ctx.state.get("iam") or {}).get("if_key_missing")
        if asked is not None:
            asked["key_missing"] = True  # the ListBucket question mattered: the key is not there
        if not ctx.state.get("iam_missing_key"):
            return None
        self.denied += 1
        ctx.note = "the key does not exist and the role may not s3:ListBucket the bucket: 403, not 404"
        # The message of this refusal is S3's generic one (aws/aws-cli#2041).
        return ctx.error(AwsError("AccessDenied", "Access Denied", 403), "denied:s3:ListBucket")

    async def _evaluate(self, a: Authz, principal: str, role: RoleInfo, account: str, access_key: str,
                        region: str) -> tuple:
        policies = role.policies if role.exists else []
        if a.role:  # the service acts with another role (Transcribe's DataAccessRoleArn)
            other = await self.roles.role(account, access_key, a.role)
            policies = other.policies if other.exists else []
            principal = principal_of(account_of(a.role) or account, other.name, "%s-session" % iam_prefix_of(a.via))
        return (*(await self.evaluate_one(principal, policies, a.action, a.resource, a.context, region, a.via)),
                principal)

    async def evaluate_one(self, principal: str, policies: list, action: str, resource: str, context: dict,
                           region: str = "", via: str = "") -> tuple:
        """(decision, extra) for one authorization: decision Allowed / ImplicitlyDenied / ExplicitlyDenied /
        Error (the simulator refused the input) / Unavailable (no simulator)."""
        account = account_of(principal)
        ctx_vars = global_context(principal, region, via)
        for k, v in (context or {}).items():
            ctx_vars[k] = [str(x) for x in v] if isinstance(v, (list, tuple)) else str(v)
        sim = {
            "request": {"principal": principal, "action": action,
                        "resource": {"resource": resource, "accountId": account}, "contextVariables": ctx_vars},
            "identityPolicies": [{"name": p.get("name") or "policy%d" % i, "policy": p.get("policy")}
                                 for i, p in enumerate(policies)],
            "serviceControlPolicies": [],
            "resourceControlPolicies": [],
        }
        try:
            doc = await self.simulator.simulate(sim)
        except SimulatorUnavailable as e:
            return "Unavailable", {"error": str(e)}
        if doc.get("resultType") == "error" or not doc.get("overallResult"):
            errors = doc.get("errors") or {}
            msg = errors.get("message") if isinstance(errors, dict) else str(errors)
            if action not in self._refused_inputs:
                self._refused_inputs.add(action)
                log.warning("iam: the simulator refused %s on %s (not evaluated, forwarded): %s", action, resource,
                            json.dumps(errors)[:500])
            return "Error", {"error": msg or "simulation error", "errors": errors}
        extra = {}
        if doc.get("decisive"):
            extra["decisive"] = doc["decisive"]
        if doc.get("ignoredContextKeys"):
            extra["ignored_context_keys"] = doc["ignoredContextKeys"]
        return doc["overallResult"], extra

    @staticmethod
    def _note(ctx, text: str):
        ctx.note = text if not ctx.note else "%s; %s" % (ctx.note, text)

    # -- control endpoints ------------------------------------------------------------------------
    async def evaluate_request(self, doc: dict) -> dict:
        principal = doc.get("principal") or ""
        if not principal.startswith("arn:"):
            raise ValueError("principal must be an ARN (arn:aws:sts::<account>:assumed-role/<role>/<session>)")
        policies = []
        for i, p in enumerate(doc.get("policies") or []):
            if isinstance(p, dict) and "policy" in p and ("Statement" not in p):
                policy, name = parse_policy(p["policy"]), p.get("name") or "policy%d" % i
            else:
                policy, name = parse_policy(p), "policy%d" % i
            if policy is None:
                raise ValueError("policies[%d] is not a policy document" % i)
            policies.append({"name": name, "policy": policy})
        items = doc.get("authorizations")
        if not isinstance(items, list):
            raise ValueError("authorizations must be a list of {action, resource, context}")
        region = doc.get("region") or "us-east-1"

        async def one(a):
            if not isinstance(a, dict) or not a.get("action"):
                raise ValueError("each authorization needs an action")
            decision, extra = await self.evaluate_one(a.get("principal") or principal, policies, a["action"],
                                                      a.get("resource") or "*", a.get("context") or {},
                                                      a.get("region") or region, a.get("via") or "")
            out = {"action": a["action"], "resource": a.get("resource") or "*", "decision": decision}
            out.update(extra)
            return out

        results = await asyncio.gather(*(one(a) for a in items))
        return {"results": list(results), "allowed": all(r["decision"] == "Allowed" for r in results)}

    def logged_authorizations(self, since: int = 0, function: str = "") -> list:
        out = []
        for e in self.proxy.calls.ring:
            rec = e.get("iam")
            if not rec or e["seq"] <= since:
                continue
            # What S3 evaluates to tell a missing key's 404 from 403, marked as such.
            extra = [dict(rec["if_key_missing"], if_key_missing=True)] if rec.get("if_key_missing") else []
            for a in list(rec.get("authorizations") or []) + extra:
                owner = a.get("function") or rec.get("function")
                if function and owner != function:
                    continue
                item = {"seq": e["seq"], "service": e.get("service"), "operation": e.get("operation"),
                        "function": owner, "role": a.get("role") or rec.get("role"),
                        "principal": a.get("principal") or rec.get("principal"), "verdict": e.get("verdict")}
                item.update({k: a[k] for k in ("action", "resource", "context", "decision", "via", "enforced",
                                                "if_key_missing", "key_missing")
                             if k in a})
                out.append(item)
        return out


def iam_prefix_of(via: str) -> str:
    return (via or "service").split(".", 1)[0]


class IamLookups:
    """What the authorizations of some calls need from the emulator: a secret's ARN, the SES
    identities.  Cached for ROLE_TTL."""

    def __init__(self, iam: Iam):
        self.iam = iam
        self.secrets: dict = {}
        self.identities: dict = {}

    def reset(self):
        self.secrets.clear()
        self.identities.clear()

    @property
    def upstream(self):
        return self.iam.proxy.upstream

    async def log_group_exists(self, ctx, name: str) -> bool:
        """Whether the log group exists in the emulator (not cached: `down` deletes it, the
        emulator's Lambda makes it on a first invocation). Unknown counts as missing."""
        r = await self.upstream.signed("logs", ctx.region, ctx.access_key, "POST", "/",
                                       json_body=json.dumps({"logGroupNamePrefix": name}).encode(),
                                       headers={"X-Amz-Target": "Logs_20140328.DescribeLogGroups",
                                                "Content-Type": "application/x-amz-json-1.1"})
        if r is None or r.status != 200:
            return False
        try:
            groups = json.loads(r.body).get("logGroups") or []
        except ValueError:
            return False
        return any(g.get("logGroupName") == name for g in groups)

    async def secret_arn(self, ctx, account: str, secret_id: str) -> Optional[str]:
        key = (account, ctx.region, secret_id)
        hit = self.secrets.get(key)
        if hit is not None and time.monotonic() - hit[1] < ROLE_TTL:
            return hit[0]
        r = await self.upstream.signed("secretsmanager", ctx.region, ctx.access_key, "POST", "/",
                                       json_body=json.dumps({"SecretId": secret_id}).encode(),
                                       headers={"X-Amz-Target": "secretsmanager.DescribeSecret",
                                                "Content-Type": "application/x-amz-json-1.1"})
        arn = None
        if r is not None and r.status == 200:
            try:
                arn = json.loads(r.body).get("ARN")
            except ValueError:
                arn = None
        self.secrets[key] = (arn, time.monotonic())
        return arn

    async def ses_identities(self, ctx, account: str) -> set:
        key = (account, ctx.region)
        hit = self.identities.get(key)
        if hit is not None and time.monotonic() - hit[1] < ROLE_TTL:
            return hit[0]
        names, token = set(), None
        for _ in range(20):
            params = {"PageSize": "1000"}
            if token:
                params["NextToken"] = token
            r = await self.upstream.signed("ses", ctx.region, ctx.access_key, "GET", "/v2/email/identities",
                                           params=params)
            if r is None or r.status != 200:
                break
            try:
                doc = json.loads(r.body)
            except ValueError:
                break
            for item in doc.get("EmailIdentities") or []:
                if item.get("IdentityName"):
                    names.add(item["IdentityName"].lower())
            token = doc.get("NextToken")
            if not token:
                break
        self.identities[key] = (names, time.monotonic())
        return names

