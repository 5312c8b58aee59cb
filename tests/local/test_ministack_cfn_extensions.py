"""ministack_cfn_extensions against a ministack of its own (free port, no persisted state),
started as scripts/local-aws.sh starts it (tests/local/ministack_with_extensions.py).

    .venv-realism/bin/python -m pytest tests/local
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request

import boto3
import pytest
from botocore.config import Config

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
PYTHON = os.path.join(REPO, ".venv", "bin", "python")
LAUNCHER = os.path.join(HERE, "ministack_with_extensions.py")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def endpoint():
    if not os.access(PYTHON, os.X_OK):
        pytest.skip("ministack is not installed (%s): run make deps" % PYTHON)
    tmp = tempfile.mkdtemp(prefix="ministack-cfn-ext-")
    port = _free_port()
    env = dict(os.environ, BIND_HOST="127.0.0.1", GATEWAY_PORT=str(port), PERSIST_STATE="0",
               STATE_DIR=os.path.join(tmp, "state"))
    log = open(os.path.join(tmp, "ministack.log"), "wb")
    proc = subprocess.Popen([PYTHON, LAUNCHER], env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    url = "http://127.0.0.1:%d" % port
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(url + "/_ministack/health", timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    with open(log.name, "rb") as f:
                        raise RuntimeError("ministack did not start:\n"
                                           + f.read().decode("utf-8", "replace")[-3000:])
                time.sleep(0.25)
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


def _client(endpoint, service):
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test",
                        config=Config(retries={"total_max_attempts": 1}))


def _wait(cfn, name, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        try:
            stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
        except cfn.exceptions.ClientError as e:
            if "does not exist" in str(e):
                return {"StackStatus": "DELETE_COMPLETE"}
            raise
        if not stack["StackStatus"].endswith("_IN_PROGRESS"):
            return stack
        assert time.monotonic() < deadline, stack["StackStatus"]
        time.sleep(0.25)


def _failures(cfn, name):
    return [(e["LogicalResourceId"], e["ResourceStatus"], e.get("ResourceStatusReason"))
            for e in cfn.describe_stack_events(StackName=name)["StackEvents"]
            if e["ResourceStatus"].endswith("_FAILED")]


def _template(rule_description="MySQL from app", from_port=3306):
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Resources": {
            "Vpc": {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": "10.40.0.0/16"}},
            "VpcIpv6": {"Type": "AWS::EC2::VPCCidrBlock",
                        "Properties": {"VpcId": {"Ref": "Vpc"}, "AmazonProvidedIpv6CidrBlock": True}},
            "Subnet": {
                "Type": "AWS::EC2::Subnet",
                "DependsOn": "VpcIpv6",
                "Properties": {
                    "VpcId": {"Ref": "Vpc"},
                    "CidrBlock": "10.40.0.0/20",
                    "Ipv6CidrBlock": {"Fn::Select": [0, {"Fn::Cidr": [
                        {"Fn::Select": [0, {"Fn::GetAtt": ["Vpc", "Ipv6CidrBlocks"]}]}, 4, 64]}]},
                },
            },
            "Gateway": {"Type": "AWS::EC2::EgressOnlyInternetGateway",
                        "Properties": {"VpcId": {"Ref": "Vpc"},
                                       "Tags": [{"Key": "Name", "Value": "cfn-ext"}]}},
            "Routes": {"Type": "AWS::EC2::RouteTable", "Properties": {"VpcId": {"Ref": "Vpc"}}},
            "Ipv6Default": {
                "Type": "AWS::EC2::Route",
                "DependsOn": "VpcIpv6",
                "Properties": {"RouteTableId": {"Ref": "Routes"}, "DestinationIpv6CidrBlock": "::/0",
                               "EgressOnlyInternetGatewayId": {"Ref": "Gateway"}},
            },
            "App": {"Type": "AWS::EC2::SecurityGroup",
                    "Properties": {"GroupDescription": "app", "VpcId": {"Ref": "Vpc"},
                                   "SecurityGroupEgress": [{
                                       "IpProtocol": "icmp", "FromPort": 252, "ToPort": 86,
                                       "CidrIp": "255.255.255.255/32"}]}},
            "Db": {"Type": "AWS::EC2::SecurityGroup",
                   "Properties": {"GroupDescription": "db", "VpcId": {"Ref": "Vpc"},
                                  "SecurityGroupEgress": [{
                                      "IpProtocol": "icmp", "FromPort": 252, "ToPort": 86,
                                      "CidrIp": "255.255.255.255/32"}]}},
            "DbFromApp": {"Type": "AWS::EC2::SecurityGroupIngress",
                          "Properties": {"GroupId": {"Ref": "Db"}, "IpProtocol": "tcp",
                                         "FromPort": from_port, "ToPort": from_port,
                                         "SourceSecurityGroupId": {"Ref": "App"},
                                         "Description": rule_description}},
            "AppToDb": {"Type": "AWS::EC2::SecurityGroupEgress",
                        "Properties": {"GroupId": {"Ref": "App"}, "IpProtocol": "tcp",
                                       "FromPort": 3306, "ToPort": 3306,
                                       "DestinationSecurityGroupId": {"Ref": "Db"},
                                       "Description": "MySQL to db"}},
        },
        "Outputs": {
            "VpcIpv6Block": {"Value": {"Fn::Select": [0, {"Fn::GetAtt": ["Vpc", "Ipv6CidrBlocks"]}]}},
            "BlockId": {"Value": {"Fn::GetAtt": ["VpcIpv6", "Id"]}},
            "BlockIpSource": {"Value": {"Fn::GetAtt": ["VpcIpv6", "IpSource"]}},
            "GatewayId": {"Value": {"Fn::GetAtt": ["Gateway", "Id"]}},
            "RuleId": {"Value": {"Fn::GetAtt": ["DbFromApp", "Id"]}},
        },
    }


def _rules(ec2, group_id, key):
    return ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0][key]


def test_the_four_types_create_update_and_delete(endpoint):
    cfn, ec2 = _client(endpoint, "cloudformation"), _client(endpoint, "ec2")
    name = "cfn-ext"
    cfn.validate_template(TemplateBody=json.dumps(_template()))  # no "Unrecognized resource types"
    cfn.create_stack(StackName=name, TemplateBody=json.dumps(_template()))
    stack = _wait(cfn, name)
    assert stack["StackStatus"] == "CREATE_COMPLETE", _failures(cfn, name)
    res = {r["LogicalResourceId"]: r["PhysicalResourceId"]
           for r in cfn.describe_stack_resources(StackName=name)["StackResources"]}
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}

    # The VPC's IPv6 association; Ref of the VPCCidrBlock is its association id.
    vpc = ec2.describe_vpcs(VpcIds=[res["Vpc"]])["Vpcs"][0]
    [assoc] = vpc["Ipv6CidrBlockAssociationSet"]
    assert assoc["AssociationId"] == res["VpcIpv6"] == outputs["BlockId"]
    assert assoc["Ipv6CidrBlockState"]["State"] == "associated"
    assert assoc["Ipv6CidrBlock"].endswith("::/56")
    assert outputs["VpcIpv6Block"] == assoc["Ipv6CidrBlock"]
    assert outputs["BlockIpSource"] == "amazon"
    # The subnet's /64 came from the VPC's block through Fn::GetAtt [Vpc, Ipv6CidrBlocks].
    subnet = ec2.describe_subnets(SubnetIds=[res["Subnet"]])["Subnets"][0]
    block = assoc["Ipv6CidrBlock"].split("::/")[0]
    assert subnet["Ipv6CidrBlockAssociationSet"][0]["Ipv6CidrBlock"] == block + "::/64"

    # The egress-only gateway, and the ::/0 route to it.
    [gateway] = ec2.describe_egress_only_internet_gateways(
        EgressOnlyInternetGatewayIds=[res["Gateway"]])["EgressOnlyInternetGateways"]
    assert gateway["Attachments"] == [{"State": "attached", "VpcId": res["Vpc"]}]
    assert {"Key": "Name", "Value": "cfn-ext"} in gateway["Tags"]
    assert outputs["GatewayId"] == res["Gateway"]
    routes = ec2.describe_route_tables(RouteTableIds=[res["Routes"]])["RouteTables"][0]["Routes"]
    assert any(r.get("DestinationIpv6CidrBlock") == "::/0"
               and r.get("EgressOnlyInternetGatewayId") == res["Gateway"] for r in routes)

    # The rules between the groups; each group's egress is only the no-traffic ICMP rule
    # (no allow-all) plus, for App, its rule to Db.
    ingress = _rules(ec2, res["Db"], "IpPermissions")
    assert [(p["IpProtocol"], p["FromPort"], p["ToPort"], p["UserIdGroupPairs"][0]["GroupId"],
             p["UserIdGroupPairs"][0]["Description"]) for p in ingress] == [
        ("tcp", 3306, 3306, res["App"], "MySQL from app")]
    assert res["DbFromApp"].startswith("sgr-") and outputs["RuleId"] == res["DbFromApp"]
    app_egress = _rules(ec2, res["App"], "IpPermissionsEgress")
    assert sorted((p["IpProtocol"], p["FromPort"], p["ToPort"]) for p in app_egress) == [
        ("icmp", 252, 86), ("tcp", 3306, 3306)]
    assert [p["UserIdGroupPairs"][0]["GroupId"] for p in app_egress
            if p["IpProtocol"] == "tcp"] == [res["Db"]]
    assert [(p["IpProtocol"], p["IpRanges"]) for p in _rules(ec2, res["Db"], "IpPermissionsEgress")] \
        == [("icmp", [{"CidrIp": "255.255.255.255/32"}])]

    # Update: a new Description is in place (same rule id); a new port replaces the rule.
    cfn.update_stack(StackName=name, TemplateBody=json.dumps(_template("MySQL, app")))
    assert _wait(cfn, name)["StackStatus"] == "UPDATE_COMPLETE", _failures(cfn, name)
    rule_id = cfn.describe_stack_resource(StackName=name, LogicalResourceId="DbFromApp")[
        "StackResourceDetail"]["PhysicalResourceId"]
    assert rule_id == res["DbFromApp"]
    assert _rules(ec2, res["Db"], "IpPermissions")[0]["UserIdGroupPairs"][0]["Description"] \
        == "MySQL, app"
    cfn.update_stack(StackName=name, TemplateBody=json.dumps(_template("MySQL, app", 3307)))
    assert _wait(cfn, name)["StackStatus"] == "UPDATE_COMPLETE", _failures(cfn, name)
    rule_id = cfn.describe_stack_resource(StackName=name, LogicalResourceId="DbFromApp")[
        "StackResourceDetail"]["PhysicalResourceId"]
    assert rule_id != res["DbFromApp"]
    assert [(p["FromPort"], p["ToPort"]) for p in _rules(ec2, res["Db"], "IpPermissions")] \
        == [(3307, 3307)]

    # Delete: everything goes, the rules are revoked before their groups.
    cfn.delete_stack(StackName=name)
    assert _wait(cfn, name)["StackStatus"] == "DELETE_COMPLETE"
    assert not [v for v in ec2.describe_vpcs()["Vpcs"] if v["VpcId"] == res["Vpc"]]
    assert not [g for g in ec2.describe_egress_only_internet_gateways()["EgressOnlyInternetGateways"]
                if g["EgressOnlyInternetGatewayId"] == res["Gateway"]]
    groups = {g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"]}
    assert not groups & {res["App"], res["Db"]}
    rules = ec2.describe_security_group_rules()["SecurityGroupRules"]
    assert not [r for r in rules if r["SecurityGroupRuleId"] in (res["DbFromApp"], res["AppToDb"], rule_id)]


def test_rules_are_revoked_when_their_groups_stay(endpoint):
    """A stack of rules only, on groups made outside it: its delete revokes exactly its rules."""
    cfn, ec2 = _client(endpoint, "cloudformation"), _client(endpoint, "ec2")
    vpc_id = ec2.create_vpc(CidrBlock="10.41.0.0/16")["Vpc"]["VpcId"]
    a = ec2.create_security_group(GroupName="a", Description="a", VpcId=vpc_id)["GroupId"]
    b = ec2.create_security_group(GroupName="b", Description="b", VpcId=vpc_id)["GroupId"]
    template = {"Resources": {
        "In": {"Type": "AWS::EC2::SecurityGroupIngress",
               "Properties": {"GroupId": a, "IpProtocol": "tcp", "FromPort": 3306, "ToPort": 3306,
                              "SourceSecurityGroupId": b}},
        "Out": {"Type": "AWS::EC2::SecurityGroupEgress",
                "Properties": {"GroupId": b, "IpProtocol": "tcp", "FromPort": 3306, "ToPort": 3306,
                               "DestinationSecurityGroupId": a}},
        "Out6": {"Type": "AWS::EC2::SecurityGroupEgress",
                 "Properties": {"GroupId": b, "IpProtocol": "tcp", "FromPort": 443, "ToPort": 443,
                                "CidrIpv6": "::/0"}},
    }}
    cfn.create_stack(StackName="rules-only", TemplateBody=json.dumps(template))
    assert _wait(cfn, "rules-only")["StackStatus"] == "CREATE_COMPLETE", _failures(cfn, "rules-only")
    assert [p["UserIdGroupPairs"][0]["GroupId"] for p in _rules(ec2, a, "IpPermissions")] == [b]
    assert len(_rules(ec2, b, "IpPermissionsEgress")) == 3  # allow-all from CreateSecurityGroup + 2
    cfn.delete_stack(StackName="rules-only")
    assert _wait(cfn, "rules-only")["StackStatus"] == "DELETE_COMPLETE"
    assert _rules(ec2, a, "IpPermissions") == []
    assert [(p["IpProtocol"], p["IpRanges"]) for p in _rules(ec2, b, "IpPermissionsEgress")] == [
        ("-1", [{"CidrIp": "0.0.0.0/0"}])]


def test_a_duplicate_rule_fails_as_on_aws(endpoint):
    cfn, ec2 = _client(endpoint, "cloudformation"), _client(endpoint, "ec2")
    vpc_id = ec2.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
    group = ec2.create_security_group(GroupName="dup", Description="d", VpcId=vpc_id)["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=[{
        "IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}])
    template = {"Resources": {"In": {"Type": "AWS::EC2::SecurityGroupIngress", "Properties": {
        "GroupId": group, "IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "CidrIp": "10.0.0.0/8"}}}}
    cfn.create_stack(StackName="dup", TemplateBody=json.dumps(template))
    assert _wait(cfn, "dup")["StackStatus"] == "ROLLBACK_COMPLETE"
    assert any("InvalidPermission.Duplicate" in (reason or "")
               for _, _, reason in _failures(cfn, "dup"))
    # The rollback left the rule made outside the stack alone.
    assert len(_rules(ec2, group, "IpPermissions")) == 1


def test_the_ec2_api_associates_and_disassociates_an_ipv6_block(endpoint):
    ec2 = _client(endpoint, "ec2")
    vpc_id = ec2.create_vpc(CidrBlock="10.43.0.0/16")["Vpc"]["VpcId"]
    out = ec2.associate_vpc_cidr_block(VpcId=vpc_id, AmazonProvidedIpv6CidrBlock=True)
    association = out["Ipv6CidrBlockAssociation"]
    assert association["Ipv6CidrBlock"].endswith("/56")
    [shown] = ec2.describe_vpcs(VpcIds=[vpc_id])["Vpcs"][0]["Ipv6CidrBlockAssociationSet"]
    assert shown["AssociationId"] == association["AssociationId"]
    ec2.disassociate_vpc_cidr_block(AssociationId=association["AssociationId"])
    assert "Ipv6CidrBlockAssociationSet" not in ec2.describe_vpcs(VpcIds=[vpc_id])["Vpcs"][0] or \
        ec2.describe_vpcs(VpcIds=[vpc_id])["Vpcs"][0]["Ipv6CidrBlockAssociationSet"] == []


def test_a_db_instance_with_a_managed_master_password_has_its_secret(endpoint):
    cfn, rds = _client(endpoint, "cloudformation"), _client(endpoint, "rds")
    secrets = _client(endpoint, "secretsmanager")
    template = {
        "Resources": {"Db": {"Type": "AWS::RDS::DBInstance", "DeletionPolicy": "Delete", "Properties": {
            "DBInstanceIdentifier": "cfn-ext-db", "Engine": "mysql", "EngineVersion": "8.0",
            "DBInstanceClass": "db.t3.micro", "AllocatedStorage": "20", "MasterUsername": "admin",
            "ManageMasterUserPassword": True}}},
        "Outputs": {"Secret": {"Value": {"Fn::GetAtt": ["Db", "MasterUserSecret.SecretArn"]}}},
    }
    cfn.create_stack(StackName="db", TemplateBody=json.dumps(template))
    stack = _wait(cfn, "db")
    assert stack["StackStatus"] == "CREATE_COMPLETE", _failures(cfn, "db")
    arn = stack["Outputs"][0]["OutputValue"]
    assert ":secret:rds!db-" in arn
    [db] = rds.describe_db_instances(DBInstanceIdentifier="cfn-ext-db")["DBInstances"]
    assert db["MasterUserSecret"]["SecretArn"] == arn
    value = json.loads(secrets.get_secret_value(SecretId=arn)["SecretString"])
    assert value["username"] == "admin" and value["password"]
    cfn.delete_stack(StackName="db")
    assert _wait(cfn, "db")["StackStatus"] == "DELETE_COMPLETE"
    with pytest.raises(secrets.exceptions.ResourceNotFoundException):
        secrets.describe_secret(SecretId=arn)


def _bucket_template(name, retention_days=30, drop=()):
    """A bucket with the four properties ministack's provisioner dropped; `drop` leaves some
    out (an update removing them)."""
    props = {
        "BucketName": name,
        "Tags": [{"Key": "provision:stack", "Value": "cfn-ext"}, {"Key": "team", "Value": "a"}],
        "BucketEncryption": {"ServerSideEncryptionConfiguration": [
            {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]},
        "LifecycleConfiguration": {"Rules": [{
            "Id": "retention", "Status": "Enabled", "ExpirationInDays": retention_days,
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}}]},
        "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
    }
    for prop in drop:
        props.pop(prop)
    return {"Resources": {"Bucket": {"Type": "AWS::S3::Bucket", "Properties": props}}}


def test_a_bucket_has_its_tags_encryption_lifecycle_and_ownership(endpoint):
    cfn, s3 = _client(endpoint, "cloudformation"), _client(endpoint, "s3")
    name, bucket = "bucket-props", "cfn-ext-bucket-props"
    cfn.create_stack(StackName=name, TemplateBody=json.dumps(_bucket_template(bucket)),
                     Tags=[{"Key": "owner", "Value": "ops"}])
    assert _wait(cfn, name)["StackStatus"] == "CREATE_COMPLETE", _failures(cfn, name)

    # The template's tags, the stack's, and CloudFormation's own three, as on AWS.
    tags = {t["Key"]: t["Value"] for t in s3.get_bucket_tagging(Bucket=bucket)["TagSet"]}
    assert {k: v for k, v in tags.items() if not k.startswith("aws:")} == {
        "provision:stack": "cfn-ext", "team": "a", "owner": "ops"}
    assert tags["aws:cloudformation:stack-name"] == name
    assert tags["aws:cloudformation:logical-id"] == "Bucket"
    assert tags["aws:cloudformation:stack-id"].startswith("arn:aws:cloudformation:")
    [rule] = s3.get_bucket_encryption(Bucket=bucket)[
        "ServerSideEncryptionConfiguration"]["Rules"]
    assert rule == {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"},
                    "BucketKeyEnabled": False}
    [rule] = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert (rule["ID"], rule["Status"], rule["Expiration"], rule["AbortIncompleteMultipartUpload"],
            rule["Filter"]) == ("retention", "Enabled", {"Days": 30}, {"DaysAfterInitiation": 1},
                                {"Prefix": ""})
    assert s3.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"]["Rules"] == [
        {"ObjectOwnership": "BucketOwnerEnforced"}]

    # Update in place: a changed rule is rewritten.
    cfn.update_stack(StackName=name, TemplateBody=json.dumps(_bucket_template(bucket, 7)),
                     Tags=[{"Key": "owner", "Value": "ops"}])
    assert _wait(cfn, name)["StackStatus"] == "UPDATE_COMPLETE", _failures(cfn, name)
    assert s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"][0]["Expiration"] == {
        "Days": 7}

    # A dropped property is removed from the bucket, as AWS's CloudFormation removes it:
    # no lifecycle configuration, no ownership controls, S3's default encryption, no template
    # tags (the stack's and aws:cloudformation:* stay).
    dropped = ("LifecycleConfiguration", "OwnershipControls", "BucketEncryption", "Tags")
    cfn.update_stack(StackName=name,
                     TemplateBody=json.dumps(_bucket_template(bucket, 7, drop=dropped)),
                     Tags=[{"Key": "owner", "Value": "ops"}])
    assert _wait(cfn, name)["StackStatus"] == "UPDATE_COMPLETE", _failures(cfn, name)
    with pytest.raises(s3.exceptions.ClientError, match="NoSuchLifecycleConfiguration"):
        s3.get_bucket_lifecycle_configuration(Bucket=bucket)
    with pytest.raises(s3.exceptions.ClientError, match="OwnershipControlsNotFoundError"):
        s3.get_bucket_ownership_controls(Bucket=bucket)
    [rule] = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rule["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}
    tags = {t["Key"] for t in s3.get_bucket_tagging(Bucket=bucket)["TagSet"]}
    assert "team" not in tags and "owner" in tags and "aws:cloudformation:stack-name" in tags

    cfn.delete_stack(StackName=name)
    assert _wait(cfn, name)["StackStatus"] == "DELETE_COMPLETE"
    assert bucket not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_a_refused_bucket_property_fails_the_resource(endpoint):
    cfn = _client(endpoint, "cloudformation")
    template = _bucket_template("cfn-ext-bucket-refused")
    template["Resources"]["Bucket"]["Properties"]["BucketEncryption"][
        "ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"][
        "SSEAlgorithm"] = "ROT13"
    cfn.create_stack(StackName="bucket-refused", TemplateBody=json.dumps(template))
    assert _wait(cfn, "bucket-refused")["StackStatus"] == "ROLLBACK_COMPLETE"
    assert any("PutBucketEncryption" in (reason or "")
               for _, _, reason in _failures(cfn, "bucket-refused"))


def test_a_bucket_holding_objects_is_not_deleted(endpoint):
    """As on AWS: the stack's delete fails on the bucket (DELETE_FAILED), which keeps its
    objects; emptied, it goes."""
    cfn, s3 = _client(endpoint, "cloudformation"), _client(endpoint, "s3")
    name, bucket = "bucket-full", "cfn-ext-bucket-full"
    cfn.create_stack(StackName=name, TemplateBody=json.dumps(_bucket_template(bucket)))
    assert _wait(cfn, name)["StackStatus"] == "CREATE_COMPLETE", _failures(cfn, name)
    s3.put_object(Bucket=bucket, Key="kept.txt", Body=b"data")
    cfn.delete_stack(StackName=name)
    assert _wait(cfn, name)["StackStatus"] == "DELETE_FAILED"
    assert any("BucketNotEmpty" in (reason or "") for _, _, reason in _failures(cfn, name))
    assert s3.get_object(Bucket=bucket, Key="kept.txt")["Body"].read() == b"data"
    s3.delete_object(Bucket=bucket, Key="kept.txt")
    cfn.delete_stack(StackName=name)
    assert _wait(cfn, name)["StackStatus"] == "DELETE_COMPLETE"
    assert bucket not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_an_event_invoke_config_of_latest_is_the_functions(endpoint):
    """As on AWS: the template's EventInvokeConfig (Qualifier $LATEST) is what an unqualified
    GetFunctionEventInvokeConfig reads, and an unqualified put is $LATEST's."""
    cfn, lam = _client(endpoint, "cloudformation"), _client(endpoint, "lambda")
    role = "arn:aws:iam::000000000000:role/eic"
    template = {"Resources": {
        "Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "cfn-ext-eic-failed"}},
        "Function": {"Type": "AWS::Lambda::Function", "Properties": {
            "FunctionName": "cfn-ext-eic", "Runtime": "python3.12", "Handler": "index.handler",
            "Role": role, "Code": {"ZipFile": "def handler(e, c):\n    return e\n"}}},
        "Config": {"Type": "AWS::Lambda::EventInvokeConfig", "Properties": {
            "FunctionName": {"Ref": "Function"}, "Qualifier": "$LATEST",
            "MaximumRetryAttempts": 1, "MaximumEventAgeInSeconds": 600,
            "DestinationConfig": {"OnFailure": {"Destination": {"Fn::GetAtt": ["Queue", "Arn"]}}}}},
    }}
    cfn.create_stack(StackName="eic", TemplateBody=json.dumps(template))
    assert _wait(cfn, "eic")["StackStatus"] == "CREATE_COMPLETE", _failures(cfn, "eic")
    for qualifier in ({}, {"Qualifier": "$LATEST"}):
        config = lam.get_function_event_invoke_config(FunctionName="cfn-ext-eic", **qualifier)
        assert config["FunctionArn"].endswith(":function:cfn-ext-eic:$LATEST")
        assert (config["MaximumRetryAttempts"], config["MaximumEventAgeInSeconds"]) == (1, 600)
        assert config["DestinationConfig"]["OnFailure"]["Destination"].endswith(
            ":cfn-ext-eic-failed")
    assert len(lam.list_function_event_invoke_configs(
        FunctionName="cfn-ext-eic")["FunctionEventInvokeConfigs"]) == 1

    # An unqualified put changes the same configuration.
    put = lam.put_function_event_invoke_config(FunctionName="cfn-ext-eic", MaximumRetryAttempts=0)
    assert put["FunctionArn"].endswith(":function:cfn-ext-eic:$LATEST")
    assert lam.get_function_event_invoke_config(
        FunctionName="cfn-ext-eic", Qualifier="$LATEST")["MaximumRetryAttempts"] == 0

    cfn.delete_stack(StackName="eic")
    assert _wait(cfn, "eic")["StackStatus"] == "DELETE_COMPLETE"


