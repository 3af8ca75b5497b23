"""Capture the CloudFormation templates ParallelCluster uploads, for the sandbox's cluster config and variants.

    .venv/bin/python sandbox/capture_templates.py [--out DIR] [--variant NAME ...]

Starts a moto server of its own (sandbox/moto_server.py, with the sandbox's CloudFormation), prepares it
as `sandbox.py up` does, renders the sandbox's cluster config with role hpc.pcluster.cluster_config,
and for each variant runs the real pcluster.lib: create_cluster, update_cluster (MaxCount + 1) and
delete_cluster, sending the head node's wait condition signals itself. Every template pcluster
uploads (the cluster's and the nested queues' and login nodes' stacks) and the parameters and tags
of its CreateStack / UpdateStack calls are kept (botocore's calls are hooked: pcluster deletes its
uploads when a create fails) in <out>/<variant>/create.json (and update.json for the sandbox's own), the config in
<out>/<variant>/cluster-config.yaml. Run it again for a new ParallelCluster version: the tests in
tests/integration/moto_cfn replay these files.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import moto_cluster  # noqa: E402  pylint: disable=wrong-import-position
from ansible_collections.hpc.pcluster.plugins.module_utils.config.file import (  # noqa: E402  pylint: disable=wrong-import-position
    render_yaml,
)

REGION = "us-east-1"
CLUSTER = "ml-training-cluster"
DEFAULT_OUT = ROOT / "tests" / "integration" / "moto_cfn" / "fixtures"
# Every variant is updated; the update's template is kept for these (each file is about 80 kB).
UPDATES_KEPT = ("sandbox",)


def _sandbox_config(endpoint_url: str, seed: dict, work_dir: Path) -> dict:
    """The config `sandbox.py up` renders (2 static compute nodes), rendered the same way."""
    import sandbox  # pylint: disable=import-outside-toplevel

    state = {"cluster_name": CLUSTER, "region": REGION, "state_dir": str(work_dir)}
    plan = {"static": ["compute-gpu-st-distributed-ml-1", "compute-gpu-st-distributed-ml-2"], "dynamic": [],
            "vpc_cidr": "10.100.0.0/16"}
    variables = sandbox.cluster_config_vars(state, plan, seed)
    vars_file = work_dir / "sandbox-vars.yml"
    vars_file.write_text(yaml.safe_dump(variables))
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
               ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), AWS_ENDPOINT_URL=endpoint_url, ANSIBLE_NOCOLOR="1")
    subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local",
                    "-e", f"ansible_python_interpreter={sys.executable}", "-e", f"sandbox_vars_file={vars_file}",
                    str(HERE / "render-config.yml")], check=True, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    return yaml.safe_load((work_dir / "cluster-config.yaml").read_text())


def _import_key_pair(endpoint_url: str, work_dir: Path) -> None:
    """The EC2 key pair the sandbox's config names (pcluster's KeyPairValidator reads it), with a key of its own."""
    import real_account  # pylint: disable=import-outside-toplevel

    key = work_dir / "capture_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    real_account.import_key_pair(moto_cluster.client("ec2", endpoint_url, REGION), f"{key}.pub")


def variants(base: dict, seed: dict) -> dict:
    """name -> config: the sandbox's own, and the shapes ParallelCluster builds other templates for."""
    out = {"sandbox": base}
    login = copy.deepcopy(base)
    login["LoginNodes"] = {"Pools": [{"Name": "login", "Count": 1, "InstanceType": "t3.large",
                                      "Networking": {"SubnetIds": [seed["public_subnet_id"]]}}]}
    out["login-nodes"] = login
    queues = copy.deepcopy(base)
    cpu = copy.deepcopy(queues["Scheduling"]["SlurmQueues"][0])
    cpu["Name"] = "compute-cpu"
    cpu["ComputeResources"] = [{"Name": "cpu", "InstanceType": "c5.2xlarge", "MinCount": 1, "MaxCount": 2}]
    cpu["Networking"].pop("PlacementGroup", None)
    queues["Scheduling"]["SlurmQueues"].append(cpu)
    out["two-queues"] = queues
    dynamic = copy.deepcopy(base)
    dynamic["Scheduling"]["SlurmQueues"][0]["ComputeResources"][0].update(MinCount=0, MaxCount=4)
    out["dynamic"] = dynamic
    for config in (queues, dynamic):
        # Dynamic nodes need Slurm's power saving on: the sandbox's ScaledownIdletime -1 turns it off.
        config["Scheduling"]["SlurmSettings"]["ScaledownIdletime"] = 10
    return out


