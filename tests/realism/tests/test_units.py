"""The proxy's parts without an emulator: identification, parsing, validation, errors, config."""

import asyncio
import json
import xml.etree.ElementTree as ET

import pytest
from multidict import CIMultiDict

from realism import awserrors
from realism.awserrors import AwsError, Envelope
from realism.behaviours import Deferred, Fn, World, _policy_allows, fn_name
from realism.botomodel import Blob, ModelIndex, Request, Signature, parse_params, parse_signature, s3_vhost_bucket
from realism.config import Config, parse_duration
from realism.validate import Patterns, Validator, _java_to_python


@pytest.fixture(scope="module")
def index():
    return ModelIndex()


def req(method="POST", path="/", query=(), headers=None, body=b"", host="127.0.0.1:4566"):
    return Request(method, path, list(query), CIMultiDict(headers or {}), body, host)


def ident(index, service, r):
    return index.identify(Signature("AKID", "us-east-1", service), r)


def test_signature_from_header_and_query():
    h = CIMultiDict({"Authorization": "AWS4-HMAC-SHA256 Credential=AKID/20260101/eu-west-1/lambda/aws4_request, "
                                      "SignedHeaders=host, Signature=abc"})
    s = parse_signature(h, [])
    assert (s.access_key, s.region, s.service) == ("AKID", "eu-west-1", "lambda")
    s = parse_signature(CIMultiDict(), [("X-Amz-Credential", "K/20260101/us-east-1/s3/aws4_request")])
    assert (s.access_key, s.service) == ("K", "s3")
    assert parse_signature(CIMultiDict({"Authorization": "Bearer x"}), []) is None


def test_s3_operations(index):
    i = ident(index, "s3", req("PUT", "/bkt/a/b.txt", [("x-id", "PutObject")]))
    assert (i.service, i.operation, i.labels) == ("s3", "PutObject", {"Bucket": "bkt", "Key": "a/b.txt"})
    i = ident(index, "s3", req("PUT", "/bkt/a/b.txt", headers={"x-amz-copy-source": "/o/k"}))
    assert i.operation == "CopyObject"
    i = ident(index, "s3", req("PUT", "/bkt/k", [("partNumber", "1"), ("uploadId", "u")]))
    assert i.operation == "UploadPart"
    i = ident(index, "s3", req("PUT", "/bkt/k"))
    assert i.operation == "PutObject"
    assert ident(index, "s3", req("PUT", "/bkt", [("tagging", "")])).operation == "PutBucketTagging"
    assert ident(index, "s3", req("GET", "/bkt", [("list-type", "2")])).operation == "ListObjectsV2"
    assert ident(index, "s3", req("GET", "/bkt")).operation == "ListObjects"
    assert ident(index, "s3", req("GET", "/")).operation == "ListBuckets"
    assert ident(index, "s3", req("PUT", "/bkt")).operation == "CreateBucket"
    assert ident(index, "s3", req("DELETE", "/bkt", [("policy", "")])).operation == "DeleteBucketPolicy"
    i = ident(index, "s3", req("GET", "/k.txt", host="bkt.s3.localhost:4566"))
    assert (i.operation, i.labels["Bucket"], i.labels["Key"]) == ("GetObject", "bkt", "k.txt")
    i = ident(index, "s3", req("GET", "/dir/%ED%9A%8C%EC%9D%98.mp3", host="my-bucket.localhost:4566"))
    assert i.labels == {"Bucket": "my-bucket", "Key": "dir/회의.mp3"}


def test_vhost_bucket():
    assert s3_vhost_bucket("b.s3.amazonaws.com") == "b"
    assert s3_vhost_bucket("my.bucket.s3.us-east-1.amazonaws.com") == "my.bucket"
    assert s3_vhost_bucket("b.localhost:4566") == "b"
    assert s3_vhost_bucket("127.0.0.1:4566") is None
    assert s3_vhost_bucket("localhost:4566") is None
    assert s3_vhost_bucket("s3.amazonaws.com") is None


