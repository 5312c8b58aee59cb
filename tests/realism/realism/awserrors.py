"""AWS error answers in each protocol's envelope, and which codes each service uses for a
constraint violation, throttling and server faults.  Sources are listed in docs/realism.md."""

from __future__ import annotations

import json
import struct
import uuid
from dataclasses import dataclass, field
from typing import Optional
from xml.sax.saxutils import escape

from realism.validate import Violation, coral_message


@dataclass
class AwsError:
    code: str
    message: str
    status: int = 400
    sender: bool = True
    extra: dict = field(default_factory=dict)  # extra XML elements (S3: BucketName, ArgumentName, ...)
    json_extra: dict = field(default_factory=dict)  # extra JSON members (Lambda: Reason)
    # The query protocol's code, sent by awsQueryCompatible JSON services (SQS) in the
    # x-amzn-query-error header ("AWS.SimpleQueueService.QueueDeletedRecently;Sender").
    query_code: str = ""


@dataclass
class Envelope:
    """What is needed to shape an error like the service does."""
    service: str  # botocore service name ("" if unknown)
    protocol: str
    json_version: Optional[str] = None
    xml_namespace: Optional[str] = None


def request_id() -> str:
    return str(uuid.uuid4())


def render(env: Envelope, err: AwsError) -> tuple:
    """(status, headers, body) of the error answer."""
    rid = request_id()
    p = env.protocol
    if p == "json":
        headers = {"Content-Type": "application/x-amz-json-%s" % (env.json_version or "1.0"),
                   "x-amzn-RequestId": rid}
        doc = {"__type": err.code, "message": err.message}
        doc.update(err.json_extra)
        if err.query_code:
            headers["x-amzn-query-error"] = "%s;%s" % (err.query_code, "Sender" if err.sender else "Receiver")
        return err.status, headers, json.dumps(doc).encode()
    if p == "rest-json":
        headers = {"Content-Type": "application/json", "x-amzn-RequestId": rid, "x-amzn-ErrorType": err.code}
        if env.service == "lambda":
            doc = {"Type": "User" if err.sender else "Service", "message": err.message}
        else:
            doc = {"message": err.message}
        doc.update(err.json_extra)
        return err.status, headers, json.dumps(doc).encode()
    if p == "smithy-rpc-v2-cbor":
        headers = {"Content-Type": "application/cbor", "smithy-protocol": "rpc-v2-cbor", "x-amzn-RequestId": rid}
        return err.status, headers, cbor_text_map({"__type": err.code, "message": err.message})
    if p == "ec2":
        body = ('<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>%s</Code>'
                "<Message>%s</Message></Error></Errors><RequestID>%s</RequestID></Response>"
                % (escape(err.code), escape(err.message), rid))
        return err.status, {"Content-Type": "text/xml;charset=UTF-8"}, body.encode()
    extra = "".join("<%s>%s</%s>" % (k, escape(str(v)), k) for k, v in err.extra.items())
    if p == "rest-xml" and env.service in ("s3", "s3control"):
        host_id = uuid.uuid4().hex
        body = ('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>%s</Code><Message>%s</Message>%s'
                "<RequestId>%s</RequestId><HostId>%s</HostId></Error>"
                % (escape(err.code), escape(err.message), extra, rid, host_id))
        headers = {"Content-Type": "application/xml", "x-amz-request-id": rid, "x-amz-id-2": host_id}
        return err.status, headers, body.encode()
    # query protocol and the other rest-xml services (CloudFront, Route 53): ErrorResponse/Error
    ns = env.xml_namespace
    if not ns and env.service == "cloudfront":
        ns = "http://cloudfront.amazonaws.com/doc/2020-05-31/"
    xmlns = ' xmlns="%s"' % escape(ns) if ns else ""
    body = ('<?xml version="1.0" encoding="UTF-8"?>\n<ErrorResponse%s><Error><Type>%s</Type><Code>%s</Code>'
            "<Message>%s</Message>%s</Error><RequestId>%s</RequestId></ErrorResponse>"
            % (xmlns, "Sender" if err.sender else "Receiver", escape(err.code), escape(err.message), extra, rid))
    return err.status, {"Content-Type": "text/xml", "x-amzn-RequestId": rid}, body.encode()


def cbor_text_map(d: dict) -> bytes:
    """A CBOR map of text keys to text values (enough for an rpc-v2-cbor error body)."""
    def head(major, n):
        if n < 24:
            return bytes([major << 5 | n])
        if n < 256:
            return bytes([major << 5 | 24, n])
        if n < 65536:
            return bytes([major << 5 | 25]) + struct.pack(">H", n)
        return bytes([major << 5 | 26]) + struct.pack(">I", n)

    out = head(5, len(d))
    for k, v in d.items():
        for s in (k, v):
            b = s.encode()
            out += head(3, len(b)) + b
    return out


# -- constraint violations ---------------------------------------------------------------