def test_a_secret_declaring_no_value_is_empty(endpoint):
    """As on AWS ("If you omit both GenerateSecretString and SecretString, you create an empty
    secret"): no version until a PutSecretValue; an update still declaring none adds none."""
    cfn, secrets = _client(endpoint, "cloudformation"), _client(endpoint, "secretsmanager")

    def template(description):
        return json.dumps({"Resources": {
            "Empty": {"Type": "AWS::SecretsManager::Secret",
                      "Properties": {"Name": "cfn-ext/empty", "Description": description}},
            "Given": {"Type": "AWS::SecretsManager::Secret",
                      "Properties": {"Name": "cfn-ext/given", "SecretString": "{\"a\": 1}"}},
        }})

    cfn.create_stack(StackName="secrets", TemplateBody=template("one"))
    assert _wait(cfn, "secrets")["StackStatus"] == "CREATE_COMPLETE", _failures(cfn, "secrets")
    with pytest.raises(secrets.exceptions.ResourceNotFoundException, match="AWSCURRENT"):
        secrets.get_secret_value(SecretId="cfn-ext/empty")
    assert not secrets.describe_secret(SecretId="cfn-ext/empty").get("VersionIdsToStages")
    assert secrets.get_secret_value(SecretId="cfn-ext/given")["SecretString"] == "{\"a\": 1}"

    cfn.update_stack(StackName="secrets", TemplateBody=template("two"))
    assert _wait(cfn, "secrets")["StackStatus"] == "UPDATE_COMPLETE", _failures(cfn, "secrets")
    assert secrets.describe_secret(SecretId="cfn-ext/empty")["Description"] == "two"
    with pytest.raises(secrets.exceptions.ResourceNotFoundException):
        secrets.get_secret_value(SecretId="cfn-ext/empty")

    # Its value comes from whoever writes it, as db_migrate does.
    secrets.put_secret_value(SecretId="cfn-ext/empty", SecretString="{\"user\": \"app\"}")
    assert secrets.get_secret_value(SecretId="cfn-ext/empty")["SecretString"] == "{\"user\": \"app\"}"
    cfn.delete_stack(StackName="secrets")
    assert _wait(cfn, "secrets")["StackStatus"] == "DELETE_COMPLETE"


