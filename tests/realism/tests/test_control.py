"""The control API: config, the call log, injections, reset."""

import json
import urllib.error
import urllib.request

import pytest
from botocore.exceptions import ClientError

from conftest import error_of, function_zip, make_role, unique, wait_until


def test_config_roundtrip_and_errors(ms):
    r = ms.realism
    cfg = r.config()
    assert cfg["mode"] == "test" and cfg["fault_rate"] == 0 and cfg["time_scale"] == 1
    cfg = r.config(durations={"cloudfront_deploy": "10-20", "rds_creating": [1, 2]}, seed=42)
    assert cfg["durations"]["cloudfront_deploy"] == [10, 20] and cfg["durations"]["rds_creating"] == [1, 2]
    assert cfg["seed"] == 42
    for bad in ({"mode": "chaos"}, {"fault_rate": 2}, {"durations": {"nope": 1}}, {"behaviours": ["nope"]},
                {"colour": "blue"}):
        req = urllib.request.Request(ms.endpoint + "/_realism/config", data=json.dumps(bad).encode(), method="PUT")
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=10)
        assert e.value.code == 400
    assert r.config()["seed"] == 42  # a refused update changes nothing


def test_mode_defaults(ms):
    cfg = ms.realism.config(time_scale=None, fault_rate=None)
    assert (cfg["time_scale"], cfg["fault_rate"]) == (0.02, 0.05)
    cfg = ms.realism.config(mode="validate")
    assert cfg["mode"] == "validate"


def test_call_log_shows_verdicts_and_key_parameters(ms):
    iam, lam = ms.client("iam"), ms.client("lambda")
    since = ms.realism.last_seq()
    role = make_role(iam)
    with pytest.raises(ClientError):
        iam.create_role(RoleName="bad name", AssumeRolePolicyDocument="{}")
    ms.realism.config(durations={"iam_propagation": [5, 5]})
    role2 = make_role(iam)
    with pytest.raises(ClientError):
        lam.create_function(FunctionName=unique("fn"), Runtime="provided.al2023", Role=role2, Handler="bootstrap",
                            Code={"ZipFile": function_zip("1")})
    calls = ms.realism.calls(since=since)
    verdicts = [(c["service"], c["operation"], c["verdict"]) for c in calls]
    assert verdicts == [("iam", "CreateRole", "forwarded"), ("iam", "CreateRole", "invalid:ValidationError"),
                        ("iam", "CreateRole", "forwarded"), ("lambda", "CreateFunction", "timing:iam_propagation")]
    assert calls[0]["params"]["RoleName"] == role.rsplit("/", 1)[1]
    assert "AssumeRolePolicyDocument" in calls[0]["params"]
    assert calls[3]["status"] == 400 and "ZipFile" not in json.dumps(calls[3]["params"])
    assert [c["seq"] for c in calls] == sorted(c["seq"] for c in calls)
    only = ms.realism.calls(since=since, verdict="invalid")
    assert [c["verdict"] for c in only] == ["invalid:ValidationError"]
    assert ms.realism.calls(since=since, service="lambda", operation="CreateFunction")[0]["access_key"] == "test"
    with open("%s/ministack.calls.jsonl" % ms.realism.log_dir) as f:
        lines = [json.loads(line) for line in f]
    assert [line["seq"] for line in lines if line["seq"] > since][:4] == [c["seq"] for c in calls[:4]]


def test_injection(ms):
    tr = ms.client("transcribe")
    inj = ms.realism.inject(service="transcribe", operation="StartTranscriptionJob", code="BadRequestException",
                            message="forced by the test", status=400, count=1, match="special-job")
    assert inj["count"] == 1
    tr.list_transcription_jobs()  # another operation: untouched
    with pytest.raises(ClientError) as e:
        tr.start_transcription_job(TranscriptionJobName="special-job", Media={"MediaFileUri": "s3://b/k.mp3"})
    assert error_of(e) == ("BadRequestException", 400, "forced by the test")
    assert ms.realism.calls(operation="StartTranscriptionJob")[-1]["verdict"] == "injected:BadRequestException"
    # used up: the next one reaches the emulator
    name = unique("job")
    try:
        tr.start_transcription_job(TranscriptionJobName=name, Media={"MediaFileUri": "s3://b/k.mp3"})
    except ClientError as err:
        assert err.response["Error"]["Code"] != "BadRequestException" or "forced" not in str(err)
    assert ms.realism.calls(operation="StartTranscriptionJob")[-1]["verdict"] == "forwarded"


