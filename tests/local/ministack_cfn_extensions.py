"""CloudFormation resource types that ministack 1.5.33 lacks, for the local target.

Why this exists: the template `provision template` renders for the speech-to-text system uses
four resource types for which ministack 1.5.33's CloudFormation has no provisioner:

    AWS::EC2::EgressOnlyInternetGateway   AWS::EC2::SecurityGroupIngress
    AWS::EC2::SecurityGroupEgress         AWS::EC2::VPCCidrBlock

ministack refuses such a template before making anything ("Template format error: Unrecognized
resource types: [...]", `validate_template_support` in
ministack/services/cloudformation/engine.py, which reads the keys of `_RESOURCE_HANDLERS` in
ministack/services/cloudformation/provisioners.py). Importing this module, before ministack
serves, registers a provisioner for each of them in that same table (see
tests/local/ministack_with_extensions.py, which `scripts/local-aws.sh` starts).

Everything else is ministack's own. The provisioners call ministack's EC2 API functions
in-process, as its existing AWS::EC2::* provisioners do (`_ec2._delete_vpc(...)`), so a
resource made by a stack is the same record the EC2 API makes and describes:

- AWS::EC2::EgressOnlyInternetGateway: CreateEgressOnlyInternetGateway /
  DeleteEgressOnlyInternetGateway. Ref and GetAtt Id: the gateway id (eigw-...).
- AWS::EC2::SecurityGroupIngress / SecurityGroupEgress: AuthorizeSecurityGroupIngress/Egress
  with one IpPermissions entry, RevokeSecurityGroupIngress/Egress by SecurityGroupRuleId.
  Ref and GetAtt Id: the rule id (sgr-...). Description is updated in place
  (ModifySecurityGroupRules); every other property replaces the rule.
- AWS::EC2::VPCCidrBlock: AssociateVpcCidrBlock / DisassociateVpcCidrBlock. ministack's EC2 API
  has neither action and models no IPv6 block, so this module adds both actions to its EC2
  API (`_ACTION_MAP`) and the association sets to DescribeVpcs. Ref and GetAtt Id: the
  association id (vpc-cidr-assoc-...); GetAtt IpSource and Ipv6AddressAttribute as documented,
  plus Ipv6CidrBlock / CidrBlock (the block associated).

And, for what those need of ministack's existing provisioners (wrapped, not copied):

- AWS::EC2::VPC: ministack resolves Fn::GetAtt from the attributes a resource's create returned
  (engine.py `_resolve_refs`), and its VPC create returns only VpcId, DefaultSecurityGroup and
  DefaultNetworkAcl. The VPC's create and update now also return CidrBlock,
  CidrBlockAssociations and Ipv6CidrBlocks, and an association or disassociation rewrites the
  VPC's stored attributes, so a subnet that DependsOn the VPCCidrBlock reads the new block
  through `Fn::GetAtt [Vpc, Ipv6CidrBlocks]`.
- AWS::EC2::Subnet: ministack ignores Ipv6CidrBlock and AssignIpv6AddressOnCreation. The
  subnet now keeps them (the /64 must lie in one of the VPC's IPv6 blocks, as on AWS),
  DescribeSubnets shows them, and GetAtt Ipv6CidrBlocks answers.

And what the project's template needs beyond those types:

- AWS::RDS::DBInstance: ministack models an RDS-managed master user secret for DB clusters
  only; for an instance with ManageMasterUserPassword it now makes one the same way
  ("rds!db-..." in Secrets Manager, deleted with the instance), shows it in
  DescribeDBInstances and answers GetAtt MasterUserSecret.SecretArn. Its Tags are now in the
  RDS API's tag table too (ListTagsForResource; the DeletionPolicy Snapshot snapshot copies
  them from there), not only in the DescribeDBInstances record.

And where ministack's CloudFormation made a resource differently from AWS's, so that
`provision drift` (the SDK engine) found the stack CloudFormation made different from the one
`provision up` makes (each wrap below says what ministack did):

- AWS::S3::Bucket: Tags, BucketEncryption, LifecycleConfiguration and OwnershipControls were
  ignored (the bucket had no tags at all); now applied through the S3 API's own functions,
  removed when dropped on update, with the stack-level and aws:cloudformation:* tags; and a
  bucket holding objects is not deleted (BucketNotEmpty), as on AWS.
- AWS::SecretsManager::Secret: Ref answered the name (AWS: the ARN); a secret declaring neither
  SecretString nor GenerateSecretString got a version holding "" (AWS: an empty secret, no
  version).
- AWS::Lambda::Function: VpcConfig and ReservedConcurrentExecutions were ignored.
- AWS::Lambda::EventInvokeConfig with Qualifier $LATEST: ministack's Lambda API kept it apart
  from the unqualified function's configuration (AWS: one and the same).
- AWS::ApiGateway::RestApi: EndpointConfiguration reached the API as {"Types": ...}, so
  GetRestApi showed no endpoint types.

Checked and left as ministack has them: AWS::EC2::Route with DestinationIpv6CidrBlock and
EgressOnlyInternetGatewayId (`_EC2_ROUTE_TARGETS`/`_EC2_ROUTE_DESTINATIONS`), and
AWS::EC2::SecurityGroup whose SecurityGroupEgress holds only the no-traffic ICMP rule (stored
as given, no allow-all added). Not modelled: the local route a VPC's IPv6 block adds to its
route tables, IPAM pools and BYOIP IPv6 pools, drift detection of these types (ministack has no
drift reader for any EC2 type: they are NOT_CHECKED).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import random
import re
import string

import ministack.services.ec2 as _ec2
import ministack.services.lambda_svc as _lambda_svc
import ministack.services.rds as _rds
import ministack.services.s3 as _s3
import ministack.services.secretsmanager as _secretsmanager
from ministack.core.responses import get_account_id, get_region, new_uuid
from ministack.services.cloudformation import provisioners as _prov

logger = logging.getLogger("ministack.cfn_extensions")

EGRESS_ONLY_GATEWAY = "AWS::EC2::EgressOnlyInternetGateway"
INGRESS = "AWS::EC2::SecurityGroupIngress"
EGRESS = "AWS::EC2::SecurityGroupEgress"
CIDR_BLOCK = "AWS::EC2::VPCCidrBlock"


# ---------------------------------------------------------------------------------------------
# Calling ministack's EC2 API in-process
# ---------------------------------------------------------------------------------------------

def _query(**params) -> dict:
    """Query parameters in the shape ministack's EC2 handlers read (parse_qs: lists of strings)."""
    return {key: [str(value)] for key, value in params.items() if value is not None}


def _call(action, params: dict) -> str:
    """Run one EC2 API handler; its error becomes the resource's failure reason, worded as
    CloudFormation words a handler's error."""
    status, _headers, body = action(params)
    text = body.decode("utf-8") if isinstance(body, bytes) else str(body)
    if status >= 400:
        code = re.search(r"<Code>(.*?)</Code>", text, re.S)
        message = re.search(r"<Message>(.*?)</Message>", text, re.S)
        raise _Ec2Error(code.group(1) if code else "",
                        f"{message.group(1) if message else text} "
                        f"(Service: Ec2, Status Code: {status}, "
                        f"Error Code: {code.group(1) if code else 'unknown'})")
    return text


class _Ec2Error(ValueError):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def _element(xml: str, name: str) -> str:
    found = re.search(rf"<{name}>(.*?)</{name}>", xml, re.S)
    return found.group(1) if found else ""


def _tag_specification(props: dict, resource_type: str) -> dict:
    """A template's Tags as TagSpecification.1 of a Create call."""
    params = {}
    tags = [t for t in (props.get("Tags") or []) if isinstance(t, dict) and t.get("Key")]
    if tags:
        params["TagSpecification.1.ResourceType"] = [resource_type]
        for i, tag in enumerate(tags, 1):
            params[f"TagSpecification.1.Tag.{i}.Key"] = [str(tag["Key"])]
            params[f"TagSpecification.1.Tag.{i}.Value"] = [str(tag.get("Value", ""))]
    return params


def _new_id(prefix: str) -> str:
    return prefix + "".join(random.choices(string.hexdigits[:16], k=17))


# ---------------------------------------------------------------------------------------------
# AWS::EC2::EgressOnlyInternetGateway (VpcId: replacement; Tags: no interruption)
# ---------------------------------------------------------------------------------------------

