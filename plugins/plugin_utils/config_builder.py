# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The cluster_config role's builder: its variables -> a ParallelCluster 3 config, and which variable set what."""

from __future__ import annotations

import copy
import re

from ansible.module_utils.parsing.convert_bool import BOOLEANS, boolean

from ansible_collections.hpc.pcluster.plugins.module_utils.config.problems import problem, short_repr
from ansible_collections.hpc.pcluster.plugins.plugin_utils import node_permissions, node_setup_step
from ansible_collections.hpc.pcluster.plugins.plugin_utils.role_variables import (
    CLUSTER_NAME,
    PREFIX,
    RoleVariables,
    Sources,
    blank,
)

QUEUES = ("Scheduling", "SlurmQueues")
AMI_PATTERN = r"^ami-[0-9a-z]{8}([0-9a-z]{9})?$"
# Single-queue variable -> queue key (the defaults of every item of cluster_config_queues).
QUEUE_DEFAULT_VARIABLES = {
    "capacity_type": "capacity_type", "allocation_strategy": "allocation_strategy",
    "placement_group_enabled": "placement_group_enabled", "placement_group_name": "placement_group_name",
    "scratch_mount_dir": "scratch_mount_dir", "root_volume_size": "compute_root_volume_size",
    "job_exclusive_allocation": "job_exclusive_allocation", "bootstrap_args": "compute_node_bootstrap_args",
    "docker_postinstall_enabled": "docker_postinstall_enabled", "node_setup_enabled": "node_setup_enabled",
}
RESOURCE_DEFAULT_VARIABLES = ("efa_enabled", "efa_gdr_support", "disable_simultaneous_multithreading", "spot_price")
# Config path (under the single queue) -> the variable behind it.
SINGLE_QUEUE_SOURCES = (
    (("Name",), "queue_name"), (("CapacityType",), "capacity_type"),
    (("AllocationStrategy",), "allocation_strategy"), (("Networking", "SubnetIds"), "private_subnet_id"),
    (("Networking", "AdditionalSecurityGroups"), "security_group_id"),
    (("Networking", "PlacementGroup"), "placement_group_enabled"),
    (("ComputeSettings", "LocalStorage", "EphemeralVolume"), "scratch_mount_dir"),
    (("ComputeSettings", "LocalStorage", "RootVolume"), "compute_root_volume_size"),
    (("JobExclusiveAllocation",), "job_exclusive_allocation"),
    (("Iam", "AdditionalIamPolicies"), "iam_policies/%sextra_iam_policies" % PREFIX),
    (("Iam", "S3Access"), "s3_access"), (("CustomActions",), "compute_node_bootstrap_script"),
    (("ComputeResources", 0, "Name"), "compute_resource_name"),
    (("ComputeResources", 0, "InstanceType"), "compute_instance_type"),
    (("ComputeResources", 0, "MinCount"), "compute_min_count"),
    (("ComputeResources", 0, "MaxCount"), "compute_max_count"), (("ComputeResources", 0, "Efa"), "efa_enabled"),
    (("ComputeResources", 0, "SpotPrice"), "spot_price"),
    (("ComputeResources", 0, "CapacityReservationTarget", "CapacityReservationId"), "capacity_reservation_id"),
    (("ComputeResources", 0, "CapacityReservationTarget", "CapacityReservationResourceGroupArn"),
     "capacity_reservation_resource_group_arn"),
)


class _Build:
    """The state of one build: the variables, the config paths' sources and the shared node settings."""

    def __init__(self, variables, options):
        self.vars = RoleVariables(variables, options)
        self.sources = Sources()
        self.problems = self.vars.problems
        self.common = {}
        self.node_setup_script = None
        self.queue_image = None  # the AMI of the queues' nodes from cluster_config_custom_image, or None

    def var(self, name):
        return self.vars.get(name)

    def source(self, path, name):
        """Record that config path came from cluster_config_<name> (or from a full variable name)."""
        self.sources.add(path, name if "[" in name or name.startswith(PREFIX) or name == CLUSTER_NAME else PREFIX + name)


