"""The distributed checks end to end: a real MPI all-reduce across the 4 compute nodes of a private sandbox.

One verify.yml run (the container checks off: they are deploy.yml's, covered in test_playbooks.py) on a
sandbox of its own with 4 compute nodes, so that the all-reduce really crosses more than one pair of nodes.
"""

import json
import stat
import subprocess
import xml.etree.ElementTree as ET

import pytest
import yaml

from ansible_collections.hpc.pcluster.tests.integration.conftest import RELEASE_NODE_SETUP_HOLDS


@pytest.fixture(scope="module")
def four_nodes(e2e_sandbox_4_nodes):
    # No deploy runs here: the static nodes are used as they booted, their node-setup holds deleted as an
    # administrator would (tests/integration/conftest.py's release_node_setup_holds).
    e2e_sandbox_4_nodes.head("sh", "-c", RELEASE_NODE_SETUP_HOLDS)
    return e2e_sandbox_4_nodes


@pytest.fixture(scope="module")
def verified(four_nodes):
    run = four_nodes.playbook("playbooks/verify.yml", {"verify_containers": False})
    assert run.rc == 0, run.output[-6000:]
    path = four_nodes.latest_report()
    return run, path, json.loads((path / "report.json").read_text())


def test_the_sandbox_measured_its_network(four_nodes):
    network = four_nodes.state["network"]
    assert network["tcp_gbs"] > 0 and len(network["samples_gbs"]) == 3
    assert network["tcp_gbs"] == max(network["samples_gbs"])
    assert "TCP stream compute-gpu-st-distributed-ml-1 -> compute-gpu-st-distributed-ml-2" in network["how"]
    written = four_nodes.state_dir / "inventory" / "group_vars" / "all" / "sandbox_only.yml"
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    figure = yaml.safe_load(written.read_text())["verify_distributed_expected"]["mpi"]
    assert figure["busbw"] == network["tcp_gbs"] and network["how"] in figure["source"]


def test_mpi_allreduce_ran_across_all_four_nodes_and_passed(four_nodes, verified):
    run, _path, report = verified
    nodes = four_nodes.compute_nodes
    assert len(nodes) == 4
    runs = dict((r["backend"], r) for r in report["groups"]["distributed"]["runs"])
    mpi = runs["mpi"]
    assert mpi["nodes"] == nodes and mpi["hosts_seen"] == nodes and mpi["ranks"] == 4 and mpi["rc"] == 0
    assert [s["size"] for s in mpi["sizes"]] == [1024 * 4 ** k for k in range(8)]
    assert all(s["wrong_oop"] == 0 and s["wrong_ip"] == 0 for s in mpi["sizes"])
    expected = mpi["expected"]
    assert expected["busbw"] == four_nodes.state["network"]["tcp_gbs"]
    assert "measured by sandbox up" in expected["source"] and expected["fraction"] == 0.05
    assert mpi["busbw_at_largest"] >= expected["threshold"] > 0
    checks = dict((c["check"], c) for c in report["checks"] if c["node"] == "compute-gpu-st-distributed-ml-[1-4]")
    for name in ("mpi_allreduce_run", "mpi_allreduce_correct", "mpi_allreduce_bandwidth"):
        assert checks[name]["status"] == "passed", checks[name]
    assert checks["mpi_allreduce_bandwidth"]["seen"].startswith("%.3f GB/s at 16 MiB" % mpi["busbw_at_largest"])
    assert "mpi_allreduce_bandwidth on" not in run.output  # not among the failures printed


def test_nccl_is_reported_not_available_with_the_ec2_figure(verified):
    _run, _path, report = verified
    nccl = [r for r in report["groups"]["distributed"]["runs"] if r["backend"] == "nccl"][0]
    assert nccl["not_run"].startswith("not available in the sandbox")
    assert nccl["expected"]["busbw"] == 3.125 and "EC2 DescribeInstanceTypes" in nccl["expected"]["source"]
    statuses = {c["check"]: c["status"] for c in report["checks"] if c["check"].startswith("nccl_")}
    # A group that did not run is one check: correctness, bandwidth and transport are judged only from a run.
    assert statuses == {"nccl_allreduce_run": "not_available"}


def test_report_formats_and_the_training_example(four_nodes, verified):
    _run, path, report = verified
    markdown = (path / "report.md").read_text()
    assert "## Distributed all-reduce" in markdown and "### MPI (mpi4py) on compute-gpu-st-distributed-ml-[1-4]" in markdown
    assert "[distributed-training.sbatch](distributed-training.sbatch)" in markdown
    assert "| 16 MiB |" in markdown
    junit = ET.parse(path / "junit.xml").getroot()
    case = [c for c in junit.iter("testcase") if c.get("name").startswith("mpi_allreduce_bandwidth[")][0]
    assert "16 MiB" in case.find("system-out").text and case.find("failure") is None
    assert int(junit.find("testsuite").get("tests")) == report["summary"]["total"]
    example = (path / "distributed-training.sbatch").read_text()
    for line in ("#SBATCH --partition=compute-gpu", "#SBATCH --nodes=4", "#SBATCH --gpus-per-node=1",
                 "export FI_PROVIDER=efa", "--nproc-per-node=1", "--container-mounts=/fsx:/fsx,/lustre:/lustre",
                 "IMAGE=${IMAGE:-/fsx/images/pytorch-training.sqsh}"):
        assert line in example, line
    assert subprocess.run(["bash", "-n", str(path / "distributed-training.sbatch")], check=False).returncode == 0
