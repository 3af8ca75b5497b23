"""The container chain of the sandbox's nodes after deploy.yml (which runs playbooks/containers.yml): a
container job through Pyxis and Enroot on every compute node, Docker's engine running on every node,
the fleet-wide run forced again changing nothing on any compute node."""

import re
import shlex

import pytest


@pytest.fixture(scope="module", name="containers")
def fixture_containers(e2e_sandbox, first_deploy, deploy_vars):  # pylint: disable=unused-argument
    state = e2e_sandbox.state["containers"]
    if not state["ami"]["real"]:
        pytest.skip("the sandbox runs the stand-ins: %s" % state["ami"]["fallback"])
    if deploy_vars.get("pcluster_containers_enabled") is False:
        pytest.skip("HPC_PCLUSTER_E2E_DEPLOY_VARS turns the container roles off")
    return state


def test_a_container_job_runs_through_pyxis_on_every_compute_node(e2e_sandbox, containers):
    nodes = e2e_sandbox.compute_nodes
    # Inside the container: the image's busybox root, not the node's Debian (no /etc/debian_version).
    script = 'echo "$SLURMD_NODENAME $(readlink /bin/sh) $(test -e /etc/debian_version && echo debian || echo image)"'
    out = e2e_sandbox.head("srun", "--quiet", "--nodes=%d" % len(nodes), "--ntasks-per-node=1",
                           "--container-image=%s" % containers["image"], "sh", "-c", script)
    seen = sorted(line.split() for line in out.strip().splitlines())
    assert seen == [[node, "busybox", "image"] for node in sorted(nodes)]
    # The same command outside a container runs on the node's own root.
    plain = e2e_sandbox.head("srun", "--quiet", "--nodes=1", "sh", "-c", script).split()
    assert plain[2] == "debian", plain


def test_docker_s_engine_runs_on_every_node(e2e_sandbox, containers):
    if containers["proxy"]["note"]:
        pytest.skip(containers["proxy"]["note"])
    version = "docker version --format '{{.Server.Version}}'"
    head = e2e_sandbox.head("sh", "-c", version).strip()
    assert head.startswith("20.10.")
    n = len(e2e_sandbox.compute_nodes)
    out = e2e_sandbox.head("srun", "--quiet", "--nodes=%d" % n, "--ntasks-per-node=1", "sh", "-c",
                           "echo $SLURMD_NODENAME $(%s)" % version)
    assert sorted(out.split()[1::2]) == [head] * n, out
    # Not this machine's: the engine was installed into the nodes' roots.
    assert shlex.split(e2e_sandbox.head("sh", "-c", "dpkg-query -W -f '${Status}' docker.io")) == [
        "install", "ok", "installed"]


def test_the_fleet_run_forced_again_changes_nothing_on_any_compute_node(e2e_sandbox, containers):  # pylint: disable=unused-argument
    # Forced: every compute node runs its whole local play again (not only "up to date, this bundle applied since
    # boot"), so this shows the roles themselves change nothing on a node they set up. The fleet-wide run alone: the
    # head node's roles over SSH are deploy.yml's second run's (test_playbooks.py).
    run = e2e_sandbox.node_setup("fleet", {"node_setup_fleet_force": True})
    assert run.rc == 0, run.output[-6000:]
    assert run.recap and all(host["changed"] == 0 for host in run.recap.values()), run.recap
    folded = " ".join(run.stdout.split())  # the YAML callback wraps long messages
    for node in e2e_sandbox.compute_nodes:
        assert re.search(r"- '?%s: ok \(ok=[1-9]\d* changed=0 failed=0," % re.escape(node), folded), folded[-3000:]