def build_cluster_config(variables, options):
    """Build the config from the cluster_config role's variables (``cluster_config_*`` and ``pcluster_cluster_name``).

    Unset variables take their default from ``options``, the options of the role's meta/argument_specs.yml
    (``role_variables.role_options``). Returns ``{config, problems, sources, warnings}`` and the role's own settings
    (``cluster_name``, ``output_path``, ``validate_full``, ``suppress_validators``, ``node_setup_script``:
    where the node-setup boot script the queues run goes in S3, None when no queue runs it). Problems found
    while building name their variable; the config rules are not run here.
    """
    b = _Build(variables, options)
    b.vars.unknown_variables()
    cluster_name = _cluster_name(b, variables or {})
    config = {}
    _region_image_settings(b, config)
    _custom_image(b)
    _common_node_settings(b)
    config["HeadNode"] = _head_node(b)
    config["Scheduling"] = _scheduling(b)
    pools = [pool for pool in (_login_pool(b, item, index) for index, item in enumerate(b.var("login_nodes") or []))
             if pool is not None]
    if pools:
        config["LoginNodes"] = {"Pools": pools}
    storage = _shared_storage(b)
    if storage:
        config["SharedStorage"] = storage
    _monitoring_and_tags(b, config)
    config = _overrides(b, config)
    node_permissions.add_script_buckets(config, b.sources)
    _drop_none(config)
    if b.node_setup_script is not None:
        b.problems.extend(node_setup_step.writable_dir_problems(b.common["node_setup_dir"], config))
    output_path = b.var("output_path")
    if blank(output_path):
        output_path = "~/.hpc-pcluster/%s/cluster-config.yaml" % cluster_name
    return {"config": config, "problems": b.problems, "sources": b.sources.paths,
            "warnings": node_permissions.warnings(config, b.vars), "cluster_name": cluster_name,
            "output_path": output_path, "validate_full": bool(b.var("validate_full")),
            "suppress_validators": b.var("suppress_validators") or [], "node_setup_script": b.node_setup_script}


def _cluster_name(b, variables):
    """The cluster's name: pcluster_cluster_name, the one every playbook and role uses (role hpc.pcluster.pcluster)."""
    name = variables.get(CLUSTER_NAME)
    b.source(("cluster_name",), CLUSTER_NAME)
    if blank(name):
        b.problems.append(problem("cluster_name", name, "%s is required and not set" % CLUSTER_NAME,
                                  "Set %s: the cluster's name (role hpc.pcluster.pcluster, which the role depends on, "
                                  "defaults it)." % CLUSTER_NAME, CLUSTER_NAME))
        return None
    return str(name)


def _region_image_settings(b, config):
    region = b.vars.required("region", ("Region",))
    if region is not None:
        config["Region"] = region
        b.source(("Region",), "region")
    config["DevSettings"] = {"Timeouts": {"HeadNodeBootstrapTimeout": b.var("head_node_bootstrap_timeout"),
                                          "ComputeNodeBootstrapTimeout": b.var("compute_node_bootstrap_timeout")}}
    b.source(("DevSettings", "Timeouts", "HeadNodeBootstrapTimeout"), "head_node_bootstrap_timeout")
    b.source(("DevSettings", "Timeouts", "ComputeNodeBootstrapTimeout"), "compute_node_bootstrap_timeout")
    config["Imds"] = {"ImdsSupport": b.var("imds_support")}
    b.source(("Imds",), "imds_support")
    config["Image"] = {"Os": b.var("os")}
    b.source(("Image", "Os"), "os")
    if not blank(b.var("custom_ami")):
        config["Image"]["CustomAmi"] = b.var("custom_ami")
        b.source(("Image", "CustomAmi"), "custom_ami")


