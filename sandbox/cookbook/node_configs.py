"""The files ParallelCluster's cookbook writes on a node for Slurm and the node daemons, for one cluster.

Keys and values come from the cookbook's templates (``slurm.conf.erb``, ``gres.conf.erb``,
``parallelcluster_clustermgtd.conf.erb``, ``parallelcluster_slurm_resume.conf.erb``,
``parallelcluster_slurm_suspend.conf.erb``, ``parallelcluster_slurm_fleet_status_manager.conf.erb``,
``parallelcluster_computemgtd.conf.erb``, ``clusterstatusmgtd.conf.erb``, ``resume_program.erb``,
``suspend_program.erb``, ``fleet_status_manager_program.erb``, the fleet status scripts, ``supervisord.conf``
and ``parallelcluster_supervisord.conf.erb``) and its attributes (paths, the admin user). Where the sandbox
differs, the value says so in a comment of the file and sandbox/README.md says why (``SANDBOX`` below).

Each function returns ``{path on the node: (text, mode)}``; mode ``LINK`` makes the path a symbolic link to text.
"""

from __future__ import annotations

import json

import slurm_config

SLURM_ETC = "/opt/slurm/etc"
PLUGIN_DIR = "/etc/parallelcluster/slurm_plugin"
SHARED_DIR = "/opt/parallelcluster/shared"
SCRIPTS_DIR = "/opt/parallelcluster/scripts"
HEARTBEAT = f"{SLURM_ETC}/pcluster/.slurm_plugin/clustermgtd_heartbeat"
COMPUTEMGTD_CONF = f"{SLURM_ETC}/pcluster/.slurm_plugin/parallelcluster_computemgtd.conf"
FLEET_STATUS_FILE = f"{SHARED_DIR}/computefleet-status.json"
LOG_DIR = "/var/log/parallelcluster"
LINK = "symlink"
# Where the nodes see the sandbox's log directory (rootfs.NODE_SANDBOX_DIR/logs).
SANDBOX_LOGS = "/run/sandbox/logs"
# Where the nodes see the sandbox's stand-ins for the cookbook's node-side files (this directory).
SANDBOX_COOKBOOK = "/run/sandbox/cookbook"

# The settings of the sandbox the node runs in (hypervisor.py writes them before the node's user data runs).
SETTINGS_FILE = "/etc/sandbox/settings.json"

# The sandbox's own settings, each a ParallelCluster option or a difference said in sandbox/README.md.
SANDBOX = {
    # The nodes have one user, root: ParallelCluster's cluster admin user (pcluster-admin) and SlurmUser (slurm).
    "admin_user": "root",
    # clustermgtd and clusterstatusmgtd loop every 60 s by default; loop_time is their option. clustermgtd's is
    # the sandbox's (up --clustermgtd-loop-time, SETTINGS_FILE), 60 s when it says none.
    "clustermgtd_loop_time": 60,
    "clusterstatusmgtd_loop_time": 5,
    # Slurm 22.05 passes no SLURM_RESUME_FILE (Slurm >= 23.02 does), which job-level scaling needs.
    "job_level_scaling": False,
}