def _eigw_create(logical_id, props, stack_name):
    vpc_id = props.get("VpcId", "")
    # ministack's CreateEgressOnlyInternetGateway takes any VpcId; AWS checks it.
    if vpc_id not in _ec2._vpcs:
        raise _Ec2Error("InvalidVpcID.NotFound",
                        f"The vpc ID '{vpc_id}' does not exist (Service: Ec2, Status Code: 400, "
                        "Error Code: InvalidVpcID.NotFound)")
    xml = _call(_ec2._create_egress_only_igw,
                {**_query(VpcId=vpc_id), **_tag_specification(props, "egress-only-internet-gateway")})
    gateway_id = _element(xml, "egressOnlyInternetGatewayId")
    return gateway_id, {"Id": gateway_id}


def _eigw_update(physical_id, old_props, new_props, stack_name, logical_id=None):
    """Only Tags reach here: a changed VpcId is a replacement (`_REPLACING_PROPERTIES`)."""
    gateway = _ec2._egress_igws.get(physical_id)
    if gateway is None:
        return _eigw_create(logical_id or physical_id, new_props, stack_name)
    _prov._ec2_apply_tags(physical_id, new_props, old_props)
    gateway["Tags"] = list(_ec2._tags.get(physical_id) or [])
    return physical_id, {"Id": physical_id}


def _eigw_delete(physical_id, props):
    try:
        _call(_ec2._delete_egress_only_igw, _query(EgressOnlyInternetGatewayId=physical_id))
    except _Ec2Error as e:
        if e.code != "InvalidGatewayID.NotFound":
            raise
    _ec2._tags.pop(physical_id, None)


# ---------------------------------------------------------------------------------------------
# AWS::EC2::SecurityGroupIngress / AWS::EC2::SecurityGroupEgress
# ---------------------------------------------------------------------------------------------

# Every property but Description requires replacement (the types' createOnlyProperties).
_INGRESS_CREATE_ONLY = (
    "CidrIp", "CidrIpv6", "FromPort", "GroupId", "GroupName", "IpProtocol", "SourcePrefixListId",
    "SourceSecurityGroupId", "SourceSecurityGroupName", "SourceSecurityGroupOwnerId", "ToPort",
)
_EGRESS_CREATE_ONLY = (
    "CidrIp", "CidrIpv6", "DestinationPrefixListId", "DestinationSecurityGroupId", "FromPort",
    "GroupId", "IpProtocol", "ToPort",
)


def _rule_group_id(props) -> str:
    """GroupId, or (ingress in a default VPC) the group GroupName names."""
    if props.get("GroupId"):
        return str(props["GroupId"])
    name = props.get("GroupName")
    if name:
        for group in _ec2._security_groups.values():
            if group.get("GroupName") == name and group.get("VpcId") == _ec2._DEFAULT_VPC_ID:
                return group["GroupId"]
        raise _Ec2Error("InvalidGroup.NotFound",
                        f"The security group '{name}' does not exist in default VPC "
                        f"(Service: Ec2, Status Code: 400, Error Code: InvalidGroup.NotFound)")
    raise ValueError("Either GroupId or GroupName must be specified")


def _rule_params(props, egress: bool) -> dict:
    """The rule as the one IpPermissions entry of an Authorize call."""
    group_id = _rule_group_id(props)
    if props.get("SourcePrefixListId") or props.get("DestinationPrefixListId"):
        # ministack's IpPermissions parser (_parse_ip_permissions) reads no PrefixListIds.
        raise ValueError("a prefix-list peer is not supported by ministack's "
                         "AuthorizeSecurityGroupIngress/Egress")
    peer_props = (("CidrIp", "CidrIpv6", "DestinationSecurityGroupId") if egress else
                  ("CidrIp", "CidrIpv6", "SourceSecurityGroupId", "SourceSecurityGroupName"))
    peers = [p for p in peer_props if props.get(p)]
    if len(peers) != 1:
        raise ValueError(f"Exactly one of {', '.join(peer_props)} must be specified")
    perm = "IpPermissions.1"
    params = _query(GroupId=group_id, **{f"{perm}.IpProtocol": props.get("IpProtocol")})
    for port in ("FromPort", "ToPort"):
        if props.get(port) is not None:
            params[f"{perm}.{port}"] = [str(int(props[port]))]
    description = props.get("Description")
    peer = peers[0]
    if peer in ("CidrIp", "CidrIpv6"):
        entry = f"{perm}.{'IpRanges' if peer == 'CidrIp' else 'Ipv6Ranges'}.1"
        params[f"{entry}.{peer}"] = [str(props[peer])]
    else:
        entry = f"{perm}.Groups.1"
        if peer == "SourceSecurityGroupName":
            params[f"{entry}.GroupName"] = [str(props[peer])]
        else:
            peer_id = str(props[peer])
            # AWS checks the peer group; ministack's Authorize does not.
            if peer_id not in _ec2._security_groups:
                raise _Ec2Error("InvalidGroup.NotFound",
                                f"The security group '{peer_id}' does not exist (Service: Ec2, "
                                "Status Code: 400, Error Code: InvalidGroup.NotFound)")
            params[f"{entry}.GroupId"] = [peer_id]
        if props.get("SourceSecurityGroupOwnerId"):
            params[f"{entry}.UserId"] = [str(props["SourceSecurityGroupOwnerId"])]
    if description:
        params[f"{entry}.Description"] = [str(description)]
    return params


def _rule_create(egress: bool):
    authorize = _ec2._authorize_sg_egress if egress else _ec2._authorize_sg_ingress
    key = "IpPermissionsEgress" if egress else "IpPermissions"

    def create(logical_id, props, stack_name):
        params = _rule_params(props, egress)
        group = _ec2._security_groups.get(params["GroupId"][0])
        if group is not None:
            # ministack's Authorize is idempotent (for Terraform); AWS, and so CloudFormation,
            # refuses a rule the group already has.
            wanted = _ec2._parse_ip_permissions(params, "IpPermissions")[0]
            if any(_ec2._rules_match(wanted, rule) for rule in group.get(key, [])):
                raise _Ec2Error("InvalidPermission.Duplicate",
                                f"the specified rule already exists in {group['GroupId']} "
                                "(Service: Ec2, Status Code: 400, "
                                "Error Code: InvalidPermission.Duplicate)")
        xml = _call(authorize, params)
        rule_id = _element(xml, "securityGroupRuleId")
        return rule_id, {"Id": rule_id}

    return create


def _rule_delete(egress: bool):
    revoke = _ec2._revoke_sg_egress if egress else _ec2._revoke_sg_ingress

    def delete(physical_id, props):
        try:
            group_id = _rule_group_id(props)
            _call(revoke, {**_query(GroupId=group_id), "SecurityGroupRuleId.1": [physical_id]})
        except _Ec2Error as e:
            # The group or the rule is gone already: nothing left to revoke.
            if e.code not in ("InvalidGroup.NotFound", "InvalidSecurityGroupRuleId.NotFound"):
                raise

    return delete


def _rule_update(egress: bool):
    create = _rule_create(egress)
    delete = _rule_delete(egress)

    def update(physical_id, old_props, new_props, stack_name, logical_id=None):
        """Description in place (ModifySecurityGroupRules); anything else is handled as a
        replacement by ministack itself, or here if it reaches this handler."""
        others = set(old_props) | set(new_props)
        others.discard("Description")
        if any(old_props.get(p) != new_props.get(p) for p in others):
            created = create(logical_id or physical_id, new_props, stack_name)
            _prov._delete_predecessor(delete, physical_id, old_props)
            return created
        group_id = _rule_group_id(new_props)
        _call(_ec2._modify_security_group_rules, {
            **_query(GroupId=group_id),
            "SecurityGroupRule.1.SecurityGroupRuleId": [physical_id],
            "SecurityGroupRule.1.SecurityGroupRule.Description": [new_props.get("Description") or ""],
        })
        return physical_id, {"Id": physical_id}

    return update


# ---------------------------------------------------------------------------------------------
# AssociateVpcCidrBlock / DisassociateVpcCidrBlock in ministack's EC2 API
# ---------------------------------------------------------------------------------------------
# On the VPC record: "Ipv6CidrBlockAssociationSet" (VpcIpv6CidrBlockAssociation members) and
# "SecondaryCidrBlockAssociationSet" (VpcCidrBlockAssociation members of the IPv4 blocks added
# after the primary one, which ministack renders itself).

_MAX_BLOCKS = 5  # IPv4 and IPv6 CIDR blocks per VPC: the default quota of each


def _primary_association_id(vpc) -> str:
    # As ministack's _vpc_fields_xml names it.
    return vpc.get("_cidr_assoc_id", f"vpc-cidr-assoc-{vpc['VpcId'][4:]}")


def _ipv6_associations(vpc) -> list:
    return vpc.setdefault("Ipv6CidrBlockAssociationSet", [])