def _custom_image(b):
    """cluster_config_custom_image: the compute queues' AMI - an AMI id, or V(build): the image deploy.yml built
    (role image_config, module image) before this role, whose AMI it passes as cluster_config_custom_image_ami."""
    image, built = b.var("custom_image"), b.var("custom_image_ami")
    variable = PREFIX + "custom_image"
    if blank(image):
        return
    ami = built if image == "build" else image
    if image == "build" and blank(built):
        b.problems.append(problem("", image, "%s is build, but no image was built for this run "
                                  "(%scustom_image_ami is empty)" % (variable, PREFIX),
                                  "Run deploy.yml, which builds the image first (playbooks/tasks/custom_image.yml), "
                                  "or set %s to the id of an AMI built with pcluster build-image." % variable, variable))
        return
    if not isinstance(ami, str) or not re.match(AMI_PATTERN, ami):
        b.problems.append(problem("", ami, "%s must be build or an AMI id, not %s" % (
            variable if image != "build" else PREFIX + "custom_image_ami", short_repr(ami)),
            "Give the id of an AMI built with pcluster build-image (ami-0123456789abcdef0), or build.", variable))
        return
    b.queue_image = ami


def _common_node_settings(b):
    """What the head node, the queues and the login nodes share unless a queue or pool sets its own."""
    b.common = {
        "security_group": b.vars.required("security_group_id", ("HeadNode", "Networking", "AdditionalSecurityGroups")),
        "s3_access": node_permissions.s3_access(b.vars, b.var("s3_access"), PREFIX + "s3_access"),
        "policies": list(b.var("iam_policies") or []) + list(b.var("extra_iam_policies") or []),
        "full_access": bool(b.var("iam_full_access")),
        "docker": b.var("docker_postinstall_enabled"),
        "docker_url": b.var("docker_postinstall_url"),
        "node_setup_dir": b.var("node_setup_dir"),
        "node_setup_wait": b.var("node_setup_boot_wait_seconds"),
    }
    directory = b.common["node_setup_dir"]
    if not isinstance(directory, str) or not directory.startswith("/"):
        b.problems.append(problem("", directory, "%snode_setup_dir must be an absolute path on the nodes (got %s)"
                                  % (PREFIX, short_repr(directory)), "Give it as an absolute path on shared storage, "
                                  "e.g. /opt/slurm/hpc-pcluster/node-setup.", PREFIX + "node_setup_dir"))
    if (b.common["node_setup_wait"] or 0) < 0:
        b.problems.append(problem("", b.common["node_setup_wait"], "%snode_setup_boot_wait_seconds must be 0 or more"
                                  % PREFIX, "Give the seconds a booting node waits for the bundle, e.g. 0.",
                                  PREFIX + "node_setup_boot_wait_seconds"))


def _on_node_configured(b, docker, script, args, node_setup=False):
    """The OnNodeConfigured sequence: the Docker script when kept, the node setup (queues), then the node's own script."""
    sequence = [{"Script": b.common["docker_url"]}] if docker else []
    if node_setup and b.node_setup_script is not None:
        sequence.append(node_setup_step.step(b.node_setup_script, b.common["node_setup_dir"],
                                             b.common["node_setup_wait"]))
    if not blank(script):
        step = {"Script": script}
        if args:
            step["Args"] = [str(arg) for arg in args]
        sequence.append(step)
    return {"OnNodeConfigured": {"Sequence": sequence}} if sequence else None


def _elastic_ip(value):
    """true, false or an allocation id (a string "true"/"false" from extra vars is a boolean)."""
    if isinstance(value, str) and value.strip().lower() in BOOLEANS:
        return boolean(value.strip().lower())
    return value


