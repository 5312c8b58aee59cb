"""Validation against botocore's models: refused without forwarding, in each service's shape."""

import json
import urllib.request
import xml.etree.ElementTree as ET

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from conftest import ACCOUNT, error_of, function_zip, make_role, unique


def raw_signed(endpoint, service, method, path, body=b"", headers=None):
    """A SigV4-signed request sent as is; (status, headers, body)."""
    req = AWSRequest(method=method, url=endpoint + path, data=body, headers=headers or {})
    SigV4Auth(Credentials("test", "test"), service, "us-east-1").add_auth(req)
    r = urllib.request.Request(endpoint + path, data=body or None, method=method, headers=dict(req.headers.items()))
    try:
        with urllib.request.urlopen(r, timeout=30) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def last_call(realism, **q):
    calls = realism.calls(**q)
    assert calls, "no call logged for %r" % q
    return calls[-1]


def test_lambda_invalid_runtime_is_refused_and_nothing_is_created(ms):
    lam, iam = ms.client("lambda"), ms.client("iam")
    role = make_role(iam)
    name = unique("fn")
    since = ms.realism.last_seq()
    with pytest.raises(ClientError) as e:
        lam.create_function(FunctionName=name, Runtime="cobol85", Role=role, Handler="bootstrap",
                            Code={"ZipFile": function_zip("1")})
    code, status, msg = error_of(e)
    assert (code, status) == ("ValidationException", 400)
    assert msg.startswith("1 validation error detected: Value 'cobol85' at 'runtime' failed to satisfy constraint: "
                          "Member must satisfy enum value set: [")
    headers = e.value.response["ResponseMetadata"]["HTTPHeaders"]
    assert headers["x-amzn-errortype"] == "ValidationException"
    with pytest.raises(ClientError) as e:
        lam.get_function(FunctionName=name)
    assert error_of(e)[0] == "ResourceNotFoundException"
    call = ms.realism.calls(since=since, operation="CreateFunction")[-1]
    assert call["verdict"] == "invalid:ValidationException"
    assert call["params"]["Runtime"] == "cobol85" and "Code" not in call["params"]


def test_lambda_error_body_has_the_lambda_shape(ms):
    status, headers, body = raw_signed(ms.endpoint, "lambda", "GET", "/2015-03-31/functions/bad%20name/configuration")
    assert status == 400
    assert headers["x-amzn-ErrorType"] == "ValidationException"
    doc = json.loads(body)
    assert doc["Type"] == "User"
    assert doc["message"].startswith("1 validation error detected: Value 'bad name' at 'functionName' failed to "
                                     "satisfy constraint: Member must satisfy regular expression pattern: ")


def test_iam_role_name_with_a_space(ms):
    iam = ms.client("iam")
    with pytest.raises(ClientError) as e:
        iam.create_role(RoleName="my role", AssumeRolePolicyDocument="{}")
    code, status, msg = error_of(e)
    assert (code, status) == ("ValidationError", 400)
    assert msg == ("1 validation error detected: Value 'my role' at 'roleName' failed to satisfy constraint: "
                   "Member must satisfy regular expression pattern: [\\w+=,.@-]+")
    assert e.value.response["Error"]["Type"] == "Sender"
    assert "my role" not in [r["RoleName"] for r in iam.list_roles()["Roles"]]


def test_iam_two_violations_are_counted(ms):
    iam = ms.client("iam")
    with pytest.raises(ClientError) as e:
        iam.create_role(RoleName="x" * 70, AssumeRolePolicyDocument="{}", MaxSessionDuration=10)
    msg = error_of(e)[2]
    assert msg.startswith("2 validation errors detected: ")
    assert "Member must have length less than or equal to 64" in msg
    assert "Value '10' at 'maxSessionDuration' failed to satisfy constraint: Member must have value greater than " \
           "or equal to 3600" in msg


