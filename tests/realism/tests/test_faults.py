"""Faults: each kind in each service's words, never seen by the emulator, retried by the SDK."""

import pytest
from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError

from conftest import error_of, unique

THROTTLING = [
    ("lambda", lambda c: c.list_functions(), "TooManyRequestsException", 429),
    ("s3", lambda c: c.list_buckets(), "SlowDown", 503),
    ("ec2", lambda c: c.describe_vpcs(), "RequestLimitExceeded", 503),
    ("iam", lambda c: c.list_roles(), "Throttling", 400),
    ("sts", lambda c: c.get_caller_identity(), "Throttling", 400),
    ("rds", lambda c: c.describe_db_instances(), "Throttling", 400),
    ("events", lambda c: c.list_rules(), "ThrottlingException", 400),
    ("secretsmanager", lambda c: c.list_secrets(), "ThrottlingException", 400),
    ("transcribe", lambda c: c.list_transcription_jobs(), "LimitExceededException", 400),
    ("apigateway", lambda c: c.get_rest_apis(), "TooManyRequestsException", 429),
    ("sesv2", lambda c: c.list_email_identities(), "TooManyRequestsException", 429),
    ("cloudfront", lambda c: c.list_distributions(), "Throttling", 400),
]


@pytest.mark.parametrize("service,call,code,status", THROTTLING, ids=[t[0] for t in THROTTLING])
def test_throttling_codes(ms, service, call, code, status):
    ms.realism.config(fault_rate=1, fault_kinds=["throttle"])
    since = ms.realism.last_seq()
    with pytest.raises(ClientError) as e:
        call(ms.client(service))
    assert error_of(e)[:2] == (code, status)
    calls = ms.realism.calls(since=since)
    assert [c["verdict"] for c in calls] == ["fault:throttle"]


@pytest.mark.parametrize("service,call,code", [
    ("lambda", lambda c: c.list_functions(), "ServiceException"),
    ("s3", lambda c: c.list_buckets(), "InternalError"),
    ("ec2", lambda c: c.describe_vpcs(), "InternalError"),
    ("iam", lambda c: c.list_roles(), "ServiceFailure"),
    ("events", lambda c: c.list_rules(), "InternalFailure"),
    ("cloudfront", lambda c: c.list_distributions(), "InternalFailure"),
])
def test_server_errors(ms, service, call, code):
    ms.realism.config(fault_rate=1, fault_kinds=["500"])
    with pytest.raises(ClientError) as e:
        call(ms.client(service))
    assert error_of(e)[:2] == (code, 500)
    ms.realism.config(fault_kinds=["503"])
    with pytest.raises(ClientError) as e:
        call(ms.client(service))
    assert error_of(e)[1] == 503


def test_dropped_connection(ms):
    ms.realism.config(fault_rate=1, fault_kinds=["drop"])
    with pytest.raises((ConnectionClosedError, EndpointConnectionError)):
        ms.client("iam").list_roles()
    assert ms.realism.calls(operation="ListRoles")[-1]["verdict"] == "fault:drop"


def test_the_emulator_never_sees_a_faulted_request(ms):
    ms.realism.config(fault_rate=1, fault_kinds=["500"])
    bucket = unique("bkt")
    with pytest.raises(ClientError):
        ms.client("s3").create_bucket(Bucket=bucket)
    ms.realism.config(fault_rate=0)
    with pytest.raises(ClientError) as e:
        ms.client("s3").head_bucket(Bucket=bucket)
    assert error_of(e)[1] == 404


@pytest.mark.parametrize("kind", ["throttle", "500", "503", "drop"])
def test_sdk_retries_every_fault_kind(ms, kind):
    ms.realism.config(fault_rate=0.5, fault_kinds=[kind], seed=5)
    since = ms.realism.last_seq()
    ec2, lam, iam = ms.client("ec2", retries=12), ms.client("lambda", retries=12), ms.client("iam", retries=12)
    for _ in range(4):
        ec2.describe_vpcs()
        lam.list_functions()
        iam.list_roles()
    verdicts = [c["verdict"] for c in ms.realism.calls(since=since)]
    assert "fault:" + kind in verdicts
    assert verdicts.count("forwarded") == 12


def test_exempt_access_keys_and_unsigned_requests_get_no_faults(ms):
    ms.realism.config(fault_rate=1, exempt_access_keys=["test"])
    ms.client("iam").list_roles()
    ms.realism.config(exempt_access_keys=[])
    import urllib.request
    with urllib.request.urlopen(ms.endpoint + "/_ministack/health", timeout=10) as r:
        assert r.status == 200


def test_faults_only_in_test_mode(ms):
    ms.realism.config(mode="validate", fault_rate=1)
    ms.client("iam").list_roles()
    assert ms.realism.config()["fault_rate"] == 1


def test_faults_are_seeded(ms):
    def run():
        ms.realism.config(fault_rate=0.5, seed=99)
        since = ms.realism.last_seq()
        iam = ms.client("iam", retries=1)
        for _ in range(12):
            try:
                iam.list_roles()
            except (ClientError, ConnectionClosedError, EndpointConnectionError):
                pass
        return [c["verdict"] for c in ms.realism.calls(since=since)]

    assert run() == run()