def test_ref_of_a_secret_is_its_arn(endpoint):
    cfn, secrets = _client(endpoint, "cloudformation"), _client(endpoint, "secretsmanager")

    def template(description):
        return json.dumps({
            "Resources": {"Secret": {"Type": "AWS::SecretsManager::Secret", "Properties": {
                "Name": "cfn-ext/ref", "Description": description}}},
            "Outputs": {"Ref": {"Value": {"Ref": "Secret"}}},
        })

    cfn.create_stack(StackName="secret-ref", TemplateBody=template("one"))
    stack = _wait(cfn, "secret-ref")
    assert stack["StackStatus"] == "CREATE_COMPLETE", _failures(cfn, "secret-ref")
    arn = secrets.describe_secret(SecretId="cfn-ext/ref")["ARN"]
    assert stack["Outputs"][0]["OutputValue"] == arn
    physical = cfn.describe_stack_resource(StackName="secret-ref", LogicalResourceId="Secret")[
        "StackResourceDetail"]["PhysicalResourceId"]
    assert physical == arn
    # In place under its ARN; drift detection finds it.
    cfn.update_stack(StackName="secret-ref", TemplateBody=template("two"))
    assert _wait(cfn, "secret-ref")["StackStatus"] == "UPDATE_COMPLETE", _failures(cfn, "secret-ref")
    assert secrets.describe_secret(SecretId=arn)["Description"] == "two"
    detection = cfn.detect_stack_drift(StackName="secret-ref")["StackDriftDetectionId"]
    deadline = time.monotonic() + 30
    while cfn.describe_stack_drift_detection_status(StackDriftDetectionId=detection)[
            "DetectionStatus"] == "DETECTION_IN_PROGRESS":
        assert time.monotonic() < deadline
        time.sleep(0.25)
    [drift] = cfn.describe_stack_resource_drifts(StackName="secret-ref")["StackResourceDrifts"]
    assert drift["StackResourceDriftStatus"] == "IN_SYNC", drift
    cfn.delete_stack(StackName="secret-ref")
    assert _wait(cfn, "secret-ref")["StackStatus"] == "DELETE_COMPLETE"
    with pytest.raises(secrets.exceptions.ResourceNotFoundException):
        secrets.describe_secret(SecretId=arn)