def _ipv4_associations(vpc) -> list:
    return vpc.setdefault("SecondaryCidrBlockAssociationSet", [])


def _amazon_ipv6_block() -> str:
    """A /56 from Amazon's pool, unused by any VPC of this account and region."""
    used = {a["Ipv6CidrBlock"] for vpc in _ec2._vpcs.values()
            for a in vpc.get("Ipv6CidrBlockAssociationSet", [])}
    pool = ipaddress.IPv6Network("2600:1f18::/32")
    while True:
        offset = random.getrandbits(24) << (128 - 56)
        block = str(ipaddress.IPv6Network((int(pool.network_address) + offset, 56)))
        if block not in used:
            return block


def _ipv6_association_xml(a, state) -> str:
    return (f"<associationId>{a['AssociationId']}</associationId>"
            f"<ipv6CidrBlock>{a['Ipv6CidrBlock']}</ipv6CidrBlock>"
            f"<ipv6CidrBlockState><state>{state}</state></ipv6CidrBlockState>"
            f"<networkBorderGroup>{a['NetworkBorderGroup']}</networkBorderGroup>"
            f"<ipv6Pool>{a['Ipv6Pool']}</ipv6Pool>"
            f"<ipv6AddressAttribute>{a['Ipv6AddressAttribute']}</ipv6AddressAttribute>"
            f"<ipSource>{a['IpSource']}</ipSource>")


def _ipv4_association_xml(a, state) -> str:
    return (f"<associationId>{a['AssociationId']}</associationId>"
            f"<cidrBlock>{a['CidrBlock']}</cidrBlock>"
            f"<cidrBlockState><state>{state}</state></cidrBlockState>")


def _associate_vpc_cidr_block(p):
    vpc_id = _ec2._p(p, "VpcId")
    vpc = _ec2._vpcs.get(vpc_id)
    if vpc is None:
        return _ec2._error("InvalidVpcID.NotFound", f"The vpc ID '{vpc_id}' does not exist", 400)
    amazon = _ec2._p(p, "AmazonProvidedIpv6CidrBlock").lower() == "true"
    cidr = _ec2._p(p, "CidrBlock")
    if any(_ec2._p(p, k) for k in ("Ipv6CidrBlock", "Ipv6Pool", "Ipv6IpamPoolId", "Ipv4IpamPoolId")):
        return _ec2._error("UnsupportedOperation",
                           "ministack models no IPAM or BYOIP IPv6 pool: ask for "
                           "AmazonProvidedIpv6CidrBlock or an IPv4 CidrBlock", 400)
    if amazon == bool(cidr):
        return _ec2._error("InvalidParameterCombination",
                           "Exactly one of cidrBlock and amazonProvidedIpv6CidrBlock must be "
                           "specified", 400)
    if amazon:
        if len(_ipv6_associations(vpc)) >= _MAX_BLOCKS:
            return _ec2._error("CidrLimitExceeded",
                               f"This network '{vpc_id}' has met its maximum number of allowed "
                               "CIDRs: " + str(_MAX_BLOCKS), 400)
        association = {
            "AssociationId": _new_id("vpc-cidr-assoc-"),
            "Ipv6CidrBlock": _amazon_ipv6_block(),
            "Ipv6CidrBlockState": {"State": "associated"},
            "NetworkBorderGroup": _ec2._p(p, "Ipv6CidrBlockNetworkBorderGroup") or get_region(),
            "Ipv6Pool": "Amazon",
            "Ipv6AddressAttribute": "public",
            "IpSource": "amazon",
        }
        _ipv6_associations(vpc).append(association)
        # AWS answers "associating"; DescribeVpcs shows "associated" (here at once).
        inner = (f"<vpcId>{vpc_id}</vpcId><ipv6CidrBlockAssociation>"
                 f"{_ipv6_association_xml(association, 'associating')}</ipv6CidrBlockAssociation>")
    else:
        try:
            network = ipaddress.IPv4Network(cidr)
        except ValueError:
            return _ec2._error("InvalidParameterValue",
                               f"Value ({cidr}) for parameter cidrBlock is invalid. This is not a "
                               "valid CIDR block.", 400)
        if not 16 <= network.prefixlen <= 28:
            return _ec2._error("InvalidVpc.Range", f"The CIDR '{cidr}' is invalid.", 400)
        existing = [vpc["CidrBlock"]] + [a["CidrBlock"] for a in _ipv4_associations(vpc)]
        if len(existing) >= _MAX_BLOCKS:
            return _ec2._error("CidrLimitExceeded",
                               f"This network '{vpc_id}' has met its maximum number of allowed "
                               "CIDRs: " + str(_MAX_BLOCKS), 400)
        if any(network.overlaps(ipaddress.ip_network(c, strict=False)) for c in existing):
            return _ec2._error("InvalidVpc.Range",
                               f"The CIDR '{cidr}' conflicts with another subnet", 400)
        association = {
            "AssociationId": _new_id("vpc-cidr-assoc-"),
            "CidrBlock": str(network),
            "CidrBlockState": {"State": "associated"},
        }
        _ipv4_associations(vpc).append(association)
        inner = (f"<vpcId>{vpc_id}</vpcId><cidrBlockAssociation>"
                 f"{_ipv4_association_xml(association, 'associating')}</cidrBlockAssociation>")
    _refresh_vpc_attributes(vpc_id)
    return _ec2._xml(200, "AssociateVpcCidrBlockResponse", inner)


def _disassociate_vpc_cidr_block(p):
    association_id = _ec2._p(p, "AssociationId")
    for vpc in _ec2._vpcs.values():
        if association_id == _primary_association_id(vpc):
            return _ec2._error("OperationNotPermitted",
                               "The vpc CIDR block with association ID "
                               f"{association_id} may not be disassociated. It is the primary "
                               "IPv4 CIDR block of the VPC", 400)
        for a in list(_ipv6_associations(vpc)):
            if a["AssociationId"] != association_id:
                continue
            block = ipaddress.IPv6Network(a["Ipv6CidrBlock"])
            in_use = [s["SubnetId"] for s in _ec2._subnets.values() if s.get("VpcId") == vpc["VpcId"]
                      for sa in s.get("Ipv6CidrBlockAssociationSet", [])
                      if ipaddress.IPv6Network(sa["Ipv6CidrBlock"]).subnet_of(block)]
            if in_use:
                return _ec2._error("DependencyViolation",
                                   f"The IPv6 CIDR block {a['Ipv6CidrBlock']} is in use by "
                                   f"{', '.join(in_use)}", 400)
            _ipv6_associations(vpc).remove(a)
            _refresh_vpc_attributes(vpc["VpcId"])
            return _ec2._xml(200, "DisassociateVpcCidrBlockResponse",
                             f"<vpcId>{vpc['VpcId']}</vpcId><ipv6CidrBlockAssociation>"
                             f"{_ipv6_association_xml(a, 'disassociating')}"
                             "</ipv6CidrBlockAssociation>")
        for a in list(_ipv4_associations(vpc)):
            if a["AssociationId"] == association_id:
                _ipv4_associations(vpc).remove(a)
                _refresh_vpc_attributes(vpc["VpcId"])
                return _ec2._xml(200, "DisassociateVpcCidrBlockResponse",
                                 f"<vpcId>{vpc['VpcId']}</vpcId><cidrBlockAssociation>"
                                 f"{_ipv4_association_xml(a, 'disassociating')}"
                                 "</cidrBlockAssociation>")
    return _ec2._error("InvalidVpcCidrBlockAssociationID.NotFound",
                       f"The vpc CIDR block association ID '{association_id}' does not exist", 400)


_original_vpc_fields_xml = _ec2._vpc_fields_xml


def _vpc_fields_xml(vpc, tag="item"):
    """ministack's VPC XML plus the secondary IPv4 and the IPv6 association sets."""
    xml = _original_vpc_fields_xml(vpc, tag)
    ipv4 = "".join(f"<item>{_ipv4_association_xml(a, 'associated')}</item>"
                   for a in vpc.get("SecondaryCidrBlockAssociationSet", []))
    ipv6 = "".join(f"<item>{_ipv6_association_xml(a, 'associated')}</item>"
                   for a in vpc.get("Ipv6CidrBlockAssociationSet", []))
    if ipv4:
        xml = xml.replace("</cidrBlockAssociationSet>", ipv4 + "</cidrBlockAssociationSet>", 1)
    if ipv6:
        xml = xml.replace("<dhcpOptionsId>", "<ipv6CidrBlockAssociationSet>" + ipv6
                          + "</ipv6CidrBlockAssociationSet><dhcpOptionsId>", 1)
    return xml


