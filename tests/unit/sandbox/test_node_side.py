"""The sandbox's stand-ins for ParallelCluster's node-side files and scripts (sandbox/cookbook, sandbox/bin)."""

import configparser
import json
import os
import math
import pathlib
import subprocess

import pytest

import bootstrap
import clusterstatusmgtd
import compute_fleet_status
import custom_actions
import node_configs

ROOT = pathlib.Path(__file__).resolve().parents[3]
CLUSTER = {"cluster_name": "demo", "region": "eu-west-1", "slurm_ddb_table": "parallelcluster-slurm-demo",
           "head_node_private_ip": "10.1.0.10", "head_node_hostname": "ip-10-1-0-10", "instance_id": "i-0123",
           "compute_node_bootstrap_timeout": 7200}
VENVS = {"node": "/opt/parallelcluster/pyenv/versions/3.11.2/envs/node_virtualenv",
         "cookbook": "/opt/parallelcluster/pyenv/versions/3.11.2/envs/cookbook_virtualenv"}


def ini(text):
    parser = configparser.ConfigParser()
    parser.read_string(text)
    return parser


def test_daemon_configs_hold_the_cookbook_keys_and_the_sandbox_choices():
    files = node_configs.daemon_configs(CLUSTER)
    clustermgtd = ini(files["/etc/parallelcluster/slurm_plugin/parallelcluster_clustermgtd.conf"][0])["clustermgtd"]
    assert dict(clustermgtd) == {
        "cluster_name": "demo", "region": "eu-west-1", "proxy": "NONE",
        "heartbeat_file_path": "/opt/slurm/etc/pcluster/.slurm_plugin/clustermgtd_heartbeat",
        "dynamodb_table": "parallelcluster-slurm-demo", "hosted_zone": "", "dns_domain": "", "use_private_hostname": "false",
        "head_node_private_ip": "10.1.0.10", "head_node_hostname": "ip-10-1-0-10", "node_replacement_timeout": "7200",
        "insufficient_capacity_timeout": "600", "compute_console_logging_enabled": "true",
        "compute_console_logging_max_sample_size": "1", "compute_console_wait_time": "300", "instance_id": "i-0123",
        "loop_time": "60"}
    # The sandbox's (up --clustermgtd-loop-time) when it gives one.
    fast = node_configs.daemon_configs(dict(CLUSTER, clustermgtd_loop_time=10))
    assert ini(fast["/etc/parallelcluster/slurm_plugin/parallelcluster_clustermgtd.conf"][0])["clustermgtd"][
        "loop_time"] == "10"
    resume = ini(files["/etc/parallelcluster/slurm_plugin/parallelcluster_slurm_resume.conf"][0])["slurm_resume"]
    assert resume["job_level_scaling"] == "false" and resume["scaling_strategy"] == "all-or-nothing"
    assert resume["clustermgtd_heartbeat_file_path"] == clustermgtd["heartbeat_file_path"]
    status = ini(files["/etc/parallelcluster/clusterstatusmgtd.conf"][0])["clusterstatusmgtd"]
    assert status["dynamodb_table"] == "parallelcluster-demo"
    assert status["computefleet_status_path"] == "/opt/parallelcluster/shared/computefleet-status.json"
    computemgtd = ini(files["/opt/slurm/etc/pcluster/.slurm_plugin/parallelcluster_computemgtd.conf"][0])["computemgtd"]
    assert computemgtd["dynamodb_table"] == "parallelcluster-slurm-demo"


def test_slurm_programs_are_the_cookbook_wrappers_around_the_node_virtualenv():
    files = node_configs.programs(CLUSTER, VENVS)
    resume, mode = files["/opt/parallelcluster/scripts/slurm/slurm_resume"]
    assert mode == 0o744 and resume.startswith("#!/bin/bash\n")
    assert 'sudo -u root SLURM_RESUME_FILE=${SLURM_RESUME_FILE_TMP} %s/bin/slurm_resume  "$@"' % VENVS["node"] in resume
    assert files["/opt/parallelcluster/scripts/slurm/slurm_suspend"][0].endswith(
        'sudo -u root %s/bin/slurm_suspend "$@"\n' % VENVS["node"])
    recipe = files["/opt/parallelcluster/scripts/update_computefleet_status.sh"][0]
    assert recipe.splitlines()[2:] == [
        "set -xe", "%s/bin/supervisorctl stop clustermgtd" % VENVS["cookbook"],
        "/opt/parallelcluster/scripts/slurm/slurm_fleet_status_manager -cf /opt/parallelcluster/shared/computefleet-status.json",
        "%s/bin/supervisorctl start clustermgtd" % VENVS["cookbook"]]
    assert files["/opt/parallelcluster/scripts/clusterstatusmgtd.py"] == (
        "/run/sandbox/cookbook/clusterstatusmgtd.py", node_configs.LINK)


