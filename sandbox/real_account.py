"""What a user needs to follow the README's real-account steps against the sandbox.

- ``sandbox_only_vars``: the settings a real account does not need and the sandbox does (its nodes have no
  init system and Debian's Slurm layout, moto cannot dry-run launch templates, the checks it cannot show, its
  MPI network), written to one file of their own, ``<state>/inventory/group_vars/all/sandbox_only.yml``, which
  a user's inventory includes by linking it into its ``group_vars/all/``.
- ``import_key_pair``: the sandbox's ed25519 login key as the EC2 key pair the config names (KEY_PAIR_NAME).
- ``seeded_values``: the values the seeding created, as the lines a user copies into ``cluster.yml`` and
  ``pcluster_nodes.yml``; ``up`` prints them.
"""

from __future__ import annotations

import os
from pathlib import Path

# The EC2 key pair of the sandbox's login key (ed25519: ParallelCluster refuses RSA key pairs on Ubuntu).
KEY_PAIR_NAME = "hpc-pcluster-sandbox"
SANDBOX_ONLY_FILE = "sandbox_only.yml"
# The environment values a user's cluster.yml holds, in its order.
CLUSTER_YML_KEYS = (
    "pcluster_cluster_name", "pcluster_region", "cluster_config_public_subnet_id", "cluster_config_private_subnet_id",
    "cluster_config_security_group_id", "cluster_config_fsx_lustre_id", "cluster_config_fsx_openzfs_volume_id",
    "cluster_config_head_node_bootstrap_script", "cluster_config_compute_node_bootstrap_script",
    "cluster_config_ssh_allowed_ips", "cluster_config_ssh_key_name", "cluster_config_compute_instance_type",
    "cluster_config_compute_min_count", "cluster_config_compute_max_count",
)


def sandbox_only_path(state_dir: Path) -> Path:
    return Path(state_dir) / "inventory" / "group_vars" / "all" / SANDBOX_ONLY_FILE


def sandbox_only_vars(state: dict, vpc_cidr: str, suppress_validators: list, container_vars: dict,
                      network_vars: dict) -> dict:
    """The variables only the sandbox needs, each group with why."""
    return {
        # moto cannot dry-run launch templates: every ParallelCluster dryrun of the sandbox skips these two.
        "cluster_config_suppress_validators": list(suppress_validators),
        # The verify role's checks the sandbox cannot show, each with its reason.
        "verify_not_available": state["verify_not_available"],
        # The container roles on nodes with no init system and Debian's Slurm layout; the image on /fsx.
        **container_vars,
        # The stand-in GPUs cannot run NCCL: the MPI all-reduce runs on the GPU nodes, over TCP on the sandbox's
        # network only, yielding the CPU while it waits (every node shares this machine's cores).
        "verify_distributed_mpi_on_gpu_nodes": True,
        "verify_distributed_mpirun_args": ["--mca", "btl", "tcp,self", "--mca", "btl_tcp_if_include", vpc_cidr,
                                           "--mca", "oob_tcp_if_include", vpc_cidr,
                                           "--mca", "mpi_yield_when_idle", "1"],
        # The nodes' Python is this machine's (Debian 12), not Ubuntu 22.04's: an image's bake carries wheels for it.
        **node_python(),
        # What the all-reduce is judged against: the network `up` measured (2 or more compute nodes).
        **network_vars,
    }


def node_python() -> dict:
    """The image config's Python for the bake: the nodes' /usr/bin/python3 and glibc (this machine's)."""
    import ami  # pylint: disable=import-outside-toplevel

    return {"image_config_python_version": ".".join(ami.node_python_version().split(".")[:2]),
            "image_config_python_glibc": os.confstr("CS_GNU_LIBC_VERSION").split()[-1]}


def import_key_pair(ec2, public_key_file: str) -> str:
    """The sandbox's login key as the EC2 key pair KEY_PAIR_NAME (once per moto server); returns its name."""
    with open(public_key_file, "rb") as handle:
        ec2.import_key_pair(KeyName=KEY_PAIR_NAME, PublicKeyMaterial=handle.read())
    return KEY_PAIR_NAME


def seeded_values(state: dict, environment: dict) -> list:
    """The lines ``up`` prints: what to copy into cluster.yml and pcluster_nodes.yml, and the sandbox-only file."""
    aws = state["aws"]
    notes = {
        "cluster_config_public_subnet_id": "public subnet of %s (%s)" % (aws["vpc_id"], state["vpc_cidr"]),
        "cluster_config_private_subnet_id": "private subnet, behind %s" % aws["nat_gateway_id"],
        "cluster_config_fsx_lustre_id": "moto describes it; the nodes' /lustre is a tmpfs",
        "cluster_config_fsx_openzfs_volume_id": "moto describes it; the nodes' /fsx is a tmpfs",
        "cluster_config_head_node_bootstrap_script": "bucket %s" % aws["bootstrap_bucket"],
        "cluster_config_ssh_key_name": "ed25519, private key %s" % state["ssh_key"],
    }
    lines = ["the seeded account, for the real-account steps (sandbox/README.md, \"Trying the real-account steps "
             "here\"); cluster.yml:"]
    for key in CLUSTER_YML_KEYS:
        if key in environment:
            note = notes.get(key)
            lines.append("  %s: %s%s" % (key, environment[key], "  # " + note if note else ""))
    lines += [
        "pcluster_nodes.yml: regions [%s], clusters [%s], remote_user: root (the SSH user on every node), "
        "ssh_common_args: -i %s -o IdentitiesOnly=yes -o UserKnownHostsFile=%s -o StrictHostKeyChecking=yes"
        % (state["region"], state["cluster_name"], state["ssh_key"], state["known_hosts"]),
        "the AWS endpoint and credentials: . %s" % (Path(state["state_dir"]) / "env.sh"),
        "sandbox-only settings (node services, Pyxis paths, validators, checks not available here, MPI): "
        "ln -s %s <your inventory>/group_vars/all/" % sandbox_only_path(state["state_dir"]),
    ]
    return lines
