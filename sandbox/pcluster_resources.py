"""What ParallelCluster's CloudFormation template creates for a cluster's nodes, for the sandbox's registered cluster.

moto cannot run ParallelCluster's template (moto_cluster.py), so for the cluster ``sandbox.py up`` registers,
this creates in moto what the template's node resources would, as pcluster's CDK code builds them
(``templates/cdk_builder_utils.py``, ``queues_stack.py``, ``cluster_stack.py``), taken as facts:

- per node group (the head node, each queue) an instance role ``<cluster>-Role<hash>-<suffix>`` and an instance
  profile ``<cluster>-InstanceProfile<hash>-<suffix>`` under the path ``/parallelcluster/<cluster>/``, the
  role with the group's ``Iam.AdditionalIamPolicies`` attached (an existing ``InstanceProfile`` or
  ``InstanceRole`` in the config is used instead, as the template does);
- per queue and compute resource the launch template ``<cluster>-<queue>-<compute resource>`` that
  ParallelCluster's slurm_resume and clustermgtd launch compute nodes with: the image, the instance type, the
  queue's first subnet and its security groups on the primary network interface, the queue's instance
  profile, ``InstanceInitiatedShutdownBehavior=terminate``, the instance tags ParallelCluster sets, and
  ParallelCluster's compute node user data (``resources/compute_node/user_data.sh`` of the installed pcluster,
  with the template's ``Fn::Sub`` values: its ``dna.json`` is what a node's bootstrap reads);
- the head node's ``dna.json`` (the template passes it to the head node through cfn-init).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path

import iam_roles
import moto_cluster

NODE_BOOTSTRAP_TIMEOUT = 1800


def hash_suffix(name: str) -> str:
    """The 16-character suffix the template gives a node group's resources (create_hash_suffix)."""
    return name if name == "HeadNode" else hashlib.sha1(name.encode()).hexdigest()[:16].capitalize()  # noqa: S324


def fn_sub(text: str, values: dict) -> str:
    """CloudFormation's Fn::Sub of a template string: ${Name} from values (unknown names: NONE), ${!Name} literal."""
    return re.sub(r"\$\{(!?)([^}]+)\}", lambda m: "${" + m.group(2) + "}" if m.group(1)
                  else str(values.get(m.group(2), "NONE")), text)


def user_data(values: dict) -> str:
    """ParallelCluster's compute node user data with values, base64-encoded as a launch template holds it."""
    import pcluster  # pylint: disable=import-outside-toplevel

    template = Path(pcluster.__file__).parent / "resources" / "compute_node" / "user_data.sh"
    return base64.b64encode(fn_sub(template.read_text(), values).encode()).decode()


def compute_dna(cluster: dict, queue: dict, compute_resource: dict) -> dict:
    """The compute node dna.json of one compute resource (the queues stack's, with the keys a node's bootstrap reads)."""
    return {"cluster": {
        "cluster_name": cluster["name"], "stack_name": cluster["name"], "stack_arn": cluster["stack_id"],
        "cluster_s3_bucket": cluster["bucket"], "cluster_config_s3_key": cluster["config_key"],
        "cluster_config_version": cluster["config_version"], "region": cluster["region"], "scheduler": "slurm",
        "base_os": cluster["os"], "proxy": "NONE", "node_type": "ComputeFleet", "cluster_user": cluster["user"],
        "slurm_ddb_table": f"parallelcluster-slurm-{cluster['name']}", "log_group_name": "NONE",
        "dns_domain": "", "hosted_zone": "", "use_private_hostname": "false",
        "scheduler_queue_name": queue["Name"], "scheduler_compute_resource_name": compute_resource["Name"],
        "head_node_private_ip": cluster["head_ip"],
        "enable_efa": "efa" if (compute_resource.get("Efa") or {}).get("Enabled") else "NONE",
        "launch_template_id": f"LaunchTemplate{hash_suffix(queue['Name'] + compute_resource['Name'])}",
        "ephemeral_dir": ((((queue.get("ComputeSettings") or {}).get("LocalStorage") or {}).get("EphemeralVolume") or {})
                          .get("MountDir") or "/scratch"),
    }}


def bootstrap_timeout(config: dict) -> int:
    """DevSettings.Timeouts.ComputeNodeBootstrapTimeout (the compute user data's Timeout, Slurm's ResumeTimeout)."""
    timeout = ((config.get("DevSettings") or {}).get("Timeouts") or {}).get("ComputeNodeBootstrapTimeout")
    return timeout or NODE_BOOTSTRAP_TIMEOUT