def test_ses_v1_and_v2_share_a_signing_name(index):
    v1 = ident(index, "ses", req(body=b"Action=SendEmail&Version=2010-12-01&Source=a%40b.c",
                                 headers={"Content-Type": "application/x-www-form-urlencoded"}))
    assert (v1.service, v1.protocol) == ("ses", "query")
    v2 = ident(index, "ses", req("POST", "/v2/email/outbound-emails", headers={"Content-Type": "application/json"},
                                 body=b"{}"))
    assert (v2.service, v2.operation, v2.protocol) == ("sesv2", "SendEmail", "rest-json")


def test_rds_not_docdb(index):
    i = ident(index, "rds", req(body=b"Action=CreateDBInstance&Version=2014-10-31",
                                headers={"Content-Type": "application/x-www-form-urlencoded"}))
    assert i.service == "rds"


def test_json_target(index):
    i = ident(index, "transcribe", req(headers={"X-Amz-Target": "Transcribe.StartTranscriptionJob"}, body=b"{}"))
    assert (i.service, i.operation, i.protocol) == ("transcribe", "StartTranscriptionJob", "json")
    assert ident(index, "events", req(headers={"X-Amz-Target": "AWSEvents.PutRule"})).service == "events"


def test_query_parsing_lists_and_maps(index):
    body = ("Action=CreateRole&Version=2010-05-08&RoleName=r&AssumeRolePolicyDocument=%7B%7D"
            "&Tags.member.1.Key=k1&Tags.member.1.Value=v1&Tags.member.2.Key=k2&Tags.member.2.Value=v2"
            "&MaxSessionDuration=3600").encode()
    r = req(body=body, headers={"Content-Type": "application/x-www-form-urlencoded"})
    i = ident(index, "iam", r)
    p = parse_params(i, r)
    assert p == {"RoleName": "r", "AssumeRolePolicyDocument": "{}", "MaxSessionDuration": 3600,
                 "Tags": [{"Key": "k1", "Value": "v1"}, {"Key": "k2", "Value": "v2"}]}
    body = b"Action=CreateDBSubnetGroup&Version=2014-10-31&DBSubnetGroupName=g&DBSubnetGroupDescription=d" \
           b"&SubnetIds.SubnetIdentifier.1=subnet-1&SubnetIds.SubnetIdentifier.2=subnet-2"
    r = req(body=body, headers={"Content-Type": "application/x-www-form-urlencoded"})
    p = parse_params(ident(index, "rds", r), r)
    assert p["SubnetIds"] == ["subnet-1", "subnet-2"]


def test_ec2_parsing(index):
    body = (b"Action=DescribeNetworkInterfaces&Version=2016-11-15&Filter.1.Name=group-id&Filter.1.Value.1=sg-1"
            b"&Filter.1.Value.2=sg-2&NetworkInterfaceId.1=eni-1")
    r = req(body=body, headers={"Content-Type": "application/x-www-form-urlencoded"})
    i = ident(index, "ec2", r)
    assert i.protocol == "ec2"
    p = parse_params(i, r)
    assert p == {"Filters": [{"Name": "group-id", "Values": ["sg-1", "sg-2"]}], "NetworkInterfaceIds": ["eni-1"]}


def test_rest_xml_parsing(index):
    xml = (b'<?xml version="1.0"?><DistributionConfig xmlns="http://cloudfront.amazonaws.com/doc/2020-05-31/">'
           b"<CallerReference>r</CallerReference><Origins><Quantity>1</Quantity><Items><Origin><Id>o</Id>"
           b"<DomainName>d</DomainName></Origin></Items></Origins><Enabled>true</Enabled></DistributionConfig>")
    r = req("POST", "/2020-05-31/distribution", body=xml)
    i = ident(index, "cloudfront", r)
    assert i.operation == "CreateDistribution"
    p = parse_params(i, r)
    dc = p["DistributionConfig"]
    assert dc["Enabled"] is True and dc["Origins"]["Items"] == [{"Id": "o", "DomainName": "d"}]
    violations = Validator().validate(i.op_model, p, i.protocol)
    missing = sorted(v.coral_path() for v in violations if v.missing)
    assert "distributionConfig.comment" in missing and "distributionConfig.defaultCacheBehavior" in missing