# ---------------------------------------------------------------------------------------------
# The VPC's GetAtt attributes, kept current
# ---------------------------------------------------------------------------------------------
# ministack stores the dict a create returned as the resource's "Attributes" and resolves
# Fn::GetAtt from it. A VPC's CidrBlockAssociations and Ipv6CidrBlocks change when a
# VPCCidrBlock is made or deleted after it, so those changes are written into the stored dicts:
# the ones this module handed out (by identity, while the stack is being deployed) and the ones
# in the stack records (after a restart with PERSIST_STATE, which reloads them).

_handed_out: dict[str, list[dict]] = {}


def _vpc_attributes(vpc_id) -> dict:
    vpc = _ec2._vpcs.get(vpc_id)
    if vpc is None:
        return {}
    return {
        "CidrBlock": vpc["CidrBlock"],
        "CidrBlockAssociations": [_primary_association_id(vpc)]
        + [a["AssociationId"] for a in vpc.get("SecondaryCidrBlockAssociationSet", [])],
        "Ipv6CidrBlocks": [a["Ipv6CidrBlock"] for a in vpc.get("Ipv6CidrBlockAssociationSet", [])],
    }


def _refresh_vpc_attributes(vpc_id):
    live = _vpc_attributes(vpc_id)
    if not live:
        return
    for attrs in _handed_out.get(vpc_id, []):
        attrs.update(live)
    from ministack.services.cloudformation import _stacks
    for stack in _stacks.values():
        for record in (stack.get("_resources") or {}).values():
            if (record.get("ResourceType") == "AWS::EC2::VPC"
                    and record.get("PhysicalResourceId") == vpc_id
                    and isinstance(record.get("Attributes"), dict)):
                record["Attributes"].update(live)


def _with_vpc_attributes(result):
    vpc_id, attrs = result
    attrs = attrs if isinstance(attrs, dict) else {}
    attrs.update(_vpc_attributes(vpc_id))
    _handed_out.setdefault(vpc_id, []).append(attrs)
    return vpc_id, attrs


_original_vpc_create = _prov._ec2_vpc_create
_original_vpc_update = _prov._ec2_vpc_update
_original_vpc_delete = _prov._ec2_vpc_delete


def _vpc_create(logical_id, props, stack_name):
    return _with_vpc_attributes(_original_vpc_create(logical_id, props, stack_name))


def _vpc_update(physical_id, old_props, new_props, stack_name, logical_id=None):
    return _with_vpc_attributes(
        _original_vpc_update(physical_id, old_props, new_props, stack_name, logical_id))


def _vpc_delete(physical_id, props):
    _original_vpc_delete(physical_id, props)
    if physical_id not in _ec2._vpcs:
        _handed_out.pop(physical_id, None)


# ---------------------------------------------------------------------------------------------
# AWS::EC2::VPCCidrBlock (every property: replacement)
# ---------------------------------------------------------------------------------------------

_CIDR_BLOCK_CREATE_ONLY = (
    "AmazonProvidedIpv6CidrBlock", "CidrBlock", "Ipv4IpamPoolId", "Ipv4NetmaskLength",
    "Ipv6CidrBlock", "Ipv6CidrBlockNetworkBorderGroup", "Ipv6IpamPoolId", "Ipv6NetmaskLength",
    "Ipv6Pool", "VpcId",
)


def _cidr_block_create(logical_id, props, stack_name):
    params = _query(VpcId=props.get("VpcId", ""), CidrBlock=props.get("CidrBlock"),
                    Ipv6CidrBlock=props.get("Ipv6CidrBlock"), Ipv6Pool=props.get("Ipv6Pool"),
                    Ipv4IpamPoolId=props.get("Ipv4IpamPoolId"),
                    Ipv6IpamPoolId=props.get("Ipv6IpamPoolId"),
                    Ipv6CidrBlockNetworkBorderGroup=props.get("Ipv6CidrBlockNetworkBorderGroup"))
    if _prov._cfn_bool(props.get("AmazonProvidedIpv6CidrBlock", False)):
        params["AmazonProvidedIpv6CidrBlock"] = ["true"]
    xml = _call(_associate_vpc_cidr_block, params)
    association_id = _element(xml, "associationId")
    if "<ipv6CidrBlockAssociation>" in xml:
        attrs = {"Id": association_id, "Ipv6CidrBlock": _element(xml, "ipv6CidrBlock"),
                 "IpSource": _element(xml, "ipSource"),
                 "Ipv6AddressAttribute": _element(xml, "ipv6AddressAttribute")}
    else:
        attrs = {"Id": association_id, "CidrBlock": _element(xml, "cidrBlock")}
    return association_id, attrs


def _cidr_block_update(physical_id, old_props, new_props, stack_name, logical_id=None):
    """Every property requires replacement: a new association, then the old one goes."""
    created = _cidr_block_create(logical_id or physical_id, new_props, stack_name)
    _prov._delete_predecessor(_cidr_block_delete, physical_id, old_props)
    return created


def _cidr_block_delete(physical_id, props):
    try:
        _call(_disassociate_vpc_cidr_block, _query(AssociationId=physical_id))
    except _Ec2Error as e:
        if e.code != "InvalidVpcCidrBlockAssociationID.NotFound":
            raise


# ---------------------------------------------------------------------------------------------
# AWS::EC2::Subnet: Ipv6CidrBlock and AssignIpv6AddressOnCreation
# ---------------------------------------------------------------------------------------------

def _subnet_ipv6(subnet, props):
    """The subnet's IPv6 block from the template (no interruption on AWS: disassociate, then
    associate). Raises as AWS does when the block is not a /64 of the VPC's IPv6 blocks."""
    wanted = props.get("Ipv6CidrBlock")
    current = subnet.get("Ipv6CidrBlockAssociationSet") or []
    if wanted:
        try:
            block = ipaddress.IPv6Network(str(wanted))
        except ValueError:
            raise _Ec2Error("InvalidParameterValue",
                            f"invalid value for parameter ipv6CidrBlock: {wanted} (Service: Ec2, "
                            "Status Code: 400, Error Code: InvalidParameterValue)") from None
        vpc = _ec2._vpcs.get(subnet["VpcId"]) or {}
        vpc_blocks = [ipaddress.IPv6Network(a["Ipv6CidrBlock"])
                      for a in vpc.get("Ipv6CidrBlockAssociationSet", [])]
        if block.prefixlen != 64 or not any(block.subnet_of(b) for b in vpc_blocks):
            raise _Ec2Error("InvalidSubnet.Range",
                            f"The IPv6 CIDR '{wanted}' is invalid. (Service: Ec2, Status Code: "
                            "400, Error Code: InvalidSubnet.Range)")
        for other in _ec2._subnets.values():
            if other is subnet:
                continue
            for a in other.get("Ipv6CidrBlockAssociationSet", []):
                if ipaddress.IPv6Network(a["Ipv6CidrBlock"]).overlaps(block):
                    raise _Ec2Error("InvalidSubnet.Conflict",
                                    f"The CIDR '{wanted}' conflicts with another subnet "
                                    "(Service: Ec2, Status Code: 400, "
                                    "Error Code: InvalidSubnet.Conflict)")
        if not current or current[0]["Ipv6CidrBlock"] != str(block):
            subnet["Ipv6CidrBlockAssociationSet"] = [{
                "AssociationId": _new_id("subnet-cidr-assoc-"),
                "Ipv6CidrBlock": str(block),
                "Ipv6CidrBlockState": {"State": "associated"},
                "Ipv6AddressAttribute": "public",
                "IpSource": "amazon",
            }]
    else:
        subnet.pop("Ipv6CidrBlockAssociationSet", None)
    subnet["AssignIpv6AddressOnCreation"] = _prov._cfn_bool(
        props.get("AssignIpv6AddressOnCreation", False))


def _with_subnet_ipv6(result, props):
    subnet_id, attrs = result
    subnet = _ec2._subnets.get(subnet_id)
    if subnet is not None:
        try:
            _subnet_ipv6(subnet, props)
        except ValueError:
            _original_subnet_delete(subnet_id, props)
            raise
        attrs = dict(attrs or {})
        attrs["Ipv6CidrBlocks"] = [a["Ipv6CidrBlock"]
                                   for a in subnet.get("Ipv6CidrBlockAssociationSet", [])]
    return subnet_id, attrs


_original_subnet_create = _prov._ec2_subnet_create
_original_subnet_update = _prov._ec2_subnet_update
_original_subnet_delete = _prov._ec2_subnet_delete


def _subnet_create(logical_id, props, stack_name):
    return _with_subnet_ipv6(_original_subnet_create(logical_id, props, stack_name), props)


