"""EC2 resource types on moto's EC2 backend, as CloudFormation's documentation defines them.

moto's own CloudFormation models of these types read other property names than CloudFormation's
(``SecurityGroups`` for a network interface's ``GroupSet``), replace a security group (a new group
id) when its rules change, have no ``SecurityGroupEgress``, and launch an instance without its
launch template's network interfaces and tags; these drivers call moto's EC2 backend as the EC2 API
does instead. moto has no placement groups: ``AWS::EC2::PlacementGroup`` is a name only.
"""

from __future__ import annotations

import copy

from moto.ec2.models import ec2_backends
from moto.ec2.utils import convert_tag_spec, parse_user_data

from .resources import Driver, PlaceholderDriver, ResourceFailed, UnknownAttribute


def backend(ctx):
    return ec2_backends[ctx.account_id][ctx.region]


def _rule(properties: dict) -> dict:
    """One ingress/egress rule as the EC2 backend takes it (CloudFormation's property names)."""
    ranges = []
    if properties.get("CidrIp"):
        described = {"Description": properties["Description"]} if properties.get("Description") else {}
        ranges.append(dict({"CidrIp": properties["CidrIp"]}, **described))
    if properties.get("CidrIpv6"):
        ranges.append({"CidrIpv6": properties["CidrIpv6"]})
    groups = []
    for key in ("SourceSecurityGroupId", "DestinationSecurityGroupId"):
        if properties.get(key):
            groups.append({"GroupId": properties[key]})
    prefix_ids = (properties.get("SourcePrefixListId"), properties.get("DestinationPrefixListId"))
    prefixes = [{"PrefixListId": p} for p in prefix_ids if p]
    protocol = str(properties.get("IpProtocol", "-1"))
    return {"ip_protocol": protocol, "from_port": properties.get("FromPort"), "to_port": properties.get("ToPort"),
            "ip_ranges": ranges, "source_groups": groups, "prefix_list_ids": prefixes}


def _authorize(ctx, group_id, direction, properties):
    method = getattr(backend(ctx), f"authorize_security_group_{direction}")
    try:
        method(group_name_or_id=group_id, **_rule(properties))
    except Exception as exc:  # moto's errors carry the EC2 API's message
        raise ResourceFailed(f"Resource handler returned message: \"{exc}\"") from exc


def _revoke(ctx, group_id, direction, properties):
    method = getattr(backend(ctx), f"revoke_security_group_{direction}")
    try:
        method(group_name_or_id=group_id, **_rule(properties))
    except Exception:  # pylint: disable=broad-except
        pass  # already gone (its group was deleted): CloudFormation's delete succeeds too


def _drop_default_egress(ctx, group_id):
    """CloudFormation's SecurityGroupEgress removes EC2's default allow-all egress rule when it is the
    group's only one (aws-cdk issue 987, cfn-language-discussion issue 157): ParallelCluster's
    templates add the group's own egress rules, then allow-all again (ComputeSecurityGroupNormalEgress)."""
    group = backend(ctx).get_security_group_from_id(group_id)
    rules = list(getattr(group, "egress_rules", []) or []) if group is not None else []
    if len(rules) == 1 and str(rules[0].ip_protocol) == "-1" and rules[0].ip_range.get("CidrIp") == "0.0.0.0/0":
        _revoke(ctx, group_id, "egress", {"IpProtocol": "-1", "CidrIp": "0.0.0.0/0"})


class SecurityGroupDriver(Driver):
    UPDATE_REPLACES = ("GroupDescription", "GroupName", "VpcId")

    def create(self, ctx, res):
        props = res.properties
        name = props.get("GroupName") or ctx.physical_name(res.logical_id)
        group = backend(ctx).create_security_group(name, props.get("GroupDescription"), vpc_id=props.get("VpcId"),
                                                   tags=ctx.ec2_tags(res))
        res.model, res.physical_id = group, group.id
        for rule in props.get("SecurityGroupIngress") or []:
            _authorize(ctx, group.id, "ingress", rule)
        if props.get("SecurityGroupEgress") is not None:
            # A template's own egress rules replace EC2's default allow-all rule.
            _revoke(ctx, group.id, "egress", {"IpProtocol": "-1", "CidrIp": "0.0.0.0/0"})
            for rule in props["SecurityGroupEgress"]:
                _authorize(ctx, group.id, "egress", rule)

    def update(self, ctx, res, old_properties):
        for key, direction in (("SecurityGroupIngress", "ingress"), ("SecurityGroupEgress", "egress")):
            old, new = old_properties.get(key) or [], res.properties.get(key) or []
            for rule in old:
                if rule not in new:
                    _revoke(ctx, res.physical_id, direction, rule)
            for rule in new:
                if rule not in old:
                    _authorize(ctx, res.physical_id, direction, rule)
        res.model.add_tags(ctx.ec2_tags(res))

    def delete(self, ctx, res):
        try:
            backend(ctx).delete_security_group(group_id=res.physical_id)
        except Exception as exc:  # a dependency violation, as on AWS
            if "NotFound" in type(exc).__name__:
                return
            raise ResourceFailed(f"resource {res.physical_id} has a dependent object") from exc

    def get_att(self, res, name):
        if name == "GroupId":
            return res.physical_id
        if name == "VpcId":
            return res.model.vpc_id
        raise UnknownAttribute(name)


