# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: cluster_config_write
short_description: Write a ParallelCluster cluster (or image) configuration as YAML on the controller
version_added: 0.1.0
description:
  - Dumps a cluster configuration mapping with a YAML dumper (block style, keys in the order given, strings
    quoted wherever YAML needs it) and writes it to O(dest) on the Ansible controller, whatever host the task
    runs for.
  - The file is replaced atomically and only when its content or mode differs, so a second run reports no
    change. A missing directory is created with mode 0700.
  - This is an action plugin; it runs on the controller, in the Ansible process, with no module transfer.
author:
  - hpc.pcluster contributors (@hpc-pcluster)
options:
  config:
    description: The cluster configuration mapping, for example the C(config) of P(hpc.pcluster.cluster_config_build#filter).
    type: dict
    required: true
  dest:
    description: Path of the YAML file on the controller; C(~) is expanded.
    type: path
    required: true
  mode:
    description: Permissions of the file, as an octal string.
    type: str
    default: "0600"
  header:
    description:
      - The comment on the file's first line (one line). Role P(hpc.pcluster.image_config#role) names its image
        configuration there.
    type: str
    default: ParallelCluster 3 cluster configuration written by the hpc.pcluster.cluster_config role.
attributes:
  check_mode:
    support: full
    description: Reports whether the file would change and writes nothing.
  diff_mode:
    support: full
    description: Shows the YAML before and after.
  action:
    support: full
    description: Implemented as an action plugin.
notes:
  - Role P(hpc.pcluster.cluster_config#role) validates the configuration before it uses this.
"""

EXAMPLES = r"""
- name: Write the configuration, private to its owner
  hpc.pcluster.cluster_config_write:
    config: "{{ cluster_config_data }}"
    dest: ~/.hpc-pcluster/ml-training-cluster/cluster-config.yaml
"""

RETURN = r"""
dest:
  description: Absolute path of the file.
  returned: always
  type: str
  sample: /home/user/.hpc-pcluster/ml-training-cluster/cluster-config.yaml
mode:
  description: Permissions of the file.
  returned: always
  type: str
  sample: "0600"
checksum:
  description: SHA-1 of the YAML text.
  returned: always
  type: str
size:
  description: Size of the YAML text in bytes.
  returned: always
  type: int
"""
