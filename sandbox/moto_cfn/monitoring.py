"""CloudWatch alarms, CloudWatch Logs metric filters and Route53 private hosted zones on moto's
backends (moto's CloudFormation has no model for the first two, and creates public hosted zones only).
"""

from __future__ import annotations

from moto.cloudwatch.models import cloudwatch_backends
from moto.logs.models import logs_backends
from moto.route53.models import route53_backends
from moto.utilities.utils import get_partition

from .resources import Driver, ResourceFailed, UnknownAttribute


class AlarmDriver(Driver):
    """AWS::CloudWatch::Alarm and AWS::CloudWatch::CompositeAlarm (PutMetricAlarm / PutCompositeAlarm)."""

    UPDATE_REPLACES = ("AlarmName",)

    def __init__(self, composite: bool):
        self.composite = composite

    def _put(self, ctx, res):
        props = res.properties
        name = props.get("AlarmName") or res.physical_id or ctx.physical_name(res.logical_id)
        backend = cloudwatch_backends[ctx.account_id][ctx.region]
        alarm = backend.put_metric_alarm(
            name=name, namespace=props.get("Namespace"), metric_name=props.get("MetricName"),
            comparison_operator=props.get("ComparisonOperator"), evaluation_periods=props.get("EvaluationPeriods"),
            period=props.get("Period"), threshold=props.get("Threshold"), statistic=props.get("Statistic"),
            description=props.get("AlarmDescription"),
            dimensions=list(props.get("Dimensions") or []),
            alarm_actions=props.get("AlarmActions") or [], ok_actions=props.get("OKActions") or [],
            insufficient_data_actions=props.get("InsufficientDataActions") or [],
            datapoints_to_alarm=props.get("DatapointsToAlarm"), extended_statistic=props.get("ExtendedStatistic"),
            unit=props.get("Unit"), actions_enabled=str(props.get("ActionsEnabled", True)).lower() == "true",
            treat_missing_data=props.get("TreatMissingData"),
            rule=props.get("AlarmRule") if self.composite else None)
        if self.composite and not props.get("AlarmRule"):
            raise ResourceFailed("Property AlarmRule cannot be empty.")
        res.model, res.physical_id = alarm, alarm.name

    def create(self, ctx, res):
        self._put(ctx, res)

    def update(self, ctx, res, old_properties):
        self._put(ctx, res)

    def delete(self, ctx, res):
        cloudwatch_backends[ctx.account_id][ctx.region].delete_alarms([res.physical_id])

    def get_att(self, res, name):
        if name == "Arn":
            return res.model.alarm_arn
        raise UnknownAttribute(name)


def _transformations(props: dict) -> list:
    """CloudFormation's MetricTransformations in the CloudWatch Logs API's (camelCase) shape."""
    out = []
    for item in props.get("MetricTransformations") or []:
        entry = {key[0].lower() + key[1:]: value for key, value in item.items() if key != "Dimensions"}
        if item.get("Dimensions"):
            entry["dimensions"] = {d["Key"]: d["Value"] for d in item["Dimensions"]}
        out.append(entry)
    return out


class MetricFilterDriver(Driver):
    UPDATE_REPLACES = ("FilterName", "LogGroupName")

    def _put(self, ctx, res):
        props = res.properties
        backend = logs_backends[ctx.account_id][ctx.region]
        if props.get("LogGroupName") not in backend.groups:
            raise ResourceFailed(f"The specified log group does not exist. (Log group: {props.get('LogGroupName')})")
        name = props.get("FilterName") or res.physical_id or ctx.physical_name(res.logical_id)
        backend.delete_metric_filter(name, props["LogGroupName"])
        backend.put_metric_filter(name, props.get("FilterPattern", ""), props["LogGroupName"], _transformations(props))
        res.physical_id = name

    def create(self, ctx, res):
        self._put(ctx, res)

    def update(self, ctx, res, old_properties):
        self._put(ctx, res)

    def delete(self, ctx, res):
        backend = logs_backends[ctx.account_id][ctx.region]
        backend.delete_metric_filter(res.physical_id, res.properties.get("LogGroupName"))


class HostedZoneDriver(Driver):
    """AWS::Route53::HostedZone: private when VPCs are given (CreateHostedZone with VPC)."""

    UPDATE_REPLACES = ("Name",)

    def _backend(self, ctx):
        return route53_backends[ctx.account_id][get_partition(ctx.region)]

    def create(self, ctx, res):
        props = res.properties
        vpcs = props.get("VPCs") or []
        comment = (props.get("HostedZoneConfig") or {}).get("Comment")
        zone = self._backend(ctx).create_hosted_zone(
            props["Name"], private_zone=bool(vpcs), caller_reference=ctx.physical_name(res.logical_id),
            vpcid=vpcs[0]["VPCId"] if vpcs else None, vpcregion=vpcs[0].get("VPCRegion") if vpcs else None,
            comment=comment)
        res.model, res.physical_id = zone, zone.id.replace("/hostedzone/", "")  # Ref: the id alone

    def delete(self, ctx, res):
        try:
            self._backend(ctx).delete_hosted_zone(res.physical_id)
        except Exception as exc:  # HostedZoneNotEmpty, as on AWS
            if "NoSuchHostedZone" in type(exc).__name__:
                return
            raise ResourceFailed(f"The specified hosted zone contains non-required resource record sets and so "
                                 f"cannot be deleted. ({exc})") from exc

    def get_att(self, res, name):
        if name == "Id":
            return res.physical_id
        if name == "NameServers":
            return list(res.model.delegation_set.name_servers) if res.model.delegation_set else []
        raise UnknownAttribute(name)


DRIVERS = {
    "AWS::CloudWatch::Alarm": AlarmDriver(composite=False),
    "AWS::CloudWatch::CompositeAlarm": AlarmDriver(composite=True),
    "AWS::Logs::MetricFilter": MetricFilterDriver(),
    "AWS::Route53::HostedZone": HostedZoneDriver(),
}