class Recorder:
    """botocore's PutObject, CreateStack and UpdateStack calls, as pcluster makes them."""

    def __init__(self):
        self.objects, self.calls = {}, []

    def __enter__(self):
        import botocore.client  # pylint: disable=import-outside-toplevel

        original = self._original = botocore.client.BaseClient._make_api_call  # pylint: disable=protected-access
        recorder = self

        def call(client, operation, params):
            if operation == "PutObject" and isinstance(params.get("Body"), (str, bytes)):
                body = params["Body"]
                recorder.objects[params["Key"]] = body.decode() if isinstance(body, bytes) else body
            elif operation in ("CreateStack", "UpdateStack"):
                recorder.calls.append((operation, copy.deepcopy(params)))
            return original(client, operation, params)

        botocore.client.BaseClient._make_api_call = call  # pylint: disable=protected-access
        return self

    def __exit__(self, *exc):
        import botocore.client  # pylint: disable=import-outside-toplevel

        botocore.client.BaseClient._make_api_call = self._original  # pylint: disable=protected-access

    def operation(self, operation: str) -> dict:
        """The templates and call of the last CreateStack/UpdateStack (templates as dicts, nested ones by key)."""
        _name, params = [c for c in self.calls if c[0] == operation][-1]
        root_key = next(key for key in self.objects if params["TemplateURL"].split("?", 1)[0].endswith("/" + key))
        keys = {p["ParameterValue"].split("||", 1)[0] for p in params.get("Parameters", [])}
        nested = {key: json.loads(body) for key, body in self.objects.items() if key in keys}
        return {"template_key": root_key, "template": yaml.safe_load(self.objects[root_key]),
                "parameters": params.get("Parameters", []), "tags": params.get("Tags", []), "nested": nested}


def wait_status(endpoint_url, name, wanted, timeout=120):
    cfn = moto_cluster.client("cloudformation", endpoint_url, REGION)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
        except cfn.exceptions.ClientError:
            return "DELETE_COMPLETE"
        if stack["StackStatus"] in wanted:
            return stack["StackStatus"]
        if not stack["StackStatus"].endswith("IN_PROGRESS"):
            stacks = [s["StackId"] for s in cfn.list_stacks()["StackSummaries"]
                      if s["StackId"] == stack["StackId"] or s.get("RootId") == stack["StackId"]]
            failed = [f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason')}" for stack_id in stacks
                      for e in cfn.describe_stack_events(StackName=stack_id)["StackEvents"]
                      if e["ResourceStatus"].endswith("FAILED")]
            raise RuntimeError(f"{name} is {stack['StackStatus']}, not {wanted}: {failed}")
        time.sleep(0.2)
    raise RuntimeError(f"{name} did not reach {wanted}")


def capture(endpoint_url: str, name: str, config: dict, out: Path, keep_update: bool) -> None:
    import pcluster.lib as pc  # pylint: disable=import-outside-toplevel

    out.mkdir(parents=True, exist_ok=True)
    (out / "cluster-config.yaml").write_text("---\n" + render_yaml(config))
    suppress = ["type:HeadNodeLaunchTemplateValidator", "type:ComputeResourceLaunchTemplateValidator",
                "type:AsyncTimedUrlValidator"]
    with Recorder() as recorder:
        pc.create_cluster(cluster_name=name, cluster_configuration=config, region=REGION,
                          suppress_validators=suppress)
        (out / "create.json").write_text(json.dumps(recorder.operation("CreateStack"), sort_keys=True))
        moto_cluster.signal_wait_condition(moto_cluster.pending_wait_condition_url(endpoint_url, REGION, name),
                                           unique_id="capture")
        wait_status(endpoint_url, name, ("CREATE_COMPLETE",))
        updated = copy.deepcopy(config)
        updated["Scheduling"]["SlurmQueues"][0]["ComputeResources"][0]["MaxCount"] += 1
        pc.update_cluster(cluster_name=name, cluster_configuration=updated, region=REGION, suppress_validators=["ALL"])
        if keep_update:
            (out / "update.json").write_text(json.dumps(recorder.operation("UpdateStack"), sort_keys=True))
        moto_cluster.signal_wait_condition(moto_cluster.pending_wait_condition_url(endpoint_url, REGION, name),
                                           unique_id="capture")
        wait_status(endpoint_url, name, ("UPDATE_COMPLETE",))
    pc.delete_cluster(cluster_name=name, region=REGION)
    wait_status(endpoint_url, name, ("DELETE_COMPLETE",))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    parser.add_argument("--variant", action="append", help="only these (default: all)")
    args = parser.parse_args(argv)
    work_dir = Path(tempfile.mkdtemp(prefix="capture-templates-"))
    proc, endpoint_url = moto_cluster.start_moto_server(work_dir)
    os.environ.update(AWS_ENDPOINT_URL=endpoint_url, AWS_DEFAULT_REGION=REGION,
                      **{k.upper(): v for k, v in moto_cluster.DUMMY_CREDENTIALS.items()})
    try:
        seed = moto_cluster.prepare_account(endpoint_url, REGION, work_dir)
        _import_key_pair(endpoint_url, work_dir)
        base = _sandbox_config(endpoint_url, seed, work_dir)
        for name, config in variants(base, seed).items():
            if args.variant and name not in args.variant:
                continue
            # A cluster name of its own: a cluster's log group, named after the minute of its creation,
            # outlives the cluster (DeletionPolicy Retain), as on AWS.
            cluster = CLUSTER if name == "sandbox" else f"cluster-{name}"
            print(f"{name}: create, update and delete {cluster}", flush=True)
            capture(endpoint_url, cluster, config, Path(args.out) / name, keep_update=name in UPDATES_KEPT)
    finally:
        moto_cluster.stop_moto_server(proc)
        shutil.rmtree(work_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