def _subnet_update(physical_id, old_props, new_props, stack_name, logical_id=None):
    return _with_subnet_ipv6(
        _original_subnet_update(physical_id, old_props, new_props, stack_name, logical_id),
        new_props)


_original_subnet_fields_xml = _ec2._subnet_fields_xml


def _subnet_fields_xml(subnet, tag="item"):
    """ministack's subnet XML with the IPv6 members the record now carries."""
    xml = _original_subnet_fields_xml(subnet, tag)
    assign = "true" if subnet.get("AssignIpv6AddressOnCreation") else "false"
    xml = xml.replace("<assignIpv6AddressOnCreation>false</assignIpv6AddressOnCreation>",
                      f"<assignIpv6AddressOnCreation>{assign}</assignIpv6AddressOnCreation>", 1)
    associations = "".join(
        f"<item><associationId>{a['AssociationId']}</associationId>"
        f"<ipv6CidrBlock>{a['Ipv6CidrBlock']}</ipv6CidrBlock>"
        f"<ipv6CidrBlockState><state>associated</state></ipv6CidrBlockState>"
        f"<ipv6AddressAttribute>{a['Ipv6AddressAttribute']}</ipv6AddressAttribute>"
        f"<ipSource>{a['IpSource']}</ipSource></item>"
        for a in subnet.get("Ipv6CidrBlockAssociationSet", []))
    if associations:
        xml = xml.replace("<enableDns64>", "<ipv6CidrBlockAssociationSet>" + associations
                          + "</ipv6CidrBlockAssociationSet><enableDns64>", 1)
    return xml


# ---------------------------------------------------------------------------------------------
# AWS::RDS::DBInstance: ManageMasterUserPassword and GetAtt MasterUserSecret.SecretArn
# ---------------------------------------------------------------------------------------------
# ministack keeps an RDS-managed master user secret for DB clusters only (rds.py: a secret
# "rds!cluster-..." made with secretsmanager.create_secret_in_process, deleted with the
# cluster); its DBInstance provisioner ignores ManageMasterUserPassword and answers no
# MasterUserSecret.SecretArn. The same is done here for an instance: a secret "rds!db-..."
# holding {"username", "password"}, the instance's MasterUserSecret (DescribeDBInstances shows
# it), the GetAtt attribute, and the secret deleted with the instance.

def _rds_managed_secret(instance, props):
    """Make or drop the instance's managed secret as ManageMasterUserPassword says."""
    wanted = _prov._cfn_bool(props.get("ManageMasterUserPassword", False))
    secret = instance.get("MasterUserSecret")
    if wanted and not secret:
        password = _rds._generate_master_user_password()
        arn = _secretsmanager.create_secret_in_process(
            f"rds!db-{new_uuid()}",
            json.dumps({"username": instance["MasterUsername"], "password": password}),
            description=f"Secret managed by RDS for DB instance {instance['DBInstanceIdentifier']}")
        instance["_MasterUserPassword"] = password
        instance["MasterUserSecret"] = {
            "SecretArn": arn,
            "SecretStatus": "active",
            "KmsKeyId": props.get("MasterUserSecretKmsKeyId")
            or f"arn:aws:kms:{get_region()}:{get_account_id()}:key/aws-secretsmanager-default",
        }
    elif secret and not wanted:
        _secretsmanager.delete_secret_in_process(secret["SecretArn"])
        instance.pop("MasterUserSecret", None)


def _with_rds_secret(result, props):
    db_id, attrs = result
    instance = _rds._instances.get(db_id)
    if instance is not None:
        _rds_managed_secret(instance, props)
        attrs = dict(attrs or {})
        if instance.get("MasterUserSecret"):
            attrs["MasterUserSecret.SecretArn"] = instance["MasterUserSecret"]["SecretArn"]
    return db_id, attrs


_original_rds_instance_xml = _rds._instance_xml
_original_rds_create = _prov._rds_db_instance_create
_original_rds_update = _prov._rds_db_instance_update
_original_rds_delete = _prov._rds_db_instance_delete


def _rds_tags_listed(result):
    """ministack's provisioner keeps the instance's tags in its DescribeDBInstances record only;
    ListTagsForResource (and the final snapshot of DeletionPolicy Snapshot, which copies them)
    read the RDS API's tag table, as for an instance CreateDBInstance made."""
    db_id, _attrs = result
    instance = _rds._instances.get(db_id)
    if instance is not None:
        _rds._tags[instance["DBInstanceArn"]] = [dict(t) for t in instance.get("TagList") or []]
    return result


def _rds_create(logical_id, props, stack_name):
    return _rds_tags_listed(
        _with_rds_secret(_original_rds_create(logical_id, props, stack_name), props))


def _rds_update(physical_id, old_props, new_props, stack_name, logical_id=None):
    return _rds_tags_listed(_with_rds_secret(
        _original_rds_update(physical_id, old_props, new_props, stack_name, logical_id),
        new_props))


def _rds_delete(physical_id, props):
    instance = _rds._instances.get(physical_id) or {}
    secret = instance.get("MasterUserSecret")
    _original_rds_delete(physical_id, props)
    if physical_id not in _rds._instances:
        if secret:
            _secretsmanager.delete_secret_in_process(secret["SecretArn"])
        if instance.get("DBInstanceArn"):
            _rds._tags.pop(instance["DBInstanceArn"], None)


def _rds_instance_xml(instance):
    """ministack's DBInstance XML plus MasterUserSecret (the members its cluster XML uses)."""
    xml = _original_rds_instance_xml(instance)
    secret = instance.get("MasterUserSecret")
    if secret:
        xml += ("<MasterUserSecret>"
                f"<SecretArn>{secret['SecretArn']}</SecretArn>"
                f"<SecretStatus>{secret.get('SecretStatus', 'active')}</SecretStatus>"
                f"<KmsKeyId>{secret['KmsKeyId']}</KmsKeyId>"
                "</MasterUserSecret>")
    return xml


# ---------------------------------------------------------------------------------------------
# AWS::S3::Bucket: Tags, BucketEncryption, LifecycleConfiguration, OwnershipControls
# ---------------------------------------------------------------------------------------------
# ministack's bucket provisioner (`_s3_create` / `_s3_update`) applies BucketName,
# VersioningConfiguration Enabled, NotificationConfiguration and, through the S3 API's own
# functions, the three properties of `_S3_BUCKET_CONFIGURATIONS` (CorsConfiguration,
# PublicAccessBlockConfiguration, WebsiteConfiguration); every other property is dropped, and
# AWS::S3::Bucket is not in `_STACK_TAG_PROPERTY`, so a bucket a stack made has no tags at all.
# Here the four properties join that table (so create, update and a dropped property -- deleted
# on update, as AWS does -- go through ministack's own code path), each put through the S3 API
# function PutBucketTagging / PutBucketEncryption / PutBucketLifecycleConfiguration /
# PutBucketOwnershipControls runs, an S3 refusal failing the resource. The bucket type joins
# `_STACK_TAG_PROPERTY`, so it carries the stack-level tags and aws:cloudformation:stack-name,
# stack-id and logical-id, as on AWS. And a bucket still holding objects is not deleted: AWS's
# CloudFormation fails the resource (DELETE_FAILED, "The bucket you tried to delete is not
# empty"), where ministack's `_s3_delete` dropped the bucket with its objects.

BUCKET = "AWS::S3::Bucket"


def _s3_raising(put, what):
    """An S3 API function whose refusal fails the resource, as CloudFormation reports it."""
    def call(name, *args):
        status, _headers, body = put(name, *args)
        if status >= 400:
            text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
            code = re.search(r"<Code>(.*?)</Code>", text, re.S)
            message = re.search(r"<Message>(.*?)</Message>", text, re.S)
            raise ValueError(f"{what}: {message.group(1) if message else text} (Service: S3, "
                             f"Status Code: {status}, "
                             f"Error Code: {code.group(1) if code else 'unknown'})")
    return call


def _xml_root(tag):
    from xml.etree.ElementTree import Element
    return Element(tag, xmlns=_s3.S3_NS)


def _sub(parent, tag, text=None):
    from xml.etree.ElementTree import SubElement
    el = SubElement(parent, tag)
    if text is not None:
        el.text = text
    return el


def _xml_bytes(root) -> bytes:
    from xml.etree.ElementTree import tostring
    return tostring(root, encoding="utf-8")


def _s3_tagging_xml(tags) -> bytes:
    """`Tags` (list of Key/Value) as the PutBucketTagging body."""
    root = _xml_root("Tagging")
    tag_set = _sub(root, "TagSet")
    for tag in tags or []:
        if isinstance(tag, dict) and tag.get("Key"):
            el = _sub(tag_set, "Tag")
            _sub(el, "Key", str(tag["Key"]))
            _sub(el, "Value", str(tag.get("Value", "")))
    return _xml_bytes(root)


