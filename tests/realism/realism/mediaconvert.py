"""AWS Elemental MediaConvert, which ministack lacks, answered by the proxy for what a job
submitter uses: CreateJob, GetJob, ListJobs, DescribeEndpoints (and CancelJob).  Requests are
validated against the model as every other (proxy.py), then IAM-checked (iam.py), then answered
here; jobs live in memory (and in the call log) and stay SUBMITTED: no media is converted.

On when the upstream is ministack (`--name ministack`), or as set by the `mediaconvert` knob."""

from __future__ import annotations

import json
import random
import string
import time
import uuid
from typing import Optional
from urllib.parse import unquote

from realism.awserrors import AwsError
from realism.proxy import Answer, Ctx

# MediaConvert CreateJob: "If you reuse a client request token within one minute of a successful
# request, the API returns the job details of the original request instead" (API reference,
# CreateJob, clientRequestToken).
TOKEN_WINDOW = 60.0


def _job_id() -> str:
    # The shape of MediaConvert's ids: milliseconds since the epoch, a dash, six characters
    # (e.g. 1234567891234-a9abcd in the MediaConvert user guide).
    return "%d-%s" % (int(time.time() * 1000), "".join(random.choices(string.ascii_lowercase + string.digits, k=6)))


def _s3_arn(uri: str, prefix: bool) -> Optional[str]:
    if not isinstance(uri, str) or not uri.startswith("s3://"):
        return None
    path = uri[len("s3://"):]
    return "arn:aws:s3:::%s%s" % (path, "*" if prefix else "")


def job_access(settings: dict) -> list:
    """(action, resource) pairs a job needs of its role: read every input, write under every
    output group's destination."""
    needs = []
    for item in settings.get("inputs") or []:
        arn = _s3_arn(item.get("fileInput"), prefix=False)
        if arn:
            needs.append(("s3:GetObject", arn))
    for group in settings.get("outputGroups") or []:
        for key, value in (group.get("outputGroupSettings") or {}).items():
            if isinstance(value, dict):
                arn = _s3_arn(value.get("destination"), prefix=True)
                if arn:
                    needs.append(("s3:PutObject", arn))
    return needs


