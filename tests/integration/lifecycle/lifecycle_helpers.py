"""Helpers of the lifecycle integration tests: playbook runs, throwaway cluster configs, the sandbox's fleet log."""

from __future__ import annotations

import json
import pathlib
import secrets
import subprocess

# sandbox/moto_cluster.py, imported by the tests from here
import moto_cluster  # noqa: F401  pylint: disable=import-error,unused-import

ROOT = pathlib.Path(__file__).resolve().parents[3]

LIFECYCLE_REGION = "us-west-2"
PLAY_HEADER = """
- name: Run hpc.pcluster modules and keep their results
  hosts: localhost
  gather_facts: false
  tasks:
"""
STEP = """
    - name: Step {index} ({module})
      {module}: {args}
      register: step_{index}
      ignore_errors: true
      check_mode: {check}
      diff: {diff}
"""
KEEP = """
    - name: Keep the results
      ansible.builtin.copy:
        content: "{{{{ [{steps}] | to_nice_json }}}}"
        dest: {dest}
        mode: "0600"
      check_mode: false
"""


class Step:
    """One module task of a playbook run."""

    def __init__(self, module, args, check=False, diff=False):
        self.module = module
        self.args = args
        self.check = check
        self.diff = diff


class PlaybookRun:
    """The registered results of every step, and the playbook's output (progress lines, diffs)."""

    def __init__(self, results, proc):
        self.results = results
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self.returncode = proc.returncode

    def __repr__(self):
        return "PlaybookRun(rc=%s)\n%s\n%s" % (self.returncode, json.dumps(self.results, indent=1)[:4000], self.stdout[-4000:])


def run_playbook(sandbox, workdir, steps, timeout=600, extra_args=()):
    """Run ``steps`` (Step objects) as the tasks of one ansible-playbook run (action plugins included)."""
    workdir = pathlib.Path(workdir)
    dest = workdir / ("results-%s.json" % secrets.token_hex(4))
    play = workdir / ("play-%s.yml" % secrets.token_hex(4))
    text = PLAY_HEADER
    for index, step in enumerate(steps):
        text += STEP.format(index=index, module=step.module, args=json.dumps(step.args), check=str(step.check).lower(), diff=str(step.diff).lower())
    text += KEEP.format(steps=", ".join("step_%d" % index for index in range(len(steps))), dest=dest)
    play.write_text(text)
    argv = ["ansible-playbook", "-i", "localhost,", "-c", "local",
            "-e", "ansible_python_interpreter=%s" % (ROOT / ".venv" / "bin" / "python"), *extra_args, str(play)]
    env = dict(sandbox.env, ANSIBLE_NOCOLOR="1", ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"))
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert dest.exists(), "the playbook did not run to its end:\n%s%s" % (proc.stdout, proc.stderr)
    return PlaybookRun(json.loads(dest.read_text()), proc)


def lifecycle_config(ids, max_count=1, instance_type="g5.8xlarge"):
    """A small ParallelCluster 3 config for LIFECYCLE_REGION (no FSx: moto implements none)."""
    return {
        "Region": LIFECYCLE_REGION,
        "Image": {"Os": "ubuntu2204"},
        "HeadNode": {
            "InstanceType": "m5.xlarge",
            "Networking": {"SubnetId": ids["public_subnet_id"], "AdditionalSecurityGroups": [ids["security_group_id"]]},
        },
        "Scheduling": {
            "Scheduler": "slurm",
            "SlurmQueues": [
                {
                    "Name": "compute-gpu",
                    "ComputeResources": [{"Name": "distributed-ml", "InstanceType": instance_type, "MinCount": 1, "MaxCount": max_count}],
                    "Networking": {"SubnetIds": [ids["private_subnet_id"]]},
                }
            ],
        },
    }


def fleet_transitions(sandbox, region, cluster_name):
    """The compute fleet status changes the sandbox made for one cluster registered without nodes
    (sandbox/headless_fleet.py), from its log lines ``<time> <region> <cluster> <from> -> <to>``: [to, ...]."""
    seen = []
    for line in (sandbox.state_dir / "logs" / "fleet.log").read_text().splitlines():
        parts = line.split()
        if len(parts) == 6 and parts[1:3] == [region, cluster_name] and parts[4] == "->":
            seen.append(parts[5])
    return seen