def _s3_encryption_xml(encryption) -> bytes:
    """`BucketEncryption` as the PutBucketEncryption body. S3 reports BucketKeyEnabled false
    when it was not given, as GetBucketEncryption does on AWS."""
    root = _xml_root("ServerSideEncryptionConfiguration")
    for rule in (encryption or {}).get("ServerSideEncryptionConfiguration") or []:
        rule_el = _sub(root, "Rule")
        default = rule.get("ServerSideEncryptionByDefault")
        if default:
            default_el = _sub(rule_el, "ApplyServerSideEncryptionByDefault")
            _sub(default_el, "SSEAlgorithm", str(default.get("SSEAlgorithm", "")))
            if default.get("KMSMasterKeyID"):
                _sub(default_el, "KMSMasterKeyID", str(default["KMSMasterKeyID"]))
        _sub(rule_el, "BucketKeyEnabled",
             str(_prov._cfn_bool(rule.get("BucketKeyEnabled", False))).lower())
    return _xml_bytes(root)


def _s3_ownership_xml(ownership) -> bytes:
    """`OwnershipControls` as the PutBucketOwnershipControls body."""
    root = _xml_root("OwnershipControls")
    for rule in (ownership or {}).get("Rules") or []:
        _sub(_sub(root, "Rule"), "ObjectOwnership", str(rule.get("ObjectOwnership", "")))
    return _xml_bytes(root)


def _s3_lifecycle_filter(rule_el, rule):
    """The rule's Prefix / TagFilters / ObjectSize* as its Filter (one condition alone, more
    under And); none is the whole bucket, an empty prefix, as S3 then reports it."""
    conditions = []
    if rule.get("Prefix") is not None:
        conditions.append(("Prefix", str(rule["Prefix"])))
    for tag in rule.get("TagFilters") or []:
        conditions.append(("Tag", tag))
    for size in ("ObjectSizeGreaterThan", "ObjectSizeLessThan"):
        if rule.get(size) is not None:
            conditions.append((size, str(int(rule[size]))))
    filter_el = _sub(rule_el, "Filter")
    if not conditions:
        _sub(filter_el, "Prefix", "")
        return
    parent = filter_el if len(conditions) == 1 else _sub(filter_el, "And")
    for name, value in conditions:
        if name == "Tag":
            tag_el = _sub(parent, "Tag")
            _sub(tag_el, "Key", str(value.get("Key", "")))
            _sub(tag_el, "Value", str(value.get("Value", "")))
        else:
            _sub(parent, name, value)


def _s3_lifecycle_xml(lifecycle) -> bytes:
    """`LifecycleConfiguration` as the PutBucketLifecycleConfiguration body (the
    CloudFormation rule's flat properties as S3's nested elements)."""
    root = _xml_root("LifecycleConfiguration")
    for rule in (lifecycle or {}).get("Rules") or []:
        rule_el = _sub(root, "Rule")
        if rule.get("Id"):
            _sub(rule_el, "ID", str(rule["Id"]))
        _s3_lifecycle_filter(rule_el, rule)
        _sub(rule_el, "Status", str(rule.get("Status", "")))
        transitions = list(rule.get("Transitions") or [])
        if rule.get("Transition"):
            transitions.append(rule["Transition"])
        for t in transitions:
            t_el = _sub(rule_el, "Transition")
            if t.get("TransitionDate"):
                _sub(t_el, "Date", str(t["TransitionDate"]))
            if t.get("TransitionInDays") is not None:
                _sub(t_el, "Days", str(int(t["TransitionInDays"])))
            _sub(t_el, "StorageClass", str(t.get("StorageClass", "")))
        expiration = {}
        if rule.get("ExpirationInDays") is not None:
            expiration["Days"] = str(int(rule["ExpirationInDays"]))
        if rule.get("ExpirationDate"):
            expiration["Date"] = str(rule["ExpirationDate"])
        if rule.get("ExpiredObjectDeleteMarker") is not None:
            expiration["ExpiredObjectDeleteMarker"] = str(
                _prov._cfn_bool(rule["ExpiredObjectDeleteMarker"])).lower()
        if expiration:
            e_el = _sub(rule_el, "Expiration")
            for name, value in expiration.items():
                _sub(e_el, name, value)
        noncurrent_transitions = list(rule.get("NoncurrentVersionTransitions") or [])
        if rule.get("NoncurrentVersionTransition"):
            noncurrent_transitions.append(rule["NoncurrentVersionTransition"])
        for t in noncurrent_transitions:
            t_el = _sub(rule_el, "NoncurrentVersionTransition")
            if t.get("TransitionInDays") is not None:
                _sub(t_el, "NoncurrentDays", str(int(t["TransitionInDays"])))
            if t.get("NewerNoncurrentVersions") is not None:
                _sub(t_el, "NewerNoncurrentVersions", str(int(t["NewerNoncurrentVersions"])))
            _sub(t_el, "StorageClass", str(t.get("StorageClass", "")))
        noncurrent = dict(rule.get("NoncurrentVersionExpiration") or {})
        if rule.get("NoncurrentVersionExpirationInDays") is not None:
            noncurrent.setdefault("NoncurrentDays", rule["NoncurrentVersionExpirationInDays"])
        if noncurrent:
            n_el = _sub(rule_el, "NoncurrentVersionExpiration")
            for name in ("NoncurrentDays", "NewerNoncurrentVersions"):
                if noncurrent.get(name) is not None:
                    _sub(n_el, name, str(int(noncurrent[name])))
        abort = rule.get("AbortIncompleteMultipartUpload")
        if abort:
            _sub(_sub(rule_el, "AbortIncompleteMultipartUpload"), "DaysAfterInitiation",
                 str(int(abort.get("DaysAfterInitiation", 0))))
    return _xml_bytes(root)


# (property, to the S3 body, put, delete): the shape of ministack's _S3_BUCKET_CONFIGURATIONS.
_S3_MORE_CONFIGURATIONS = (
    ("Tags", _s3_tagging_xml, _s3_raising(_s3._put_bucket_tagging, "PutBucketTagging"),
     _s3_raising(_s3._delete_bucket_tagging, "DeleteBucketTagging")),
    ("BucketEncryption", _s3_encryption_xml,
     _s3_raising(_s3._put_bucket_encryption, "PutBucketEncryption"),
     _s3_raising(_s3._delete_bucket_encryption, "DeleteBucketEncryption")),
    ("LifecycleConfiguration", _s3_lifecycle_xml,
     _s3_raising(_s3._put_bucket_lifecycle, "PutBucketLifecycleConfiguration"),
     _s3_raising(_s3._delete_bucket_lifecycle, "DeleteBucketLifecycle")),
    ("OwnershipControls", _s3_ownership_xml,
     _s3_raising(_s3._put_bucket_ownership_controls, "PutBucketOwnershipControls"),
     _s3_raising(_s3._delete_bucket_ownership_controls, "DeleteBucketOwnershipControls")),
)


def _bucket_holds_objects(name) -> bool:
    bucket = _s3._buckets.get(name)
    return bool(bucket and (bucket.get("objects") or _s3._bucket_has_versions(name)))


_original_s3_delete = _prov._s3_delete


def _s3_delete(physical_id, props):
    """As AWS: a bucket holding objects (or object versions) is not deleted."""
    if _bucket_holds_objects(physical_id):
        raise ValueError(f"The bucket you tried to delete is not empty (Service: S3, Status "
                         f"Code: 409, Error Code: BucketNotEmpty, Bucket: {physical_id})")
    _original_s3_delete(physical_id, props)


# ---------------------------------------------------------------------------------------------
# AWS::Lambda::EventInvokeConfig with Qualifier $LATEST: the function's configuration
# ---------------------------------------------------------------------------------------------
# On AWS the unqualified function and `$LATEST` have one asynchronous-invocation configuration:
# PutFunctionEventInvokeConfig without a qualifier answers FunctionArn "...:function:f:$LATEST",
# and a template's EventInvokeConfig (Qualifier is required; `$LATEST` is the unpublished
# function) is what GetFunctionEventInvokeConfig without a qualifier reads. ministack's Lambda
# API keeps two, under the keys "" and "$LATEST" (its invoke path already reads either), so the
# configuration a stack made was invisible to an unqualified Get. Here `$LATEST` is the
# unqualified configuration in Get, Put and Delete (the API's and the provisioner's calls, which
# look these functions up at call time), and a configuration kept under "$LATEST" by an earlier
# run is moved there.

