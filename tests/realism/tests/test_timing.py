"""AWS's timing: each behaviour alone, with short windows (time scale 1, durations in seconds)."""

import concurrent.futures
import json
import time

import pytest
from botocore.exceptions import ClientError

from conftest import error_of, function_zip, make_role, unique, wait_until

ZIP1 = function_zip("1")
ZIP2 = function_zip("2")


def create_function(lam, role, name=None, vpc=None, zip_bytes=ZIP1):
    kw = {"VpcConfig": vpc} if vpc else {}
    return lam.create_function(FunctionName=name or unique("fn"), Runtime="provided.al2023", Role=role,
                               Handler="bootstrap", Code={"ZipFile": zip_bytes}, Timeout=10, **kw)


def invoke(lam, name):
    r = lam.invoke(FunctionName=name, Payload=b'{"n": 1}')
    return json.loads(r["Payload"].read())


def retry_until_ok(fn, codes, timeout=20.0):
    """Calls fn until it stops failing with one of codes; returns (result, refusals)."""
    refusals = []
    deadline = time.monotonic() + timeout
    while True:
        try:
            return fn(), refusals
        except ClientError as e:
            if e.response["Error"]["Code"] not in codes or time.monotonic() > deadline:
                raise
            refusals.append(e.response["Error"]["Code"])
            time.sleep(0.1)


def test_iam_propagation_refuses_a_new_role_then_accepts_it(ms):
    ms.realism.config(durations={"iam_propagation": [3, 3]})
    iam, lam = ms.client("iam"), ms.client("lambda")
    role = make_role(iam)
    name = unique("fn")
    with pytest.raises(ClientError) as e:
        create_function(lam, role, name)
    assert error_of(e) == ("InvalidParameterValueException", 400,
                           "The role defined for the function cannot be assumed by Lambda.")
    with pytest.raises(ClientError) as e:
        lam.get_function(FunctionName=name)
    assert error_of(e)[0] == "ResourceNotFoundException"  # the emulator never saw it
    retry_until_ok(lambda: create_function(lam, role, name), {"InvalidParameterValueException"})
    assert ms.realism.calls(operation="CreateFunction", verdict="timing:iam_propagation")


def test_iam_propagation_of_a_new_policy_blocks_vpc_functions(ms):
    iam, lam, ec2 = ms.client("iam"), ms.client("lambda"), ms.client("ec2")
    role = make_role(iam)
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.20.1.0/24")["Subnet"]["SubnetId"]
    sg = ec2.create_security_group(VpcId=vpc, GroupName=unique("sg"), Description="d")["GroupId"]
    ms.realism.config(durations={"iam_propagation": [3, 3]})
    iam.attach_role_policy(RoleName=role.rsplit("/", 1)[1],
                           PolicyArn="arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole")
    with pytest.raises(ClientError) as e:
        create_function(lam, role, vpc={"SubnetIds": [subnet], "SecurityGroupIds": [sg]})
    assert error_of(e) == ("InvalidParameterValueException", 400, "The provided execution role does not have "
                           "permissions to call CreateNetworkInterface on EC2")
    create_function(lam, role)  # without a VPC the new policy does not matter


def test_pending_function_refuses_invoke_then_runs(ms):
    ms.realism.config(durations={"lambda_pending": [3, 3]})
    iam, lam = ms.client("iam"), ms.client("lambda")
    name = unique("fn")
    created = create_function(lam, make_role(iam), name)
    assert created["State"] == "Pending"
    assert created["StateReason"] == "The function is being created."
    assert created["StateReasonCode"] == "Creating"
    assert "LastUpdateStatus" not in created
    conf = lam.get_function_configuration(FunctionName=name)
    assert conf["State"] == "Pending" and "LastUpdateStatus" not in conf
    assert lam.get_function(FunctionName=name)["Configuration"]["State"] == "Pending"
    listed = [f for f in lam.list_functions()["Functions"] if f["FunctionName"] == name]
    assert listed[0]["State"] == "Pending"
    with pytest.raises(ClientError) as e:
        invoke(lam, name)
    assert error_of(e) == ("ResourceConflictException", 409, "The operation cannot be performed at this time. "
                           "The function is currently in the following state: Pending")
    with pytest.raises(ClientError) as e:
        lam.add_permission(FunctionName=name, StatementId="s", Action="lambda:InvokeFunction",
                           Principal="s3.amazonaws.com")
    assert error_of(e)[0] == "ResourceConflictException"
    waiter = lam.get_waiter("function_active_v2")
    waiter.wait(FunctionName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 50})
    conf = lam.get_function_configuration(FunctionName=name)
    assert conf["State"] == "Active" and conf["LastUpdateStatus"] == "Successful"
    out = invoke(lam, name)
    assert out["version"] == "1" and out["event"] == {"n": 1}
    assert out["endpoint"] == ms.endpoint  # the functions ministack runs call AWS through the proxy