class SecurityGroupRuleDriver(Driver):
    """AWS::EC2::SecurityGroupIngress / SecurityGroupEgress: one rule of an existing group."""

    def __init__(self, direction: str):
        self.direction = direction

    def create(self, ctx, res):
        group_id = res.properties.get("GroupId")
        if not group_id:
            raise ResourceFailed("Property GroupId cannot be empty.")
        if self.direction == "egress":
            _drop_default_egress(ctx, group_id)
        _authorize(ctx, group_id, self.direction, res.properties)
        res.physical_id = ctx.physical_name(res.logical_id)

    def delete(self, ctx, res):
        _revoke(ctx, res.properties.get("GroupId"), self.direction, res.properties)


class NetworkInterfaceDriver(Driver):
    UPDATE_REPLACES = ("SubnetId", "PrivateIpAddress", "PrivateIpAddresses", "InterfaceType")

    def create(self, ctx, res):
        props = res.properties
        ec2 = backend(ctx)
        eni = ec2.create_network_interface(ec2.get_subnet(props["SubnetId"]), props.get("PrivateIpAddress"),
                                           group_ids=list(props.get("GroupSet") or []),
                                           description=props.get("Description"), tags=ctx.ec2_tags(res))
        if "SourceDestCheck" in props:
            eni.source_dest_check = str(props["SourceDestCheck"]).lower()
        res.model, res.physical_id = eni, eni.id

    def update(self, ctx, res, old_properties):
        eni = res.model
        eni._group_set = [backend(ctx).get_security_group_from_id(g) for g in res.properties.get("GroupSet") or []]  # pylint: disable=protected-access
        eni.description = res.properties.get("Description")
        if "SourceDestCheck" in res.properties:
            eni.source_dest_check = str(res.properties["SourceDestCheck"]).lower()

    def delete(self, ctx, res):
        try:
            backend(ctx).delete_network_interface(res.physical_id)
        except Exception:  # pylint: disable=broad-except
            pass  # deleted with its instance

    def get_att(self, res, name):
        if name == "PrimaryPrivateIpAddress":
            return res.model.private_ip_address
        if name == "SecondaryPrivateIpAddresses":
            return [a["PrivateIpAddress"] for a in res.model.private_ip_addresses[1:]]
        if name == "Id":
            return res.physical_id
        raise UnknownAttribute(name)


def _launch_template_data(ctx, reference: dict) -> tuple:
    ec2 = backend(ctx)
    template_id, name = reference.get("LaunchTemplateId"), reference.get("LaunchTemplateName")
    template = ec2.get_launch_template(template_id) if template_id else ec2.get_launch_template_by_name(name)
    version = str(reference.get("Version") or "$Default")
    number = {"$Latest": template.latest_version_number, "$Default": template.default_version_number}.get(version)
    return template, template.get_version(int(number or version))


# What RunInstances takes of a launch template's network interface.
NIC_KEYS = ("DeviceIndex", "NetworkInterfaceId", "SubnetId", "PrivateIpAddress", "AssociatePublicIpAddress",
            "DeleteOnTermination", "Description", "Groups")


def _same_profile(instance_profile, wanted: dict) -> bool:
    """Whether moto's instance profile is the one a template names ({"Name"} or {"Arn"})."""
    return bool(wanted) and (wanted.get("Arn") == instance_profile.arn or wanted.get("Name") == instance_profile.name)