def head_dna(cluster: dict, config: dict) -> dict:
    """The head node's dna.json (the cluster stack's, with the keys a node's bootstrap reads)."""
    return {"cluster": {
        "cluster_name": cluster["name"], "stack_name": cluster["name"], "stack_arn": cluster["stack_id"],
        "region": cluster["region"], "scheduler": "slurm", "base_os": cluster["os"], "proxy": "NONE",
        "node_type": "HeadNode", "cluster_user": cluster["user"], "ddb_table": f"parallelcluster-{cluster['name']}",
        "slurm_ddb_table": f"parallelcluster-slurm-{cluster['name']}", "log_group_name": "NONE",
        "dns_domain": "", "hosted_zone": "", "use_private_hostname": "false",
        "cluster_s3_bucket": cluster["bucket"], "cluster_config_s3_key": cluster["config_key"],
        "cluster_config_version": cluster["config_version"],
        "instance_types_data_s3_key": cluster["instance_types_key"],
        "compute_node_bootstrap_timeout": bootstrap_timeout(config),
        "head_node_private_ip": cluster["head_ip"],
    }}


def _instance_tags(cluster: dict, queue: dict, compute_resource: dict) -> list:
    efa = "true" if (compute_resource.get("Efa") or {}).get("Enabled") else "NONE"
    tags = {"parallelcluster:cluster-name": cluster["name"], "parallelcluster:version": moto_cluster.PCLUSTER_VERSION,
            "Name": "Compute", "parallelcluster:node-type": "Compute",
            "parallelcluster:attributes": f"{cluster['os']}, slurm, {moto_cluster.PCLUSTER_VERSION}, x86_64",
            "parallelcluster:networking": f"EFA={efa}",
            "parallelcluster:queue-name": queue["Name"], "parallelcluster:compute-resource-name": compute_resource["Name"]}
    return [{"Key": key, "Value": value} for key, value in tags.items()]


def launch_templates(endpoint_url: str, region: str, cluster: dict, config: dict, profiles: dict) -> list:
    """Create the compute launch templates; returns their names. cluster: name, region, stack_id, bucket,
    config_key, config_version, head_ip, os, user, image_id, security_group_ids (besides the queues' own)."""
    ec2 = moto_cluster.client("ec2", endpoint_url, region)
    names = []
    for queue in config["Scheduling"]["SlurmQueues"]:
        networking = queue.get("Networking") or {}
        groups = (networking.get("SecurityGroups") or list(cluster["security_group_ids"])) + list(
            networking.get("AdditionalSecurityGroups") or [])
        for resource in queue["ComputeResources"]:
            dna = compute_dna(cluster, queue, resource)
            data = {
                "ImageId": cluster["image_id"], "InstanceType": resource.get("InstanceType") or
                resource["Instances"][0]["InstanceType"],
                "NetworkInterfaces": [{"DeviceIndex": 0, "SubnetId": networking["SubnetIds"][0],
                                       "Groups": list(dict.fromkeys(groups))}],
                "IamInstanceProfile": {"Name": profiles[queue["Name"]]},
                "InstanceInitiatedShutdownBehavior": "terminate",
                "TagSpecifications": [{"ResourceType": "instance", "Tags": _instance_tags(cluster, queue, resource)}],
                "UserData": user_data({"DnaJson": json.dumps(dna), "ExtraJson": "{}", "AWS::Region": region,
                                       "AWS::URLSuffix": "amazonaws.com", "ClusterName": cluster["name"],
                                       "BaseOS": cluster["os"], "Timeout": str(bootstrap_timeout(config)),
                                       "PclusterTmpDir": "/opt/parallelcluster/tmp", "ComputeStartupTimeMetricEnabled": "False",
                                       "DisableMultiThreadingManually": "false",
                                       "ParallelClusterVersion": moto_cluster.PCLUSTER_VERSION}),
            }
            name = f"{cluster['name']}-{queue['Name']}-{resource['Name']}"
            ec2.create_launch_template(LaunchTemplateName=name, LaunchTemplateData=data)
            names.append(name)
    return names


