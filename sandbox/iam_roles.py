"""The instance roles and instance profiles of a cluster's nodes, as ParallelCluster's cluster template makes them.

ParallelCluster's template gives the head node and each queue's compute nodes an IAM role (path
``/parallelcluster/<cluster>/``, trusted by ``ec2.amazonaws.com``) with its own inline policies, the config's
``AdditionalIamPolicies`` (and ``CloudWatchAgentServerPolicy`` with CloudWatch logs) attached, an ``S3Access``
policy for the config's ``Iam.S3Access`` buckets, and an instance profile holding it; the nodes' launch
templates name that profile. The cluster ``sandbox.py up`` registers does not go through the template, so for it
``create_for_cluster`` creates those resources in moto from ``policies/node-roles.yaml``
(3.16.1's template as data) and the config, and ``associate`` gives the cluster's running instances their
profiles, as their launch would have.

Names are CloudFormation's for resources without a name: ``<stack>-<logical id>-<suffix>``; the suffix is
derived from the cluster and the logical id, so creating them again finds them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path

import yaml

import iam_identities

NODE_ROLES = Path(__file__).resolve().parent / "policies" / "node-roles.yaml"
PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9:]+)\}")
CLOUDWATCH_AGENT_POLICY = "arn:aws:iam::aws:policy/CloudWatchAgentServerPolicy"
HEAD_NODE = "HeadNode"


def queue_hash(name: str) -> str:
    """ParallelCluster's create_hash_suffix: the logical ids' suffix of a queue's resources."""
    return hashlib.sha1(name.encode()).hexdigest()[:16].capitalize()  # noqa: S324  (a name, as ParallelCluster's)


def physical_name(stack: str, logical_id: str, limit: int = 64) -> str:
    """CloudFormation's name for a resource the template leaves unnamed: <stack>-<logical id>-<suffix>."""
    suffix = base64.b32encode(hashlib.sha256(f"{stack}/{logical_id}".encode()).digest()).decode()[:13]
    head = f"{stack}-{logical_id}"[:limit - len(suffix) - 1]
    return f"{head}-{suffix}"


def _expand(text: str, values: dict) -> list:
    """text with its placeholders filled: one string per value of a list placeholder."""
    names = PLACEHOLDER.findall(text)
    lists = [n for n in names if isinstance(values[n], list)]
    if not lists:
        return [PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), text)]
    out = []
    for value in values[lists[0]]:
        out += _expand(text.replace("${%s}" % lists[0], str(value)), values)
    return out


def fill(value, values: dict):
    """A node-roles.yaml resource with its ${...} placeholders filled (see that file)."""
    if isinstance(value, dict):
        return {k: fill(v, values) for k, v in value.items()}
    if isinstance(value, list):
        out = []
        for item in value:
            out += _expand(item, values) if isinstance(item, str) else [fill(item, values)]
        return out
    if isinstance(value, str):
        whole = PLACEHOLDER.fullmatch(value)
        if whole and isinstance(values[whole.group(1)], list):
            return list(values[whole.group(1)])
        expanded = _expand(value, values)
        return expanded[0] if len(expanded) == 1 else expanded
    return value


def _node_iam(config: dict, node: str) -> dict:
    if node == HEAD_NODE:
        return (config.get("HeadNode") or {}).get("Iam") or {}
    queue = next(q for q in (config.get("Scheduling") or {}).get("SlurmQueues") or [] if q.get("Name") == node)
    return queue.get("Iam") or {}


def cloudwatch_logs(config: dict) -> bool:
    return (((config.get("Monitoring") or {}).get("Logs") or {}).get("CloudWatch") or {}).get("Enabled", True)


def s3_access_statements(s3_access: list, partition: str = "aws") -> list:
    """The S3Access policy's statements, as ParallelCluster's _add_s3_access_policies_to_role writes them."""
    read, write = [], []
    for entry in s3_access or []:
        bucket, key = entry["BucketName"], entry.get("KeyName")
        arns = [f"arn:{partition}:s3:::{r}" for r in ([f"{bucket}/{key}"] if key else [bucket, f"{bucket}/*"])]
        (write if entry.get("EnableWriteAccess") else read).extend(arns)
    statements = []
    if read:
        statements.append({"Action": ["s3:Get*", "s3:List*"], "Effect": "Allow", "Resource": read, "Sid": "S3Read"})
    if write:
        statements.append({"Action": "s3:*", "Effect": "Allow", "Resource": write, "Sid": "S3ReadWrite"})
    return statements