def test_update_code_then_invoke_runs_the_old_code_then_the_new(ms):
    iam, lam = ms.client("iam"), ms.client("lambda")
    name = unique("fn")
    create_function(lam, make_role(iam), name)
    assert invoke(lam, name)["version"] == "1"
    ms.realism.config(durations={"lambda_update": [4, 4]})
    upd = lam.update_function_code(FunctionName=name, ZipFile=ZIP2)
    import base64
    import hashlib
    assert upd["CodeSha256"] == base64.b64encode(hashlib.sha256(ZIP2).digest()).decode()
    assert upd["CodeSize"] == len(ZIP2)
    assert upd["LastUpdateStatus"] == "InProgress"
    assert upd["LastUpdateStatusReasonCode"] == "Creating"
    assert upd["State"] == "Active"
    assert invoke(lam, name)["version"] == "1"  # the previous code still runs
    conf = lam.get_function_configuration(FunctionName=name)
    assert conf["LastUpdateStatus"] == "InProgress" and conf["CodeSha256"] == upd["CodeSha256"]
    with pytest.raises(ClientError) as e:
        lam.update_function_configuration(FunctionName=name, Timeout=20)
    code, status, msg = error_of(e)
    assert (code, status) == ("ResourceConflictException", 409)
    assert msg == ("The operation cannot be performed at this time. An update is in progress for resource: "
                   "arn:aws:lambda:us-east-1:000000000000:function:%s" % name)
    lam.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 60})
    conf = lam.get_function_configuration(FunctionName=name)
    assert conf["LastUpdateStatus"] == "Successful" and conf["CodeSha256"] == upd["CodeSha256"]
    assert wait_until(lambda: invoke(lam, name)["version"] == "2", 10, 0.3, "the new code running")
    notes = [c.get("note", "") for c in ms.realism.calls(verdict="timing:lambda_update")]
    assert any("deferred UpdateFunctionCode of %s forwarded" % name in n for n in notes)


def test_update_configuration_window(ms):
    iam, lam = ms.client("iam"), ms.client("lambda")
    name = unique("fn")
    create_function(lam, make_role(iam), name)
    ms.realism.config(durations={"lambda_update": [3, 3]})
    upd = lam.update_function_configuration(FunctionName=name, Timeout=15)
    assert upd["LastUpdateStatus"] == "InProgress"
    with pytest.raises(ClientError) as e:
        lam.add_permission(FunctionName=name, StatementId="s1", Action="lambda:InvokeFunction",
                           Principal="s3.amazonaws.com")
    assert error_of(e)[:2] == ("ResourceConflictException", 409)
    assert invoke(lam, name)["version"] == "1"  # invocations work during an update
    retry_until_ok(lambda: lam.add_permission(
        FunctionName=name, StatementId="s1", Action="lambda:InvokeFunction", Principal="s3.amazonaws.com"),
        {"ResourceConflictException"})
    assert lam.get_function_configuration(FunctionName=name)["LastUpdateStatus"] == "Successful"


def test_update_code_with_a_broken_zip_is_answered_at_once(ms):
    iam, lam = ms.client("iam"), ms.client("lambda")
    name = unique("fn")
    create_function(lam, make_role(iam), name)
    ms.realism.config(durations={"lambda_update": [5, 5]})
    with pytest.raises(ClientError) as e:  # not held: Lambda checks the zip before accepting the update
        lam.update_function_code(FunctionName=name, ZipFile=b"this is not a zip")
    assert error_of(e)[1] == 400
    assert name not in [k for k, f in ms.realism.state()["functions"].items() if f["updating"] or f["deferred_code"]]
    wait_until(lambda: lam.get_function_configuration(FunctionName=name)["LastUpdateStatus"] == "Successful", 3,
               0.1, "no update window (the emulator's own lasts 0.5 s)")


