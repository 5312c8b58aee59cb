"""Answers an emulator gives in a shape AWS never uses, put back into AWS's shape, so that a
client is proven against AWS's answers rather than an emulator's bug.

- moto answers GetBucketNotificationConfiguration of a bucket without notifications with an
  empty `<GetBucketNotificationResponse/>`; S3 answers an empty `<NotificationConfiguration/>`
  (S3 API reference, GetBucketNotificationConfiguration: "If notifications are not enabled on
  the bucket, the action returns an empty NotificationConfiguration element").
- moto ignores `binaryMediaTypes` in CreateRestApi and, for the patch operations AWS documents
  for them (`{"op": "add", "path": "/binaryMediaTypes/multipart~1form-data"}`, no value),
  adds or removes an empty string. API Gateway takes both (API Gateway API reference,
  CreateRestApi and "Patch operations"): the proxy adds the value moto needs to the patch, and
  sends moto the types CreateRestApi named.  (moto only.)
- ministack and moto answer GetSecretValue of a secret made without a value with 200 and no
  `SecretString`; Secrets Manager answers `ResourceNotFoundException` ("Secrets Manager can't
  find the specified secret value for staging label: AWSCURRENT"): CreateSecret without a
  value makes no version (Secrets Manager API reference, CreateSecret)."""

from __future__ import annotations

import json
import re

from typing import TYPE_CHECKING

from realism.upstream import Resp

if TYPE_CHECKING:  # proxy imports this module
    from realism.proxy import Ctx

S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/"


def wants(ctx: "Ctx", upstream_name: str) -> bool:
    if upstream_name == "moto" and ctx.is_("apigateway", "CreateRestApi"):
        return True
    return ctx.is_("s3", "GetBucketNotificationConfiguration") or ctx.is_("secretsmanager", "GetSecretValue")


def _unescape(path_part: str) -> str:
    return path_part.replace("~1", "/").replace("~0", "~")


def before(ctx: "Ctx", upstream_name: str) -> None:
    """Rewrites a request the emulator would misread (the request reaching AWS is unchanged)."""
    if upstream_name != "moto" or not ctx.is_("apigateway", "UpdateRestApi"):
        return
    try:
        doc = json.loads(ctx.req.body or b"{}")
    except ValueError:
        return
    changed = False
    for op in doc.get("patchOperations") or []:
        path = op.get("path") or ""
        if op.get("op") in ("add", "remove") and path.startswith("/binaryMediaTypes/") and "value" not in op:
            op["value"] = _unescape(path[len("/binaryMediaTypes/"):])
            changed = True
    if changed:
        ctx.saw("quirk")
        ctx.req.body = json.dumps(doc).encode()


async def after_create_rest_api(ctx: "Ctx", resp: Resp, upstream) -> Resp:
    """moto dropped the binary media types of CreateRestApi: sends them to it as AWS keeps them."""
    types = ctx.p("binaryMediaTypes") or []
    if resp.status >= 300 or not types:
        return resp
    try:
        api = json.loads(resp.body)
    except ValueError:
        return resp
    missing = [t for t in types if t not in (api.get("binaryMediaTypes") or [])]
    if not missing or not api.get("id"):
        return resp
    ops = [{"op": "add", "path": "/binaryMediaTypes/" + t.replace("~", "~0").replace("/", "~1"), "value": t}
           for t in missing]
    r = await upstream.signed("apigateway", ctx.region, ctx.access_key, "PATCH", "/restapis/%s" % api["id"],
                              json_body=json.dumps({"patchOperations": ops}).encode(),
                              headers={"Content-Type": "application/json"})
    if r is not None and r.status < 300:
        ctx.saw("quirk")
        api["binaryMediaTypes"] = (api.get("binaryMediaTypes") or []) + missing
        resp.body = json.dumps(api).encode()
    return resp


def _secret_without_value(resp: Resp) -> bool:
    try:
        doc = json.loads(resp.body or b"{}")
    except ValueError:
        return False
    return isinstance(doc, dict) and "SecretString" not in doc and "SecretBinary" not in doc


def fix(ctx: "Ctx", resp: Resp) -> Resp:
    if ctx.is_("secretsmanager", "GetSecretValue") and resp.status == 200 and _secret_without_value(resp):
        ctx.saw("quirk")
        ctx.note = "the emulator answered a secret without a value; AWS has no AWSCURRENT version"
        label = ctx.p("VersionStage") or "AWSCURRENT"
        resp.status = 400
        resp.headers["Content-Type"] = "application/x-amz-json-1.1"
        resp.body = json.dumps({
            "__type": "ResourceNotFoundException",
            "message": "Secrets Manager can't find the specified secret value for staging label: %s" % label,
        }).encode()
        return resp
    if ctx.is_("s3", "GetBucketNotificationConfiguration") and resp.status == 200:
        body = resp.body.decode("utf-8", "replace")
        root = re.search(r"<([A-Za-z]+)[\s/>]", body.split("?>", 1)[-1])
        if root and root.group(1) != "NotificationConfiguration":
            ctx.saw("quirk")
            ctx.note = "the emulator answered <%s>; AWS answers <NotificationConfiguration>" % root.group(1)
            resp.body = ('<?xml version="1.0" encoding="UTF-8"?>\n<NotificationConfiguration xmlns="%s"/>'
                         % S3_NS).encode()
    return resp