def _head_node(b):
    """HeadNode (its scripts: the Docker script first when enabled, then the head node's bootstrap script)."""
    base, common = ("HeadNode",), b.common
    networking = {"SubnetId": b.vars.required("public_subnet_id", base + ("Networking", "SubnetId")),
                  "ElasticIp": _elastic_ip(b.var("head_node_elastic_ip"))}
    if common["security_group"] is not None:
        networking["AdditionalSecurityGroups"] = [common["security_group"]]
    head = {"InstanceType": b.var("head_node_instance_type"), "Networking": networking}
    ssh = {"KeyName": node_permissions.ssh_key_name(b.vars, base + ("Ssh", "KeyName"), base + ("Iam", "AdditionalIamPolicies")),
           "AllowedIps": node_permissions.ssh_allowed_ips(b.vars, base + ("Ssh", "AllowedIps"))}
    head["Ssh"] = ssh if any(value is not None for value in ssh.values()) else None
    head["LocalStorage"] = {"RootVolume": {"Size": b.var("head_node_root_volume_size"), "DeleteOnTermination":
                                           b.var("head_node_root_volume_delete_on_termination")}}
    head["Iam"] = node_permissions.iam(common["policies"], common["s3_access"], common["full_access"])
    step = 1 if common["docker"] else 0
    script = b.vars.required("head_node_bootstrap_script",
                             base + ("CustomActions", "OnNodeConfigured", "Sequence", step, "Script"))
    head["CustomActions"] = _on_node_configured(b, common["docker"], script, b.var("head_node_bootstrap_args"))
    sequence = base + ("CustomActions", "OnNodeConfigured", "Sequence")
    for path, name in ((("InstanceType",), "head_node_instance_type"), (("Networking", "SubnetId"), "public_subnet_id"),
                       (("Networking", "ElasticIp"), "head_node_elastic_ip"),
                       (("Networking", "AdditionalSecurityGroups"), "security_group_id"),
                       (("Ssh", "KeyName"), "ssh_key_name"), (("Ssh", "AllowedIps"), "ssh_allowed_ips"),
                       (("LocalStorage", "RootVolume", "Size"), "head_node_root_volume_size"),
                       (("LocalStorage", "RootVolume", "DeleteOnTermination"),
                        "head_node_root_volume_delete_on_termination"),
                       (("Iam", "AdditionalIamPolicies"), "iam_policies/%sextra_iam_policies" % PREFIX),
                       (("Iam", "S3Access"), "s3_access")):
        b.source(base + path, name)
    if common["docker"]:
        b.source(sequence + (0,), "docker_postinstall_url")
    b.source(sequence + (step,), "head_node_bootstrap_script")
    return head


def _queue_defaults(b, private_subnet, compute_script):
    defaults = {key: b.var(name) for key, name in QUEUE_DEFAULT_VARIABLES.items()}
    common = b.common
    defaults.update(subnet_ids=[private_subnet] if private_subnet else [],
                    security_group_ids=[common["security_group"]] if common["security_group"] else [],
                    iam_policies=common["policies"], s3_access=common["s3_access"], bootstrap_script=compute_script)
    return defaults


def _scheduling(b):
    slurm_settings = {"ScaledownIdletime": b.var("scaledown_idletime"),
                      "QueueUpdateStrategy": b.var("queue_update_strategy")}
    b.source(("Scheduling", "SlurmSettings", "ScaledownIdletime"), "scaledown_idletime")
    b.source(("Scheduling", "SlurmSettings", "QueueUpdateStrategy"), "queue_update_strategy")
    if b.var("custom_slurm_settings"):
        slurm_settings["CustomSlurmSettings"] = b.var("custom_slurm_settings")
        b.source(("Scheduling", "SlurmSettings", "CustomSlurmSettings"), "custom_slurm_settings")
    items = b.var("queues") or []
    dicts = [item for item in items if isinstance(item, dict)]
    private_subnet = b.vars.required("private_subnet_id", QUEUES + (0, "Networking", "SubnetIds"),
                                     condition=not items or any(not q.get("subnet_ids") for q in dicts))
    compute_script = b.vars.required("compute_node_bootstrap_script", QUEUES + (0, "CustomActions"),
                                     condition=not items or any("bootstrap_script" not in q for q in dicts))
    defaults = _queue_defaults(b, private_subnet, compute_script)
    if any(q.get("node_setup_enabled", b.var("node_setup_enabled")) for q in dicts) if items else b.var(
            "node_setup_enabled"):
        b.node_setup_script = node_setup_step.boot_script(b.vars, compute_script, QUEUES + (0, "CustomActions"))
    if items:
        queues = [_queue_item(b, item, index, defaults) for index, item in enumerate(items)]
        queues = [queue for queue in queues if queue is not None]
    else:
        queues = [_queue(b, _single_queue_settings(b, defaults))]
        b.sources.add_all(((path, PREFIX + name) for path, name in SINGLE_QUEUE_SOURCES), QUEUES + (0,))
    for index, queue in enumerate(queues):
        if b.queue_image and (queue.get("Image") or {}).get("CustomAmi") == b.queue_image:
            b.source(QUEUES + (index, "Image", "CustomAmi"), "custom_image")
    return {"Scheduler": "slurm", "SlurmSettings": slurm_settings, "SlurmQueues": queues}