def test_s3_no_such_bucket_right_after_create(ms):
    ms.realism.config(durations={"s3_read_after_create": [3, 3]})
    s3 = ms.client("s3")
    bucket = unique("bkt")
    s3.create_bucket(Bucket=bucket)
    with pytest.raises(ClientError) as e:
        s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [{"Key": "a", "Value": "b"}]})
    code, status, msg = error_of(e)
    assert (code, status, msg) == ("NoSuchBucket", 404, "The specified bucket does not exist")
    assert e.value.response["Error"]["BucketName"] == bucket
    s3.put_object(Bucket=bucket, Key="k", Body=b"objects are not sub-resources")
    retry_until_ok(lambda: s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [{"Key": "a", "Value": "b"}]}),
                   {"NoSuchBucket"})
    assert s3.get_bucket_tagging(Bucket=bucket)["TagSet"] == [{"Key": "a", "Value": "b"}]


def test_sqs_a_deleted_queue_name_is_refused_for_a_while(ms):
    ms.realism.config(durations={"sqs_queue_deleted": [3, 3]})
    sqs = ms.client("sqs")
    name = unique("q")
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    sqs.delete_queue(QueueUrl=url)
    with pytest.raises(ClientError) as e:
        sqs.create_queue(QueueName=name)
    # botocore reads the query-compatible code from the x-amzn-query-error header.
    assert error_of(e)[:2] == ("AWS.SimpleQueueService.QueueDeletedRecently", 400)
    assert "60 seconds" in error_of(e)[2]
    other = sqs.create_queue(QueueName=unique("q"))["QueueUrl"]  # other names are not affected
    retry_until_ok(lambda: sqs.create_queue(QueueName=name), {"AWS.SimpleQueueService.QueueDeletedRecently"})
    sqs.delete_queue(QueueUrl=other)


def test_ec2_a_repeated_client_token_is_answered_the_first_resource(ms):
    ms.realism.config(behaviours=["ec2_client_tokens"])
    ec2 = ms.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.31.0.0/16")["Vpc"]["VpcId"]
    other_vpc = ec2.create_vpc(CidrBlock="10.32.0.0/16")["Vpc"]["VpcId"]
    def tables():
        return len(ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["RouteTables"])

    before = tables()
    token = unique("token")
    first = ec2.create_route_table(VpcId=vpc, ClientToken=token)["RouteTable"]["RouteTableId"]
    again = ec2.create_route_table(VpcId=vpc, ClientToken=token)["RouteTable"]["RouteTableId"]
    assert again == first
    assert tables() == before + 1
    with pytest.raises(ClientError) as e:
        ec2.create_route_table(VpcId=other_vpc, ClientToken=token)
    assert error_of(e)[:2] == ("IdempotentParameterMismatch", 400)
    assert ec2.create_route_table(VpcId=vpc, ClientToken=unique("token"))["RouteTable"]["RouteTableId"] != first


def test_ec2_invalid_vpc_id_right_after_create(ms):
    ms.realism.config(durations={"ec2_read_after_create": [3, 3]})
    ec2 = ms.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.30.0.0/16")["Vpc"]["VpcId"]
    with pytest.raises(ClientError) as e:
        ec2.create_tags(Resources=[vpc], Tags=[{"Key": "Name", "Value": "v"}])
    assert error_of(e) == ("InvalidVpcID.NotFound", 400, "The vpc ID '%s' does not exist" % vpc)
    ec2.describe_vpcs(Filters=[{"Name": "vpc-id", "Values": [vpc]}])  # filters are not refused
    subnet, _ = retry_until_ok(lambda: ec2.create_subnet(VpcId=vpc, CidrBlock="10.30.1.0/24")["Subnet"]["SubnetId"],
                               {"InvalidVpcID.NotFound"})
    with pytest.raises(ClientError) as e:
        ec2.describe_subnets(SubnetIds=[subnet])
    assert error_of(e) == ("InvalidSubnetID.NotFound", 400, "The subnet ID '%s' does not exist" % subnet)
    sg = ec2.create_security_group(VpcId=vpc, GroupName=unique("sg"), Description="d")["GroupId"]
    with pytest.raises(ClientError) as e:
        ec2.authorize_security_group_ingress(GroupId=sg, IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}])
    assert error_of(e) == ("InvalidGroup.NotFound", 400, "The security group '%s' does not exist" % sg)


