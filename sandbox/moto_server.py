"""moto's server, with the service modules the sandbox uses imported while it starts.

moto imports a service's code on the first request to it (EC2 alone takes 1-3 s
on this machine); importing them in a thread at start takes that off the
critical path of `sandbox.py up`. Arguments are moto_server's.

FSx stand-ins: moto 5.2.5 implements no FSx volumes and knows no FSx file system
by a given id, so pcluster cannot load a cluster config with existing FSx
``SharedStorage`` (it describes the volumes and file systems). With
``SANDBOX_FSX_PATH`` set, the JSON file there (read on each request, written by
`sandbox.py up` once moto is seeded) holds ``{"FileSystems": [...], "Volumes": [...]}``
in the FSx API's own shape: DescribeVolumes answers from it (and only from it)
and DescribeFileSystems answers the file systems it lists, in every region.

Launch templates: moto 5.2.5's RunInstances takes a launch template's ImageId,
InstanceType, UserData, SecurityGroupIds and TagSpecifications, but not its
NetworkInterfaces (the subnet and security groups ParallelCluster's compute
launch templates put there), its IamInstanceProfile or its
InstanceInitiatedShutdownBehavior: an instance ParallelCluster's slurm_resume
launches would land in the default VPC. ``_launch_template_instances`` makes
RunInstances apply them as EC2 does when the request does not name them itself.
And moto launches MinCount instances where EC2 launches as many as it has capacity
for up to MaxCount (ParallelCluster's best-effort launches ask MinCount 1, MaxCount N);
the sandbox has capacity for any count, so RunInstances launches MaxCount.

CloudFormation: moto_cfn (the sandbox's CloudFormation engine, which runs
ParallelCluster's cluster template) is installed by the preload thread; moto's
CloudFormation app is created, on the first CloudFormation request, only after that.

IAM: with ``INITIAL_NO_AUTH_ACTION_COUNT=0`` in the environment (what `sandbox.py up` sets), moto checks
every request against the caller's IAM policies. The server then first creates the sandbox's admin
identity (iam_identities.py) and makes moto's evaluation do what it cannot express as AWS does
(iam_moto.py), before it answers anything.
"""

import json
import os
import sys
import threading

# Set once moto_cfn (the sandbox's CloudFormation engine) is installed: moto's CloudFormation app is
# created, on the first CloudFormation request, only after that.
CFN_INSTALLED = threading.Event()


def _preload():
    # Imported for their side effect: moto's lazy service loading finds them ready.
    # EC2 first (the seeding needs it first); CloudFormation last (it imports most services).
    # IAM is loaded before the server answers when IAM is enforced (_enforce_iam); STS on first use.
    import moto.ec2.models  # noqa: F401  pylint: disable=unused-import,import-outside-toplevel
    import moto.s3.models  # noqa: F401  pylint: disable=unused-import,import-outside-toplevel
    import moto.dynamodb.models  # noqa: F401  pylint: disable=unused-import,import-outside-toplevel
    try:
        import moto_cfn  # pylint: disable=import-outside-toplevel

        moto_cfn.install()
    finally:
        CFN_INSTALLED.set()
    if os.environ.get("SANDBOX_FSX_PATH"):
        _fsx_standins(os.environ["SANDBOX_FSX_PATH"])
    _launch_template_instances()