def _single_queue_settings(b, defaults):
    settings = dict(defaults, name=b.var("queue_name"))
    resource = {name: b.var(name) for name in RESOURCE_DEFAULT_VARIABLES}
    resource.update(name=b.var("compute_resource_name"), instance_type=b.var("compute_instance_type"),
                    min_count=b.var("compute_min_count"), max_count=b.var("compute_max_count"),
                    capacity_reservation_id=b.var("capacity_reservation_id"),
                    capacity_reservation_resource_group_arn=b.var("capacity_reservation_resource_group_arn"))
    settings["compute_resources"] = [resource]
    return settings


def _queue_item(b, item, index, defaults):
    """One item of cluster_config_queues: its keys over the single-queue defaults, then the queue."""
    variable = "%squeues[%d]" % (PREFIX, index)
    options = b.vars.options[PREFIX + "queues"]["options"]
    given = b.vars.item(item, variable, options)
    if given is None:
        return None
    settings = dict(defaults)
    settings.update(given)
    if "s3_access" in given:
        settings["s3_access"] = node_permissions.s3_access(b.vars, given["s3_access"], variable + ".s3_access")
    path = QUEUES + (index,)
    b.source(path, variable)
    b.vars.missing_keys(settings, variable, options, path, {"name": "Name", "compute_resources": "ComputeResources"})
    if not settings["subnet_ids"]:
        b.problems.append(problem(path + ("Networking", "SubnetIds"), None,
                                  "%s has no subnet_ids and %sprivate_subnet_id is not set" % (variable, PREFIX),
                                  "Set %s.subnet_ids or %sprivate_subnet_id." % (variable, PREFIX), variable))
    resources = []
    for r_index, resource in enumerate(settings.get("compute_resources") or []):
        resource_variable = "%s.compute_resources[%d]" % (variable, r_index)
        resource_settings = b.vars.item(resource, resource_variable, options["compute_resources"]["options"])
        if resource_settings is not None:
            b.source(path + ("ComputeResources", r_index), resource_variable)
            resources.append(dict({name: b.var(name) for name in RESOURCE_DEFAULT_VARIABLES}, **resource_settings))
    settings["compute_resources"] = resources
    return _queue(b, settings)


def _reservation(reservation_id, group_arn):
    if not blank(reservation_id):
        return {"CapacityReservationId": reservation_id}
    if not blank(group_arn):
        return {"CapacityReservationResourceGroupArn": group_arn}
    return None