class InstanceDriver(Driver):
    """AWS::EC2::Instance, with its launch template's settings as RunInstances takes them."""

    UPDATE_REPLACES = ("ImageId", "LaunchTemplate", "SubnetId", "NetworkInterfaces", "AvailabilityZone",
                       "KeyName", "PrivateIpAddress", "PlacementGroupName")

    def create(self, ctx, res):
        props = res.properties
        ec2 = backend(ctx)
        data, kwargs = {}, {}
        if props.get("LaunchTemplate"):
            template, version = _launch_template_data(ctx, props["LaunchTemplate"])
            data = dict(version.data)
            kwargs["launch_template"] = {"LaunchTemplateId": template.id, "Version": str(version.number)}
        merged = dict(data, **{k: v for k, v in props.items() if k != "LaunchTemplate"})
        tags = convert_tag_spec(data.get("TagSpecifications") or []).get("instance", {})
        tags.update({t["Key"]: t["Value"] for t in props.get("Tags") or []})
        tags.update(ctx.ec2_tags(res))
        nics = [{k: v for k, v in nic.items() if k in NIC_KEYS} for nic in merged.get("NetworkInterfaces") or []]
        ebs = [m for m in merged.get("BlockDeviceMappings") or [] if "Ebs" in m]
        profile = merged.get("IamInstanceProfile") or {}
        if isinstance(profile, str):
            profile = {"Name": profile}
        user_data = merged.get("UserData")
        if isinstance(user_data, (str, bytes)):  # a launch template's is parsed already
            user_data = parse_user_data(user_data)
        reservation = ec2.run_instances(
            merged.get("ImageId"), 1, user_data, [],
            instance_type=merged.get("InstanceType", "m1.small"),
            is_instance_type_default=not merged.get("InstanceType"), region_name=ctx.region,
            subnet_id=None if nics else merged.get("SubnetId"), key_name=merged.get("KeyName"),
            security_group_ids=list(merged.get("SecurityGroupIds") or []), nics=nics,
            private_ip=merged.get("PrivateIpAddress"), tags={"instance": tags}, block_device_mappings=ebs,
            ebs_optimized=bool(merged.get("EbsOptimized")), metadata_options=merged.get("MetadataOptions") or {},
            monitoring_state="enabled" if (merged.get("Monitoring") or {}).get("Enabled") else "disabled",
            instance_initiated_shutdown_behavior=merged.get("InstanceInitiatedShutdownBehavior"), **kwargs)
        instance = reservation.instances[0]
        # moto_server.py's RunInstances associates a launch template's profile itself: the stack's wins (and the
        # same profile stays associated: the hypervisor may be reading the instance for its metadata service).
        association = ec2.iam_instance_profile_associations.get(instance.id)
        if association is not None and _same_profile(association.iam_instance_profile, profile):
            profile = {}
        elif association is not None:
            ec2.disassociate_iam_instance_profile(association.association_id)
        if profile.get("Name") or profile.get("Arn"):
            ec2.associate_iam_instance_profile(instance_id=instance.id, iam_instance_profile_name=profile.get("Name"),
                                               iam_instance_profile_arn=profile.get("Arn"))
        res.model, res.physical_id = instance, instance.id

    def update(self, ctx, res, old_properties):
        res.model.add_tags({t["Key"]: t["Value"] for t in res.properties.get("Tags") or []})

    def delete(self, ctx, res):
        instance = res.model
        if instance is not None and instance.state != "terminated":
            backend(ctx).terminate_instances([res.physical_id])

    def get_att(self, res, name):
        instance = res.model
        values = {"PrivateIp": instance.private_ip, "PrivateDnsName": instance.private_dns_name,
                  "PublicIp": instance.public_ip, "PublicDnsName": instance.public_dns_name,
                  "AvailabilityZone": instance.availability_zone, "InstanceId": instance.id}
        if name not in values:
            raise UnknownAttribute(name)
        return values[name] or ""


DRIVERS = {
    "AWS::EC2::SecurityGroup": SecurityGroupDriver(),
    "AWS::EC2::SecurityGroupIngress": SecurityGroupRuleDriver("ingress"),
    "AWS::EC2::SecurityGroupEgress": SecurityGroupRuleDriver("egress"),
    "AWS::EC2::NetworkInterface": NetworkInterfaceDriver(),
    "AWS::EC2::Instance": InstanceDriver(),
    "AWS::EC2::PlacementGroup": PlaceholderDriver(attributes={"GroupName": lambda res: res.physical_id}),
}


def fix_launch_template_block_devices() -> None:
    """RunInstances with a launch template whose BlockDeviceMappings hold instance store volumes
    (``VirtualName: ephemeralN``, no ``Ebs``: ParallelCluster's launch templates list 24) fails in
    moto 5.2.5 with KeyError 'Ebs'. EC2 maps instance store volumes only where the instance type has
    them; moto models none: the launch gets the template's EBS volumes only (head node, compute nodes
    and login nodes' auto scaling group alike). An EBS mapping with neither VolumeSize nor SnapshotId
    (EC2 then sizes it from the AMI) gets moto's default root volume size, 8 GiB, where moto would refuse it."""
    from moto.ec2.models.instances import InstanceBackend  # pylint: disable=import-outside-toplevel

    original = InstanceBackend._get_template_from_args  # pylint: disable=protected-access
    if getattr(original, "ebs_only", False):
        return

    def sized(mapping):
        ebs = mapping["Ebs"]
        if ebs.get("VolumeSize") or ebs.get("SnapshotId"):
            return mapping
        return dict(mapping, Ebs=dict(ebs, VolumeSize=8))

    def ebs_only(self, launch_template_arg):
        version = original(self, launch_template_arg)
        mappings = version.data.get("BlockDeviceMappings")
        if not mappings:
            return version
        fixed = [sized(m) for m in mappings if "Ebs" in m]
        if fixed == mappings:
            return version
        view = copy.copy(version)
        view.data = dict(version.data, BlockDeviceMappings=fixed)
        return view

    ebs_only.ebs_only = True
    InstanceBackend._get_template_from_args = ebs_only  # pylint: disable=protected-access