def template_values(config: dict, cluster_name: str, region: str, registration: dict | None, official_ami: str,
                    hosted_zone: str | None = None, account_id: str = iam_identities.ACCOUNT_ID) -> dict:
    """The values of node-roles.yaml's placeholders for a cluster (ManagedPolicyArns and QueueHash are per node);
    without registration, "" for the stack's and its bucket's."""
    queues = (config.get("Scheduling") or {}).get("SlurmQueues") or []
    image = (config.get("Image") or {}).get("CustomAmi")
    registration = registration or {"stack_id": "", "bucket": "", "artifact_dir": ""}
    return {
        "AWS::Partition": "aws", "AWS::Region": region, "AWS::AccountId": account_id, "AWS::URLSuffix": "amazonaws.com",
        "AWS::StackId": registration["stack_id"], "ClusterName": cluster_name,
        "ClusterBucket": registration["bucket"], "ArtifactDirectory": registration["artifact_dir"],
        "ComputeSubnetIds": sorted({s for q in queues for s in (q.get("Networking") or {}).get("SubnetIds") or []}),
        "QueueImageIds": [((q.get("Image") or {}).get("CustomAmi") or image or official_ami) for q in queues],
        "QueueNames": [q["Name"] for q in queues],
        "KeyName": str(((config.get("HeadNode") or {}).get("Ssh") or {}).get("KeyName")),
        "Route53HostedZone": hosted_zone,
    }


def node_resources(config: dict, node: str, values: dict, with_policies: bool = True) -> dict:
    """{role: {name, path, trust, managed}, policies: [{name, document}], instance_profile: {name, path}} of a node
    (HEAD_NODE or a queue's name); {instance_profile: {arn}} or {role: {arn}, instance_profile: {...}} when the
    config names its own profile or role. Without with_policies, no inline policies."""
    data = yaml.safe_load(NODE_ROLES.read_text())["head_node" if node == HEAD_NODE else "queue"]
    iam = _node_iam(config, node)
    suffix = HEAD_NODE if node == HEAD_NODE else queue_hash(node)
    managed = sorted({p["Policy"] for p in iam.get("AdditionalIamPolicies") or []}
                     | ({CLOUDWATCH_AGENT_POLICY} if cloudwatch_logs(config) else set()))
    stack = values["ClusterName"]
    role_id, profile_id = f"Role{suffix}", f"InstanceProfile{suffix}"
    values = dict(values, QueueHash=suffix, ManagedPolicyArns=managed, **{
        role_id: physical_name(stack, role_id), profile_id: physical_name(stack, profile_id)})
    resources = {PLACEHOLDER.sub(suffix, name): fill(resource, values) for name, resource in data.items()}
    profile = {"name": physical_name(stack, profile_id), "path": resources[profile_id]["Properties"]["Path"]}
    if iam.get("InstanceProfile"):
        return {"instance_profile": {"arn": iam["InstanceProfile"]}}
    if iam.get("InstanceRole"):
        return {"role": {"arn": iam["InstanceRole"]}, "instance_profile": profile}
    role = resources[role_id]["Properties"]
    policies = []
    for logical_id, resource in resources.items():
        if resource["Type"] != "AWS::IAM::Policy" or not with_policies:
            continue
        if logical_id == "ParallelClusterSlurmRoute53Policies" and not values["Route53HostedZone"]:
            continue  # the cluster has no hosted zone (the sandbox registers none)
        document = resource["Properties"]["PolicyDocument"]
        if not cloudwatch_logs(config):
            document = dict(document, Statement=[s for s in document["Statement"]
                                                 if s.get("Sid") != "EC2GetComputeConsoleOutput"])
        policies.append({"name": resource["Properties"]["PolicyName"], "document": document})
    if iam.get("S3Access") and with_policies:
        policies.append({"name": "S3Access", "document": {"Version": "2012-10-17",
                                                          "Statement": s3_access_statements(iam["S3Access"])}})
    return {"role": {"name": physical_name(stack, role_id), "path": role["Path"],
                     "trust": role["AssumeRolePolicyDocument"], "managed": role["ManagedPolicyArns"]},
            "policies": policies, "instance_profile": profile}


def cluster_nodes(config: dict) -> list:
    return [HEAD_NODE] + [q["Name"] for q in (config.get("Scheduling") or {}).get("SlurmQueues") or []]


