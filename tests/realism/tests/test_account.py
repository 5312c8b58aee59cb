"""What the emulated account offers per availability zone: a zone name is no promise."""

import pytest
from botocore.exceptions import ClientError

from conftest import error_of


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