def test_s3_conflicting_writes_on_one_bucket(ms):
    s3 = ms.client("s3")
    bucket = unique("bkt")
    s3.create_bucket(Bucket=bucket)
    ms.realism.config(durations={"s3_conflicting_writes": [1.0, 1.0]})

    def tag():
        s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [{"Key": "a", "Value": "b"}]})
        return "ok"

    def versioning():
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        return "ok"

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        first = pool.submit(tag)
        time.sleep(0.1)
        second = pool.submit(versioning)
        results = []
        for f in (first, second):
            try:
                results.append(f.result())
            except ClientError as e:
                results.append(error_of(type("E", (), {"value": e})))
    assert results[0] == "ok"
    assert results[1] == ("OperationAborted", 409, "A conflicting conditional operation is currently in progress "
                          "against this resource. Please try again.")
    versioning()  # alone, it goes through


def test_cloudfront_in_progress_then_deployed(ms):
    ms.realism.config(durations={"cloudfront_deploy": [3, 3]})
    cf = ms.client("cloudfront")
    config = {
        "CallerReference": unique("ref"), "Comment": "c", "Enabled": True,
        "Origins": {"Quantity": 1, "Items": [{"Id": "o1", "DomainName": "b.s3.amazonaws.com",
                                              "S3OriginConfig": {"OriginAccessIdentity": ""}}]},
        "DefaultCacheBehavior": {"TargetOriginId": "o1", "ViewerProtocolPolicy": "allow-all",
                                 "CachePolicyId": "658327ea-f89d-4fab-a63d-7e88639e58f6"},
    }
    created = cf.create_distribution(DistributionConfig=config)
    did = created["Distribution"]["Id"]
    assert created["Distribution"]["Status"] == "InProgress"
    got = cf.get_distribution(Id=did)
    assert got["Distribution"]["Status"] == "InProgress"
    items = cf.list_distributions()["DistributionList"]["Items"]
    assert [i["Status"] for i in items if i["Id"] == did] == ["InProgress"]
    with pytest.raises(ClientError) as e:  # enabled: the emulator refuses (it checks If-Match first)
        cf.delete_distribution(Id=did, IfMatch="stale")
    assert error_of(e)[:2] in (("PreconditionFailed", 412), ("DistributionNotDisabled", 409))
    cf.get_waiter("distribution_deployed").wait(Id=did, WaiterConfig={"Delay": 0.3, "MaxAttempts": 40})
    # disable: InProgress again, deleting is refused until Deployed
    got = cf.get_distribution(Id=did)
    conf = dict(got["Distribution"]["DistributionConfig"], Enabled=False)
    upd = cf.update_distribution(Id=did, IfMatch=got["ETag"], DistributionConfig=conf)
    assert upd["Distribution"]["Status"] == "InProgress"
    with pytest.raises(ClientError) as e:
        cf.delete_distribution(Id=did, IfMatch=upd["ETag"])
    assert error_of(e) == ("DistributionNotDisabled", 409,
                           "The distribution you are trying to delete has not been disabled.")
    cf.get_waiter("distribution_deployed").wait(Id=did, WaiterConfig={"Delay": 0.3, "MaxAttempts": 40})
    cf.delete_distribution(Id=did, IfMatch=cf.get_distribution(Id=did)["ETag"])