def implied_values(config_text: str, cluster_name: str, region: str) -> str:
    """The cluster config with its implied values, as pcluster uploads it (cluster-config-with-implied-values.yaml):
    pcluster's own schema loads the config and dumps it (no AWS call)."""
    import os  # pylint: disable=import-outside-toplevel

    import yaml  # pylint: disable=import-outside-toplevel
    from pcluster.schemas.cluster_schema import ClusterSchema  # pylint: disable=import-outside-toplevel

    saved = os.environ.get("AWS_DEFAULT_REGION")
    os.environ["AWS_DEFAULT_REGION"] = region  # pcluster reads the region from the environment
    try:
        schema = ClusterSchema(cluster_name=cluster_name)
        return yaml.safe_dump(schema.dump(schema.load(yaml.safe_load(config_text))), sort_keys=False)
    finally:
        if saved is None:
            os.environ.pop("AWS_DEFAULT_REGION", None)
        else:
            os.environ["AWS_DEFAULT_REGION"] = saved


def instance_types_data(endpoint_url: str, region: str, config: dict, gpus_per_node: int) -> dict:
    """instance-types-data.json as pcluster uploads it (DescribeInstanceTypes of the config's instance types), except
    that the compute instance types have the sandbox's stand-in GPUs (gpus_per_node NVIDIA A10G, or none)."""
    compute = {r.get("InstanceType") for q in config["Scheduling"]["SlurmQueues"] for r in q["ComputeResources"]}
    compute.discard(None)
    wanted = sorted(compute | {config["HeadNode"]["InstanceType"]})
    found = moto_cluster.client("ec2", endpoint_url, region).describe_instance_types(InstanceTypes=wanted)["InstanceTypes"]
    data = {item["InstanceType"]: item for item in found}
    for name in compute & set(data):
        data[name].pop("GpuInfo", None)
        if gpus_per_node:
            data[name]["GpuInfo"] = {"Gpus": [{"Name": "A10G", "Manufacturer": "NVIDIA", "Count": gpus_per_node}]}
    return data


def register(endpoint_url: str, region: str, cluster_name: str, head_ip: str, config_text: str, seed: dict,
             gpus_per_node: int) -> dict:
    """Register the sandbox's cluster as created (moto_cluster.register_cluster, without compute instances: its
    static nodes are launched by clustermgtd) with what its template would create for the nodes. Returns the
    registration, the launch templates and the head node's dna.json."""
    import yaml  # pylint: disable=import-outside-toplevel

    implied = implied_values(config_text, cluster_name, region)
    config = yaml.safe_load(implied)
    # The nodes' roles with their managed policies and instance profiles, as the template creates them (iam_roles.py);
    # their inline policies name the stack and bucket, so they follow the registration.
    roles = iam_roles.create_for_cluster(endpoint_url, region, cluster_name, config, None, moto_cluster.OFFICIAL_AMI_ID)
    profiles = {node: role["instance_profile_name"] for node, role in roles.items()}
    reg = moto_cluster.register_cluster(
        endpoint_url, region, cluster_name, head_ip, [], config=config_text,
        public_subnet_id=seed["public_subnet_id"], private_subnet_id=seed["private_subnet_id"],
        security_group_ids=[seed["security_group_id"]], head_instance_profile=profiles["HeadNode"],
        head_instance_type=config["HeadNode"]["InstanceType"],
        artifacts={"cluster-config-with-implied-values.yaml": implied,
                   "instance-types-data.json": json.dumps(instance_types_data(endpoint_url, region, config, gpus_per_node))})
    roles = iam_roles.create_for_cluster(endpoint_url, region, cluster_name, config, reg, moto_cluster.OFFICIAL_AMI_ID)
    os_name = config["Image"]["Os"]
    cluster = {"name": cluster_name, "region": region, "stack_id": reg["stack_id"], "bucket": reg["bucket"],
               "config_key": reg["artifact_keys"]["cluster-config-with-implied-values.yaml"],
               "instance_types_key": reg["artifact_keys"]["instance-types-data.json"],
               "config_version": reg["config_version"], "head_ip": head_ip, "os": os_name,
               "user": moto_cluster.OS_DEFAULT_USER.get(os_name, "ec2-user"), "image_id": moto_cluster.OFFICIAL_AMI_ID,
               "security_group_ids": [seed["security_group_id"]]}
    return {"registration": reg, "profiles": profiles, "node_roles": roles, "head_dna": head_dna(cluster, config),
            "launch_templates": launch_templates(endpoint_url, region, cluster, config, profiles)}