def test_a_function_has_its_vpc_configuration_and_reserved_concurrency(endpoint):
    cfn, lam, ec2 = (_client(endpoint, s) for s in ("cloudformation", "lambda", "ec2"))
    vpc_id = ec2.create_vpc(CidrBlock="10.44.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.44.0.0/20")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="fn", Description="fn", VpcId=vpc_id)["GroupId"]

    def template(**extra):
        props = {"FunctionName": "cfn-ext-vpc", "Runtime": "python3.12",
                 "Handler": "index.handler", "Role": "arn:aws:iam::000000000000:role/fn",
                 "Code": {"ZipFile": "def handler(e, c):\n    return e\n"}, **extra}
        return json.dumps({"Resources": {"Function": {"Type": "AWS::Lambda::Function",
                                                      "Properties": props}}})

    cfn.create_stack(StackName="fn-vpc", TemplateBody=template(
        VpcConfig={"SubnetIds": [subnet], "SecurityGroupIds": [group],
                   "Ipv6AllowedForDualStack": True},
        ReservedConcurrentExecutions=7))
    assert _wait(cfn, "fn-vpc")["StackStatus"] == "CREATE_COMPLETE", _failures(cfn, "fn-vpc")
    vpc = lam.get_function_configuration(FunctionName="cfn-ext-vpc")["VpcConfig"]
    assert (vpc["SubnetIds"], vpc["SecurityGroupIds"], vpc["VpcId"],
            vpc["Ipv6AllowedForDualStack"]) == ([subnet], [group], vpc_id, True)
    assert lam.get_function_concurrency(FunctionName="cfn-ext-vpc")[
        "ReservedConcurrentExecutions"] == 7

    cfn.update_stack(StackName="fn-vpc", TemplateBody=template(ReservedConcurrentExecutions=3,
                                                                Timeout=9))
    assert _wait(cfn, "fn-vpc")["StackStatus"] == "UPDATE_COMPLETE", _failures(cfn, "fn-vpc")
    config = lam.get_function_configuration(FunctionName="cfn-ext-vpc")
    assert (config["VpcConfig"]["SubnetIds"], config["VpcConfig"]["SecurityGroupIds"]) == ([], [])
    assert lam.get_function_concurrency(FunctionName="cfn-ext-vpc")[
        "ReservedConcurrentExecutions"] == 3
    cfn.update_stack(StackName="fn-vpc", TemplateBody=template())
    assert _wait(cfn, "fn-vpc")["StackStatus"] == "UPDATE_COMPLETE", _failures(cfn, "fn-vpc")
    assert "ReservedConcurrentExecutions" not in lam.get_function_concurrency(
        FunctionName="cfn-ext-vpc")
    cfn.delete_stack(StackName="fn-vpc")
    assert _wait(cfn, "fn-vpc")["StackStatus"] == "DELETE_COMPLETE"