def test_ec2_missing_required_parameter(ms):
    ec2 = ms.client("ec2")
    with pytest.raises(ClientError) as e:
        ec2.create_subnet(CidrBlock="10.1.1.0/24")
    assert error_of(e)[:2] == ("MissingParameter", 400)
    assert error_of(e)[2] == "The request must contain the parameter VpcId"
    status, _, body = raw_signed(ms.endpoint, "ec2", "POST", "/", b"Action=CreateSubnet&Version=2016-11-15",
                                 {"Content-Type": "application/x-www-form-urlencoded"})
    root = ET.fromstring(body)
    assert status == 400 and root.tag == "Response"
    assert root.find("Errors/Error/Code").text == "MissingParameter"
    assert root.find("RequestID") is not None


def test_transcribe_output_key_with_korean_and_space(ms):
    tr = ms.client("transcribe")
    with pytest.raises(ClientError) as e:
        tr.start_transcription_job(TranscriptionJobName=unique("job"), Media={"MediaFileUri": "s3://b/a.mp3"},
                                   OutputBucketName="b", OutputKey="output_text/회의 녹음.json")
    code, status, msg = error_of(e)
    assert (code, status) == ("BadRequestException", 400)
    assert "Value 'output_text/회의 녹음.json' at 'outputKey' failed to satisfy constraint: Member must satisfy " \
           "regular expression pattern: [a-zA-Z0-9-_.!*'()/]{1,1024}$" in msg
    status, _, body = raw_signed(ms.endpoint, "transcribe", "POST", "/",
                                 json.dumps({"TranscriptionJobName": "a b", "Media": {}}).encode(),
                                 {"X-Amz-Target": "Transcribe.StartTranscriptionJob",
                                  "Content-Type": "application/x-amz-json-1.1"})
    assert status == 400 and json.loads(body)["__type"] == "BadRequestException"


def test_json_protocol_services(ms):
    events, sm, logs = ms.client("events"), ms.client("secretsmanager"), ms.client("logs")
    with pytest.raises(ClientError) as e:
        events.put_rule(Name="has space", EventPattern="{}")
    assert error_of(e)[:2] == ("ValidationException", 400)
    with pytest.raises(ClientError) as e:
        sm.create_secret(Name="")
    assert error_of(e)[:2] == ("ValidationException", 400)
    with pytest.raises(ClientError) as e:
        logs.create_log_group(logGroupName="bad name")
    assert error_of(e)[:2] == ("InvalidParameterException", 400)


def test_rest_json_services(ms):
    apigw, sesv2 = ms.client("apigateway"), ms.client("sesv2")
    with pytest.raises(ClientError) as e:
        apigw.create_rest_api(description="no name")
    assert error_of(e)[:2] == ("BadRequestException", 400)
    with pytest.raises(ClientError) as e:
        sesv2.send_email(FromEmailAddress="a@example.com", Destination={"ToAddresses": ["b@example.com"]})
    code, status, msg = error_of(e)
    assert (code, status) == ("BadRequestException", 400)
    assert "Value null at 'content' failed to satisfy constraint: Member must not be null" in msg


def test_rds_missing_and_query_error_shape(ms):
    rds = ms.client("rds")
    with pytest.raises(ClientError) as e:
        rds.create_db_instance(DBInstanceIdentifier=unique("db"), Engine="mysql")
    code, status, msg = error_of(e)
    assert (code, status) == ("InvalidParameterValue", 400)
    assert msg == "The parameter DBInstanceClass must be provided and must not be empty."