def _queue(b, settings):
    """A SlurmQueues entry from settings in the role's (snake_case) terms."""
    networking = {"SubnetIds": list(settings.get("subnet_ids") or []),
                  "PlacementGroup": {"Enabled": bool(settings.get("placement_group_enabled"))}}
    if settings.get("placement_group_enabled") and not blank(settings.get("placement_group_name")):
        networking["PlacementGroup"]["Name"] = settings["placement_group_name"]
    if settings.get("security_group_ids"):
        networking["AdditionalSecurityGroups"] = list(settings["security_group_ids"])
    local_storage = {"RootVolume": {"Size": settings.get("root_volume_size")}}
    if not blank(settings.get("scratch_mount_dir")):
        local_storage = {"EphemeralVolume": {"MountDir": settings["scratch_mount_dir"]}, **local_storage}
    queue = {
        "Name": settings.get("name"), "CapacityType": settings.get("capacity_type"),
        "AllocationStrategy": None if blank(settings.get("allocation_strategy")) else settings["allocation_strategy"],
        "Networking": networking, "ComputeSettings": {"LocalStorage": local_storage},
        "JobExclusiveAllocation": settings.get("job_exclusive_allocation"),
        "CustomSlurmSettings": settings.get("custom_slurm_settings") or None,
        "CapacityReservationTarget": _reservation(settings.get("capacity_reservation_id"),
                                                  settings.get("capacity_reservation_resource_group_arn")),
        "Image": {"CustomAmi": settings["custom_ami"]} if not blank(settings.get("custom_ami")) else (
            {"CustomAmi": b.queue_image} if b.queue_image else None),
        "ComputeResources": [_compute_resource(resource) for resource in settings.get("compute_resources") or []],
        "Iam": node_permissions.iam(settings.get("iam_policies"), settings.get("s3_access"), b.common["full_access"]),
        "CustomActions": _on_node_configured(b, settings.get("docker_postinstall_enabled"),
                                             settings.get("bootstrap_script"), settings.get("bootstrap_args"),
                                             node_setup=settings.get("node_setup_enabled")),
    }
    return queue


def _compute_resource(settings):
    """A ComputeResources entry from settings in the role's terms."""
    resource = {"Name": settings.get("name")}
    if settings.get("instances"):
        resource["Instances"] = [{"InstanceType": i.get("instance_type", i.get("InstanceType"))}
                                 if isinstance(i, dict) else {"InstanceType": i} for i in settings["instances"]]
    else:
        resource["InstanceType"] = settings.get("instance_type")
    resource.update(MinCount=settings.get("min_count"), MaxCount=settings.get("max_count"))
    if not blank(settings.get("spot_price")):
        try:
            resource["SpotPrice"] = float(settings["spot_price"])
        except (TypeError, ValueError):
            resource["SpotPrice"] = settings["spot_price"]
    if settings.get("disable_simultaneous_multithreading"):
        resource["DisableSimultaneousMultithreading"] = True
    for key, name in (("static_node_priority", "StaticNodePriority"), ("dynamic_node_priority", "DynamicNodePriority")):
        resource[name] = settings.get(key)
    resource["CapacityReservationTarget"] = _reservation(settings.get("capacity_reservation_id"),
                                                         settings.get("capacity_reservation_resource_group_arn"))
    resource["Efa"] = {"Enabled": bool(settings.get("efa_enabled"))}
    if settings.get("efa_enabled") and settings.get("efa_gdr_support"):
        resource["Efa"]["GdrSupport"] = True
    resource["CustomSlurmSettings"] = settings.get("custom_slurm_settings") or None
    return resource


def _login_pool(b, item, index):
    """One item of cluster_config_login_nodes (login nodes use the head node's key pair: no KeyName here)."""
    variable = "%slogin_nodes[%d]" % (PREFIX, index)
    options = b.vars.options[PREFIX + "login_nodes"]["options"]
    settings = b.vars.item(item, variable, options)
    if settings is None:
        return None
    path = ("LoginNodes", "Pools", index)
    b.source(path, variable)
    b.vars.missing_keys(settings, variable, options, path, {"name": "Name", "instance_type": "InstanceType"})
    subnet, group = b.var("public_subnet_id"), b.common["security_group"]
    pool = {"Name": settings.get("name"), "InstanceType": settings.get("instance_type"),
            "Count": settings.get("count"),
            "Networking": {"SubnetIds": settings.get("subnet_ids") or ([subnet] if not blank(subnet) else []),
                           "AdditionalSecurityGroups": settings.get("security_group_ids") or ([group] if group else [])
                           or None},
            "Ssh": None if blank(settings.get("ssh_allowed_ips")) else {"AllowedIps": settings["ssh_allowed_ips"]},
            "GracetimePeriod": settings.get("gracetime_period"),
            "Image": None if blank(settings.get("custom_ami")) else {"CustomAmi": settings["custom_ami"]}}
    policies = settings.get("iam_policies") or b.common["policies"]
    pool["Iam"] = {"AdditionalIamPolicies": node_permissions.policies(policies, b.common["full_access"])}
    return pool