def test_a_rest_api_has_its_endpoint_configuration(endpoint):
    cfn, apigw = _client(endpoint, "cloudformation"), _client(endpoint, "apigateway")

    def template(kind):
        return json.dumps({"Resources": {"Api": {"Type": "AWS::ApiGateway::RestApi", "Properties": {
            "Name": "cfn-ext-api", "EndpointConfiguration": {"Types": [kind]}}}}})

    cfn.create_stack(StackName="api-endpoint", TemplateBody=template("REGIONAL"))
    assert _wait(cfn, "api-endpoint")["StackStatus"] == "CREATE_COMPLETE", \
        _failures(cfn, "api-endpoint")
    api_id = cfn.describe_stack_resource(StackName="api-endpoint", LogicalResourceId="Api")[
        "StackResourceDetail"]["PhysicalResourceId"]
    assert apigw.get_rest_api(restApiId=api_id)["endpointConfiguration"]["types"] == ["REGIONAL"]
    cfn.update_stack(StackName="api-endpoint", TemplateBody=template("EDGE"))
    assert _wait(cfn, "api-endpoint")["StackStatus"] == "UPDATE_COMPLETE", \
        _failures(cfn, "api-endpoint")
    assert apigw.get_rest_api(restApiId=api_id)["endpointConfiguration"]["types"] == ["EDGE"]
    cfn.delete_stack(StackName="api-endpoint")
    assert _wait(cfn, "api-endpoint")["StackStatus"] == "DELETE_COMPLETE"


