"""The README's "Deploying a real cluster" steps, followed as written against the sandbox (sandbox/README.md, "Trying
the real-account steps here"): an inventory of one's own outside the checkout made from the example the collection
ships, the values `sandbox.py up` printed, the dynamic inventory switched on, the sandbox-only settings linked in, and
deploy.yml from the checkout. It finds the cluster as the sandbox's own inventory left it: nothing changes but files in
the user's own home, the checks pass, the output fits on one screen."""

import os
import pathlib
import re
import subprocess

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]


def printed_values(up_output):
    """What `up` printed for cluster.yml ("  key: value  # note" lines), pcluster_nodes.yml and the sandbox-only file."""
    lines = [line.split("[sandbox] ", 1)[1] for line in up_output.splitlines() if line.startswith("[sandbox] ")]
    start = next(i for i, line in enumerate(lines) if line.endswith("cluster.yml:"))
    cluster = {}
    for line in lines[start + 1:]:
        if not line.startswith("  "):
            break
        key, value = line.strip().split(": ", 1)
        cluster[key] = yaml.safe_load(value.split("  # ", 1)[0])
    nodes = re.search(r"^pcluster_nodes\.yml: regions \[(\S+)\], clusters \[(\S+)\], remote_user: (\S+) .*"
                      r"ssh_common_args: (.*)$", "\n".join(lines), re.M)
    only = re.search(r"^sandbox-only settings .*: ln -s (\S+) <your inventory>/group_vars/all/$", "\n".join(lines), re.M)
    assert nodes and only, lines
    return cluster, nodes.groups(), only.group(1)


def switched_on(example):
    """pcluster_nodes.yml as the steps say: the "all: {}" line deleted, the "# " before the settings removed."""
    head, _all, settings = example.partition("\nall: {}\n")
    assert _all, example
    lines = [line[2:] if line.startswith("# ") else ("" if line == "#" else line) for line in settings.splitlines()]
    return yaml.safe_load("\n".join(lines))


def test_the_readme_steps_reach_the_verified_cluster(e2e_sandbox, first_deploy, tmp_path):
    cluster, (region, name, user, ssh_args), sandbox_only = printed_values(e2e_sandbox.up_output)
    # The seeding said what it created: network, bucket, FSx ids, the key pair.
    assert cluster["cluster_config_public_subnet_id"] == e2e_sandbox.state["aws"]["public_subnet_id"]
    assert cluster["cluster_config_fsx_lustre_id"].startswith("fs-") and cluster["cluster_config_ssh_key_name"]
    assert e2e_sandbox.state["aws"]["bootstrap_bucket"] in e2e_sandbox.up_output and user == "root"

    # Step 2: an inventory of one's own, outside the checkout, from the example the collection ships.
    inventory = tmp_path / "pcluster-inventory"
    subprocess.run(["cp", "-r", str(ROOT / "inventory"), str(inventory)], check=True)
    # Step 3: the values - every one the steps need has its place in the example's cluster.yml.
    values_file = inventory / "group_vars" / "all" / "cluster.yml"
    values = yaml.safe_load(values_file.read_text())
    assert not set(cluster) - set(values), set(cluster) - set(values)
    values.update(cluster)
    values_file.write_text(yaml.safe_dump(values))
    # Step 4: the dynamic inventory switched on, with the region, cluster, user and ssh options printed.
    nodes = switched_on((inventory / "pcluster_nodes.yml").read_text())
    nodes.update(regions=[region], clusters=[name], remote_user=user, ssh_common_args=ssh_args,
                 cache_connection=str(tmp_path / "inventory-cache"))
    (inventory / "pcluster_nodes.yml").write_text(yaml.safe_dump(nodes))
    # What only the sandbox needs, linked in.
    os.symlink(sandbox_only, inventory / "group_vars" / "all" / "sandbox_only.yml")

    # Step 5: deploy.yml from the checkout with that inventory, as a user whose home is their own.
    home = tmp_path / "home"
    home.mkdir()
    run = e2e_sandbox.playbook("deploy.yml", inventory=str(inventory), env=dict(e2e_sandbox.env, HOME=str(home)))

    assert run.rc == 0, run.output[-6000:]
    # The cluster and its nodes are as the sandbox's own inventory left them (every compute node up to date with the
    # same bundle): what changes is on the controller, in the user's own home - their copy of the cluster config and
    # the packed collection the bundle is made from.
    changed = re.findall(r"^TASK \[(.*?)\] \**\nchanged: ", run.stdout, re.M)
    assert changed == ["hpc.pcluster.cluster_config : Write the configuration (YAML dumper output, mode 0600, on the "
                       "controller)", "hpc.pcluster.node_setup : Pack the collection the controller runs"], run.stdout
    for node in e2e_sandbox.compute_nodes:
        assert re.search(r"^  - %s: up-to-date \(ok=0 changed=0 failed=0," % re.escape(node), run.stdout, re.M)
    written = home / ".hpc-pcluster" / name / "cluster-config.yaml"
    assert yaml.safe_load(written.read_text())["HeadNode"]["Ssh"]["KeyName"] == cluster["cluster_config_ssh_key_name"]
    lines = run.stdout.strip().splitlines()
    assert lines[-1] == "Changed: localhost 1, %s-head 1 (tasks per host)." % name, run.stdout
    assert len(lines) <= 40, run.stdout
    assert re.search(r"^\[%s-head\] \S.*:\n  - \d+ passed, 0 failed," % re.escape(name), run.stdout, re.M), run.stdout
    assert "Reach the head node %s-head: ssh " % name in run.stdout