def test_s3_enum_violation_and_normal_object_flow(ms):
    s3 = ms.client("s3")
    bucket = unique("bkt")
    s3.create_bucket(Bucket=bucket)
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="k", Body=b"x", StorageClass="COLD_AS_ICE")
    code, status, _ = error_of(e)
    assert (code, status) == ("InvalidArgument", 400)
    body = b"0123456789" * 100_000
    s3.put_object(Bucket=bucket, Key="dir/file name+ü.bin", Body=body, ContentType="application/octet-stream")
    got = s3.get_object(Bucket=bucket, Key="dir/file name+ü.bin")
    assert got["Body"].read() == body
    head = s3.head_object(Bucket=bucket, Key="dir/file name+ü.bin")
    assert head["ContentLength"] == len(body)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == ["dir/file name+ü.bin"]
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "dir/file name+ü.bin"})
    with urllib.request.urlopen(url, timeout=30) as r:
        assert r.read() == body
    s3.delete_object(Bucket=bucket, Key="dir/file name+ü.bin")
    ops = {c["operation"] for c in ms.realism.calls(service="s3")}
    assert {"PutObject", "GetObject", "HeadObject", "ListObjectsV2", "DeleteObject", "CreateBucket"} <= ops


def test_cloudfront_missing_member_and_duplicate_caller_reference(ms):
    cf = ms.client("cloudfront")
    config = {
        "CallerReference": unique("ref"), "Comment": "realism", "Enabled": False,
        "Origins": {"Quantity": 1, "Items": [{"Id": "o1", "DomainName": "b.s3.amazonaws.com",
                                              "S3OriginConfig": {"OriginAccessIdentity": ""}}]},
        "DefaultCacheBehavior": {"TargetOriginId": "o1", "ViewerProtocolPolicy": "allow-all",
                                 "CachePolicyId": "658327ea-f89d-4fab-a63d-7e88639e58f6"},
    }
    broken = dict(config, CallerReference=unique("ref"))
    del broken["Comment"]
    with pytest.raises(ClientError) as e:
        cf.create_distribution(DistributionConfig=broken)
    code, status, msg = error_of(e)
    assert (code, status) == ("MalformedXML", 400)
    assert msg == ("1 validation error detected: Value null at 'distributionConfig.comment' failed to satisfy "
                   "constraint: Member must not be null")
    first = cf.create_distribution(DistributionConfig=config)["Distribution"]["Id"]
    with pytest.raises(ClientError) as e:
        cf.create_distribution(DistributionConfig=config)
    code, status, msg = error_of(e)
    assert (code, status) == ("DistributionAlreadyExists", 409)
    assert msg == ("The caller reference that you are using to create a distribution is associated with another "
                   "distribution. Already exists: %s" % first)


def test_unsigned_requests_pass_untouched(ms):
    since = ms.realism.last_seq()
    with urllib.request.urlopen(ms.endpoint + "/_ministack/health", timeout=10) as r:
        assert r.status == 200 and "services" in json.loads(r.read())
    call = ms.realism.calls(since=since)[-1]
    assert call["verdict"] == "passthrough" and call["path"] == "/_ministack/health"


def test_off_mode_forwards_everything(ms):
    ms.realism.config(mode="off")
    iam = ms.client("iam")
    name = "off mode %s" % unique("r")
    iam.create_role(RoleName=name, AssumeRolePolicyDocument="{}")  # ministack accepts it
    assert ms.realism.calls(operation="CreateRole")[-1]["verdict"] == "passthrough"
    ms.realism.config(mode="validate")
    with pytest.raises(ClientError):
        iam.create_role(RoleName=name + "2", AssumeRolePolicyDocument="{}")


def test_validate_mode_has_no_timing(ms):
    ms.realism.config(mode="validate", durations={"iam_propagation": [30, 30]})
    iam, lam = ms.client("iam"), ms.client("lambda")
    role = make_role(iam)
    lam.create_function(FunctionName=unique("fn"), Runtime="provided.al2023", Role=role, Handler="bootstrap",
                        Code={"ZipFile": function_zip("1")})