def _fsx(b, kind, storage):
    """The existing FSx for OpenZFS volume or Lustre file system, when enabled (the guide's two)."""
    settings_key, storage_type, id_key, id_name = {
        "openzfs": ("FsxOpenZfsSettings", "FsxOpenZfs", "VolumeId", "fsx_openzfs_volume_id"),
        "lustre": ("FsxLustreSettings", "FsxLustre", "FileSystemId", "fsx_lustre_id"),
    }[kind]
    if not b.var("fsx_%s_enabled" % kind):
        return
    index = len(storage)
    path = ("SharedStorage", index)
    fs_id = b.vars.required(id_name, path + (settings_key, id_key))
    # With an existing Lustre file system FileSystemId is the only allowed key (the guide's DeploymentType is refused).
    storage.append({"Name": b.var("fsx_%s_name" % kind), "StorageType": storage_type,
                    "MountDir": b.var("fsx_%s_mount_dir" % kind),
                    settings_key: {id_key: fs_id} if fs_id is not None else {}})
    b.source(path + ("Name",), "fsx_%s_name" % kind)
    b.source(path + ("MountDir",), "fsx_%s_mount_dir" % kind)
    b.source(path + (settings_key,), id_name)


def _shared_storage(b):
    storage = []
    _fsx(b, "openzfs", storage)
    _fsx(b, "lustre", storage)
    for offset, extra in enumerate(b.var("extra_shared_storage") or []):
        b.source(("SharedStorage", len(storage)), "%sextra_shared_storage[%d]" % (PREFIX, offset))
        storage.append(extra)
    return storage


def _monitoring_and_tags(b, config):
    config["Monitoring"] = {
        "DetailedMonitoring": b.var("detailed_monitoring"),
        "Logs": {"CloudWatch": {"Enabled": b.var("cloudwatch_logs_enabled")}},
        "Dashboards": {"CloudWatch": {"Enabled": b.var("cloudwatch_dashboard_enabled")}},
    }
    b.source(("Monitoring", "DetailedMonitoring"), "detailed_monitoring")
    b.source(("Monitoring", "Logs"), "cloudwatch_logs_enabled")
    b.source(("Monitoring", "Dashboards"), "cloudwatch_dashboard_enabled")
    tags = []
    for index, (key, value) in enumerate((b.var("tags") or {}).items()):
        if isinstance(value, (dict, list)) or value is None:
            b.problems.append(problem(("Tags", index, "Value"), short_repr(value),
                                      "%stags[%s] must be a string" % (PREFIX, key),
                                      "Give every tag a string value.", PREFIX + "tags"))
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        tags.append({"Key": str(key), "Value": str(value)})
    if tags:
        config["Tags"] = tags
        b.source(("Tags",), "tags")


def _overrides(b, config):
    """cluster_config_overrides merged last: mappings recursively, everything else replaced."""
    overrides = b.var("overrides") or {}
    if not overrides:
        return config
    for path in _leaf_paths(overrides):
        b.source(path, "overrides")
    return deep_merge(config, overrides)


def deep_merge(base, extra):
    """A copy of base with extra merged in: mappings recursively, everything else replaced."""
    result = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = deep_merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def _leaf_paths(data, path=()):
    if isinstance(data, dict) and data:
        for key, value in data.items():
            yield from _leaf_paths(value, path + (key,))
    else:
        yield path


def _drop_none(data):
    """Remove keys whose value is None (unset optional values), in place."""
    if isinstance(data, dict):
        for key in [k for k, v in data.items() if v is None]:
            del data[key]
        for value in data.values():
            _drop_none(value)
    elif isinstance(data, list):
        for value in data:
            _drop_none(value)