def _launch_template_instances():
    """RunInstances with a launch template: its primary network interface's subnet and groups, its instance
    profile and its shutdown behaviour, unless the request gives them."""
    from moto.ec2.models import EC2Backend  # pylint: disable=import-outside-toplevel

    original = EC2Backend.run_instances

    def run_instances(self, image_id, count, user_data, security_group_names, **kwargs):
        data = self._get_template_from_args(kwargs["launch_template"]).data if kwargs.get("launch_template") else {}
        nics = [nic for nic in data.get("NetworkInterfaces") or [] if int(nic.get("DeviceIndex", 0)) == 0]
        if nics and not kwargs.get("subnet_id") and not kwargs.get("nics"):
            kwargs["nics"] = [{"DeviceIndex": 0, "SubnetId": nics[0].get("SubnetId")}]
            kwargs["subnet_id"] = nics[0].get("SubnetId")
            # The instance's groups are its primary interface's (moto gives them to both).
            if nics[0].get("Groups") and not kwargs.get("security_group_ids"):
                kwargs["security_group_ids"] = list(nics[0]["Groups"])
        if data.get("InstanceInitiatedShutdownBehavior") and not kwargs.get("instance_initiated_shutdown_behavior"):
            kwargs["instance_initiated_shutdown_behavior"] = data["InstanceInitiatedShutdownBehavior"]
        reservation = original(self, image_id, count, user_data, security_group_names, **kwargs)
        profile = data.get("IamInstanceProfile") or {}
        if profile and not (kwargs.get("iam_instance_profile_name") or kwargs.get("iam_instance_profile_arn")):
            for instance in reservation.instances:
                self.associate_iam_instance_profile(instance_id=instance.id, iam_instance_profile_name=profile.get("Name"),
                                                    iam_instance_profile_arn=profile.get("Arn"))
        return reservation

    EC2Backend.run_instances = run_instances

    from moto.ec2.responses.instances import InstanceResponse  # pylint: disable=import-outside-toplevel

    response = InstanceResponse.run_instances

    def run_max_count(self):
        get_param = self._get_param
        most = get_param("MaxCount")

        def param(name, *args, **kwargs):
            return most if name == "MinCount" and most else get_param(name, *args, **kwargs)

        self._get_param = param
        try:
            return response(self)
        finally:
            del self._get_param

    InstanceResponse.run_instances = run_max_count


def _after_cfn_install(create_backend_app):
    def create(service):
        if service == "cloudformation":
            CFN_INSTALLED.wait(timeout=120)
        return create_backend_app(service)
    return create


def _fsx_standins(path):
    """Make moto's FSx answer DescribeVolumes / DescribeFileSystems for the resources listed in path."""
    from moto.fsx import responses  # pylint: disable=import-outside-toplevel

    def listed():
        try:
            with open(path, encoding="utf-8") as handle:
                return json.load(handle)
        except (OSError, ValueError):
            return {}

    def not_found(kind, ids):
        body = json.dumps({"__type": f"{kind}NotFound", "message": f"{kind} {', '.join(ids)} not found"})
        return 400, {"content-type": "application/x-amz-json-1.1"}, body

    def describe_volumes(self):
        params = json.loads(self.body or "{}")
        wanted = params.get("VolumeIds")
        volumes = [v for v in listed().get("Volumes", []) if not wanted or v["VolumeId"] in wanted]
        missing = sorted(set(wanted or []) - {v["VolumeId"] for v in volumes})
        if missing:
            return not_found("Volume", missing)
        return json.dumps({"Volumes": volumes})

    original = responses.FSxResponse.describe_file_systems

    def describe_file_systems(self):
        params = json.loads(self.body or "{}")
        wanted = params.get("FileSystemIds")
        ours = {fs["FileSystemId"]: fs for fs in listed().get("FileSystems", [])}
        if wanted and all(fs_id in ours for fs_id in wanted):
            return json.dumps({"FileSystems": [ours[fs_id] for fs_id in wanted]})
        if wanted and any(fs_id in ours for fs_id in wanted):
            return not_found("FileSystem", [fs_id for fs_id in wanted if fs_id not in ours])
        return original(self)

    responses.FSxResponse.describe_volumes = describe_volumes
    responses.FSxResponse.describe_file_systems = describe_file_systems


def _enforce_iam():
    import iam_identities  # pylint: disable=import-outside-toplevel
    import iam_moto  # pylint: disable=import-outside-toplevel

    iam_moto.install()
    iam_identities.create_admin_in_moto()


if __name__ == "__main__":
    if os.environ.get("INITIAL_NO_AUTH_ACTION_COUNT") == "0":
        _enforce_iam()
    threading.Thread(target=_preload, daemon=True).start()
    import moto.server

    moto.server.create_backend_app = _after_cfn_install(moto.server.create_backend_app)
    sys.exit(moto.server.main())
