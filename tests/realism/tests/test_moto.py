"""The same proxy in front of moto: the behaviours do not depend on one emulator's answers."""

import pytest
from botocore.exceptions import ClientError

from conftest import error_of, function_zip, make_role, unique


def test_validation_on_moto(mt):
    with pytest.raises(ClientError) as e:
        mt.client("iam").create_role(RoleName="my role", AssumeRolePolicyDocument="{}")
    assert error_of(e)[:2] == ("ValidationError", 400)
    with pytest.raises(ClientError) as e:
        mt.client("ec2").create_subnet(CidrBlock="10.0.0.0/24")
    assert error_of(e)[:2] == ("MissingParameter", 400)


def test_cloudfront_on_moto(mt):
    mt.realism.config(durations={"cloudfront_deploy": [30, 30]})
    cf = mt.client("cloudfront")
    config = {
        "CallerReference": unique("ref"), "Comment": "c", "Enabled": True,
        "Origins": {"Quantity": 1, "Items": [{"Id": "o1", "DomainName": "b.s3.amazonaws.com",
                                              "S3OriginConfig": {"OriginAccessIdentity": ""}}]},
        "DefaultCacheBehavior": {"TargetOriginId": "o1", "ViewerProtocolPolicy": "allow-all",
                                 "CachePolicyId": "658327ea-f89d-4fab-a63d-7e88639e58f6"},
    }
    did = cf.create_distribution(DistributionConfig=config)["Distribution"]["Id"]
    assert cf.get_distribution(Id=did)["Distribution"]["Status"] == "InProgress"
    with pytest.raises(ClientError) as e:
        cf.create_distribution(DistributionConfig=config)
    code, status, msg = error_of(e)
    assert (code, status) == ("DistributionAlreadyExists", 409) and msg.endswith(did)


def test_rds_and_read_after_create_on_moto(mt):
    mt.realism.config(durations={"rds_creating": [30, 30], "ec2_read_after_create": [30, 30]})
    rds, ec2 = mt.client("rds"), mt.client("ec2")
    db = unique("db")
    rds.create_db_instance(DBInstanceIdentifier=db, DBInstanceClass="db.t3.micro", Engine="mysql",
                           MasterUsername="admin", MasterUserPassword="password-123", AllocatedStorage=20)
    desc = rds.describe_db_instances(DBInstanceIdentifier=db)["DBInstances"][0]
    assert desc["DBInstanceStatus"] == "creating" and "Endpoint" not in desc
    vpc = ec2.create_vpc(CidrBlock="10.80.0.0/16")["Vpc"]["VpcId"]
    with pytest.raises(ClientError) as e:
        ec2.describe_vpcs(VpcIds=[vpc])
    assert error_of(e)[0] == "InvalidVpcID.NotFound"


def test_lambda_pending_on_moto(mt):
    mt.realism.config(durations={"lambda_pending": [30, 30]})
    iam, lam = mt.client("iam"), mt.client("lambda")
    name = unique("fn")
    created = lam.create_function(FunctionName=name, Runtime="provided.al2023", Role=make_role(iam),
                                  Handler="bootstrap", Code={"ZipFile": function_zip("1")})
    assert created["State"] == "Pending"
    with pytest.raises(ClientError) as e:
        lam.invoke(FunctionName=name, Payload=b"{}")
    assert error_of(e)[:2] == ("ResourceConflictException", 409)


def test_moto_must_not_delete_an_enabled_distribution(mt):
    cf = mt.client("cloudfront")
    config = {
        "CallerReference": unique("ref"), "Comment": "c", "Enabled": True,
        "Origins": {"Quantity": 1, "Items": [{"Id": "o1", "DomainName": "b.s3.amazonaws.com",
                                              "S3OriginConfig": {"OriginAccessIdentity": ""}}]},
        "DefaultCacheBehavior": {"TargetOriginId": "o1", "ViewerProtocolPolicy": "allow-all",
                                 "CachePolicyId": "658327ea-f89d-4fab-a63d-7e88639e58f6"},
    }
    created = cf.create_distribution(DistributionConfig=config)
    did = created["Distribution"]["Id"]
    with pytest.raises(ClientError) as e:  # moto alone deletes it
        cf.delete_distribution(Id=did, IfMatch=created["ETag"])
    assert error_of(e) == ("DistributionNotDisabled", 409,
                           "The distribution you are trying to delete has not been disabled.")
    got = cf.get_distribution_config(Id=did)
    upd = cf.update_distribution(Id=did, IfMatch=got["ETag"], DistributionConfig=dict(got["DistributionConfig"],
                                                                                     Enabled=False))
    cf.delete_distribution(Id=did, IfMatch=upd["ETag"])