def _create(iam, resources: dict) -> dict:
    """Create a node's resources (node_resources) unless they exist; returns {role_arn, role_name,
    instance_profile_arn, instance_profile_name}."""
    if "name" not in resources["instance_profile"]:
        arn = resources["instance_profile"]["arn"]
        return {"instance_profile_arn": arn, "instance_profile_name": arn.rsplit("/", 1)[-1]}
    role = resources.get("role") or {}
    if "name" in role:
        try:
            arn = iam.create_role(RoleName=role["name"], Path=role["path"],
                                  AssumeRolePolicyDocument=json.dumps(role["trust"]))["Role"]["Arn"]
        except iam.exceptions.EntityAlreadyExistsException:
            arn = iam.get_role(RoleName=role["name"])["Role"]["Arn"]
        for policy_arn in role["managed"]:
            iam.attach_role_policy(RoleName=role["name"], PolicyArn=policy_arn)
        for policy in resources["policies"]:
            iam.put_role_policy(RoleName=role["name"], PolicyName=policy["name"],
                                PolicyDocument=json.dumps(policy["document"]))
        role = {"arn": arn, "name": role["name"]}
    else:
        role = {"arn": role["arn"], "name": role["arn"].rsplit("/", 1)[-1]}
    profile = resources["instance_profile"]
    try:
        answer = iam.create_instance_profile(InstanceProfileName=profile["name"], Path=profile["path"])
        iam.add_role_to_instance_profile(InstanceProfileName=profile["name"], RoleName=role["name"])
    except iam.exceptions.EntityAlreadyExistsException:
        answer = iam.get_instance_profile(InstanceProfileName=profile["name"])
    return {"role_arn": role["arn"], "role_name": role["name"],
            "instance_profile_arn": answer["InstanceProfile"]["Arn"], "instance_profile_name": profile["name"]}


def create_for_cluster(endpoint_url: str, region: str, cluster_name: str, config: dict, registration: dict | None,
                       official_ami: str, hosted_zone: str | None = None) -> dict:
    """Create every node's role, policies and instance profile in moto (as the admin), or find them. Returns
    {HeadNode | <queue>: {role_arn, role_name, instance_profile_arn, instance_profile_name}}.

    The inline policies name the cluster's stack and bucket (moto_cluster.register_cluster's registration): without
    it (to launch the head node with its profile before the stack exists), only the roles, their managed policies
    and the profiles; call again with it for the inline policies."""
    import boto3  # pylint: disable=import-outside-toplevel

    iam = boto3.session.Session(region_name=region, **iam_identities.ADMIN_CREDENTIALS).client(
        "iam", endpoint_url=endpoint_url)
    values = template_values(config, cluster_name, region, registration, official_ami, hosted_zone)
    return {node: _create(iam, node_resources(config, node, values, registration is not None))
            for node in cluster_nodes(config)}


def profile_for(roles: dict, tags: dict) -> str | None:
    """The instance profile ARN of an instance with these (ParallelCluster's) tags."""
    node = HEAD_NODE if tags.get("parallelcluster:node-type") == HEAD_NODE else tags.get("parallelcluster:queue-name")
    return (roles.get(node) or {}).get("instance_profile_arn")


def associate(endpoint_url: str, region: str, cluster_name: str, roles: dict, instance_ids: list | None = None) -> dict:
    """Give the cluster's running instances (or those of instance_ids) the instance profile of their node (as
    their launch template would have); returns {instance id: profile ARN}."""
    import boto3  # pylint: disable=import-outside-toplevel

    ec2 = boto3.session.Session(region_name=region, **iam_identities.ADMIN_CREDENTIALS).client(
        "ec2", endpoint_url=endpoint_url)
    filters = [{"Name": "tag:parallelcluster:cluster-name", "Values": [cluster_name]},
               {"Name": "instance-state-name", "Values": ["pending", "running", "stopped"]}]
    kwargs = {"InstanceIds": instance_ids} if instance_ids else {"Filters": filters}
    done = {}
    for reservation in ec2.describe_instances(**kwargs)["Reservations"]:
        for instance in reservation["Instances"]:
            arn = profile_for(roles, {t["Key"]: t["Value"] for t in instance.get("Tags", [])})
            current = (instance.get("IamInstanceProfile") or {}).get("Arn")
            if arn and current != arn:
                ec2.associate_iam_instance_profile(IamInstanceProfile={"Arn": arn}, InstanceId=instance["InstanceId"])
            done[instance["InstanceId"]] = arn
    return done
