"""cinc-client, as the head node's cfn-init config sets call it: the sandbox's stand-in of ParallelCluster's cookbook.

ParallelCluster's head node metadata runs ``cinc-client ... --json-attributes /etc/chef/dna.json
--override-runlist aws-parallelcluster-entrypoints::<entry point>`` for ``init``, ``config`` and
``finalize`` (config set ``default``, with ``fetch_and_run -preinstall`` and ``-postinstall`` between
them) and for ``update`` (config set ``update``, the stack update cfn-hup applies). The cookbook's
recipes cannot run here; the sandbox's stand-in of them (``cookbook/bootstrap.py``, the same the
sandbox's other nodes boot with) does the head node's part at ``init``: Slurm and the node daemons'
configuration, the fleet status, OnNodeStart, slurmctld, OnNodeConfigured, supervisord. ``config`` then
has nothing left to do; ``finalize`` waits, as its recipe does (wait_static_fleet_running), until every
static node is up in Slurm, and fails if the fleet goes PROTECTED. Before it, as the config recipes do, ``init`` writes
``fetch_and_run`` (the custom actions' entry point) and cfn-hup's configuration and starts the
CloudWatch agent (cloudwatch_agent.py), and once the head node
is up it starts cfn-hup's runner (a check a minute, ``SANDBOX_CFN_HUP_SECONDS``). ``update`` runs the
stand-in's update of the head node (the stored config's Slurm and daemon configuration, applied).
The output goes to the ``--logfile`` (``/var/log/chef-client.log``); a failure exits non-zero, which
fails cfn-init's command.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
COOKBOOK = os.environ.get("SANDBOX_COOKBOOK", "/run/sandbox/cookbook")
SCRIPTS_DIR = "/opt/parallelcluster/scripts"
HUP_SECONDS = os.environ.get("SANDBOX_CFN_HUP_SECONDS", "60")
CLOUDFORMATION_URL = "https://cloudformation.{region}.amazonaws.com"
BOOTSTRAP_ERROR = "/var/log/parallelcluster/bootstrap_error_msg"
# The recipe checks every 15 s; the sandbox's nodes boot in seconds.
FLEET_POLL_SECONDS = 2


def write(path: str, text: str, mode: int) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(path, mode)


def config_recipe_files(dna: dict) -> None:
    """What the cookbook's config recipes write that cfn-init's later commands and cfn-hup use."""
    write(f"{SCRIPTS_DIR}/fetch_and_run", f"#!/bin/sh\nexec {sys.executable} {HERE}/fetch_and_run.py \"$@\"\n", 0o755)
    url = CLOUDFORMATION_URL.format(region=dna["region"])
    write("/etc/cfn/cfn-hup.conf", f"[main]\nstack={dna['stack_arn']}\nregion={dna['region']}\nurl={url}\n", 0o400)
    resource = dna.get("launch_template_id", "HeadNodeLaunchTemplate")
    action = (". /etc/parallelcluster/pcluster_cookbook_environment.sh; $CFN_BOOTSTRAP_VIRTUALENV_PATH/cfn-init -v "
              f"--stack {dna['stack_arn']} --resource {resource} --configsets update --region {dna['region']} --url {url}")
    write("/etc/cfn/hooks.d/pcluster-update.conf",
          f"[parallelcluster-update]\ntriggers=post.update\npath=Resources.{resource}.Metadata.AWS::CloudFormation::Init\n"
          f"action=PATH=/usr/local/bin:/bin:/usr/bin:/opt/aws/bin; {action}\nrunas=root\n", 0o400)


def start_cfn_hup() -> None:
    """cfn-hup-runner.sh: cfn-hup --no-daemon, then a pause, for ever (detached from this run)."""
    # /bin/sh is dash, whose functions cannot be named cfn-hup: the stand-in is called by its path.
    runner = (f"while true; do {sys.executable} {HERE}/cfn_hup.py --no-daemon --verbose >> /var/log/cfn-hup-runner.log "
              f"2>&1; sleep {HUP_SECONDS}; done")
    subprocess.Popen(["/bin/sh", "-c", runner], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,  # pylint: disable=consider-using-with
                     stderr=subprocess.DEVNULL, start_new_session=True)


def start_cloudwatch_agent() -> None:
    """The CloudWatch agent, as the cookbook starts it, shipping the head node's logs (detached from this run)."""
    with open("/var/log/cloudwatch-agent.log", "a", encoding="utf-8") as out:
        subprocess.Popen([sys.executable, f"{HERE}/cloudwatch_agent.py"], stdin=subprocess.DEVNULL, stdout=out,  # pylint: disable=consider-using-with
                         stderr=subprocess.STDOUT, start_new_session=True)


