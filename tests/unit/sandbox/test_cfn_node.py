"""The sandbox's cfn-init and the head node user data it is called from (sandbox/cfn_node, stack_head_node.py), on
ParallelCluster's own head node launch template (the template pcluster uploads for the sandbox's config)."""

from __future__ import annotations

import base64
import json
import pathlib
import re

import pytest

import cfn_init
import stack_head_node

ROOT = pathlib.Path(__file__).resolve().parents[3]
TEMPLATE = ROOT / "tests" / "integration" / "moto_cfn" / "fixtures" / "sandbox" / "create.json"
STACK = "arn:aws:cloudformation:eu-west-1:123456789012:stack/demo/0a1b"


def head_node_template() -> dict:
    return json.loads(TEMPLATE.read_text())["template"]["Resources"]["HeadNodeLaunchTemplate"]


def user_data() -> str:
    """The launch template's user data as EC2 hands it to the instance (base64), its Fn::Sub resolved with values of
    the sandbox's kind ($${!name} stays a shell variable)."""
    text, _variables = head_node_template()["Properties"]["LaunchTemplateData"]["UserData"]["Fn::Base64"]["Fn::Sub"]
    values = {"AWS::StackName": STACK, "AWS::Region": "eu-west-1", "CloudFormationUrl": "https://cloudformation.x"}
    text = re.sub(r"\$\{([A-Za-z:]+)\}", lambda m: values.get(m.group(1), "NONE"), text)
    return base64.b64encode(text.replace("${!", "${").encode()).decode()


def test_the_head_node_script_is_the_user_data_s_shell_part_and_names_its_stack():
    script = stack_head_node.head_node_script(user_data())
    assert script.startswith("#!/bin/bash")
    assert "cfn-signal --exit-code=0" in script and "error_exit" in script
    assert stack_head_node.stack_of(script) == {"stack": STACK, "resource": "HeadNodeLaunchTemplate",
                                                "region": "eu-west-1"}


def test_a_compute_node_s_user_data_is_not_a_head_node_script():
    compute = base64.b64encode(b"Content-Type: text/x-shellscript\n\n#!/bin/bash\n/bootstrap.sh\n").decode()
    assert stack_head_node.head_node_script(compute) is None
    assert stack_head_node.head_node_script(None) is None


def test_config_sets_expand_in_parallelcluster_s_order():
    init = head_node_template()["Metadata"]["AWS::CloudFormation::Init"]
    assert cfn_init.configs_of(init, ["deployFiles"]) == ["deployConfigFiles"]
    assert cfn_init.configs_of(init, ["default"]) == [
        "chefPrepEnv", "shellRunPreInstall", "chefConfig", "shellRunPostInstall", "chefFinalize"]
    assert cfn_init.configs_of(init, ["update"]) == ["deployConfigFiles", "chefUpdate"]
    with pytest.raises(cfn_init.CfnInitFailed, match="configSet nope is not defined"):
        cfn_init.configs_of(init, ["nope"])


@pytest.fixture(name="logs")
def fixture_logs(tmp_path, monkeypatch):
    monkeypatch.setattr(cfn_init, "CFN_INIT_LOG", str(tmp_path / "cfn-init.log"))
    monkeypatch.setattr(cfn_init, "CFN_INIT_COMMAND_LOG", str(tmp_path / "cfn-init-cmd.log"))
    return tmp_path


def test_apply_writes_files_then_runs_commands_in_name_order(tmp_path, logs):
    root = tmp_path / "root"
    order = tmp_path / "order"
    init = {"configSets": {"default": ["one", {"ConfigSet": "more"}], "more": ["two"]},
            "one": {"files": {"/etc/chef/dna.json": {"content": {"cluster": {"name": "demo"}}, "mode": "000644"},
                              "/etc/x.bin": {"content": base64.b64encode(b"\x00raw").decode(), "encoding": "base64",
                                             "mode": "000400"}},
                    "commands": {"b": {"command": f"echo b >> {order}"}, "a": {"command": ["sh", "-c", f"echo a >> {order}"]},
                                 "c": {"command": f"echo c >> {order}", "test": "false"}}},
            "two": {"commands": {"z": {"command": "exit 3", "ignoreErrors": "true"}, "y": {"command": f"echo y >> {order}"}}}}
    cfn_init.apply(init, ["default"], str(root))
    assert json.loads((root / "etc/chef/dna.json").read_text()) == {"cluster": {"name": "demo"}}
    assert (root / "etc/x.bin").read_bytes() == b"\x00raw" and (root / "etc/x.bin").stat().st_mode & 0o777 == 0o400
    assert order.read_text().split() == ["a", "b", "y"]  # c's test failed; z failed and was ignored
    assert "ConfigSets completed: default" in (logs / "cfn-init.log").read_text()


def test_a_failing_command_fails_cfn_init_and_later_commands_do_not_run(tmp_path, logs):
    marker = tmp_path / "ran"
    init = {"config": {"commands": {"01": {"command": "echo broken >&2; exit 1"}, "02": {"command": f"touch {marker}"}}}}
    with pytest.raises(cfn_init.CfnInitFailed, match="Command 01 failed"):
        cfn_init.apply(init, ["default"], str(tmp_path))
    assert not marker.exists()
    assert "broken" in (logs / "cfn-init-cmd.log").read_text()


def test_cinc_client_adds_the_sbin_directories_chef_adds_to_the_update_hook_s_path():
    import cinc_client  # pylint: disable=import-outside-toplevel

    hook_path = "/usr/local/bin:/bin:/usr/bin:/opt/aws/bin"  # cfn-hup's pcluster-update hook
    assert cinc_client.sane_path(hook_path) == hook_path + ":/usr/local/sbin:/usr/sbin:/sbin"
    assert cinc_client.sane_path("/usr/sbin:/usr/bin") == "/usr/sbin:/usr/bin:/usr/local/sbin:/usr/local/bin:/sbin:/bin"