def test_slurm_conf_includes_the_generated_files_last_and_names_the_programs():
    text = node_configs.slurm_conf("demo")
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert lines[-2:] == ["include slurm_parallelcluster.conf", "include pcluster/custom_slurm_settings_include_file_slurm.conf"]
    assert "ResumeProgram=/opt/parallelcluster/scripts/slurm/slurm_resume" in lines
    assert "ResumeFailProgram=/opt/parallelcluster/scripts/slurm/slurm_suspend" in lines
    assert "SuspendTimeout=120" in lines and "ReturnToService=1" in lines and "PrivateData=cloud" in lines
    assert not [line for line in lines if line.startswith(("SuspendTime=", "ResumeTimeout=", "NodeName", "PartitionName"))]


@pytest.mark.parametrize("node_type, programs", [("HeadNode", ["clustermgtd", "clusterstatusmgtd"]),
                                                 ("ComputeFleet", ["computemgtd"])])
def test_supervisord_runs_the_node_type_s_daemons(node_type, programs):
    files = node_configs.supervisord(node_type, VENVS)
    included = ini(files["/etc/parallelcluster/parallelcluster_supervisord.conf"][0])
    assert [section.split(":", 1)[1] for section in included.sections()] == programs
    assert ini(files["/etc/supervisord.conf"][0])["include"]["files"] == "/etc/parallelcluster/parallelcluster_supervisord.conf"


class FakeTable:
    """The COMPUTE_FLEET item of a table, with DynamoDB's conditional update."""

    class ConditionalCheckFailed(Exception):
        pass

    def __init__(self, status):
        self.data = {"status": status, "lastStatusUpdatedTime": "2026-12-01 10:00:00.000000+00:00"}
        self.writes = []
        self.meta = type("Meta", (), {"client": type("Client", (), {"exceptions": type(
            "Exceptions", (), {"ConditionalCheckFailedException": FakeTable.ConditionalCheckFailed})})})

    def get_item(self, ConsistentRead, Key):  # noqa: N803  pylint: disable=invalid-name,unused-argument
        return {"Item": {"Id": "COMPUTE_FLEET", "Data": dict(self.data)}}

    def update_item(self, **kwargs):
        values = kwargs["ExpressionAttributeValues"]
        if self.data["status"] != values[":current"]:
            raise FakeTable.ConditionalCheckFailed("changed")
        self.data = {"status": values[":s"], "lastStatusUpdatedTime": values[":t"]}
        self.writes.append(values[":s"])
        return {"Attributes": {"Data": dict(self.data)}}


@pytest.mark.parametrize("request_, event, moves", [
    ("STOP_REQUESTED", "STOP_REQUESTED", ["STOPPING", "STOPPED"]),
    ("START_REQUESTED", "START_REQUESTED", ["STARTING", "RUNNING"]),
    ("STOPPING", "STOP_REQUESTED", ["STOPPED"]),
])
def test_clusterstatusmgtd_moves_a_request_on_around_the_update_event(request_, event, moves):
    table = FakeTable(request_)
    events = []
    manager = clusterstatusmgtd.ClusterStatusManager(clusterstatusmgtd.FleetStatusTable(table), events.append)
    manager.manage()
    assert table.writes == moves
    assert [e["status"] for e in events] == [event]
    manager.manage()
    assert table.writes == moves  # nothing left to do


def test_clusterstatusmgtd_keeps_the_status_when_the_update_event_fails():
    table = FakeTable("STOP_REQUESTED")

    def failing(_data):
        raise RuntimeError("slurm_fleet_status_manager failed")

    clusterstatusmgtd.ClusterStatusManager(clusterstatusmgtd.FleetStatusTable(table), failing).manage()
    assert table.writes == ["STOPPING"]  # retried on the next loop, as the daemon does