def test_a_db_instance_lists_its_tags_and_its_final_snapshot_keeps_them(endpoint):
    cfn, rds = _client(endpoint, "cloudformation"), _client(endpoint, "rds")
    template = {"Resources": {"Db": {
        "Type": "AWS::RDS::DBInstance", "DeletionPolicy": "Snapshot", "Properties": {
            "DBInstanceIdentifier": "cfn-ext-tagged", "Engine": "mysql", "EngineVersion": "8.0",
            "DBInstanceClass": "db.t3.micro", "AllocatedStorage": "20", "MasterUsername": "admin",
            "MasterUserPassword": "password123", "CopyTagsToSnapshot": True,
            "Tags": [{"Key": "provision:stack", "Value": "cfn-ext"}]}}}}
    cfn.create_stack(StackName="db-tags", TemplateBody=json.dumps(template))
    assert _wait(cfn, "db-tags")["StackStatus"] == "CREATE_COMPLETE", _failures(cfn, "db-tags")
    [db] = rds.describe_db_instances(DBInstanceIdentifier="cfn-ext-tagged")["DBInstances"]
    listed = rds.list_tags_for_resource(ResourceName=db["DBInstanceArn"])["TagList"]
    assert {"Key": "provision:stack", "Value": "cfn-ext"} in listed
    cfn.delete_stack(StackName="db-tags")
    assert _wait(cfn, "db-tags")["StackStatus"] == "DELETE_COMPLETE"
    [snapshot] = [s for s in rds.describe_db_snapshots()["DBSnapshots"]
                  if s["DBInstanceIdentifier"] == "cfn-ext-tagged"]
    assert {"Key": "provision:stack", "Value": "cfn-ext"} in snapshot["TagList"]
    rds.delete_db_snapshot(DBSnapshotIdentifier=snapshot["DBSnapshotIdentifier"])


