"""Which driver runs each resource type, and whether it is real (moto creates it) or a placeholder."""

from __future__ import annotations

import functools

from moto.cloudformation.parsing import get_model_map

from . import ec2, elb, iam, imagebuilder, monitoring
from .custom_resources import CustomResourceDriver
from .resources import MotoModelDriver, PlaceholderDriver
from .waits import NestedStackDriver, WaitConditionDriver, WaitConditionHandleDriver

# Types moto's CloudFormation models create correctly: the properties whose change needs a new
# physical resource (CloudFormation's "Update requires: Replacement"); other changes go through
# moto's update of the model, or leave the resource as it is when moto has none.
MOTO_MODEL_REPLACES = {
    "AWS::IAM::Policy": (),
    "AWS::IAM::InstanceProfile": ("InstanceProfileName", "Path"),
    "AWS::IAM::ManagedPolicy": ("ManagedPolicyName", "Path"),
    "AWS::Logs::LogGroup": ("LogGroupName", "KmsKeyId"),
    "AWS::DynamoDB::Table": ("TableName", "KeySchema", "LocalSecondaryIndexes"),
    "AWS::Lambda::Function": ("FunctionName", "PackageType"),
    "AWS::CloudWatch::Dashboard": ("DashboardName",),
    "AWS::EC2::LaunchTemplate": ("LaunchTemplateName",),
    "AWS::AutoScaling::AutoScalingGroup": ("AutoScalingGroupName", "InstanceId", "PlacementGroup", "VPCZoneIdentifier"),
    "AWS::ElasticLoadBalancingV2::TargetGroup": ("Name", "Port", "Protocol", "TargetType", "VpcId"),
    "AWS::ElasticLoadBalancingV2::Listener": ("LoadBalancerArn",),
}

OWN_DRIVERS = {
    **ec2.DRIVERS,
    **elb.DRIVERS,
    **iam.DRIVERS,
    **monitoring.DRIVERS,
    **imagebuilder.DRIVERS,
    # The image template's build notifications: Image Builder's message to ParallelCluster's cleanup function,
    # and the permission to invoke it, whose work the sandbox's image builder does (sandbox/image_builder.py).
    # (moto's Lambda::Permission model has no physical id.)
    "AWS::SNS::Subscription": PlaceholderDriver(),
    "AWS::Lambda::Permission": PlaceholderDriver(),
    "AWS::CloudFormation::WaitConditionHandle": WaitConditionHandleDriver(),
    "AWS::CloudFormation::WaitCondition": WaitConditionDriver(),
    "AWS::CloudFormation::Stack": NestedStackDriver(),
    "AWS::CloudFormation::CustomResource": CustomResourceDriver(),
}

# What sandbox/README.md says of each type ParallelCluster's templates use.
PLACEHOLDERS = ("AWS::EC2::PlacementGroup", "AWS::SNS::Subscription", "AWS::Lambda::Permission")


@functools.lru_cache(maxsize=None)
def driver_for(resource_type: str):
    """The driver of a resource type, or None when the sandbox's CloudFormation cannot create it."""
    if resource_type in OWN_DRIVERS:
        return OWN_DRIVERS[resource_type]
    if resource_type.startswith("Custom::"):
        return OWN_DRIVERS["AWS::CloudFormation::CustomResource"]
    model = get_model_map().get(resource_type)
    if model is None:
        return None
    return MotoModelDriver(model, MOTO_MODEL_REPLACES.get(resource_type, ("*",)))


def unsupported_types(template: dict) -> list:
    return sorted({r.get("Type", "?") for r in (template.get("Resources") or {}).values()
                   if driver_for(r.get("Type", "?")) is None})