def test_rds_creating_modifying_deleting(ms):
    ec2, rds = ms.client("ec2"), ms.client("rds")
    vpc = ec2.create_vpc(CidrBlock="10.40.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock="10.40.%d.0/24" % i, AvailabilityZone="us-east-1" + az)
               ["Subnet"]["SubnetId"] for i, az in ((1, "a"), (2, "b"))]
    sg = ec2.create_security_group(VpcId=vpc, GroupName=unique("dbsg"), Description="d")["GroupId"]
    group = unique("dbsubnets")
    rds.create_db_subnet_group(DBSubnetGroupName=group, DBSubnetGroupDescription="d", SubnetIds=subnets)
    ms.realism.config(durations={"rds_creating": [3, 3], "rds_modifying": [2.5, 2.5], "rds_deleting": [3, 3]})
    db = unique("db")
    created = rds.create_db_instance(DBInstanceIdentifier=db, DBInstanceClass="db.t3.micro", Engine="mysql",
                                     MasterUsername="admin", MasterUserPassword="password-123", AllocatedStorage=20,
                                     DBSubnetGroupName=group, VpcSecurityGroupIds=[sg])["DBInstance"]
    assert created["DBInstanceStatus"] == "creating"
    desc = rds.describe_db_instances(DBInstanceIdentifier=db)["DBInstances"][0]
    assert desc["DBInstanceStatus"] == "creating" and "Endpoint" not in desc
    with pytest.raises(ClientError) as e:
        rds.modify_db_instance(DBInstanceIdentifier=db, AllocatedStorage=30, ApplyImmediately=True)
    assert error_of(e) == ("InvalidDBInstanceState", 400, "Database instance is not in available state.")
    with pytest.raises(ClientError) as e:
        rds.delete_db_instance(DBInstanceIdentifier=db, FinalDBSnapshotIdentifier=db + "-final")
    assert error_of(e) == ("InvalidDBInstanceState", 400,
                           "Instance is currently creating - a final snapshot cannot be taken.")
    rds.get_waiter("db_instance_available").wait(DBInstanceIdentifier=db, WaiterConfig={"Delay": 0.3,
                                                                                          "MaxAttempts": 40})
    assert rds.describe_db_instances(DBInstanceIdentifier=db)["DBInstances"][0]["Endpoint"]["Port"]
    rds.modify_db_instance(DBInstanceIdentifier=db, AllocatedStorage=30, ApplyImmediately=True)
    assert rds.describe_db_instances(DBInstanceIdentifier=db)["DBInstances"][0]["DBInstanceStatus"] == "modifying"
    with pytest.raises(ClientError) as e:
        rds.modify_db_instance(DBInstanceIdentifier=db, AllocatedStorage=40, ApplyImmediately=True)
    assert error_of(e)[0] == "InvalidDBInstanceState"
    rds.get_waiter("db_instance_available").wait(DBInstanceIdentifier=db, WaiterConfig={"Delay": 0.3,
                                                                                          "MaxAttempts": 40})
    deleted = rds.delete_db_instance(DBInstanceIdentifier=db, SkipFinalSnapshot=True)["DBInstance"]
    assert deleted["DBInstanceStatus"] == "deleting"
    desc = rds.describe_db_instances(DBInstanceIdentifier=db)["DBInstances"][0]
    assert desc["DBInstanceStatus"] == "deleting"
    assert db in [d["DBInstanceIdentifier"] for d in rds.describe_db_instances()["DBInstances"]]
    with pytest.raises(ClientError) as e:
        rds.delete_db_subnet_group(DBSubnetGroupName=group)
    assert error_of(e) == ("InvalidDBSubnetGroupStateFault", 400, "Cannot delete the subnet group '%s' because at "
                           "least one database instance: %s is still using it." % (group, db))
    with pytest.raises(ClientError) as e:
        ec2.delete_security_group(GroupId=sg)
    assert error_of(e) == ("DependencyViolation", 400, "resource %s has a dependent object" % sg)
    rds.get_waiter("db_instance_deleted").wait(DBInstanceIdentifier=db, WaiterConfig={"Delay": 0.3,
                                                                                        "MaxAttempts": 40})
    rds.delete_db_subnet_group(DBSubnetGroupName=group)
    ec2.delete_security_group(GroupId=sg)


def _vpc_fixture(ec2, cidr):
    vpc = ec2.create_vpc(CidrBlock=cidr + ".0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock=cidr + ".1.0/24")["Subnet"]["SubnetId"]
    sg = ec2.create_security_group(VpcId=vpc, GroupName=unique("fnsg"), Description="d")["GroupId"]
    return vpc, subnet, sg


def _eni_policy(iam, role_arn):
    iam.put_role_policy(RoleName=role_arn.rsplit("/", 1)[1], PolicyName="eni", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Resource": "*", "Action": [
            "ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces", "ec2:DeleteNetworkInterface"]}]}))