_LATEST = "$LATEST"


def _unqualified(qualifier):
    return None if qualifier in (None, "", _LATEST) else qualifier


def _merge_latest(func_name):
    func = _lambda_svc._functions.get(func_name)
    if func is None:
        return
    configs = func.setdefault("event_invoke_configs", {})
    if _LATEST in configs:
        kept = configs.pop(_LATEST)
        if "" not in configs:
            configs[""] = kept
            func["event_invoke_config"] = kept


_original_get_event_invoke_config = _lambda_svc._get_event_invoke_config
_original_put_event_invoke_config = _lambda_svc._put_event_invoke_config
_original_delete_event_invoke_config = _lambda_svc._delete_event_invoke_config


def _get_event_invoke_config(func_name, qualifier=None):
    _merge_latest(func_name)
    return _original_get_event_invoke_config(func_name, _unqualified(qualifier))


def _put_event_invoke_config(func_name, qualifier, data):
    _merge_latest(func_name)
    qualifier = _unqualified(qualifier)
    result = _original_put_event_invoke_config(func_name, qualifier, data)
    if result[0] < 400 and qualifier is None:
        config = _lambda_svc._functions[func_name]["event_invoke_configs"][""]
        config["FunctionArn"] = f"{_lambda_svc._func_arn(func_name)}:{_LATEST}"
        return _lambda_svc.json_response(config)
    return result


def _delete_event_invoke_config(func_name, qualifier=None):
    _merge_latest(func_name)
    return _original_delete_event_invoke_config(func_name, _unqualified(qualifier))


# ---------------------------------------------------------------------------------------------
# AWS::SecretsManager::Secret without SecretString or GenerateSecretString: an empty secret
# ---------------------------------------------------------------------------------------------
# "If you omit both GenerateSecretString and SecretString, you create an empty secret": on AWS
# the secret has no version (CreateSecret without a value), and GetSecretValue answers
# ResourceNotFoundException until a PutSecretValue. ministack's provisioner stores an AWSCURRENT
# version holding "" instead, which a reader expecting JSON (or "no value yet") trips over. Here
# such a secret is made without versions, and an update that leaves both out publishes none
# (ministack's update would publish "" when the template drops the value).
# And the physical id, so what Ref answers, is the secret's ARN as on AWS ("Ref returns the
# ARN"); ministack answered its name, so a role policy or a function's environment built from
# Ref named "stack/secret" where AWS has "arn:aws:secretsmanager:...:secret:stack/secret-AbCdEf".
# Update, delete and ministack's drift reader take either (a stack record of an earlier run
# still holds the name).

_SECRET_VALUE_PROPS = ("SecretString", "GenerateSecretString")


def _declares_value(props) -> bool:
    return any(props.get(p) not in (None, "") for p in _SECRET_VALUE_PROPS)


_original_sm_secret_create = _prov._sm_secret_create
_original_sm_secret_update = _prov._sm_secret_update


_original_sm_secret_delete = _prov._sm_secret_delete


def _secret_key(physical_id) -> str:
    """The key ministack stores a secret under (its name), from the ARN or the name."""
    key, _secret = _secretsmanager._resolve(physical_id)
    return key or physical_id


def _sm_secret_create(logical_id, props, stack_name):
    """The physical id (so Ref) is the secret's ARN, as on AWS; ministack's is its name."""
    name, attrs = _original_sm_secret_create(logical_id, props, stack_name)
    if not _declares_value(props):
        secret = _secretsmanager._secrets.get(name)
        if secret is not None:
            secret["Versions"] = {}
    return attrs["Arn"], attrs


def _sm_secret_update(physical_id, old_props, new_props, stack_name, logical_id=None):
    if not _declares_value(new_props):
        # No value declared now: nothing to publish, whatever the previous template said.
        old_props = {k: v for k, v in old_props.items() if k not in _SECRET_VALUE_PROPS}
    new_id, attrs = _original_sm_secret_update(_secret_key(physical_id), old_props, new_props,
                                               stack_name, logical_id)
    if new_id.startswith("arn:") or not physical_id.startswith("arn:"):
        # A replacement (made by _sm_secret_create), or a record of an earlier run that still
        # names the secret: the id stays as it came.
        return new_id, attrs
    return attrs["Arn"], attrs


def _sm_secret_delete(physical_id, props):
    _original_sm_secret_delete(_secret_key(physical_id), props)


def _read_secret_for_drift(reader):
    def read(physical_id, props):
        return reader(_secret_key(physical_id), props)
    return read


# ---------------------------------------------------------------------------------------------
# AWS::Lambda::Function: VpcConfig and ReservedConcurrentExecutions
# ---------------------------------------------------------------------------------------------
# ministack's function provisioner (`_lambda_create` / `_lambda_update`) drops both: the function
# is outside the VPC (GetFunctionConfiguration shows no subnets, no groups) and has no reserved
# concurrency (GetFunctionConcurrency answers nothing). Here the VPC configuration is stored as
# the Lambda API's CreateFunction stores it (`_vpc_config_with_id`, VpcId derived from the
# subnets; Ipv6AllowedForDualStack kept), and the reservation goes through
# PutFunctionConcurrency; a dropped property is removed (no VPC: empty lists; no reservation:
# DeleteFunctionConcurrency), as AWS's CloudFormation does.


def _lambda_vpc_and_concurrency(name, props, old_props):
    func = _lambda_svc._functions.get(name)
    if func is None:
        return
    if props.get("VpcConfig") is not None:
        vpc = dict(props["VpcConfig"])
        if "Ipv6AllowedForDualStack" in vpc:
            vpc["Ipv6AllowedForDualStack"] = _prov._cfn_bool(vpc["Ipv6AllowedForDualStack"])
        func["config"]["VpcConfig"] = _lambda_svc._vpc_config_with_id(vpc)
    elif old_props and old_props.get("VpcConfig") is not None:
        func["config"]["VpcConfig"] = _lambda_svc._vpc_config_with_id(None)
    reserved = props.get("ReservedConcurrentExecutions")
    if reserved is not None:
        status, _h, body = _lambda_svc._put_function_concurrency(
            name, {"ReservedConcurrentExecutions": int(reserved)})
        if status >= 400:
            raise ValueError(f"PutFunctionConcurrency failed: {body!r}")
    elif old_props and old_props.get("ReservedConcurrentExecutions") is not None:
        _lambda_svc._delete_function_concurrency(name)


_original_lambda_create = _prov._lambda_create
_original_lambda_update = _prov._lambda_update


def _lambda_create(logical_id, props, stack_name):
    name, attrs = _original_lambda_create(logical_id, props, stack_name)
    _lambda_vpc_and_concurrency(name, props, None)
    return name, attrs


def _lambda_update(physical_id, old_props, new_props, stack_name, logical_id=None):
    name, attrs = _original_lambda_update(physical_id, old_props, new_props, stack_name, logical_id)
    _lambda_vpc_and_concurrency(name, new_props, old_props)
    return name, attrs


# ---------------------------------------------------------------------------------------------
# AWS::ApiGateway::RestApi: EndpointConfiguration
# ---------------------------------------------------------------------------------------------
# ministack's provisioner hands the template's EndpointConfiguration ({"Types": [...]}, the
# CloudFormation spelling) to its API Gateway API as it is, which keeps camelCase members
# ({"types": [...]}): GetRestApi then answers an endpointConfiguration without types. Here the
# property is given to ministack's create and update in the API's spelling.

_ENDPOINT_CONFIGURATION_MEMBERS = {"Types": "types", "VpcEndpointIds": "vpcEndpointIds",
                                   "IpAddressType": "ipAddressType"}


def _api_endpoint_configuration(props):
    config = props.get("EndpointConfiguration")
    if not isinstance(config, dict):
        return props
    props = dict(props)
    props["EndpointConfiguration"] = {_ENDPOINT_CONFIGURATION_MEMBERS.get(k, k): v
                                      for k, v in config.items()}
    return props


_original_rest_api_create = _prov._apigw_rest_api_create
_original_rest_api_update = _prov._apigw_rest_api_update


def _rest_api_create(logical_id, props, stack_name):
    return _original_rest_api_create(logical_id, _api_endpoint_configuration(props), stack_name)


def _rest_api_update(physical_id, old_props, new_props, stack_name, logical_id=None):
    return _original_rest_api_update(physical_id, _api_endpoint_configuration(old_props),
                                     _api_endpoint_configuration(new_props), stack_name,
                                     logical_id)


# ---------------------------------------------------------------------------------------------
# Registration
# ---------------------------------------------------------------------------------------------

