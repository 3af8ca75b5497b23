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