def test_lambda_eni_blocks_security_group_until_released(ms):
    iam, lam, ec2 = ms.client("iam"), ms.client("lambda"), ms.client("ec2")
    vpc, subnet, sg = _vpc_fixture(ec2, "10.50")
    role = make_role(iam)
    _eni_policy(iam, role)
    ms.realism.config(durations={"lambda_eni_release": [3, 3]})
    a, b = unique("fa"), unique("fb")
    cfg = {"SubnetIds": [subnet], "SecurityGroupIds": [sg]}
    create_function(lam, role, a, vpc=cfg)
    create_function(lam, role, b, vpc=cfg)
    enis = ec2.describe_network_interfaces(Filters=[{"Name": "group-id", "Values": [sg]}])["NetworkInterfaces"]
    assert len(enis) == 1  # one ENI per (subnet, security groups), shared
    eni = enis[0]
    assert eni["InterfaceType"] == "lambda" and eni["RequesterManaged"] is True and eni["Status"] == "in-use"
    assert eni["SubnetId"] == subnet and eni["VpcId"] == vpc and eni["Groups"][0]["GroupId"] == sg
    assert eni["Description"].startswith("AWS Lambda VPC ENI-")
    assert len(eni["NetworkInterfaceId"]) == len("eni-") + 17
    assert ec2.describe_network_interfaces(NetworkInterfaceIds=[eni["NetworkInterfaceId"]])["NetworkInterfaces"]
    assert not ec2.describe_network_interfaces(Filters=[{"Name": "status", "Values": ["available"]}])[
        "NetworkInterfaces"]
    with pytest.raises(ClientError) as e:
        ec2.delete_network_interface(NetworkInterfaceId=eni["NetworkInterfaceId"])
    assert error_of(e)[:2] == ("InvalidNetworkInterface.InUse", 400)
    lam.delete_function(FunctionName=a)
    with pytest.raises(ClientError) as e:  # b still uses it
        ec2.delete_security_group(GroupId=sg)
    assert error_of(e) == ("DependencyViolation", 400, "resource %s has a dependent object" % sg)
    lam.delete_function(FunctionName=b)
    with pytest.raises(ClientError) as e:  # released only after the window
        ec2.delete_subnet(SubnetId=subnet)
    assert error_of(e) == ("DependencyViolation", 400,
                           "The subnet '%s' has dependencies and cannot be deleted." % subnet)
    with pytest.raises(ClientError) as e:
        ec2.delete_vpc(VpcId=vpc)
    assert error_of(e)[:2] == ("DependencyViolation", 400)
    retry_until_ok(lambda: ec2.delete_security_group(GroupId=sg), {"DependencyViolation"})
    assert not ec2.describe_network_interfaces(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["NetworkInterfaces"]
    ec2.delete_subnet(SubnetId=subnet)


def test_lambda_eni_stays_when_the_role_was_deleted_first(ms):
    iam, lam, ec2 = ms.client("iam"), ms.client("lambda"), ms.client("ec2")
    vpc, subnet, sg = _vpc_fixture(ec2, "10.60")
    role = make_role(iam)
    _eni_policy(iam, role)
    ms.realism.config(durations={"lambda_eni_release": [1, 1]})
    name = unique("fn")
    create_function(lam, role, name, vpc={"SubnetIds": [subnet], "SecurityGroupIds": [sg]})
    role_name = role.rsplit("/", 1)[1]
    iam.delete_role_policy(RoleName=role_name, PolicyName="eni")
    iam.delete_role(RoleName=role_name)
    lam.delete_function(FunctionName=name)
    wait_until(lambda: any("kept in-use" in c.get("note", "") for c in ms.realism.calls(verdict="timing:lambda_eni")),
               10, 0.2, "the release attempt")
    enis = ec2.describe_network_interfaces(Filters=[{"Name": "subnet-id", "Values": [subnet]}])["NetworkInterfaces"]
    assert [e["Status"] for e in enis] == ["in-use"]
    with pytest.raises(ClientError) as e:
        ec2.delete_security_group(GroupId=sg)
    assert error_of(e)[0] == "DependencyViolation"


def test_lambda_eni_function_moved_out_of_the_vpc(ms):
    iam, lam, ec2 = ms.client("iam"), ms.client("lambda"), ms.client("ec2")
    vpc, subnet, sg = _vpc_fixture(ec2, "10.70")
    role = make_role(iam)
    iam.attach_role_policy(RoleName=role.rsplit("/", 1)[1],
                           PolicyArn="arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole")
    ms.realism.config(durations={"lambda_eni_release": [1, 1]})
    name = unique("fn")
    create_function(lam, role, name, vpc={"SubnetIds": [subnet], "SecurityGroupIds": [sg]})
    assert ec2.describe_network_interfaces(Filters=[{"Name": "subnet-id", "Values": [subnet]}])["NetworkInterfaces"]
    lam.update_function_configuration(FunctionName=name, VpcConfig={"SubnetIds": [], "SecurityGroupIds": []})
    retry_until_ok(lambda: ec2.delete_security_group(GroupId=sg), {"DependencyViolation"})
