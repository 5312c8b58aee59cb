"""What an AWS account offers in each availability zone, where the emulators have no such notion.

Zone names are per account, and not every zone offers every interface endpoint service or DB
instance class (in us-east-1, for example, one zone of many accounts lacks most newer
services).  ministack lists no zone for most endpoint services and two fixed zones for every
DB class; moto lists no orderable option for many classes.  So the proxy answers these
questions itself, from the emulator's list of zones, with the zones named in
`Config.constrained_zones` offering neither, and refuses an interface endpoint in such a zone
as AWS does:

  InvalidParameter: The VPC endpoint service com.amazonaws.us-east-1.email-smtp does not
  support the availability zone of the subnet: subnet-0de46d7dcc06da2a7.

(terraform-aws-modules/terraform-aws-vpc#462 and #785; AWS knowledge center "interface
endpoint availability zone").  On in validate and test modes.

Lambda's concurrency quota is per account and region: every reservation is taken from it, and
AWS keeps `Config.lambda_min_unreserved` (100) of it unreserved, or all of it when the quota is
lower (new accounts may have 10).  The emulators refuse nothing (moto only with an environment
variable) and ministack reports its own small execution cap as the quota, so the proxy answers
`GetAccountSettings` from `Config.lambda_concurrency_limit` and refuses a reservation that
grows past the minimum as AWS does:

  InvalidParameterValueException: Specified ReservedConcurrentExecutions for function
  decreases account's UnreservedConcurrentExecution below its minimum value of [100].

(Lambda developer guide, "Configuring reserved concurrency"; the message as reported in
aws-samples/siem-on-amazon-opensearch-service#175 and awslabs/fhir-works-on-aws-deployment#691.)"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from typing import Optional
from urllib.parse import quote
from xml.sax.saxutils import escape

from realism.awserrors import AwsError
from realism.proxy import Answer, Ctx

EC2_NS = "http://ec2.amazonaws.com/doc/2016-11-15/"
RDS_NS = "http://rds.amazonaws.com/doc/2014-10-31/"

# Services reached through gateway endpoints (not zonal: every zone is listed).
GATEWAY_SERVICES = {"s3", "dynamodb"}
# Current versions by engine, for options the emulator does not list.
ENGINE_VERSIONS = {"mysql": ["8.0.40", "8.4.3"], "mariadb": ["10.11.10", "11.4.4"], "postgres": ["16.6", "17.2"]}


class Account:
    def __init__(self, world):
        self.world = world
        self.config = world.config
        self.upstream = world.upstream
        self.zones: dict = {}  # region -> [zone names]

    async def semantic(self, ctx: Ctx) -> Optional[Answer]:
        if ctx.is_("ec2", "DescribeVpcEndpointServices"):
            return await self._endpoint_services(ctx)
        if ctx.is_("ec2", "CreateVpcEndpoint"):
            return await self._endpoint_in_zone(ctx)
        if ctx.is_("rds", "DescribeOrderableDBInstanceOptions"):
            return await self._orderable_options(ctx)
        if ctx.is_("lambda", "PutFunctionConcurrency"):
            return await self._reserve_concurrency(ctx)
        if ctx.is_("lambda", "GetAccountSettings"):
            return await self._account_settings(ctx)
        return None

    # -- Lambda concurrency ---------------------------------------------------------------------
    async def _get_json(self, ctx: Ctx, path: str, params: Optional[dict] = None) -> Optional[dict]:
        r = await self.upstream.signed("lambda", ctx.region, ctx.access_key, "GET", path, params=params)
        if r is None or r.status != 200:
            return None
        try:
            return json.loads(r.body or b"{}")
        except ValueError:
            return None

    async def reservations(self, ctx: Ctx) -> Optional[dict]:
        """Function name -> reserved concurrency, for every function of the caller's account and
        region that has one; None if the emulator cannot tell."""
        names, marker = [], None
        while True:
            page = await self._get_json(ctx, "/2015-03-31/functions/", {"Marker": marker} if marker else None)
            if page is None:
                return None
            names += [f.get("FunctionName") for f in page.get("Functions") or [] if f.get("FunctionName")]
            marker = page.get("NextMarker")
            if not marker:
                break
        reserved = {}
        for name in names:
            c = await self._get_json(ctx, "/2019-09-30/functions/%s/concurrency" % quote(name, safe=""))
            value = (c or {}).get("ReservedConcurrentExecutions")
            if value is not None:
                reserved[name] = int(value)
        return reserved

    def _minimum_unreserved(self) -> int:
        return min(self.config.lambda_min_unreserved, self.config.lambda_concurrency_limit)

    async def _reserve_concurrency(self, ctx: Ctx) -> Optional[Answer]:
        wanted = ctx.p("ReservedConcurrentExecutions")
        reserved = await self.reservations(ctx)
        if wanted is None or reserved is None:
            return None
        name = str(ctx.p("FunctionName") or "")
        if "function:" in name:
            name = name.split("function:", 1)[1]
        name = name.split(":", 1)[0]
        current = reserved.pop(name, 0)
        left = self.config.lambda_concurrency_limit - sum(reserved.values()) - int(wanted)
        minimum = self._minimum_unreserved()
        ctx.saw("account_concurrency")
        # Lowering a reservation gives back to the pool: AWS lets it through.
        if int(wanted) <= current or left >= minimum:
            return None
        ctx.note = "%s would leave %d unreserved of %d" % (name, left, self.config.lambda_concurrency_limit)
        return ctx.error(AwsError(
            "InvalidParameterValueException",
            "Specified ReservedConcurrentExecutions for function decreases account's "
            "UnreservedConcurrentExecution below its minimum value of [%d]." % minimum, 400),
            "invalid:InvalidParameterValueException")

    async def _account_settings(self, ctx: Ctx) -> Answer:
        reserved = await self.reservations(ctx) or {}
        limit = self.config.lambda_concurrency_limit
        ctx.saw("account_concurrency")
        ctx.verdict = "answered:account_concurrency"
        body = {
            "AccountLimit": {"TotalCodeSize": 80530636800, "CodeSizeUnzipped": 262144000,
                             "CodeSizeZipped": 52428800, "ConcurrentExecutions": limit,
                             "UnreservedConcurrentExecutions": max(limit - sum(reserved.values()), 0)},
            "AccountUsage": {"TotalCodeSize": 0, "FunctionCount": len(reserved)},
        }
        return Answer(200, {"Content-Type": "application/json"}, json.dumps(body).encode())

    async def region_zones(self, ctx: Ctx) -> list:
        region = ctx.region
        if region not in self.zones:
            r = await self.upstream.signed("ec2", region, ctx.access_key, "POST", "/",
                                           form={"Action": "DescribeAvailabilityZones", "Version": "2016-11-15"})
            names = []
            if r is not None and r.status == 200:
                names = re.findall(r"<zoneName>([^<]+)</zoneName>", r.body.decode("utf-8", "replace"))
            if not names:
                return ["%s%s" % (region, letter) for letter in "abc"]
            self.zones[region] = sorted(set(names))
        return self.zones[region]

    def offering(self, zones: list) -> list:
        return [z for z in zones if z not in self.config.constrained_zones]

    # -- VPC endpoint services ------------------------------------------------------------------
    async def _endpoint_services(self, ctx: Ctx) -> Answer:
        zones = await self.region_zones(ctx)
        region = ctx.region
        names = ctx.p("ServiceNames") or []
        prefix = "com.amazonaws.%s." % region
        wanted = [n for n in names if n.startswith(prefix)] if names else [
            prefix + s for s in ("s3", "dynamodb", "transcribe", "secretsmanager", "email-smtp", "logs", "sqs",
                                 "sts", "lambda", "kms", "monitoring", "execute-api")]
        details = []
        for name in wanted:
            short = name[len(prefix):]
            kinds = ["Gateway", "Interface"] if short in GATEWAY_SERVICES else ["Interface"]
            for kind in kinds:
                offered = zones if kind == "Gateway" else self.offering(zones)
                details.append(self._service_xml(name, short, kind, offered, region))
        ctx.saw("account_zones")
        ctx.verdict = "answered:account_zones"
        body = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<DescribeVpcEndpointServicesResponse xmlns=\"%s\">"
                "<requestId>%s</requestId><serviceNameSet>%s</serviceNameSet><serviceDetailSet>%s"
                "</serviceDetailSet></DescribeVpcEndpointServicesResponse>") % (
            EC2_NS, uuid.uuid4(), "".join("<item>%s</item>" % escape(n) for n in wanted), "".join(details))
        return Answer(200, {"Content-Type": "text/xml;charset=UTF-8"}, body.encode())

    @staticmethod
    def _service_xml(name: str, short: str, kind: str, zones: list, region: str) -> str:
        service_id = "vpce-svc-" + hashlib.sha256(("%s/%s" % (name, kind)).encode()).hexdigest()[:17]
        if kind == "Gateway":
            dns = "<item>%s.%s.amazonaws.com</item>" % (short, region)
            private = ""
        else:
            dns = "<item>%s.%s.vpce.amazonaws.com</item>" % (short, region)
            private = "<privateDnsName>%s.%s.amazonaws.com</privateDnsName>" % (short, region)
        return ("<item><serviceName>%s</serviceName><serviceId>%s</serviceId><serviceType><item><serviceType>%s"
                "</serviceType></item></serviceType><availabilityZoneSet>%s</availabilityZoneSet><owner>amazon"
                "</owner><baseEndpointDnsNameSet>%s</baseEndpointDnsNameSet>%s<vpcEndpointPolicySupported>true"
                "</vpcEndpointPolicySupported><acceptanceRequired>false</acceptanceRequired><managesVpcEndpoints>"
                "false</managesVpcEndpoints><supportedIpAddressTypeSet><item>ipv4</item><item>dualstack</item>"
                "</supportedIpAddressTypeSet></item>") % (
            escape(name), service_id, kind, "".join("<item>%s</item>" % z for z in zones), dns, private)

    async def _endpoint_in_zone(self, ctx: Ctx) -> Optional[Answer]:
        if (ctx.p("VpcEndpointType") or "Gateway") != "Interface" or not self.config.constrained_zones:
            return None
        for subnet in ctx.p("SubnetIds") or []:
            zone = (await self.world._subnet_info(ctx, subnet)).get("az")
            if zone in self.config.constrained_zones:
                ctx.note = "%s is in %s" % (subnet, zone)
                return ctx.error(AwsError(
                    "InvalidParameter",
                    "The VPC endpoint service %s does not support the availability zone of the subnet: %s."
                    % (ctx.p("ServiceName"), subnet), 400), "invalid:InvalidParameter")
        return None

    # -- RDS orderable options ------------------------------------------------------------------
    async def _orderable_options(self, ctx: Ctx) -> Answer:
        zones = self.offering(await self.region_zones(ctx))
        engine = ctx.p("Engine") or "mysql"
        version = ctx.p("EngineVersion")
        versions = [version] if version else ENGINE_VERSIONS.get(engine, ["1.0"])
        classes = [ctx.p("DBInstanceClass")] if ctx.p("DBInstanceClass") else ["db.t3.micro", "db.t3.small",
                                                                               "db.t4g.micro", "db.m5.large"]
        options = [] if ctx.p("Marker") else [self._option_xml(engine, v, c, zones) for v in versions
                                              for c in classes]
        ctx.saw("account_zones")
        ctx.verdict = "answered:account_zones"
        body = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<DescribeOrderableDBInstanceOptionsResponse "
                "xmlns=\"%s\"><DescribeOrderableDBInstanceOptionsResult><OrderableDBInstanceOptions>%s"
                "</OrderableDBInstanceOptions></DescribeOrderableDBInstanceOptionsResult><ResponseMetadata>"
                "<RequestId>%s</RequestId></ResponseMetadata></DescribeOrderableDBInstanceOptionsResponse>") % (
            RDS_NS, "".join(options), uuid.uuid4())
        return Answer(200, {"Content-Type": "text/xml"}, body.encode())

    @staticmethod
    def _option_xml(engine: str, version: str, cls: str, zones: list) -> str:
        return ("<OrderableDBInstanceOption><Engine>%s</Engine><EngineVersion>%s</EngineVersion><DBInstanceClass>"
                "%s</DBInstanceClass><LicenseModel>general-public-license</LicenseModel><AvailabilityZones>%s"
                "</AvailabilityZones><MultiAZCapable>true</MultiAZCapable><Vpc>true</Vpc>"
                "<SupportsStorageEncryption>true</SupportsStorageEncryption><StorageType>gp2</StorageType>"
                "</OrderableDBInstanceOption>") % (
            escape(engine), escape(version), escape(cls),
            "".join("<AvailabilityZone><Name>%s</Name></AvailabilityZone>" % z for z in zones))