# The create-only properties (AWS's resource schemas, `createOnlyProperties`, top-level ones,
# as cfn-lint 1.58.0 bundles them) of the other types the templates use that ministack lists
# none for: without them ministack's DescribeChangeSet says every change of these types may
# replace the resource (RequiresRecreation Conditionally, Replacement Conditional), where AWS
# says False for, say, a bucket's notifications.
_CREATE_ONLY = {
    "AWS::ApiGateway::Deployment": ("DeploymentCanarySettings", "RestApiId"),
    "AWS::ApiGateway::GatewayResponse": ("ResponseType", "RestApiId"),
    "AWS::ApiGateway::Method": ("HttpMethod", "ResourceId", "RestApiId"),
    "AWS::ApiGateway::Resource": ("ParentId", "PathPart", "RestApiId"),
    "AWS::ApiGateway::RestApi": (),
    "AWS::ApiGateway::Stage": ("RestApiId", "StageName"),
    "AWS::CloudFront::Distribution": (),
    "AWS::CloudFront::OriginAccessControl": (),
    "AWS::CloudFront::ResponseHeadersPolicy": (),
    "AWS::EC2::Route": ("DestinationCidrBlock", "DestinationIpv6CidrBlock",
                        "DestinationPrefixListId", "RouteTableId"),
    "AWS::EC2::RouteTable": ("VpcId",),
    "AWS::EC2::SecurityGroup": ("GroupDescription", "GroupName", "VpcId"),
    "AWS::EC2::Subnet": ("AvailabilityZone", "AvailabilityZoneId", "CidrBlock", "Ipv4IpamPoolId",
                         "Ipv4NetmaskLength", "Ipv6IpamPoolId", "Ipv6Native", "Ipv6NetmaskLength",
                         "OutpostArn", "VpcId"),
    "AWS::EC2::SubnetRouteTableAssociation": ("RouteTableId", "SubnetId"),
    "AWS::EC2::VPC": ("CidrBlock", "Ipv4IpamPoolId", "Ipv4NetmaskLength", "VpcEncryptionControl"),
    "AWS::EC2::VPCEndpoint": ("ResourceConfigurationArn", "ServiceName", "ServiceNetworkArn",
                              "ServiceRegion", "VpcEndpointType", "VpcId"),
    "AWS::Events::Rule": ("Name",),
    "AWS::Lambda::EventInvokeConfig": ("FunctionName", "Qualifier"),
    "AWS::Lambda::Permission": ("Action", "EventSourceToken", "FunctionName",
                                "FunctionUrlAuthType", "InvokedViaFunctionUrl", "Principal",
                                "PrincipalOrgID", "SourceAccount", "SourceArn"),
    "AWS::Logs::LogGroup": ("LogGroupName",),
    "AWS::S3::Bucket": ("BucketName", "BucketNamePrefix", "BucketNamespace"),
    "AWS::S3::BucketPolicy": ("Bucket",),
    "AWS::SecretsManager::Secret": ("Name",),
}


def install():
    """Register the four types and the wraps above (idempotent)."""
    handlers = _prov._RESOURCE_HANDLERS
    if CIDR_BLOCK in handlers:
        return
    handlers[EGRESS_ONLY_GATEWAY] = {
        "create": _eigw_create, "update": _eigw_update, "update_with_logical_id": True,
        "delete": _eigw_delete,
    }
    for type_name, egress in ((INGRESS, False), (EGRESS, True)):
        handlers[type_name] = {
            "create": _rule_create(egress), "update": _rule_update(egress),
            "update_with_logical_id": True, "delete": _rule_delete(egress),
        }
    handlers[CIDR_BLOCK] = {
        "create": _cidr_block_create, "update": _cidr_block_update,
        "update_with_logical_id": True, "delete": _cidr_block_delete,
    }
    # Replacement semantics (and DescribeChangeSet's Replacement column) for changed
    # createOnly properties, through ministack's own _replace_resource.
    _prov._REPLACING_PROPERTIES.update({
        EGRESS_ONLY_GATEWAY: ("VpcId",),
        INGRESS: _INGRESS_CREATE_ONLY,
        EGRESS: _EGRESS_CREATE_ONLY,
        CIDR_BLOCK: _CIDR_BLOCK_CREATE_ONLY,
    })
    for type_name, create_only in _CREATE_ONLY.items():
        _prov._REPLACING_PROPERTIES.setdefault(type_name, create_only)
    # Stack-level and aws:cloudformation:* tags reach the gateway, as on the other EC2 types.
    _prov._STACK_TAG_PROPERTY[EGRESS_ONLY_GATEWAY] = ("Tags", "list")

    # The EC2 API: the two actions, and the association sets in DescribeVpcs/DescribeSubnets
    # (the XML builders are looked up as module globals at call time).
    _ec2._ACTION_MAP.setdefault("AssociateVpcCidrBlock", _associate_vpc_cidr_block)
    _ec2._ACTION_MAP.setdefault("DisassociateVpcCidrBlock", _disassociate_vpc_cidr_block)
    _ec2._vpc_fields_xml = _vpc_fields_xml
    _ec2._subnet_fields_xml = _subnet_fields_xml

    # The VPC and subnet provisioners, in the table and as the module globals their update
    # handlers use for a replacement.
    for type_name, name, create, update in (
            ("AWS::EC2::VPC", "_ec2_vpc", _vpc_create, _vpc_update),
            ("AWS::EC2::Subnet", "_ec2_subnet", _subnet_create, _subnet_update)):
        handlers[type_name]["create"] = create
        handlers[type_name]["update"] = update
        setattr(_prov, f"{name}_create", create)
        setattr(_prov, f"{name}_update", update)
    handlers["AWS::EC2::VPC"]["delete"] = _vpc_delete
    _prov._ec2_vpc_delete = _vpc_delete

    # The DB instance's managed master user secret.
    _rds._instance_xml = _rds_instance_xml
    handlers["AWS::RDS::DBInstance"]["create"] = _rds_create
    handlers["AWS::RDS::DBInstance"]["update"] = _rds_update
    handlers["AWS::RDS::DBInstance"]["delete"] = _rds_delete
    _prov._rds_db_instance_create = _rds_create
    _prov._rds_db_instance_update = _rds_update
    _prov._rds_db_instance_delete = _rds_delete

    # The bucket: four more properties applied as ministack applies its three (the table is
    # looked up at call time), the stack's tags, and no deletion of a bucket holding objects.
    _prov._S3_BUCKET_CONFIGURATIONS = (tuple(_prov._S3_BUCKET_CONFIGURATIONS)
                                       + _S3_MORE_CONFIGURATIONS)
    _prov._STACK_TAG_PROPERTY[BUCKET] = ("Tags", "list")
    handlers[BUCKET]["delete"] = _s3_delete
    _prov._s3_delete = _s3_delete
    # One asynchronous-invocation configuration for the function and $LATEST.
    _lambda_svc._get_event_invoke_config = _get_event_invoke_config
    _lambda_svc._put_event_invoke_config = _put_event_invoke_config
    _lambda_svc._delete_event_invoke_config = _delete_event_invoke_config
    # A secret that declares no value has none.
    handlers["AWS::SecretsManager::Secret"]["create"] = _sm_secret_create
    handlers["AWS::SecretsManager::Secret"]["update"] = _sm_secret_update
    _prov._sm_secret_create = _sm_secret_create
    _prov._sm_secret_update = _sm_secret_update
    handlers["AWS::SecretsManager::Secret"]["delete"] = _sm_secret_delete
    _prov._sm_secret_delete = _sm_secret_delete
    from ministack.services.cloudformation import drift as _drift
    reader, fields = _drift._DRIFT_READERS["AWS::SecretsManager::Secret"]
    _drift._DRIFT_READERS["AWS::SecretsManager::Secret"] = (_read_secret_for_drift(reader), fields)

    # The function's VPC configuration and reserved concurrency.
    handlers["AWS::Lambda::Function"]["create"] = _lambda_create
    handlers["AWS::Lambda::Function"]["update"] = _lambda_update
    _prov._lambda_create = _lambda_create
    _prov._lambda_update = _lambda_update

    # The REST API's endpoint configuration.
    handlers["AWS::ApiGateway::RestApi"]["create"] = _rest_api_create
    handlers["AWS::ApiGateway::RestApi"]["update"] = _rest_api_update
    _prov._apigw_rest_api_create = _rest_api_create
    _prov._apigw_rest_api_update = _rest_api_update
    logger.info("CloudFormation extensions installed: %s",
                ", ".join((EGRESS_ONLY_GATEWAY, INGRESS, EGRESS, CIDR_BLOCK)))


install()
