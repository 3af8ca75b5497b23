"""The CloudWatch agent's part on a head node: its log files to the cluster's log group, as ParallelCluster
configures the agent (cookbook ``cloudwatch_agent_config.json``, ``write_cloudwatch_agent_json.py``).

Each file that exists goes to log stream ``<short host name>.<instance id>.<name>`` of the log group
dna.json names (``log_group_name``, when ``cw_logging_enabled``), new lines every second (PutLogEvents
with the node's own credentials). Started by the sandbox's cinc-client at ``init`` (where the cookbook
starts the agent), it runs until the node stops.

    python cloudwatch_agent.py        (reads /etc/chef/dna.json)
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time

import cfn_init

# log stream name -> file, a head node's (the agent's configuration, node role HeadNode).
HEAD_NODE_LOGS = {
    "cfn-init": "/var/log/cfn-init.log", "cfn-hup": "/var/log/cfn-hup.log", "chef-client": "/var/log/chef-client.log",
    "bootstrap_error_msg": "/var/log/parallelcluster/bootstrap_error_msg", "cloud-init": "/var/log/cloud-init.log",
    "cloud-init-output": "/var/log/cloud-init-output.log", "supervisord": "/var/log/supervisord.log",
    "clustermgtd": "/var/log/parallelcluster/clustermgtd", "clusterstatusmgtd": "/var/log/parallelcluster/clusterstatusmgtd",
    "slurm_resume": "/var/log/parallelcluster/slurm_resume.log", "slurm_suspend": "/var/log/parallelcluster/slurm_suspend.log",
    "slurmctld": "/var/log/slurmctld.log",
}
INTERVAL = 1.0


class Shipper:
    def __init__(self, logs, group: str, prefix: str, files: dict):
        self.logs, self.group, self.prefix, self.files = logs, group, prefix, files
        self.offsets: dict = {}
        self.created: set = set()

    def ship_once(self) -> None:
        for name, path in self.files.items():
            try:
                size = os.path.getsize(path)
            except OSError:
                continue
            start = self.offsets.get(name, 0)
            if size < start:  # rotated or truncated
                start = 0
            if size == start:
                continue
            with open(path, "rb") as handle:
                handle.seek(start)
                chunk = handle.read(size - start)
            complete = chunk.rsplit(b"\n", 1)[0] + b"\n" if b"\n" in chunk else b""
            if not complete.strip():
                self.offsets[name] = start + len(complete)
                continue
            lines = [line for line in complete.decode(errors="replace").splitlines() if line.strip()]
            if name not in self.created:  # a stream appears with its first events, as the agent creates it
                self._create(name)
                self.created.add(name)
            now = int(time.time() * 1000)
            for first in range(0, len(lines), 1000):
                self.logs.put_log_events(logGroupName=self.group, logStreamName=f"{self.prefix}.{name}",
                                         logEvents=[{"timestamp": now, "message": line}
                                                    for line in lines[first:first + 1000]])
            self.offsets[name] = start + len(complete)

    def _create(self, name: str) -> None:
        try:
            self.logs.create_log_stream(logGroupName=self.group, logStreamName=f"{self.prefix}.{name}")
        except self.logs.exceptions.ResourceAlreadyExistsException:
            pass


def main() -> int:
    import boto3  # pylint: disable=import-outside-toplevel  # the cookbook virtualenv's; the node's own credentials

    with open("/etc/chef/dna.json", encoding="utf-8") as handle:
        dna = json.load(handle)["cluster"]
    if not dna.get("log_group_name") or str(dna.get("cw_logging_enabled", "true")).lower() != "true":
        return 0
    logs = boto3.session.Session(region_name=dna["region"]).client("logs")
    shipper = Shipper(logs, dna["log_group_name"], f"{socket.gethostname().split('.')[0]}.{cfn_init.instance_id()}",
                      HEAD_NODE_LOGS)
    while True:
        try:
            shipper.ship_once()
        except Exception as exc:  # pylint: disable=broad-except  # the agent retries, as the real one does
            print(f"cloudwatch agent: {exc}", file=sys.stderr, flush=True)
        time.sleep(INTERVAL)


if __name__ == "__main__":
    sys.exit(main())
