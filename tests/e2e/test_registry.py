"""The sandbox's ECR after deploy.yml: its names and TLS in the nodes, a container job pulling the registry's image
through Pyxis on every compute node, `docker pull` with the ECR credential helper, a run without credentials
failing as missing credentials (naming the policy), and images staged once (playbooks/stage_images.yml) that every
node starts, with the verify role's container_registry and container_staged checks."""

import json
import re

import pytest


# What takes the node's credentials away for one job: no instance metadata, no shared files.
NO_CREDENTIALS = "--export=ALL,AWS_EC2_METADATA_DISABLED=true,AWS_SHARED_CREDENTIALS_FILE=/dev/null,AWS_CONFIG_FILE=/dev/null"


@pytest.fixture(scope="module", name="ecr")
def fixture_ecr(e2e_sandbox, first_deploy, deploy_vars):  # pylint: disable=unused-argument
    state = e2e_sandbox.state
    if not state["containers"]["ami"]["real"]:
        pytest.skip("the sandbox runs the stand-ins: %s" % state["containers"]["ami"]["fallback"])
    if state["containers"]["registry"]["note"]:
        pytest.skip(state["containers"]["registry"]["note"])
    if deploy_vars.get("pcluster_containers_enabled") is False:
        pytest.skip("HPC_PCLUSTER_E2E_DEPLOY_VARS turns the container roles off")
    # The nodes pull with their instance role's credentials (ECR read-only), from the metadata service.
    return state["containers"]["registry"]


def srun(e2e_sandbox, *argv, nodes=None, check=True):
    nodes = nodes or e2e_sandbox.compute_nodes
    return e2e_sandbox.head("srun", "--quiet", "--nodes=%d" % len(nodes), "--ntasks-per-node=1",
                            "--nodelist=%s" % ",".join(nodes), *argv, check=check, timeout=300)


def test_ecr_s_names_resolve_in_the_nodes_and_the_registry_authenticates_as_ecr_does(e2e_sandbox, ecr):
    # TLS checked against the node's own trust store (the AMI layer's, with the sandbox's CA), HTTP/1.1 as ECR.
    out = e2e_sandbox.head("curl", "-sS", "-o", "/dev/null", "-D", "-", "-w", "%{http_code} HTTP/%{http_version}",
                           "https://%s/v2/" % ecr["registry_host"])
    assert out.strip().endswith("401 HTTP/1.1"), out
    assert 'www-authenticate: basic realm="https://%s/"' % ecr["registry_host"] in out.lower(), out
    # ECR's API through its name (moto behind the TLS front) knows the image the registry serves.
    images = json.loads(e2e_sandbox.head("/usr/local/bin/aws", "ecr", "describe-images", "--region", ecr["region"],
                                         "--repository-name", "hpc-pcluster/busybox", "--output", "json"))
    assert [i["imageDigest"] for i in images["imageDetails"]] == [ecr["digest"]]


def test_every_compute_node_pulls_the_image_through_pyxis_with_its_credentials(e2e_sandbox, ecr):
    script = 'echo "$SLURMD_NODENAME $(readlink /bin/sh) $(test -e /etc/debian_version && echo debian || echo image)"'
    out = srun(e2e_sandbox, "--container-image=%s" % ecr["image"], "sh", "-c", script)
    assert sorted(line.split() for line in out.strip().splitlines()) == [
        [node, "busybox", "image"] for node in sorted(e2e_sandbox.compute_nodes)]


def test_docker_pulls_it_with_the_ecr_credential_helper(e2e_sandbox, ecr):
    if e2e_sandbox.state["containers"]["proxy"]["note"]:
        pytest.skip(e2e_sandbox.state["containers"]["proxy"]["note"])
    node = e2e_sandbox.compute_nodes[0]
    config = json.loads(srun(e2e_sandbox, "cat", "/root/.docker/config.json", nodes=[node]))
    assert config["credHelpers"] == {ecr["registry_host"]: "ecr-login"}
    out = srun(e2e_sandbox, "sh", "-c", "docker pull -q %s >/dev/null && docker run --rm --network none %s echo pulled"
               % (ecr["image"], ecr["image"]), nodes=[node])
    assert out.strip() == "pulled"
    refused = srun(e2e_sandbox, NO_CREDENTIALS, "sh", "-c", "docker rmi -f %s >/dev/null; docker pull %s 2>&1; echo rc=$?"
                   % (ecr["image"], ecr["image"]), nodes=[node])
    assert "no basic auth credentials" in refused and "rc=1" in refused, refused


