"""What the emulated account offers per availability zone: a zone name is no promise."""

import pytest
from botocore.exceptions import ClientError

from conftest import error_of, function_zip, make_role, unique


@pytest.mark.parametrize("stack", ["ms", "mt"])
def test_a_constrained_zone_offers_no_endpoint_service_and_no_db_class(stack, request):
    s = request.getfixturevalue(stack)
    s.realism.config(constrained_zones=["us-east-1a"])
    ec2, rds = s.client("ec2"), s.client("rds")
    zones = sorted(z["ZoneName"] for z in ec2.describe_availability_zones()["AvailabilityZones"])
    assert "us-east-1a" in zones and len(zones) >= 3

    services = ec2.describe_vpc_endpoint_services(
        ServiceNames=["com.amazonaws.us-east-1.transcribe", "com.amazonaws.us-east-1.s3"])["ServiceDetails"]
    by_type = {(d["ServiceName"], d["ServiceType"][0]["ServiceType"]): d["AvailabilityZones"] for d in services}
    assert by_type[("com.amazonaws.us-east-1.transcribe", "Interface")] == [z for z in zones if z != "us-east-1a"]
    # Gateway endpoints are not zonal.
    assert by_type[("com.amazonaws.us-east-1.s3", "Gateway")] == zones

    options = rds.describe_orderable_db_instance_options(
        Engine="mysql", DBInstanceClass="db.t3.micro", Vpc=True)["OrderableDBInstanceOptions"]
    assert options and all(o["DBInstanceClass"] == "db.t3.micro" for o in options)
    for option in options:
        assert "us-east-1a" not in [z["Name"] for z in option["AvailabilityZones"]]
    assert any(o["EngineVersion"].startswith("8.0.") for o in options)


def test_an_interface_endpoint_in_a_constrained_zone_is_refused(ms):
    ms.realism.config(constrained_zones=["us-east-1a"])
    ec2 = ms.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.77.0.0/16")["Vpc"]["VpcId"]
    bad = ec2.create_subnet(VpcId=vpc, CidrBlock="10.77.0.0/20", AvailabilityZone="us-east-1a")["Subnet"]["SubnetId"]
    good = ec2.create_subnet(VpcId=vpc, CidrBlock="10.77.16.0/20", AvailabilityZone="us-east-1b")["Subnet"]["SubnetId"]
    since = ms.realism.last_seq()
    with pytest.raises(ClientError) as e:
        ec2.create_vpc_endpoint(VpcId=vpc, ServiceName="com.amazonaws.us-east-1.transcribe",
                                VpcEndpointType="Interface", SubnetIds=[good, bad])
    code, status, message = error_of(e)
    assert (code, status) == ("InvalidParameter", 400)
    assert message == ("The VPC endpoint service com.amazonaws.us-east-1.transcribe does not support the "
                       "availability zone of the subnet: %s." % bad)
    assert ms.realism.calls(since=since, operation="CreateVpcEndpoint")[-1]["verdict"] == "invalid:InvalidParameter"
    made = ec2.create_vpc_endpoint(VpcId=vpc, ServiceName="com.amazonaws.us-east-1.transcribe",
                                   VpcEndpointType="Interface", SubnetIds=[good])
    assert made["VpcEndpoint"]["VpcEndpointId"].startswith("vpce-")
    # Gateway endpoints have no subnets: any zone does.
    ec2.create_vpc_endpoint(VpcId=vpc, ServiceName="com.amazonaws.us-east-1.s3", VpcEndpointType="Gateway")


@pytest.mark.parametrize("stack", ["ms", "mt"])
def test_reserved_concurrency_keeps_the_accounts_unreserved_minimum(stack, request):
    s = request.getfixturevalue(stack)
    lam, iam = s.client("lambda"), s.client("iam")
    role = make_role(iam)
    a, b = unique("reserve-a"), unique("reserve-b")
    for name in (a, b):
        lam.create_function(FunctionName=name, Runtime="provided.al2023", Role=role, Handler="bootstrap",
                            Code={"ZipFile": function_zip("1")})
    # An account with 130 in all, of which 100 stay unreserved: 30 to give out.
    s.realism.config(lambda_concurrency_limit=130, lambda_min_unreserved=100)
    lam.put_function_concurrency(FunctionName=a, ReservedConcurrentExecutions=20)
    limit = lam.get_account_settings()["AccountLimit"]
    assert (limit["ConcurrentExecutions"], limit["UnreservedConcurrentExecutions"]) == (130, 110)

    since = s.realism.last_seq()
    with pytest.raises(ClientError) as e:
        lam.put_function_concurrency(FunctionName=b, ReservedConcurrentExecutions=20)
    code, status, message = error_of(e)
    assert (code, status) == ("InvalidParameterValueException", 400)
    assert message == ("Specified ReservedConcurrentExecutions for function decreases account's "
                       "UnreservedConcurrentExecution below its minimum value of [100].")
    call = s.realism.calls(since=since, operation="PutFunctionConcurrency")[-1]
    assert call["verdict"] == "invalid:InvalidParameterValueException"
    assert "ReservedConcurrentExecutions" not in lam.get_function(FunctionName=b).get("Concurrency", {})

    # Exactly down to the minimum is allowed; the function's own reservation comes back first,
    # and lowering one is never refused.
    lam.put_function_concurrency(FunctionName=b, ReservedConcurrentExecutions=10)
    lam.put_function_concurrency(FunctionName=a, ReservedConcurrentExecutions=20)
    lam.put_function_concurrency(FunctionName=a, ReservedConcurrentExecutions=5)
    assert lam.get_account_settings()["AccountLimit"]["UnreservedConcurrentExecutions"] == 115

    # A new account's quota of 10: nothing can be reserved, and the minimum AWS names is 10.
    for name in (a, b):
        lam.delete_function_concurrency(FunctionName=name)
    s.realism.config(lambda_concurrency_limit=10)
    with pytest.raises(ClientError) as e:
        lam.put_function_concurrency(FunctionName=a, ReservedConcurrentExecutions=1)
    assert error_of(e)[2].endswith("below its minimum value of [10].")
    for name in (a, b):
        lam.delete_function(FunctionName=name)