def test_clusterstatusmgtd_leaves_running_stopped_and_protected_alone():
    for status in ("RUNNING", "STOPPED", "PROTECTED"):
        table = FakeTable(status)
        clusterstatusmgtd.ClusterStatusManager(clusterstatusmgtd.FleetStatusTable(table), lambda data: None).manage()
        assert table.writes == [], status


def test_compute_fleet_status_get_and_protected_update():
    table = clusterstatusmgtd.FleetStatusTable(FakeTable("RUNNING"))
    assert json.loads(compute_fleet_status.get(table)) == {"status": "RUNNING",
                                                           "lastStatusUpdatedTime": "2026-12-01T10:00:00.000Z"}
    compute_fleet_status.update(table, "PROTECTED")
    assert table.get()["status"] == "PROTECTED"
    compute_fleet_status.update(table, "PROTECTED")  # already: nothing to do
    stopped = clusterstatusmgtd.FleetStatusTable(FakeTable("STOPPED"))
    with pytest.raises(RuntimeError, match="from 'STOPPED' to PROTECTED"):
        compute_fleet_status.update(stopped, "PROTECTED")


def test_custom_actions_sequence_of_a_queue_and_of_the_head_node():
    config = {"HeadNode": {"CustomActions": {"OnNodeConfigured": {"Script": "s3://b/head.sh", "Args": [1, "a"]}}},
              "Scheduling": {"SlurmQueues": [{"Name": "q", "CustomActions": {"OnNodeConfigured": {"Sequence": [
                  {"Script": "s3://b/one.sh"}, {"Script": "https://example.com/two.sh", "Args": ["x"]}]}}}]}}
    assert custom_actions.sequence(config, "OnNodeConfigured", None) == [("s3://b/head.sh", ["1", "a"])]
    assert custom_actions.sequence(config, "OnNodeConfigured", "q") == [("s3://b/one.sh", []),
                                                                        ("https://example.com/two.sh", ["x"])]
    assert custom_actions.sequence(config, "OnNodeStart", "q") == []


class FakeS3:
    def __init__(self, objects):
        self.objects = objects

    def download_file(self, bucket, key, path):
        if (bucket, key) not in self.objects:
            raise RuntimeError("An error occurred (404) when calling the HeadObject operation: Not Found")
        pathlib.Path(path).write_text(self.objects[(bucket, key)])


def test_custom_actions_run_in_order_with_their_args_and_the_cfnconfig_variables():
    s3 = FakeS3({("b", "one.sh"): '#!/bin/sh\necho "one $1 $cfn_postinstall $cfn_postinstall_args"\n',
                 ("b", "two.sh"): "#!/bin/sh\necho two\n"})
    out = []
    done = custom_actions.run("OnNodeConfigured", [("s3://b/one.sh", ["x y"]), ("s3://b/two.sh", [])], s3, out.append)
    assert [d["url"] for d in done] == ["s3://b/one.sh", "s3://b/two.sh"]
    text = "".join(out)
    assert 'one x y "s3://b/one.sh" ("x y")' in text and text.index("one x y") < text.index("two")


def test_custom_actions_fail_at_the_first_download_before_running_anything():
    s3 = FakeS3({("b", "one.sh"): "#!/bin/sh\necho ran\n"})
    out = []
    with pytest.raises(custom_actions.ActionFailed, match="Failed to download OnNodeConfigured script 2 s3://b/two.sh"):
        custom_actions.run("OnNodeConfigured", [("s3://b/one.sh", []), ("s3://b/two.sh", [])], s3, out.append)
    assert "ran" not in "".join(out)


def test_custom_actions_fail_with_the_script_s_exit_status():
    s3 = FakeS3({("b", "bad.sh"): "#!/bin/sh\nexit 3\n"})
    with pytest.raises(custom_actions.ActionFailed, match="Failed to execute OnNodeConfigured script 1 s3://b/bad.sh, "
                                                          "return code: 3."):
        custom_actions.run("OnNodeConfigured", [("s3://b/bad.sh", [])], s3, lambda text: None)