def static_nodes_not_ready() -> list:
    """is_fleet_ready.sh: the static nodes not yet idle, allocated, mixed or in maintenance."""
    listed = subprocess.run(["sinfo", "-h", "-o", "%N %t"], capture_output=True, text=True, check=False).stdout
    waiting = []
    for line in listed.splitlines():
        nodelist, _space, state = line.strip().rpartition(" ")
        if not nodelist or state in ("idle", "alloc", "mix", "maint"):
            continue
        names = subprocess.run(["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True,
                               check=False).stdout.split()
        waiting += [name for name in names if "-st-" in name]
    return waiting


def fleet_status(dna: dict) -> str:
    """get-compute-fleet-status.sh's status (the cluster's DynamoDB table, the node's own credentials)."""
    import boto3  # pylint: disable=import-outside-toplevel  # the cookbook virtualenv's

    item = boto3.session.Session(region_name=dna["region"]).client("dynamodb").get_item(
        TableName=dna["ddb_table"], Key={"Id": {"S": "COMPUTE_FLEET"}}).get("Item") or {}
    return ((item.get("Data") or {}).get("M") or {}).get("status", {}).get("S", "")


def wait_static_fleet_running(dna: dict, logfile: str) -> int:
    """The finalize recipe's wait_static_fleet_running: until every static node is up in Slurm, failing when the
    fleet goes PROTECTED (static nodes that keep failing their bootstrap)."""
    with open(logfile, "a", encoding="utf-8") as out:
        while True:
            waiting = static_nodes_not_ready()
            if not waiting:
                out.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} Static fleet capacity is ready\n")
                return 0
            if fleet_status(dna) == "PROTECTED":
                message = ("Cluster has been set to PROTECTED mode due to failures detected in static node "
                           "provisioning")
                out.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {message}\n")
                os.makedirs(os.path.dirname(BOOTSTRAP_ERROR), exist_ok=True)
                with open(BOOTSTRAP_ERROR, "w", encoding="utf-8") as handle:
                    handle.write(message + "\n")
                return 1
            out.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} Waiting for static fleet capacity provisioning: "
                      f"{' '.join(waiting)}\n")
            out.flush()
            time.sleep(FLEET_POLL_SECONDS)


# Chef's default paths (ChefUtils DefaultPaths): what the commands a recipe runs get appended to PATH when it lacks
# them (shell_out's default_env). cfn-hup's update hook calls cinc-client with PATH=/usr/local/bin:/bin:/usr/bin:
# /opt/aws/bin, where no sbin is: without them, no slurmctld.
SANE_PATHS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")


def sane_path(path: str) -> str:
    parts = [part for part in path.split(os.pathsep) if part]
    return os.pathsep.join(parts + [sane for sane in SANE_PATHS if sane not in parts])


def run_stand_in(args: list, logfile: str) -> int:
    with open(logfile, "a", encoding="utf-8") as out:
        out.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} the sandbox's cookbook stand-in: {' '.join(args)}\n")
        out.flush()
        env = dict(os.environ, PATH=sane_path(os.environ.get("PATH", "")))
        return subprocess.run([sys.executable, f"{COOKBOOK}/bootstrap.py", *args], stdin=subprocess.DEVNULL,
                              stdout=out, stderr=subprocess.STDOUT, env=env, check=False).returncode


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="cinc-client", description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--override-runlist", required=True)
    parser.add_argument("--json-attributes", default="/etc/chef/dna.json")
    parser.add_argument("--logfile", default="/var/log/chef-client.log")
    args, _ignored = parser.parse_known_args(argv)
    entry = args.override_runlist.rsplit("::", 1)[-1]
    with open(args.json_attributes, encoding="utf-8") as handle:
        dna = json.load(handle)["cluster"]
    if entry == "init":
        config_recipe_files(dna)
        start_cloudwatch_agent()
        rc = run_stand_in([], args.logfile)
        if rc == 0:
            start_cfn_hup()
        return rc
    if entry == "config":
        with open(args.logfile, "a", encoding="utf-8") as out:
            out.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {entry}: done by the sandbox's cookbook stand-in at init\n")
        return 0
    if entry == "finalize":
        return wait_static_fleet_running(dna, args.logfile)
    if entry == "update":
        return run_stand_in(["--update"], args.logfile)
    print(f"cinc-client: the sandbox has no stand-in for entry point {entry}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