def test_rest_json_labels_query_and_blobs(index):
    r = req("POST", "/2015-03-31/functions/my%20fn/invocations", headers={"X-Amz-Invocation-Type": "Event"},
            body=b'{"a": 1}')
    i = ident(index, "lambda", r)
    p = parse_params(i, r)
    assert p["FunctionName"] == "my fn" and p["InvocationType"] == "Event" and isinstance(p["Payload"], Blob)
    r = req("GET", "/2015-03-31/functions/", [("MaxItems", "5")])
    i = ident(index, "lambda", r)
    assert i.operation == "ListFunctions" and parse_params(i, r) == {"MaxItems": 5}


def test_java_patterns():
    p = Patterns()
    assert p.get(r"[\w+=,.@-]+").fullmatch("my_role")
    assert not p.get(r"[\w+=,.@-]+").fullmatch("회의")  # Java's \w is ASCII
    assert p.get(r"[\p{L}\p{Z}]+").fullmatch("회의 녹음")
    assert not p.get(r"^[0-9a-zA-Z._-]+").fullmatch("a b")  # the whole value
    assert _java_to_python(r"\d+[\s\w]") == "[0-9]+[ \\t\\n\\x0B\\f\\rA-Za-z0-9_]"
    assert p.get("[unclosed") is None and "[unclosed" in p.failed


def test_error_envelopes():
    err = AwsError("ValidationError", "m")
    status, h, body = awserrors.render(Envelope("iam", "query", xml_namespace="https://iam.amazonaws.com/doc/2010-05-08/"), err)
    root = ET.fromstring(body)
    assert status == 400 and root.tag.endswith("ErrorResponse")
    ns = {"n": "https://iam.amazonaws.com/doc/2010-05-08/"}
    assert root.find("n:Error/n:Code", ns).text == "ValidationError"
    assert root.find("n:Error/n:Type", ns).text == "Sender"
    status, h, body = awserrors.render(Envelope("ec2", "ec2"), AwsError("MissingParameter", "m"))
    assert ET.fromstring(body).find("Errors/Error/Code").text == "MissingParameter"
    status, h, body = awserrors.render(Envelope("s3", "rest-xml"), AwsError("NoSuchBucket", "m", 404,
                                                                          extra={"BucketName": "b"}))
    root = ET.fromstring(body)
    assert root.tag == "Error" and root.find("BucketName").text == "b" and h["x-amz-request-id"]
    status, h, body = awserrors.render(Envelope("events", "json", "1.1"), AwsError("ValidationException", "m"))
    assert json.loads(body)["__type"] == "ValidationException" and h["Content-Type"] == "application/x-amz-json-1.1"
    status, h, body = awserrors.render(Envelope("lambda", "rest-json"), AwsError("ServiceException", "m", 500,
                                                                              sender=False))
    assert h["x-amzn-ErrorType"] == "ServiceException" and json.loads(body) == {"Type": "Service", "message": "m"}
    status, h, body = awserrors.render(Envelope("cloudfront", "rest-xml"), AwsError("InvalidArgument", "m"))
    assert b'xmlns="http://cloudfront.amazonaws.com/doc/2020-05-31/"' in body
    assert awserrors.cbor_text_map({"a": "b"}) == bytes([0xA1, 0x61, ord("a"), 0x61, ord("b")])