class MediaConvert:
    def __init__(self, proxy):
        self.proxy = proxy
        self.jobs: dict = {}  # (account, region, id) -> job document (the service's JSON)
        self.tokens: dict = {}  # (account, region, token) -> (id, time)

    def enabled(self) -> bool:
        setting = self.proxy.config.mediaconvert
        return (self.proxy.name == "ministack") if setting is None else bool(setting)

    def reset(self):
        self.jobs.clear()
        self.tokens.clear()

    def describe(self) -> dict:
        return {"enabled": self.enabled(), "jobs": len(self.jobs)}

    async def answer(self, ctx: Ctx) -> Optional[Answer]:
        if ctx.ident is None or ctx.service != "mediaconvert" or not self.enabled():
            return None
        op = ctx.op
        account = ctx.access_key if ctx.access_key.isdigit() and len(ctx.access_key) == 12 else "000000000000"
        handler = {"CreateJob": self._create, "GetJob": self._get, "ListJobs": self._list,
                   "DescribeEndpoints": self._endpoints, "CancelJob": self._cancel}.get(op)
        ctx.saw("mediaconvert")
        if handler is None:
            ctx.note = "MediaConvert %s is not emulated" % op
            return ctx.error(AwsError("BadRequestException", "The operation %s is not supported by the local "
                                      "MediaConvert." % op, 400), "answered:mediaconvert")
        ctx.verdict = "answered:mediaconvert"
        answer = handler(ctx, account)
        if op == "CreateJob" and answer.status == 201:
            await self._run_as_role(ctx, account, answer)
        return answer

    async def _run_as_role(self, ctx: Ctx, account: str, answer: Answer):
        """MediaConvert reads the inputs and writes the outputs with the job's role (the role
        passed in `CreateJob`): the proxy evaluates that access as the job would need it, records
        it with the call, and ends the job in ERROR when the role lacks it (MediaConvert reports
        such jobs as failed; the API call itself succeeded)."""
        doc = json.loads(answer.body)
        job = doc["job"]
        needs = job_access(job.get("settings") or {})
        if not needs or not job.get("role"):
            return
        results = await self.proxy.iam.evaluate_with_role(ctx, account, job["role"], needs,
                                                         via="mediaconvert.amazonaws.com")
        refused = [r for r in results if r["decision"] in ("ImplicitlyDenied", "ExplicitlyDenied")]
        if refused:
            first = refused[0]
            job["status"] = "ERROR"
            job["errorCode"] = 1401
            job["errorMessage"] = "Access denied: the job's role may not %s %s" % (first["action"], first["resource"])
            self.jobs[(account, ctx.region, job["id"])] = job
            answer.body = json.dumps({"job": job}).encode()
            ctx.note = "MediaConvert job %s ERROR: %s" % (job["id"], job["errorMessage"])

    @staticmethod
    def _json(status: int, doc: dict) -> Answer:
        return Answer(status, {"Content-Type": "application/json", "x-amzn-RequestId": str(uuid.uuid4())},
                      json.dumps(doc).encode())

    def _raw(self, ctx: Ctx) -> dict:
        try:
            doc = json.loads(ctx.req.body or b"{}")
        except ValueError:
            doc = {}
        return doc if isinstance(doc, dict) else {}

    def _create(self, ctx: Ctx, account: str) -> Answer:
        region = ctx.region
        raw = self._raw(ctx)
        token = raw.get("clientRequestToken")
        now = time.time()
        if token:
            hit = self.tokens.get((account, region, token))
            if hit is not None and now - hit[1] < TOKEN_WINDOW and (account, region, hit[0]) in self.jobs:
                ctx.note = "clientRequestToken %s reused: job %s" % (token, hit[0])
                return self._json(201, {"job": self.jobs[(account, region, hit[0])]})
        jid = _job_id()
        queue = raw.get("queue") or "Default"
        if not str(queue).startswith("arn:"):
            queue = "arn:aws:mediaconvert:%s:%s:queues/%s" % (region, account, queue)
        job = {
            "arn": "arn:aws:mediaconvert:%s:%s:jobs/%s" % (region, account, jid),
            "id": jid,
            "status": "SUBMITTED",
            "role": raw.get("role"),
            "settings": raw.get("settings") or {},
            "userMetadata": raw.get("userMetadata") or {},
            "queue": queue,
            "createdAt": int(now),
            "timing": {"submitTime": int(now)},
            "accelerationStatus": "NOT_APPLICABLE",
            "statusUpdateInterval": raw.get("statusUpdateInterval") or "SECONDS_60",
            "priority": raw.get("priority") or 0,
            "messages": {"info": [], "warning": []},
            "warnings": [],
        }
        for k in ("clientRequestToken", "jobTemplate", "billingTagsSource", "accelerationSettings",
                  "hopDestinations", "simulateReservedQueue", "jobEngineVersion"):
            if raw.get(k) is not None:
                job[k] = raw[k]
        if raw.get("jobEngineVersion"):
            job["jobEngineVersionRequested"] = raw["jobEngineVersion"]
        self.jobs[(account, region, jid)] = job
        if token:
            self.tokens[(account, region, token)] = (jid, now)
        ctx.note = "MediaConvert job %s SUBMITTED (not run)" % jid
        return self._json(201, {"job": job})

    def _not_found(self, ctx: Ctx, jid: str) -> Answer:
        ctx.verdict = "answered:mediaconvert"
        return ctx.error(AwsError("NotFoundException", "The specified job %s was not found." % jid, 404),
                         "answered:mediaconvert")

    def _get(self, ctx: Ctx, account: str) -> Answer:
        jid = unquote(str(ctx.p("Id") or ""))
        job = self.jobs.get((account, ctx.region, jid))
        if job is None:
            return self._not_found(ctx, jid)
        return self._json(200, {"job": job})

    def _cancel(self, ctx: Ctx, account: str) -> Answer:
        jid = unquote(str(ctx.p("Id") or ""))
        job = self.jobs.get((account, ctx.region, jid))
        if job is None:
            return self._not_found(ctx, jid)
        job["status"] = "CANCELED"
        return self._json(202, {})

    def _list(self, ctx: Ctx, account: str) -> Answer:
        region = ctx.region
        jobs = [j for (a, r, _), j in self.jobs.items() if a == account and r == region]
        status = ctx.p("Status")
        if status:
            jobs = [j for j in jobs if j["status"] == status]
        queue = ctx.p("Queue")
        if queue:
            arn = queue if str(queue).startswith("arn:") else "arn:aws:mediaconvert:%s:%s:queues/%s" % (
                region, account, queue)
            jobs = [j for j in jobs if j.get("queue") == arn]
        jobs.sort(key=lambda j: (j["createdAt"], j["id"]), reverse=(ctx.p("Order") or "DESCENDING") == "DESCENDING")
        start = int(ctx.p("NextToken") or 0) if str(ctx.p("NextToken") or "0").isdigit() else 0
        size = int(ctx.p("MaxResults") or 20)
        page = jobs[start:start + size]
        doc = {"jobs": page}
        if start + size < len(jobs):
            doc["nextToken"] = str(start + size)
        return self._json(200, doc)

    def _endpoints(self, ctx: Ctx, account: str) -> Answer:
        # The account's endpoint is this proxy (MediaConvert has deprecated DescribeEndpoints in
        # favour of the regional endpoint; an old client still gets a usable URL).
        host = ctx.req.host or (self.proxy.listen or "127.0.0.1:4566")
        return self._json(200, {"endpoints": [{"url": "http://%s" % host}]})
