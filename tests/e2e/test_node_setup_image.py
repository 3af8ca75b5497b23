"""A dynamic node started from an image with the node setup baked in runs its job without the roles running at boot.

The sandbox with a dynamic node (shared with test_node_setup.py, after it; this test takes it as it finds it:
bundle staged or not, the dynamic node up or powered down): role node_setup stages the bundle (tasks_from: stage), then
bake_image.yml builds the image as deploy.yml does with cluster_config_custom_image=build (`pcluster build-image`:
the sandbox's image builder runs the bake script on a build node over the AMI layer and keeps what it changed as
the image's layer). The queue's launch template then names the image's AMI, as a cluster update that changes
Image.CustomAmi leaves it; the dynamic node is powered down, and a container job powers it up again:
ParallelCluster's slurm_resume launches an instance of the image, which boots over the image's layer, and its boot
step answers up-to-date from the image. The job pulls its image from the sandbox's ECR (when the sandbox has one):
Enroot's temp and data directories on the node's instance storage, empty at each boot, were made again by the boot
step, and its credentials for the cluster's registry came with the image. The build node had no /scratch and no
/fsx, as a build instance has none of the cluster's storage: the image was baked for the compute nodes' (role
image_config's image_config_node_mount_points).

The variables: Docker left out (the image build then installs no packages from the mirror, and the sandbox's nodes
have no init system to start an image's dockerd at boot), as bench/dynamic_node_image.py does.
"""

import json
import re
import time

import image_layers  # sandbox/ (pytest.ini: pythonpath)

VARS = {"containers_docker_enabled": False}
DYNAMIC = "compute-gpu-dy-distributed-ml-1"
LOG = "/var/log/hpc-pcluster/node-setup.log"
RESULT = "/var/lib/hpc-pcluster/node-setup/result.json"
IMAGE_RECORD = "var/lib/hpc-pcluster/node-setup/image.json"
IN_CONTAINER = 'echo "$SLURMD_NODENAME $(test -e /etc/debian_version && echo debian || echo image)"'


def node_state(sandbox, node):
    return sandbox.head("sinfo", "--noheader", "--Node", "--nodes=%s" % node, "--format=%t").strip()


def power_down(sandbox, node, timeout=300):
    """Power node down (its instance terminated) and wait until Slurm can power it up again."""
    if not node_state(sandbox, node).endswith("~"):
        sandbox.head("scontrol", "update", "nodename=%s" % node, "state=power_down_force")
    deadline = time.monotonic() + timeout
    while node_state(sandbox, node) != "idle~":
        assert time.monotonic() < deadline, "%s not powered down within %d s: %s" % (node, timeout, node_state(sandbox, node))
        time.sleep(2)


def test_a_dynamic_node_of_the_baked_image_runs_its_job_without_the_roles_at_boot(dynamic_sandbox, tmp_path):
    sandbox = dynamic_sandbox
    staged = sandbox.node_setup("stage", VARS)
    assert staged.rc == 0, staged.output[-6000:]
    result_file = tmp_path / "bake.json"
    bake = sandbox.playbook("tests/e2e/bake_image.yml", dict(VARS, bake_image_result=str(result_file)), timeout=1200)
    assert bake.rc == 0, bake.output[-6000:]
    ami = json.loads(result_file.read_text())["ami_id"]
    # The image's layer holds what the bake applied, with its record of it; the build node is gone.
    layers = image_layers.layers_of(sandbox.state_dir, ami)
    assert len(layers) == 1, layers
    record = json.loads((sandbox.state_dir / "images" / ami / IMAGE_RECORD).read_text())
    assert record["node_rendered"] == [] and record["changed"] > 0, record
    # Placed by the compute nodes' storage, not the build node's, with the entries that make its directories at boot.
    assert record["mount_points"] == {"/scratch": True, "/fsx": True}, record
    # The entries the roles wrote (facts enroot_node_tmpfiles and pyxis_node_tmpfiles).
    assert record["tmpfiles"] == ["/etc/tmpfiles.d/enroot.conf", "/etc/tmpfiles.d/pyxis.conf"], record
    enroot_conf = (sandbox.state_dir / "images" / ami / "etc" / "enroot" / "enroot.conf").read_text()
    assert re.search(r"^ENROOT_TEMP_PATH +/scratch/enroot/tmp$", enroot_conf, re.M), enroot_conf
    assert re.search(r"^ENROOT_CACHE_PATH +/fsx/enroot/", enroot_conf, re.M), enroot_conf

    ec2 = sandbox.aws("ec2")
    template = sandbox.state["launch_templates"][0]
    default_ami = ec2.describe_launch_template_versions(LaunchTemplateName=template, Versions=["$Default"])[
        "LaunchTemplateVersions"][0]["LaunchTemplateData"]["ImageId"]
    power_down(sandbox, DYNAMIC)
    image_layers.launch_queue_from(ec2, template, ami)
    registry = sandbox.state["containers"]["registry"]
    image = sandbox.state["containers"]["image"] if registry["note"] else registry["image"]
    try:
        job = sandbox.head("srun", "--quiet", "--nodes=1", "--nodelist=%s" % DYNAMIC,
                           "--container-image=%s" % image, "sh", "-c", IN_CONTAINER, timeout=600)
        instance = sandbox.instance_of(DYNAMIC)
        result = json.loads(sandbox.head("srun", "--quiet", "--nodes=1", "--nodelist=%s" % DYNAMIC, "cat", RESULT))
        runs = [line for line in sandbox.head("srun", "--quiet", "--nodes=1", "--nodelist=%s" % DYNAMIC, "cat",
                                              LOG).splitlines() if line.startswith("=== ")]
    finally:
        image_layers.launch_queue_from(ec2, template, default_ami)
    # The job ran in a container through the Pyxis and Enroot the image carries.
    assert job.split() == [DYNAMIC, "image"], job
    booted = [line for line in (sandbox.state_dir / "logs" / "hypervisor.log").read_text().splitlines()
              if instance in line and "booted as a node" in line]
    assert booted and "from %s (its image layer)" % ami in booted[-1], booted
    # Its boot step found the image's record standing for the bundle: up-to-date, the roles not run.
    assert result["status"] == "up-to-date" and result["source"] == "image" and result["mode"] == "boot", result
    assert result["image"] == record["id"] and result["changed"] == 0, result
    assert " boot %s " % DYNAMIC in runs[-1] and "up-to-date from the image" in runs[-1], runs
    assert "the roles did not run" in runs[-1]