def test_a_bucket_notification_change_replaces_nothing(endpoint):
    """AWS says Replacement False for a bucket whose notifications change, True for a new
    name; without the create-only lists ministack said Conditional for both."""
    cfn = _client(endpoint, "cloudformation")
    template = {"Resources": {"Bucket": {"Type": "AWS::S3::Bucket", "Properties": {
        "BucketName": "replaces-nothing", "Tags": [{"Key": "a", "Value": "1"}]}}}}
    cfn.create_stack(StackName="replaces-nothing", TemplateBody=json.dumps(template))
    _wait(cfn, "replaces-nothing")
    try:
        def replacement(properties, name):
            changed = {"Resources": {"Bucket": {"Type": "AWS::S3::Bucket",
                                                "Properties": properties}}}
            cfn.create_change_set(StackName="replaces-nothing", ChangeSetName=name,
                                  TemplateBody=json.dumps(changed))
            deadline = time.monotonic() + 30
            while True:
                out = cfn.describe_change_set(StackName="replaces-nothing", ChangeSetName=name)
                if out["Status"] in ("CREATE_COMPLETE", "FAILED") or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            return out["Changes"][0]["ResourceChange"]["Replacement"]

        assert replacement({"BucketName": "replaces-nothing",
                            "Tags": [{"Key": "a", "Value": "2"}]}, "retag") == "False"
        assert replacement({"BucketName": "another-name"}, "rename") == "True"
    finally:
        cfn.delete_stack(StackName="replaces-nothing")