def test_account_in_arns_is_accepted(ms):
    """A valid request of every protocol goes through untouched (no false positive)."""
    sts = ms.client("sts")
    assert sts.get_caller_identity()["Account"] in (ACCOUNT, "123456789012")
    ms.client("ec2").describe_vpcs()
    ms.client("rds").describe_db_instances()
    ms.client("lambda").list_functions()
    ms.client("iam").list_roles()
    ms.client("events").list_rules()
    ms.client("cloudfront").list_distributions()
    ms.client("apigateway").get_rest_apis()
    ms.client("s3").list_buckets()
    bad = [c for c in ms.realism.calls() if c["verdict"].startswith("invalid") and c["operation"] in (
        "GetCallerIdentity", "DescribeVpcs", "DescribeDBInstances", "ListFunctions", "ListRoles", "ListRules",
        "ListDistributions", "GetRestApis", "ListBuckets")]
    assert bad == []


def test_a_whole_stack_of_valid_calls_has_no_false_positive(ms):
    """The kinds of calls the provisioner makes, all valid: nothing may be refused by the proxy."""
    ms.realism.config(mode="validate")
    since = ms.realism.last_seq()
    s3, ec2, iam, lam = ms.client("s3"), ms.client("ec2"), ms.client("iam"), ms.client("lambda")
    apigw, events, sesv2, sm, rds = (ms.client(s) for s in ("apigateway", "events", "sesv2", "secretsmanager", "rds"))
    bucket = unique("stack")
    s3.create_bucket(Bucket=bucket)
    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={
        "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True})
    s3.put_bucket_ownership_controls(Bucket=bucket, OwnershipControls={"Rules": [{"ObjectOwnership":
                                                                                  "BucketOwnerEnforced"}]})
    s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [
        {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": [
        {"AllowedMethods": ["GET", "PUT"], "AllowedOrigins": ["*"], "AllowedHeaders": ["*"], "MaxAgeSeconds": 300}]})
    s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [{"Key": "stack", "Value": "demo"}]})
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [
        {"ID": "tmp", "Status": "Enabled", "Filter": {"Prefix": "tmp/"}, "Expiration": {"Days": 1}}]})
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "cloudfront.amazonaws.com"}, "Action": "s3:GetObject",
         "Resource": "arn:aws:s3:::%s/*" % bucket}]}))
    s3.get_bucket_policy(Bucket=bucket)
    s3.get_bucket_location(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="site/index.html", Body=b"<html></html>", ContentType="text/html",
                  CacheControl="max-age=60", Metadata={"md5": "x"})
    s3.copy_object(Bucket=bucket, Key="site/copy.html", CopySource={"Bucket": bucket, "Key": "site/index.html"})
    s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "site/copy.html"}]})
    s3.list_object_versions(Bucket=bucket)
    role = make_role(iam)
    role_name = role.rsplit("/", 1)[1]
    iam.put_role_policy(RoleName=role_name, PolicyName="logs", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "logs:*", "Resource": "*"}]}))
    iam.tag_role(RoleName=role_name, Tags=[{"Key": "stack", "Value": "demo"}])
    iam.list_role_policies(RoleName=role_name)
    iam.list_attached_role_policies(RoleName=role_name)
    fn = unique("fn")
    lam.create_function(FunctionName=fn, Runtime="provided.al2023", Role=role, Handler="bootstrap",
                        Code={"ZipFile": function_zip("1")}, Architectures=["x86_64"], MemorySize=256, Timeout=30,
                        Environment={"Variables": {"TABLE": "t", "URL": "https://example.com/a?b=c"}},
                        Tags={"stack": "demo"}, Description="demo function")
    lam.add_permission(FunctionName=fn, StatementId="s3", Action="lambda:InvokeFunction",
                       Principal="s3.amazonaws.com", SourceArn="arn:aws:s3:::%s" % bucket, SourceAccount=ACCOUNT)
    lam.get_policy(FunctionName=fn)
    lam.put_function_event_invoke_config(FunctionName=fn, MaximumRetryAttempts=0)
    lam.list_tags(Resource=lam.get_function(FunctionName=fn)["Configuration"]["FunctionArn"])
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={
        "LambdaFunctionConfigurations": [{"Id": "mp3", "LambdaFunctionArn": lam.get_function(FunctionName=fn)[
            "Configuration"]["FunctionArn"], "Events": ["s3:ObjectCreated:*"],
            "Filter": {"Key": {"FilterRules": [{"Name": "suffix", "Value": ".mp3"}]}}}]})
    s3.get_bucket_notification_configuration(Bucket=bucket)
    vpc = ec2.create_vpc(CidrBlock="10.90.0.0/16", TagSpecifications=[
        {"ResourceType": "vpc", "Tags": [{"Key": "Name", "Value": "demo"}]}])["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.90.1.0/24", AvailabilityZone="us-east-1a")["Subnet"][
        "SubnetId"]
    sg = ec2.create_security_group(VpcId=vpc, GroupName=unique("sg"), Description="demo")["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=sg, IpPermissions=[{
        "IpProtocol": "tcp", "FromPort": 3306, "ToPort": 3306, "UserIdGroupPairs": [{"GroupId": sg}]}])
    rt = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    ec2.associate_route_table(RouteTableId=rt, SubnetId=subnet)
    ec2.create_vpc_endpoint(VpcId=vpc, ServiceName="com.amazonaws.us-east-1.s3", VpcEndpointType="Gateway",
                            RouteTableIds=[rt])
    ec2.describe_vpc_endpoints(Filters=[{"Name": "vpc-id", "Values": [vpc]}])
    ec2.describe_security_groups(GroupIds=[sg])
    ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc]}])
    group = unique("dbgroup")
    rds.create_db_subnet_group(DBSubnetGroupName=group, DBSubnetGroupDescription="demo", SubnetIds=[subnet],
                               Tags=[{"Key": "stack", "Value": "demo"}])
    rds.describe_db_subnet_groups(DBSubnetGroupName=group)
    api = apigw.create_rest_api(name=unique("api"), binaryMediaTypes=["multipart/form-data"],
                                endpointConfiguration={"types": ["REGIONAL"]})["id"]
    root = [r for r in apigw.get_resources(restApiId=api)["items"] if r["path"] == "/"][0]["id"]
    res = apigw.create_resource(restApiId=api, parentId=root, pathPart="file-upload")["id"]
    apigw.put_method(restApiId=api, resourceId=res, httpMethod="POST", authorizationType="NONE")
    apigw.put_integration(restApiId=api, resourceId=res, httpMethod="POST", type="AWS_PROXY",
                          integrationHttpMethod="POST",
                          uri="arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/%s/invocations"
                          % lam.get_function(FunctionName=fn)["Configuration"]["FunctionArn"])
    apigw.create_deployment(restApiId=api, stageName="prod")
    apigw.get_stages(restApiId=api)
    events.put_rule(Name=unique("rule"), EventPattern=json.dumps({"source": ["aws.transcribe"]}),
                    State="ENABLED", Description="demo")
    sesv2.create_email_identity(EmailIdentity="demo@example.com")
    sesv2.get_email_identity(EmailIdentity="demo@example.com")
    sm.create_secret(Name=unique("demo/secret"), SecretString='{"password": "x"}',
                     Tags=[{"Key": "stack", "Value": "demo"}])
    sm.list_secrets(Filters=[{"Key": "tag-key", "Values": ["stack"]}])
    calls = ms.realism.calls(since=since)
    refused = [(c["operation"], c.get("note")) for c in calls if c["verdict"].startswith("invalid")]
    assert refused == []
    assert not [c for c in calls if c.get("parse_error")]
    assert len(calls) > 45


def test_a_secret_without_a_value_is_not_found_as_on_aws(ms):
    sm = ms.client("secretsmanager")
    arn = sm.create_secret(Name=unique("empty"))["ARN"]
    with pytest.raises(ClientError) as e:
        sm.get_secret_value(SecretId=arn)
    code, status, message = error_of(e)
    assert (code, status) == ("ResourceNotFoundException", 400)
    assert "staging label: AWSCURRENT" in message
    sm.put_secret_value(SecretId=arn, SecretString='{"username": "u", "password": "p"}')
    assert sm.get_secret_value(SecretId=arn)["SecretString"].startswith("{")