# service -> error code of a constraint violation (Coral-style message unless noted)
VALIDATION_CODES = {
    "lambda": "ValidationException",
    "iam": "ValidationError",
    "sts": "ValidationError",
    "cloudformation": "ValidationError",
    "ses": "ValidationError",
    "events": "ValidationException",
    "secretsmanager": "ValidationException",
    "logs": "InvalidParameterException",
    "apigateway": "BadRequestException",
    "sesv2": "BadRequestException",
    "transcribe": "BadRequestException",
    "mediaconvert": "BadRequestException",
}
_PROTOCOL_DEFAULTS = {
    "json": "ValidationException",
    "rest-json": "ValidationException",
    "smithy-rpc-v2-cbor": "ValidationException",
    "query": "ValidationError",
}


def validation_error(service: str, protocol: str, violations: list) -> AwsError:
    v0: Violation = violations[0]
    if protocol == "ec2":
        if v0.missing:
            return AwsError("MissingParameter", "The request must contain the parameter %s" % v0.top_name())
        return AwsError("InvalidParameterValue", "Value (%s) for parameter %s is invalid. %s"
                        % (v0.render_value() or "", _query_param_name(v0), v0.constraint))
    if service == "rds":
        if v0.missing:
            return AwsError("InvalidParameterValue",
                            "The parameter %s must be provided and must not be empty." % v0.top_name())
        return AwsError("InvalidParameterValue", "Invalid value '%s' for parameter %s: %s"
                        % (v0.render_value() or "", _query_param_name(v0), v0.constraint))
    if service == "s3":
        if v0.missing:
            return AwsError("MalformedXML" if _in_body(v0) else "InvalidRequest",
                            "The XML you provided was not well-formed or did not validate against our "
                            "published schema" if _in_body(v0) else "Missing required parameter %s" % v0.top_name())
        return AwsError("InvalidArgument", "Invalid value for %s: %s" % (v0.top_name(), v0.constraint),
                        extra={"ArgumentName": v0.top_name(), "ArgumentValue": v0.render_value() or ""})
    if service == "cloudfront":
        code = "MalformedXML" if all(v.missing for v in violations) else "InvalidArgument"
        return AwsError(code, coral_message(violations))
    code = VALIDATION_CODES.get(service) or _PROTOCOL_DEFAULTS.get(protocol, "InvalidArgument")
    return AwsError(code, coral_message(violations))


def _in_body(v: Violation) -> bool:
    return len(v.path) > 1


def _query_param_name(v: Violation) -> str:
    return ".".join(str(p) for p in v.path)


# -- faults -------------------------------------------------------------------------------

# (code, status, message) of a throttling answer, per service, then per protocol
THROTTLING = {
    "lambda": ("TooManyRequestsException", 429, "Rate Exceeded."),
    "apigateway": ("TooManyRequestsException", 429, "Too Many Requests"),
    "sesv2": ("TooManyRequestsException", 429, "Too many requests."),
    "mediaconvert": ("TooManyRequestsException", 429, "Too many requests."),
    "events": ("ThrottlingException", 400, "Rate exceeded"),
    "secretsmanager": ("ThrottlingException", 400, "Rate exceeded"),
    "logs": ("ThrottlingException", 400, "Rate exceeded"),
    "transcribe": ("LimitExceededException", 400,
                   "You have sent too many requests in too short a period of time. Wait and try again."),
    "s3": ("SlowDown", 503, "Please reduce your request rate."),
    "cloudfront": ("Throttling", 400, "Rate exceeded"),
    "ec2": ("RequestLimitExceeded", 503, "Request limit exceeded."),
}
_THROTTLING_DEFAULTS = {
    "query": ("Throttling", 400, "Rate exceeded"),
    "json": ("ThrottlingException", 400, "Rate exceeded"),
    "rest-json": ("TooManyRequestsException", 429, "Too Many Requests"),
    "rest-xml": ("Throttling", 400, "Rate exceeded"),
    "smithy-rpc-v2-cbor": ("ThrottlingException", 400, "Rate exceeded"),
}
INTERNAL = {
    "lambda": ("ServiceException", "An internal error occurred."),
    "s3": ("InternalError", "We encountered an internal error. Please try again."),
    "ec2": ("InternalError", "An internal error has occurred"),
    "iam": ("ServiceFailure", "Request processing has failed because of an unknown error, exception or failure."),
}


def throttling_error(service: str, protocol: str) -> AwsError:
    code, status, msg = THROTTLING.get(service) or _THROTTLING_DEFAULTS.get(protocol, ("ThrottlingException", 400,
                                                                                      "Rate exceeded"))
    err = AwsError(code, msg, status)
    if service == "lambda":
        err.json_extra = {"Reason": "CallerRateLimitExceeded"}
    return err


def internal_error(service: str) -> AwsError:
    code, msg = INTERNAL.get(service, ("InternalFailure", "The request processing has failed because of an "
                                                         "unknown error, exception or failure."))
    return AwsError(code, msg, 500, sender=False)


def unavailable_error(service: str) -> AwsError:
    if service == "ec2":
        return AwsError("Unavailable", "The server is overloaded and can't handle the request.", 503, sender=False)
    return AwsError("ServiceUnavailable", "Service is unavailable. Please try again later.", 503, sender=False)