def test_injection_by_access_key_and_count(ms):
    ms.realism.inject(service="sts", operation="GetCallerIdentity", code="ExpiredToken", message="expired",
                      status=403, count=2, access_key="other")
    sts = ms.client("sts")
    sts.get_caller_identity()  # key "test": not matched
    import boto3
    from botocore.config import Config
    other = boto3.client("sts", endpoint_url=ms.endpoint, region_name="us-east-1", aws_access_key_id="other",
                         aws_secret_access_key="x", config=Config(retries={"max_attempts": 1}))
    for _ in range(2):
        with pytest.raises(ClientError) as e:
            other.get_caller_identity()
        assert error_of(e)[:2] == ("ExpiredToken", 403)
    other.get_caller_identity()


def test_an_injection_armed_after_an_operation(ms):
    # The reads after a delete fail, not the ones before it.
    ms.realism.inject(service="s3", operation="ListBuckets", code="InternalError", message="after", status=500,
                      count=1, after="DeleteBucket")
    s3 = ms.client("s3")
    bucket = unique("after")
    s3.create_bucket(Bucket=bucket)
    s3.list_buckets()  # not armed yet
    s3.delete_bucket(Bucket=bucket)
    with pytest.raises(ClientError) as e:
        s3.list_buckets()
    assert error_of(e)[:2] == ("InternalError", 500)
    s3.list_buckets()  # used up


def test_a_lost_answer_reaches_the_emulator_but_not_the_caller(ms):
    ms.realism.inject(service="s3", operation="CreateBucket", lose_answer=True, count=1)
    s3 = ms.client("s3")
    bucket = unique("lost")
    with pytest.raises(Exception):
        s3.create_bucket(Bucket=bucket)
    # The emulator made it all the same: a retried create finds it.
    assert bucket in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    call = ms.realism.calls(operation="CreateBucket")[-1]
    assert call["verdict"] == "injected:lost-answer" and call["status"] == 200


def test_a_lost_answer_is_kept_for_a_call_that_reaches_the_emulator(ms):
    # The first matching call is answered by the proxy itself (here: invalid; in the system
    # tests, EC2 not yet knowing a new VPC): its answer is not the one to lose.
    ms.realism.inject(service="lambda", operation="GetFunction", lose_answer=True, count=1)
    lam = ms.client("lambda")
    with pytest.raises(ClientError) as e:
        lam.get_function(FunctionName="not a name!")
    assert error_of(e)[1] == 400
    assert ms.realism.calls(operation="GetFunction")[-1]["verdict"].startswith("invalid:")
    missing = unique("missing")
    with pytest.raises(Exception) as e:
        lam.get_function(FunctionName=missing)
    assert not isinstance(e.value, ClientError), "the answer was lost"
    call = ms.realism.calls(operation="GetFunction")[-1]
    assert call["verdict"] == "injected:lost-answer" and call["status"] == 404, call
    with pytest.raises(ClientError) as e:  # count 1: used up
        lam.get_function(FunctionName=missing)
    assert error_of(e)[:2] == ("ResourceNotFoundException", 404)


def test_reset_forgets_timing_state(ms):
    ms.realism.config(durations={"lambda_pending": [30, 30]})
    iam, lam = ms.client("iam"), ms.client("lambda")
    name = unique("fn")
    lam.create_function(FunctionName=name, Runtime="provided.al2023", Role=make_role(iam), Handler="bootstrap",
                        Code={"ZipFile": function_zip("1")})
    assert lam.get_function_configuration(FunctionName=name)["State"] == "Pending"
    assert name in ms.realism.state()["functions"]
    ms.realism.inject(service="iam", code="Throttling", count=5)
    ms.realism.reset()
    assert ms.realism.state()["functions"] == {}
    assert ms.realism.config()["durations"]["lambda_pending"] == [30, 30]  # config is kept
    iam.list_roles()  # injections are gone
    # only the emulator's own short Pending is left
    wait_until(lambda: lam.get_function_configuration(FunctionName=name)["State"] == "Active", 5, 0.1, "Active")


def test_unknown_control_endpoint(ms):
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(ms.endpoint + "/_realism/nope", timeout=10)
    assert e.value.code == 404