def test_a_run_without_credentials_is_reported_as_missing_credentials_naming_the_policy(e2e_sandbox, ecr, tmp_path):
    args = {"image": ecr["image"], "nodes": e2e_sandbox.compute_nodes, "srun_extra_args": [NO_CREDENTIALS]}
    run = e2e_sandbox.playbook("tests/e2e/registry_check.yml", {"registry_check_args": args,
                                                                "registry_check_result": str(tmp_path / "result.json")})
    assert run.rc == 0, run.output[-4000:]
    result = json.loads((tmp_path / "result.json").read_text())
    pulls = [c for c in result["checks"] if c["check"] == "container_registry"]
    assert [c["node"] for c in pulls] == e2e_sandbox.compute_nodes and {c["status"] for c in pulls} == {"failed"}
    for check in pulls:
        assert "the registry refused the node's password" in check["seen"]
        assert "The node has no ECR credentials" in check["hint"] and "AmazonEC2ContainerRegistryReadOnly" in check["hint"]
        # What the node's own AWS CLI says, asked in the same conditions.
        assert re.search(r"aws ecr get-login-password says: Unable to locate credentials", check["hint"]), check["hint"]


def test_staged_once_then_nothing_and_every_node_starts_it_as_the_verify_role_reports(e2e_sandbox, ecr):
    stage = {"enroot_stage_images": [ecr["image"]]}
    first = e2e_sandbox.playbook("playbooks/stage_images.yml", stage)
    assert first.rc == 0, first.output[-4000:]
    second = e2e_sandbox.playbook("playbooks/stage_images.yml", stage)
    assert second.rc == 0 and all(h["changed"] == 0 for h in second.recap.values()), second.recap
    assert "already there" in second.stdout
    link = "/fsx/containers/%s_hpc-pcluster_busybox_latest.sqsh" % ecr["registry_host"]
    assert e2e_sandbox.head("readlink", link).strip() == "%s.sqsh" % ecr["digest"].replace(":", "-")
    out = srun(e2e_sandbox, "--container-image=%s" % link, "sh", "-c", 'echo "$SLURMD_NODENAME"')
    assert sorted(out.split()) == sorted(e2e_sandbox.compute_nodes)
    # The training example's image staged too: the sbatch starts from the staged file, with no import step. Only
    # this test's checks are judged here (the all-reduce beside them depends on the machine's load).
    verified = e2e_sandbox.playbook("playbooks/verify.yml", dict(stage, verify_container_registry_image=ecr["image"],
                                                                 verify_distributed_example_source_image=ecr["image"],
                                                                 verify_fail_on_error=False))
    assert verified.rc == 0, verified.output[-4000:]
    report = json.loads((e2e_sandbox.latest_report() / "report.json").read_text())
    for name in ("container_registry", "container_staged"):
        checks = [c for c in report["checks"] if c["check"] == name]
        assert sorted(c["node"] for c in checks) == sorted(e2e_sandbox.compute_nodes), name
        assert {c["status"] for c in checks} == {"passed"}, checks
    runs = report["groups"]["container_registry"]["runs"]
    assert [r["source"] for r in runs] == ["registry", "staged"] and all(r["seconds"] > 0 for r in runs)
    markdown = (e2e_sandbox.latest_report() / "report.md").read_text()
    assert "## Container image from the registry" in markdown and "| staged squashfs (no pull) |" in markdown
    example = (e2e_sandbox.latest_report() / "distributed-training.sbatch").read_text()
    assert "IMAGE=${IMAGE:-%s}" % link in example and "is staged once on shared storage" in example
    assert "enroot import" not in example
