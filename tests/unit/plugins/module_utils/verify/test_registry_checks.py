"""The container_registry and container_staged checks, from what srun, Pyxis and Enroot print (recorded in the
sandbox, tests/unit/fixtures/registry/), with a runner that answers as Slurm did."""

import pathlib

from ansible_collections.hpc.pcluster.plugins.module_utils.verify import registry_checks as rc
from ansible_collections.hpc.pcluster.plugins.module_utils.verify.check_report import CheckReport

FIXTURES = pathlib.Path(__file__).resolve().parents[3] / "fixtures" / "registry"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/hpc-pcluster/busybox:latest"
REGISTRY = IMAGE.split("/", 1)[0]
NODES = ["compute-gpu-st-distributed-ml-1", "compute-gpu-st-distributed-ml-2"]
PARAMS = {"image": IMAGE, "srun_immediate": 120, "srun_extra_args": [], "timeout": 600, "aws_cli": "/usr/local/bin/aws"}


class Runner:
    """Answers each command with the next recorded (rc, stdout, stderr); keeps the commands."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.commands = []

    @staticmethod
    def slurm(name):
        return name

    def run(self, argv, timeout=60):  # pylint: disable=unused-argument
        self.commands.append(argv)
        return self.answers.pop(0)


def test_enroot_stopping_after_authenticating_is_a_401():
    kind, detail = rc.pull_failure((FIXTURES / "pyxis-401.stderr").read_text(), NODES[1])
    assert kind == "auth"
    assert detail == ("failed to import docker image: %s; [INFO] Authenticating with user: AWS; "
                      "[INFO] Using credentials from file: /etc/enroot/config/.credentials" % IMAGE)
    assert rc.pull_failure("[ERROR] URL https://x/v2/a/manifests/b returned error code: 404 Not Found")[0] == "not_found"
    assert rc.pull_failure("curl: (6) Could not resolve host: x")[0] == "network"
    assert rc.pull_failure("[ERROR] something else")[0] == "other"
    assert rc.pull_failure("[ERROR] URL https://x/ returned error code: 401 Unauthorized")[0] == "auth"


def test_a_node_without_credentials_is_named_with_the_policy_and_what_its_cli_says():
    stderr = (FIXTURES / "pyxis-401.stderr").read_text()
    runner = Runner((0, "compute-gpu-st-distributed-ml-1 compute-gpu\ncompute-gpu-st-distributed-ml-2 compute-gpu*\n", ""),
                    (1, "%s %s\n" % (rc.MARK, NODES[0]), stderr),
                    (0, "%s %s Unable to locate credentials. You can configure credentials by running \"aws configure\".\n"
                     % (rc.DIAG_MARK, NODES[1]), ""))
    report = CheckReport({})
    groups = rc.group_by_partition(runner, NODES)
    assert groups == {"compute-gpu": NODES}
    run = rc.run_image(runner, PARAMS, "compute-gpu", NODES, IMAGE)
    assert run["answered"] == [NODES[0]] and run["rc"] == 1
    rc.check_pull(report, runner, PARAMS, run, REGISTRY)
    ok, failed = report.checks
    assert (ok["node"], ok["status"]) == (NODES[0], "passed") and ok["seen"].startswith("pulled and started: one srun")
    assert (failed["node"], failed["status"]) == (NODES[1], "failed")
    assert "the registry refused the node's password" in failed["seen"]
    assert "AmazonEC2ContainerRegistryReadOnly" in failed["hint"] and "no ECR credentials" in failed["hint"]
    assert failed["hint"].endswith("aws ecr get-login-password says: Unable to locate credentials. You can configure "
                                   "credentials by running \"aws configure\".")
    # The image job, then the password asked on the failed node only, with the registry's region.
    image_job, password_job = runner.commands[1], runner.commands[2]
    assert "--container-image=%s" % IMAGE in image_job and image_job[-3:] == rc.CONTAINER_COMMAND
    assert "--nodelist=%s" % NODES[1] in password_job and password_job[-2:] == ["/usr/local/bin/aws", "us-east-1"]
    assert run["failure"]["password"] == {NODES[1]: "Unable to locate credentials. You can configure credentials by "
                                                    "running \"aws configure\"."}


def test_the_staged_image_is_timed_with_its_import():
    runner = Runner((0, "".join("%s %s\n" % (rc.MARK, n) for n in NODES), ""))
    report = CheckReport({})
    staged = {"path": "/fsx/containers/x.sqsh", "digest": "sha256:ab",
              "record": {"import_seconds": 10.56, "imported_at": "2026-12-04T21:22:00Z"}}
    run = rc.run_image(runner, PARAMS, "compute-gpu", NODES, staged["path"])
    rc.check_staged(report, run, staged)
    assert [c["status"] for c in report.checks] == ["passed", "passed"]
    assert "imported once in 10.56 s at 2026-12-04T21:22:00Z" in report.checks[0]["seen"]
    assert "--container-image=/fsx/containers/x.sqsh" in runner.commands[0]


def test_not_run_is_not_available_in_check_mode_and_failed_without_nodes():
    report = CheckReport({})
    rc.not_run(report, PARAMS, NODES, {"path": "/fsx/containers/x.sqsh"}, check_mode=True)
    assert {(c["check"], c["status"]) for c in report.checks} == {("container_registry", "not_available"),
                                                                  ("container_staged", "not_available")}
    report = CheckReport({})
    rc.not_run(report, PARAMS, [], {}, check_mode=False)
    assert [(c["node"], c["status"], c["hint"]) for c in report.checks] == [
        ("cluster", "failed", "no usable compute node (see node_state)")]
    # A sandbox without the registry lists the family: both checks are not available with its reason.
    report = CheckReport({"container_registry": "not available in the sandbox: no registry"})
    rc.not_run(report, PARAMS, NODES, {"path": "/x"}, check_mode=False)
    assert {c["status"] for c in report.checks} == {"not_available"}
