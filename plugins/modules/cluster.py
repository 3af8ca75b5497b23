#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: cluster
short_description: Create, update or delete an AWS ParallelCluster 3 cluster
version_added: 1.0.0
description:
  - Makes an AWS ParallelCluster cluster match a configuration, with ParallelCluster's own Python API
    (C(pcluster.lib)) on the host that runs the module.
  - O(state=present) creates a missing cluster. An existing cluster whose stored configuration (the S3 object
    behind describe-cluster's C(clusterConfiguration.url)) equals the desired one is left alone. Otherwise an
    update dryrun runs first and its change set is returned; then the cluster is updated.
  - An update that needs the compute fleet stopped fails and says so, unless O(stop_fleet_for_update=true),
    in which case the fleet is stopped, the cluster updated and the fleet started again.
  - A cluster in a C(*_IN_PROGRESS) state is waited for before anything else is done.
  - O(state=absent) deletes the cluster and waits until it is gone. A missing cluster is not an error.
  - When a create, update or delete ends in C(*_FAILED), the task fails with the failure codes and reasons,
    a hint for each failure code, the first failed CloudFormation events and the CloudWatch log streams
    to read.
  - Creating a cluster takes 20 to 40 minutes. When the task runs through the collection's action plugin
    (the normal case in a playbook), a progress line (elapsed time, cluster and stack status, resources
    complete out of the stack's total) is printed at least once a minute while it waits.
author:
  - hpc.pcluster contributors (@hpc-pcluster)
options:
  name:
    description:
      - The cluster name (letters, digits and hyphens, starting with a letter, at most 60 characters).
    type: str
    required: true
    aliases: [cluster_name]
  state:
    description:
      - V(present) creates or updates the cluster, V(absent) deletes it.
    type: str
    choices: [present, absent]
    default: present
  config:
    description:
      - The ParallelCluster 3 cluster configuration as a dictionary (what the YAML file holds).
      - Mutually exclusive with O(config_file). One of them is required with O(state=present).
    type: dict
  config_file:
    description:
      - Path of a ParallelCluster 3 cluster configuration YAML file, on the host that runs the module.
    type: path
  wait:
    description:
      - Wait until the create, update or delete has finished, and fail if it failed.
      - With V(false) the module starts the operation (or the first step of it) and returns; the result's
        RV(pending) says what is still in progress.
    type: bool
    default: true
  wait_timeout:
    description:
      - How many seconds to wait at most, for all the steps of the task together.
      - The CloudFormation operation goes on after a timeout; running the task again keeps waiting.
    type: int
    default: 3600
  rollback_on_failure:
    description:
      - Roll back (delete the resources of) a cluster whose creation failed.
      - Set it to V(false) to keep the head node of a failed creation for debugging.
    type: bool
    default: true
  suppress_validators:
    description:
      - ParallelCluster validators to suppress, as C(ALL) or C(type:<ValidatorName>) entries.
    type: list
    elements: str
  validation_failure_level:
    description:
      - The lowest validation level that makes a create or update fail.
      - ParallelCluster's default is V(ERROR).
    type: str
    choices: [INFO, WARNING, ERROR]
  stop_fleet_for_update:
    description:
      - When an update needs the compute fleet stopped ("All compute nodes must be stopped"), stop the fleet,
        update the cluster and start the fleet again. Running jobs are killed.
      - When V(false), such an update fails with a message saying so.
    type: bool
    default: false
extends_documentation_fragment:
  - hpc.pcluster.aws
attributes:
  check_mode:
    support: full
    description:
      - Runs ParallelCluster's dryrun (full validation, nothing created or changed anywhere) and reports
        what would change, with the update change set.
  diff_mode:
    support: full
    description: Shows the stored and the desired cluster configuration as YAML.
notes:
  - The comparison of stored and desired configuration ignores key order and the difference between
    V(2) and V("2"); ParallelCluster's own update dryrun decides in the end whether anything changes.
  - Creating and updating need Node.js on the host that runs the module (ParallelCluster uses the AWS CDK).
seealso:
  - module: hpc.pcluster.cluster_info
  - module: hpc.pcluster.compute_fleet
  - name: ParallelCluster configuration file reference
    description: The keys of O(config).
    link: https://docs.aws.amazon.com/parallelcluster/latest/ug/cluster-configuration-file-v3.html
"""

EXAMPLES = r"""
- name: Create or update the training cluster from the generated configuration
  hpc.pcluster.cluster:
    name: ml-training-cluster
    config_file: "{{ cluster_config_file }}"
    region: us-east-1
  register: cluster

- name: Show how to reach the head node
  ansible.builtin.debug:
    msg: "ssh ubuntu@{{ cluster.head_node.public_ip_address }}"

- name: Same, from the config dict, stopping the fleet when the update requires it
  hpc.pcluster.cluster:
    name: ml-training-cluster
    config: "{{ cluster_config }}"
    stop_fleet_for_update: true
    suppress_validators:
      - type:InstanceTypeBaseAMICompatibleValidator

- name: What would change (ParallelCluster dryrun, nothing is touched)
  hpc.pcluster.cluster:
    name: ml-training-cluster
    config: "{{ cluster_config }}"
  check_mode: true
  diff: true
  register: plan

- name: Delete the cluster and wait until it is gone
  hpc.pcluster.cluster:
    name: ml-training-cluster
    state: absent
"""

RETURN = r"""
exists:
  description: Whether the cluster exists when the module finished (in check mode, before).
  returned: always
  type: bool
  sample: true
status:
  description: The cluster status (C(clusterStatus)); null when the cluster does not exist.
  returned: always
  type: str
  sample: CREATE_COMPLETE
stack_status:
  description: The CloudFormation stack status.
  returned: always
  type: str
  sample: CREATE_COMPLETE
compute_fleet_status:
  description: The compute fleet status reported by describe-cluster.
  returned: always
  type: str
  sample: RUNNING
version:
  description: The ParallelCluster version of the cluster.
  returned: always
  type: str
  sample: 3.16.1
head_node:
  description: The head node (null while it has no instance).
  returned: always
  type: dict
  contains:
    instance_id:
      description: EC2 instance id.
      type: str
      sample: i-0123456789abcdef0
    instance_type:
      description: EC2 instance type.
      type: str
      sample: m5.8xlarge
    private_ip_address:
      description: Private IPv4 address.
      type: str
      sample: 10.0.0.10
    public_ip_address:
      description: Public IPv4 address, if any.
      type: str
      sample: 203.0.113.10
    state:
      description: EC2 instance state.
      type: str
      sample: running
    launch_time:
      description: Launch time (ISO 8601).
      type: str
      sample: "2026-11-28T23:40:00.000Z"
cluster:
  description:
    - The full C(pcluster describe-cluster) answer in ParallelCluster's camelCase keys; empty when the
      cluster does not exist.
  returned: always
  type: dict
validation_messages:
  description: ParallelCluster's validation messages of the create or update (or its dryrun), by level.
  returned: always
  type: dict
  contains:
    ERROR:
      description: Messages of level ERROR (each with id, type, level, message).
      type: list
      elements: dict
    WARNING:
      description: Messages of level WARNING.
      type: list
      elements: dict
    INFO:
      description: Messages of level INFO.
      type: list
      elements: dict
change_set:
  description: The update's change set from ParallelCluster (parameter, currentValue, requestedValue).
  returned: always
  type: list
  elements: dict
  sample:
    - parameter: Scheduling.SlurmQueues[compute-gpu].ComputeResources[distributed-ml].MaxCount
      currentValue: "2"
      requestedValue: "4"
config_changes:
  description: The differences between the stored and the desired configuration, one line each.
  returned: always
  type: list
  elements: str
  sample: ["Scheduling.SlurmQueues[0].ComputeResources[0].MaxCount: 2 -> 4"]
stored_config_error:
  description:
    - Why the stored configuration could not be read (the update dryrun then decides alone whether anything
      changes).
  returned: when the stored configuration of an existing cluster could not be read
  type: str
  sample: "could not download the stored config: HTTP Error 403: Forbidden"
actions:
  description: What the module did (or, in check mode, would do), in order.
  returned: always
  type: list
  elements: str
  sample: ["dryrun update", "stop compute fleet", "update cluster", "start compute fleet"]
fleet_stopped_for_update:
  description: Whether the compute fleet was stopped for the update (it is started again when waiting).
  returned: always
  type: bool
  sample: false
pending:
  description:
    - With O(wait=false), what is still in progress, as the goal to wait for (C(stable), C(deleted),
      C(fleet:STOPPED), C(fleet:RUNNING)) and whether the module must run again afterwards to finish the task.
  returned: when something is still in progress
  type: dict
  sample: {goal: stable, rerun: false}
failure:
  description: The failure report of a C(*_FAILED) cluster.
  returned: on failure of a create, update or delete
  type: dict
  contains:
    failures:
      description: failure_code, failure_reason and a hint for each failure.
      type: list
      elements: dict
    failed_events:
      description: The first failed CloudFormation events, oldest first.
      type: list
      elements: dict
    log_group:
      description: The cluster's CloudWatch log group.
      type: str
    log_streams:
      description: The log streams to read first.
      type: list
      elements: str
waited:
  description: Seconds spent waiting.
  returned: always
  type: float
  sample: 1520.4
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hpc.pcluster.plugins.module_utils.aws import aws_argument_spec, setup_aws
from ansible_collections.hpc.pcluster.plugins.module_utils.config_file import (
    config_differences,
    config_yaml,
    fetch_stored_config,
    load_config_file,
    normalise_config,
)
from ansible_collections.hpc.pcluster.plugins.module_utils.plain_data import to_plain
from ansible_collections.hpc.pcluster.plugins.module_utils.pcluster_api import (
    CLUSTER_IN_PROGRESS,
    ApiPoller,
    PclusterApiError,
    WaitTimeout,
    cluster_summary,
    explain_error,
    fail_on_error,
    failure_report,
    fleet_plan,
    group_validation_messages,
    module_api,
    timeout_message,
    wait_until,
)


def argument_spec():
    spec = aws_argument_spec()
    spec.update(
        name=dict(type="str", required=True, aliases=["cluster_name"]),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        config=dict(type="dict"),
        config_file=dict(type="path"),
        wait=dict(type="bool", default=True),
        wait_timeout=dict(type="int", default=3600),
        rollback_on_failure=dict(type="bool", default=True),
        suppress_validators=dict(type="list", elements="str"),
        validation_failure_level=dict(type="str", choices=["INFO", "WARNING", "ERROR"]),
        stop_fleet_for_update=dict(type="bool", default=False),
    )
    return spec


class Stop(Exception):
    """Ends the run early with the result as it stands (used for wait=false steps)."""


class ClusterModule:
    """The state machine of one run of hpc.pcluster.cluster."""

    def __init__(self, module, api, settings):
        self.module = module
        self.api = api
        self.settings = settings
        self.params = module.params
        self.name = module.params["name"]
        self.started = api.clock()
        self.waited = 0.0
        self.cluster = None
        self.result = dict(
            changed=False,
            validation_messages=group_validation_messages([]),
            change_set=[],
            config_changes=[],
            actions=[],
            fleet_stopped_for_update=False,
        )

    # ----- helpers

    def act(self, action):
        self.result["actions"].append(action)

    def remaining(self):
        return self.params["wait_timeout"] - (self.api.clock() - self.started)

    def describe(self):
        self.cluster = self.api.describe_cluster(self.name)
        return self.cluster

    def status(self):
        return (self.cluster or {}).get("clusterStatus")

    def finish(self, **extra):
        result = dict(self.result)
        result.update(cluster_summary(self.cluster))
        result["waited"] = round(self.waited, 1)
        result.update(extra)
        return result

    def fail(self, msg, **extra):
        result = self.finish(**extra)
        result.pop("msg", None)
        self.module.fail_json(msg=msg, **result)

    def fail_report(self, what):
        report = failure_report(self.api, self.name, self.cluster)
        message = report.pop("message")
        if what:
            message = "%s\n%s" % (what, message)
        self.fail(message, failure=report)

    def record_validation(self, messages):
        if isinstance(messages, dict):
            messages = [msg for level in messages.values() for msg in level]
        grouped = group_validation_messages(messages)
        self.result["validation_messages"] = grouped
        for msg in grouped.get("WARNING", []):
            self.module.warn("ParallelCluster validation warning (%s): %s" % (msg.get("type") or msg.get("id"), msg.get("message")))

    def wait_for(self, goal, rerun=False):
        """Wait for ``goal``; with wait=false record it as pending and stop the run."""
        if not self.params["wait"]:
            self.result["pending"] = {"goal": goal, "rerun": rerun}
            if not goal.startswith("fleet:"):
                self.describe()
            raise Stop()
        poller = ApiPoller(self.api, self.name, fleet=goal.startswith("fleet:"), aws_settings=self.settings)
        start = self.api.clock()
        try:
            snapshot = wait_until(poller, goal, max(self.remaining(), 0), sleep=self.api.sleep, clock=self.api.clock)
        except WaitTimeout as exc:
            self.waited += self.api.clock() - start
            last = exc.snapshot
            if "cluster" in last:
                self.cluster = last.get("cluster")
            if self.cluster is not None and not goal.startswith("fleet:"):
                last["progress"] = poller.stack_progress(self.cluster)
            self.fail(timeout_message(self.name, goal, self.params["wait_timeout"], last))
        self.waited += self.api.clock() - start
        self.cluster = snapshot.get("cluster")
        return snapshot

    def desired_config(self):
        if self.params["config"] is not None:
            return to_plain(self.params["config"])
        path = self.params["config_file"]
        config, problems = load_config_file(path)
        if problems or config is None:
            reasons = "; ".join("%s. Fix: %s" % (item["message"].rstrip("."), item["fix"]) for item in problems) or "the file is empty"
            raise PclusterApiError(reasons if path in reasons else "config_file %s: %s" % (path, reasons),
                                   code=400, error_type="ConfigFile")
        return config

    def diff(self, before, after):
        if self.module._diff:
            self.result["diff"] = {
                "before": config_yaml(before),
                "after": config_yaml(after),
                "before_header": "%s (stored configuration)" % self.name,
                "after_header": "%s (desired configuration)" % self.name,
            }

    # ----- present

    def present(self):
        desired = self.desired_config()
        self.describe()
        if self.status() in CLUSTER_IN_PROGRESS:
            self.settle()
        if self.cluster is None:
            return self.create(desired)
        if self.status() in ("CREATE_FAILED", "DELETE_FAILED"):
            self.fail_report("Cluster %s cannot be brought to the desired configuration." % self.name)
        if self.status() == "UPDATE_FAILED":
            self.module.warn("Cluster %s is UPDATE_FAILED (its last update was rolled back); updating it again." % self.name)
        return self.update(desired)

    def settle(self):
        """A create/update/delete is already running: wait for it (not in check mode)."""
        status = self.status()
        if self.module.check_mode:
            self.module.warn("Cluster %s is %s; check mode does not wait, so the plan below may change." % (self.name, status))
            raise Stop()
        self.act("wait for %s" % status)
        self.wait_for("deleted" if status == "DELETE_IN_PROGRESS" else "stable", rerun=True)

    def create(self, desired):
        self.diff(None, desired)
        self.result["config_changes"] = ["<cluster>: created"]
        if self.module.check_mode:
            self.act("dryrun create")
            dry = self.api.dryrun_create(
                self.name, desired, self.params["suppress_validators"], self.params["validation_failure_level"]
            )
            self.record_validation(dry["validation_messages"])
            if not dry["success"]:
                self.fail("ParallelCluster would reject the creation of %s: %s" % (self.name, explain_error(dry["error"], self.settings)))
            self.act("create cluster")
            self.result["changed"] = True
            self.result["msg"] = "cluster %s would be created (dryrun passed)" % self.name
            return
        self.act("create cluster")
        try:
            response = self.api.create_cluster(
                self.name,
                desired,
                self.params["suppress_validators"],
                self.params["validation_failure_level"],
                self.params["rollback_on_failure"],
            )
            self.record_validation(response.get("validationMessages"))
        except PclusterApiError as error:
            # A create retried after throttling may find the stack it started itself.
            if error.code != 409 or self.describe() is None:
                self.record_validation(error.validation_messages)
                raise
        self.result["changed"] = True
        self.wait_for("stable")
        self.check_outcome("creation")

    def check_outcome(self, what):
        if self.cluster is None:
            self.fail("Cluster %s disappeared during its %s (deleted by someone else, or a rollback removed it)." % (self.name, what))
        if str(self.status()).endswith("_FAILED"):
            self.fail_report("The %s of cluster %s failed." % (what, self.name))

    def update(self, desired):
        stored, reason = fetch_stored_config(self.cluster)
        if stored is not None:
            before, after = normalise_config(stored), normalise_config(desired)
            if before == after:
                self.result["msg"] = "cluster %s already has the desired configuration" % self.name
                return
            self.result["config_changes"] = config_differences(before, after)
        else:
            self.result["stored_config_error"] = reason
        self.diff(stored, desired)

        self.act("dryrun update")
        dry = self.dryrun_update(desired)
        if dry["no_change"]:
            self.result["msg"] = "ParallelCluster finds no change to apply to %s" % self.name
            self.result["config_changes"] = []
            self.result.pop("diff", None)
            return
        if not dry["success"]:
            error = dry["error"]
            if not error.needs_fleet_stopped:
                self.fail("ParallelCluster rejects the update of %s: %s" % (self.name, explain_error(error, self.settings)), **error.to_result())
            if not self.params["stop_fleet_for_update"]:
                self.fail(
                    "The update of cluster %s needs the compute fleet stopped (All compute nodes must be stopped):\n%s\n"
                    "Set stop_fleet_for_update: true to stop the fleet, update and start it again (running jobs are "
                    "killed), or stop it first with hpc.pcluster.compute_fleet state=stopped."
                    % (self.name, explain_error(error, self.settings)),
                    **error.to_result()
                )
            self.result["change_set"] = error.change_set
            self.stop_fleet()
            if self.module.check_mode:
                self.act("update cluster")
                self.act("start compute fleet")
                self.result["changed"] = True
                self.result["msg"] = "cluster %s would be updated with its compute fleet stopped" % self.name
                return
            self.act("dryrun update")
            dry = self.dryrun_update(desired)
            if not dry["success"] and not dry["no_change"]:
                self.fail("ParallelCluster rejects the update of %s: %s" % (self.name, explain_error(dry["error"], self.settings)), **dry["error"].to_result())
        self.act("update cluster")
        self.result["changed"] = True
        if self.module.check_mode:
            self.result["msg"] = "cluster %s would be updated (dryrun passed)" % self.name
            return
        response = self.api.update_cluster(
            self.name, desired, self.params["suppress_validators"], self.params["validation_failure_level"]
        )
        self.record_validation(response.get("validationMessages"))
        self.result["change_set"] = response.get("changeSet") or self.result["change_set"]
        self.wait_for("stable")
        self.check_outcome("update")
        if self.result["fleet_stopped_for_update"]:
            self.start_fleet()

    def dryrun_update(self, desired):
        dry = self.api.dryrun_update(self.name, desired, self.params["suppress_validators"], self.params["validation_failure_level"])
        self.record_validation(dry["validation_messages"])
        self.result["change_set"] = dry["change_set"]
        return dry

    def stop_fleet(self):
        fleet = self.api.describe_compute_fleet(self.name)
        plan = fleet_plan("stopped", fleet.get("status"))
        self.result["fleet_stopped_for_update"] = True
        if plan["request"] or not plan["reached"]:
            self.act("stop compute fleet")
        if self.module.check_mode:
            return
        if plan["request"]:
            self.api.update_compute_fleet(self.name, plan["request"])
            self.result["changed"] = True
        if not plan["reached"]:
            self.wait_for(plan["goal"], rerun=True)

    def start_fleet(self):
        self.act("start compute fleet")
        fleet = self.api.describe_compute_fleet(self.name)
        plan = fleet_plan("started", fleet.get("status"))
        if plan["request"]:
            self.api.update_compute_fleet(self.name, plan["request"])
        if not plan["reached"]:
            self.wait_for(plan["goal"])
            self.describe()

    # ----- absent

    def absent(self):
        self.describe()
        if self.cluster is None:
            self.result["msg"] = "cluster %s does not exist" % self.name
            return
        if self.status() == "DELETE_IN_PROGRESS":
            if self.module.check_mode:
                return
            self.act("wait for DELETE_IN_PROGRESS")
            self.wait_for("deleted")
            self.check_deleted()
            return
        stored, _reason = fetch_stored_config(self.cluster)
        self.diff(stored, None)
        if self.status() in CLUSTER_IN_PROGRESS and not self.module.check_mode:
            self.act("wait for %s" % self.status())
            self.wait_for("stable", rerun=True)
            if self.cluster is None:
                return
        self.act("delete cluster")
        self.result["changed"] = True
        if self.module.check_mode:
            self.result["msg"] = "cluster %s would be deleted" % self.name
            return
        try:
            self.api.delete_cluster(self.name)
        except PclusterApiError as error:
            # pcluster reads the stack back after deleting it; a stack already gone is a finished delete.
            if not error.not_found:
                raise
        self.wait_for("deleted")
        self.check_deleted()

    def check_deleted(self):
        if self.cluster is not None and self.status() == "DELETE_FAILED":
            self.fail_report("The deletion of cluster %s failed." % self.name)

    def run(self):
        try:
            if self.params["state"] == "present":
                self.present()
            else:
                self.absent()
        except Stop:
            pass
        return self.finish()


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        mutually_exclusive=[("config", "config_file")],
        required_if=[("state", "present", ("config", "config_file"), True)],
        supports_check_mode=True,
    )
    if module.params["wait_timeout"] <= 0:
        module.fail_json(msg="wait_timeout must be a positive number of seconds, got %d." % module.params["wait_timeout"])
    settings = setup_aws(module)
    api = module_api(module, settings)
    runner = ClusterModule(module, api, settings)
    try:
        result = runner.run()
    except PclusterApiError as error:
        fail_on_error(module, error, settings, prefix="Cluster %s (state=%s)" % (module.params["name"], module.params["state"]), **runner.finish())
    module.exit_json(**result)


if __name__ == "__main__":
    main()