def test_config_durations_and_modes():
    c = Config(mode="test", seed=3)
    assert c.effective_time_scale == 0.02 and c.effective_fault_rate == 0.05
    lo, hi = c.durations["rds_creating"]
    assert lo * 0.02 <= c.draw("rds_creating") <= hi * 0.02
    assert 0.15 <= c.draw("s3_conflicting_writes") <= 0.4  # not scaled
    assert parse_duration("cloudfront_deploy=1-2") == ("cloudfront_deploy", (1.0, 2.0))
    assert parse_duration("iam_propagation=3") == ("iam_propagation", (3.0, 3.0))
    with pytest.raises(ValueError):
        parse_duration("nope=1")
    v = Config(mode="validate")
    assert v.effective_fault_rate == 0 and not v.timing
    a, b = Config(seed=8), Config(seed=8)
    assert [a.draw("iam_propagation") for _ in range(5)] == [b.draw("iam_propagation") for _ in range(5)]


def test_policy_evaluation():
    doc = json.dumps({"Statement": [{"Effect": "Allow", "Action": "ec2:*", "Resource": "*"}]})
    assert _policy_allows(doc, "ec2:DeleteNetworkInterface") is True
    assert _policy_allows("%7B%22Statement%22%3A%5B%5D%7D", "ec2:DeleteNetworkInterface") is None
    deny = json.dumps({"Statement": [{"Effect": "Allow", "Action": "*"},
                                     {"Effect": "Deny", "Action": ["ec2:DeleteNetwork*"]}]})
    assert _policy_allows(deny, "ec2:DeleteNetworkInterface") is False


def test_function_names():
    assert fn_name("f") == "f"
    assert fn_name("arn:aws:lambda:us-east-1:000000000000:function:f:prod") == "f"
    assert fn_name("000000000000:function:f") == "f"
    assert fn_name("f:$LATEST") == "f"


class _FakeUpstream:
    def __init__(self, status, body):
        self.status, self.body = status, body

    async def call(self, *a):
        from realism.upstream import Resp
        return Resp(self.status, CIMultiDict(), self.body)


class _FakeProxy:
    def __init__(self, upstream, tmp_path):
        from realism.calllog import CallLog
        self.config = Config(mode="test", seed=1)
        self.upstream = upstream
        self.calls = CallLog(str(tmp_path), "unit")


def test_failed_deferred_update_reports_failed(tmp_path):
    proxy = _FakeProxy(_FakeUpstream(400, b'{"Type":"User","message":"Unzipped size must be smaller"}'), tmp_path)
    world = World(proxy)
    fn = world.functions["f"] = Fn("f", arn="arn:aws:lambda:us-east-1:000000000000:function:f")
    d = Deferred("PUT", "/2015-03-31/functions/f/code", CIMultiDict(), b"{}", "sha", 1)
    fn.deferred = d
    asyncio.run(world._send_deferred(fn, d))
    assert fn.deferred is None and fn.failed_reason == "Unzipped size must be smaller"
    conf = {"State": "Active"}

    class C:
        behaviours, verdict = [], "forwarded"

        def touched(self, b):
            self.behaviours.append(b)

    world._rewrite_config(fn, conf, 0.0, C())
    assert conf["LastUpdateStatus"] == "Failed" and conf["LastUpdateStatusReason"].startswith("Unzipped")
    assert proxy.calls.ring[-1]["verdict"] == "timing:lambda_update"


def test_cli_help_documents_every_knob():
    import os
    import subprocess
    import sys
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-m", "realism", "--help"], cwd=here, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    for knob in ("--listen", "--upstream", "--name", "--log-dir", "--mode", "--seed", "--time-scale", "--fault-rate",
                 "--duration", "--exempt-access-key", "--behaviours", "--fault-kinds", "lambda_eni_release=1200-2700"):
        assert knob in out.stdout
    bad = subprocess.run([sys.executable, "-m", "realism", "--upstream", "http://127.0.0.1:1", "--duration", "x=1"],
                         cwd=here, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 64 and "NAME=LO[-HI]" in bad.stderr