@pytest.mark.parametrize("since, uptime", [(30.0, 28.0), (2.5, 1.0), (0.2, 1.0)])
def test_a_node_s_clock_starts_two_seconds_after_its_bootstrap_and_shows_at_most_one_second_and_more_than_none(
        since, uptime):
    machine = 5000.7
    offset = bootstrap.boottime_offset(machine, since)
    assert uptime - 1 < machine + offset <= uptime and machine + offset > 0


@pytest.mark.parametrize("request_to_bootstrap, bootstrap_to_slurmd", [(0.7, 0.5), (0.6, 0.45), (3.0, 9.0)])
def test_slurm_takes_a_node_that_booted_fast_as_booted_after_its_power_up_request(request_to_bootstrap,
                                                                                  bootstrap_to_slurmd):
    # Slurm ignores the registration of a node it powers up whose boot time - now less the uptime slurmd reports
    # (sysinfo's, whole seconds rounded up) - is before the power-up request (whole seconds): the node would wait for
    # ResumeTimeout. The hypervisor boots an instance at least half a second (its poll) after its launch.
    for fraction in (0.0, 0.3, 0.69, 0.95):
        requested = 1796440455.0 + fraction
        registered = requested + request_to_bootstrap + bootstrap_to_slurmd
        machine = 5000.0 + fraction * 3
        offset = bootstrap.boottime_offset(machine, bootstrap_to_slurmd)
        boot_time = math.floor(registered) - math.ceil(machine + offset)
        assert boot_time >= math.floor(requested), (fraction, boot_time, requested)


def fake_scontrol(tmp_path, show=""):
    calls, shown, fake = tmp_path / "calls", tmp_path / "shown", tmp_path / "scontrol"
    shown.write_text(show)
    fake.write_text('#!/bin/sh\necho "$*" >> %s\ncase "$1 $2" in\n  "show hostnames") echo "$3" | tr , "\\n" ;;\n'
                    '  "show nodes") cat %s ;;\nesac\n' % (calls, shown))
    fake.chmod(0o755)
    return dict(os.environ, SANDBOX_SLURM_SCONTROL=str(fake)), calls


def shim(env, *args):
    return subprocess.run([str(ROOT / "sandbox" / "bin" / "scontrol"), *args], capture_output=True, text=True, env=env,
                          check=False)


def test_scontrol_carries_one_instance_id_in_extra(tmp_path):
    env, calls = fake_scontrol(tmp_path)
    assert shim(env, "update", "state=down", "nodename=q-st-cr-1", "nodeaddr=10.0.0.5", "instanceid=i-1").returncode == 0
    assert calls.read_text().splitlines() == ["update state=down nodename=q-st-cr-1 nodeaddr=10.0.0.5 extra=i-1"]


def test_scontrol_pairs_several_instance_ids_with_their_nodes(tmp_path):
    env, calls = fake_scontrol(tmp_path)
    assert shim(env, "update", "nodename=q-st-cr-1,q-st-cr-2", "nodeaddr=10.0.0.5,10.0.0.6", "instanceid=i-1,i-2").returncode == 0
    assert calls.read_text().splitlines() == [
        "show hostnames q-st-cr-1,q-st-cr-2", "update nodename=q-st-cr-1,q-st-cr-2 nodeaddr=10.0.0.5,10.0.0.6",
        "update nodename=q-st-cr-1 extra=i-1", "update nodename=q-st-cr-2 extra=i-2"]
    refused = shim(env, "update", "nodename=q-st-cr-1,q-st-cr-2", "instanceid=i-1,i-2,i-3")
    assert refused.returncode == 1 and "2 node(s) in nodename=q-st-cr-1,q-st-cr-2 but 3 instance id(s)" in refused.stderr


def test_scontrol_shows_extra_as_instance_id(tmp_path):
    env, _calls = fake_scontrol(tmp_path, "NodeName=q-st-cr-1 Arch=x86_64\n   State=IDLE+CLOUD\n   Extra=i-1\n")
    out = shim(env, "show", "nodes", "q-st-cr-1")
    assert out.returncode == 0 and "   InstanceId=i-1\n" in out.stdout and "Extra" not in out.stdout