def sandbox_settings() -> dict:
    """SETTINGS_FILE's settings ({} without it)."""
    try:
        with open(SETTINGS_FILE, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        return {}


def _ini(section: str, values: dict, comment: str = "") -> str:
    lines = [f"# {line}" for line in comment.splitlines()] + [f"[{section}]"]
    return "\n".join(lines + [f"{key} = {value}" for key, value in values.items()]) + "\n"


def slurm_conf(cluster_name: str) -> str:
    """/opt/slurm/etc/slurm.conf: the cookbook's slurm.conf.erb; the sandbox's differences marked."""
    return f"""# slurm.conf of a ParallelCluster head node (the cookbook's slurm.conf.erb), written by the sandbox.
# Lines marked "sandbox" differ from ParallelCluster's; sandbox/README.md says why.
#
# CLUSTER SETTINGS
ClusterName={cluster_name}
SlurmUser=root
# sandbox: ParallelCluster runs slurmctld as its user slurm; the nodes have root only.
SlurmctldPort=6820-6829
SlurmdPort=6818
AuthType=auth/munge
StateSaveLocation=/var/spool/slurm.state
SlurmdSpoolDir=/var/spool/slurmd
SwitchType=switch/none
SlurmctldPidFile=/var/run/slurmctld.pid
SlurmdPidFile=/var/run/slurmd.pid
ReconfigFlags=KeepPartState
#
# CLOUD CONFIGS OPTIONS
SlurmctldParameters=idle_on_node_suspend,power_save_min_interval=30,node_reg_mem_percent=75
TreeWidth=65533
SuspendProgram={SCRIPTS_DIR}/slurm/slurm_suspend
ResumeProgram={SCRIPTS_DIR}/slurm/slurm_resume
ResumeFailProgram={SCRIPTS_DIR}/slurm/slurm_suspend
RebootProgram=/sbin/reboot
SuspendTimeout=120
PrivateData=cloud
ResumeRate=0
SuspendRate=0
#
# PROLOG AND EPILOG
# sandbox: no Prolog/Epilog directories (ParallelCluster's are empty too until a user adds scripts).
SchedulerParameters=nohold_on_prolog_fail
BatchStartTimeout=180
#
# TIMERS
SlurmctldTimeout=300
SlurmdTimeout=180
UnkillableStepTimeout=180
InactiveLimit=0
MinJobAge=300
KillWait=30
Waittime=0
MessageTimeout=60
AuthInfo=cred_expire=70
#
# SCHEDULING, JOB, AND NODE SETTINGS
EnforcePartLimits=ALL
SchedulerType=sched/backfill
# sandbox: no cgroups in the nodes (ParallelCluster: proctrack/cgroup, task/affinity,task/cgroup).
ProctrackType=proctrack/linuxproc
MpiDefault=none
ReturnToService=1
TaskPlugin=task/none
# sandbox: the nodes' CPUs and memory are this machine's, not the instance type's that slurm.conf gives them.
SlurmdParameters=config_overrides
PlugStackConfig={SLURM_ETC}/plugstack.conf
#
# TRES AND GPU CONFIG OPTIONS
GresTypes=gpu
SelectType=select/cons_tres
#
# LOGGING
SlurmctldDebug=verbose
# sandbox: the logs go to the sandbox's log directory (ParallelCluster: /var/log/slurmctld.log, /var/log/slurmd.log).
SlurmctldLogFile={SANDBOX_LOGS}/slurmctld.log
SlurmdDebug=info
SlurmdLogFile={SANDBOX_LOGS}/slurmd-%n.log
DebugFlags=Power
JobCompType=jobcomp/none
#
# WARNING!!! The slurm_parallelcluster.conf file included below can be updated by the pcluster process.
# Please do not edit it.
include slurm_parallelcluster.conf

# WARNING!!! The custom_slurm_settings_include_file_slurm.conf file included below can be updated by the pcluster process.
# Please do not edit it.
include pcluster/custom_slurm_settings_include_file_slurm.conf
"""


GRES_CONF = ("# WARNING!!! The slurm_parallelcluster_gres.conf file included below can be updated by the pcluster process.\n"
             "# Please do not edit it.\ninclude slurm_parallelcluster_gres.conf\n")


def slurm_files(cluster: dict, config: dict, instance_types: dict) -> dict:
    """Everything under /opt/slurm/etc: slurm.conf, gres.conf and the generators' files."""
    head = (cluster["head_node_hostname"], cluster["head_node_private_ip"])
    timeout = ((config.get("DevSettings") or {}).get("Timeouts") or {}).get(
        "ComputeNodeBootstrapTimeout") or slurm_config.DEFAULT_BOOTSTRAP_TIMEOUT
    generated = slurm_config.generate(config, instance_types, head, SLURM_ETC, bootstrap_timeout=timeout)
    files = {f"{SLURM_ETC}/{name}": (text, 0o644) for name, text in generated.items()}
    files[f"{SLURM_ETC}/slurm.conf"] = (slurm_conf(cluster["cluster_name"]), 0o644)
    files[f"{SLURM_ETC}/gres.conf"] = (GRES_CONF, 0o644)
    files[f"{PLUGIN_DIR}/fleet-config.json"] = (json.dumps(slurm_config.fleet_config(config), indent=4), 0o644)
    return files


def daemon_configs(cluster: dict) -> dict:
    """The node daemons' configuration files on the head node, and computemgtd's on shared storage."""
    common = {"cluster_name": cluster["cluster_name"], "region": cluster["region"], "proxy": "NONE"}
    dns = {"hosted_zone": "", "dns_domain": "", "use_private_hostname": "false"}
    head = {"head_node_private_ip": cluster["head_node_private_ip"], "head_node_hostname": cluster["head_node_hostname"]}
    clustermgtd = dict(common, heartbeat_file_path=HEARTBEAT, dynamodb_table=cluster["slurm_ddb_table"], **dns, **head,
                       node_replacement_timeout=cluster["compute_node_bootstrap_timeout"],
                       insufficient_capacity_timeout=600, compute_console_logging_enabled="true",
                       compute_console_logging_max_sample_size=1, compute_console_wait_time=300,
                       instance_id=cluster["instance_id"],
                       loop_time=cluster.get("clustermgtd_loop_time") or SANDBOX["clustermgtd_loop_time"])
    resume = dict(common, dynamodb_table=cluster["slurm_ddb_table"], **dns, **head,
                  clustermgtd_heartbeat_file_path=HEARTBEAT, instance_id=cluster["instance_id"],
                  scaling_strategy=cluster.get("scaling_strategy") or "all-or-nothing",
                  job_level_scaling=str(SANDBOX["job_level_scaling"]).lower())
    status = dict(common, dynamodb_table=f"parallelcluster-{cluster['cluster_name']}",
                  computefleet_status_path=FLEET_STATUS_FILE, loop_time=SANDBOX["clusterstatusmgtd_loop_time"],
                  update_event_command=f"{SCRIPTS_DIR}/update_computefleet_status.sh")
    sandbox_note = "sandbox: loop_time (the daemon's default: 60 s)."
    return {
        f"{PLUGIN_DIR}/parallelcluster_clustermgtd.conf": (_ini("clustermgtd", clustermgtd, sandbox_note), 0o644),
        f"{PLUGIN_DIR}/parallelcluster_slurm_resume.conf": (_ini(
            "slurm_resume", resume, "sandbox: job_level_scaling (Slurm 22.05 passes no SLURM_RESUME_FILE)."), 0o644),
        f"{PLUGIN_DIR}/parallelcluster_slurm_suspend.conf": (_ini(
            "slurm_suspend", {"clustermgtd_heartbeat_file_path": HEARTBEAT}), 0o644),
        f"{PLUGIN_DIR}/parallelcluster_slurm_fleet_status_manager.conf": (_ini("slurm_fleet_status_manager", common), 0o644),
        COMPUTEMGTD_CONF: (_ini("computemgtd", dict(common, clustermgtd_heartbeat_file_path=HEARTBEAT,
                                                    dynamodb_table=cluster["slurm_ddb_table"])), 0o644),
        "/etc/parallelcluster/clusterstatusmgtd.conf": (_ini(
            "clusterstatusmgtd", status, sandbox_note + "\nsandbox: update_event_command, the recipe clusterstatusmgtd "
            "runs with cinc-client on ParallelCluster."), 0o644),
        FLEET_STATUS_FILE: ("{}", 0o755),
    }


def programs(cluster: dict, venvs: dict) -> dict:
    """Slurm's ResumeProgram and SuspendProgram wrappers, the fleet status manager's, the update event recipe and
    the fleet status scripts clustermgtd calls."""
    admin, node_bin, cookbook = SANDBOX["admin_user"], f"{venvs['node']}/bin", venvs["cookbook"]
    table = f"parallelcluster-{cluster['cluster_name']}"
    status_py = f"{cookbook}/bin/python {SCRIPTS_DIR}/compute_fleet_status.py --table-name {table} --region {cluster['region']}"
    # The cookbook's resume_program.erb (Slurm 22.05 passes no SLURM_RESUME_FILE: the copy finds nothing, and
    # slurm_resume, with job-level scaling off, launches the nodes it is given).
    resume = ("#!/bin/bash\n# ResumeProgram should read SLURM_RESUME_FILE within ten seconds of starting to guarantee "
              "that it still exists.\n# ref https://slurm.schedmd.com/power_save.html#tolerance\n\n"
              'trap "rm -f ${SLURM_RESUME_FILE_TMP}" EXIT\n\nSLURM_RESUME_FILE_TMP=$(mktemp)\n'
              "cp ${SLURM_RESUME_FILE} ${SLURM_RESUME_FILE_TMP}\n\n"
              f"chgrp {admin} ${{SLURM_RESUME_FILE_TMP}}\nchmod g+r ${{SLURM_RESUME_FILE_TMP}}\n\n"
              f'sudo -u {admin} SLURM_RESUME_FILE=${{SLURM_RESUME_FILE_TMP}} {node_bin}/slurm_resume  "$@"\n')
    recipe = ("#!/bin/bash\n# The cookbook's update_computefleet_status recipe on a Slurm head node, run by clusterstatusmgtd.\n"
              f"set -xe\n{cookbook}/bin/supervisorctl stop clustermgtd\n"
              f"{SCRIPTS_DIR}/slurm/slurm_fleet_status_manager -cf {FLEET_STATUS_FILE}\n"
              f"{cookbook}/bin/supervisorctl start clustermgtd\n")
    return {
        f"{SCRIPTS_DIR}/slurm/slurm_resume": (resume, 0o744),
        f"{SCRIPTS_DIR}/slurm/slurm_suspend": (f'#!/bin/bash\nsudo -u {admin} {node_bin}/slurm_suspend "$@"\n', 0o744),
        f"{SCRIPTS_DIR}/slurm/slurm_fleet_status_manager": (
            f'#!/bin/bash\nsudo -u {admin} {node_bin}/slurm_fleet_status_manager "$@"\n', 0o744),
        f"{SCRIPTS_DIR}/update_computefleet_status.sh": (recipe, 0o744),
        # The cookbook's node-side scripts the sandbox emulates: links to its stand-ins (this directory).
        f"{SCRIPTS_DIR}/compute_fleet_status.py": (f"{SANDBOX_COOKBOOK}/compute_fleet_status.py", LINK),
        f"{SCRIPTS_DIR}/clusterstatusmgtd.py": (f"{SANDBOX_COOKBOOK}/clusterstatusmgtd.py", LINK),
        "/usr/local/bin/get-compute-fleet-status.sh": (f"#!/bin/bash\n{status_py} --action get\n", 0o755),
        "/usr/local/bin/update-compute-fleet-status.sh": (
            '#!/bin/bash\nif [ "$1" != "--status" ] || [ "$2" != PROTECTED ]; then\n'
            "  >&2 echo \"ERROR: invalid choice for parameter --status (can be only 'PROTECTED')\"; exit 1\nfi\n"
            f'{status_py} --status "$2" --action update\n', 0o755),
    }


def supervisord(node_type: str, venvs: dict) -> dict:
    """supervisord's configuration: clustermgtd and clusterstatusmgtd on the head node, computemgtd on compute nodes."""
    admin, node_bin, cookbook = SANDBOX["admin_user"], f"{venvs['node']}/bin", venvs["cookbook"]
    env = f'environment = HOME="/{admin}",USER="{admin}"'
    if node_type == "HeadNode":
        programs_conf = (f"[program:clustermgtd]\ncommand = {node_bin}/clustermgtd\nuser = {admin}\n{env}\n"
                         f"redirect_stderr = true\nstdout_logfile = {LOG_DIR}/clustermgtd\nstdout_logfile_maxbytes = 0\n"
                         f"[program:clusterstatusmgtd]\ncommand = {cookbook}/bin/python {SCRIPTS_DIR}/clusterstatusmgtd.py\n"
                         f"user = {admin}\n{env}\nredirect_stderr = true\n"
                         f"stdout_logfile = {LOG_DIR}/clusterstatusmgtd\nstdout_logfile_maxbytes = 0\n")
    else:
        programs_conf = (f"[program:computemgtd]\ncommand = {node_bin}/computemgtd\nuser = {admin}\n{env}\n"
                         f"redirect_stderr = true\nstdout_logfile = {LOG_DIR}/computemgtd\nstdout_logfile_maxbytes = 0\n")
    main = ("[unix_http_server]\nfile = /var/run/supervisord.sock\n\n[supervisord]\nlogfile = /var/log/supervisord.log\n"
            "pidfile = /var/run/supervisord.pid\n\n[supervisorctl]\nserverurl = unix:///var/run/supervisord.sock\n\n"
            "[rpcinterface:supervisor]\nsupervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n\n"
            "[include]\nfiles = /etc/parallelcluster/parallelcluster_supervisord.conf\n")
    return {"/etc/supervisord.conf": (main, 0o644),
            "/etc/parallelcluster/parallelcluster_supervisord.conf": (
                f"# Generated for AWS ParallelCluster {node_type} (the sandbox)\n" + programs_conf, 0o644)}
