#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: image
short_description: Build or delete an AWS ParallelCluster custom image (pcluster build-image)
version_added: 0.1.0
description:
  - Makes an AWS ParallelCluster custom image (an AMI built by EC2 Image Builder from a parent image and
    C(Build.Components)) exist with a given image configuration, or not exist, with ParallelCluster's own Python API
    (C(pcluster.lib)) on the host that runs the module.
  - O(state=present) builds a missing image and waits until its AMI is available. An image of the same O(name)
    whose stored configuration (the S3 object behind describe-image's C(imageConfiguration.url)) equals the desired
    one is not built again. An image cannot be changed, so one with another configuration fails the task and says what
    differs, unless O(replace=true) deletes it and builds it again. Role C(hpc.pcluster.image_config) names images
    after their configuration, so a new configuration is a new image.
  - An image whose build failed is reported (see below) and not built again unless O(replace=true).
  - A build or delete under way is waited for before anything else is done.
  - O(state=absent) deletes the image (its AMI, snapshots, build stack and artifacts) and waits until it is gone.
    A missing image is not an error. ParallelCluster refuses while instances use the AMI, unless O(force=true).
  - A build takes 30 to 90 minutes. The module writes a progress line (elapsed time, image, stack and Image Builder
    status, build stack resources complete out of the template's total) at least every 55 seconds while it waits;
    the collection's action plugin runs the module as a background job and prints the lines as they come.
  - A failed build fails the task with the stack's and Image Builder's reasons, what to check for the component
    that failed, the first failed stack events and the last lines and errors of the build log.
  - Writes are never repeated blindly. After an error of a build or delete request the image is described, and
    the run carries on when it shows the request went through.
  - Results never hold describe-image's C(imageConfiguration.url) (a presigned URL).
author:
  - hpc.pcluster contributors (@hpc-pcluster)
options:
  name:
    description:
      - The image id (ParallelCluster's name for the image and its build stack) - a letter, then letters, digits and
        hyphens, at most 128 characters.
    type: str
    required: true
    aliases: [image_id]
  state:
    description:
      - V(present) builds the image, V(absent) deletes it.
    type: str
    choices: [present, absent]
    default: present
  config:
    description:
      - The ParallelCluster image configuration as a dictionary (C(Build), C(Image), ...; what
        C(pcluster build-image --image-configuration) reads).
      - Mutually exclusive with O(config_file). One of them is required with O(state=present).
    type: dict
  config_file:
    description:
      - Path of a ParallelCluster image configuration YAML file, on the host that runs the module.
    type: path
  wait:
    description:
      - Wait until the build or delete has finished, and fail if it failed.
      - With V(false) the module starts the build or delete and returns its status without waiting; a build or
        delete under way is left alone.
    type: bool
    default: true
  wait_timeout:
    description:
      - How many seconds to wait at most, for all the steps of the task together.
      - The build goes on after a timeout; running the task again keeps waiting.
    type: int
    default: 7200
  rollback_on_failure:
    description:
      - Delete the build stack of a failed build. ParallelCluster's default, V(false), keeps it, with its logs and
        events, for the failure report.
    type: bool
    default: false
  replace:
    description:
      - Delete an image of this name that failed or has another configuration, and build it again.
    type: bool
    default: false
  force:
    description:
      - Delete the image even when instances use its AMI or it is shared with other accounts (pcluster's C(--force)).
    type: bool
    default: false
extends_documentation_fragment:
  - hpc.pcluster.pcluster_validation
  - hpc.pcluster.aws
  - hpc.pcluster.progress
attributes:
  check_mode:
    support: full
    description:
      - Builds and deletes nothing. A build is checked with ParallelCluster's build-image dryrun when that changes
        nothing in the account. pcluster's build-image, dryrun included, first creates and sets up the account's
        build-image cleanup role when it is missing (unless C(Build.Iam.CleanupLambdaRole) is given); then check mode
        checks the configuration offline (ParallelCluster's image schema and the collection's rules) and says so.
  diff_mode:
    support: full
    description: Shows the stored and the desired image configuration as YAML.
notes:
  - The comparison of stored and desired configuration ignores key order and the difference between V(2) and V("2").
  - Building needs Node.js on the host that runs the module (ParallelCluster uses the AWS CDK).
seealso:
  - module: hpc.pcluster.image_info
  - module: hpc.pcluster.cluster
  - name: ParallelCluster image configuration reference
    description: The keys of O(config).
    link: https://docs.aws.amazon.com/parallelcluster/latest/ug/image-builder-configuration-file-v3.html
"""

EXAMPLES = r"""
- name: Build the compute nodes' image with the collection's roles baked in (role image_config writes the config)
  hpc.pcluster.image:
    name: "{{ image_config_image_id }}"
    config: "{{ image_config_data }}"
    region: us-east-1
  register: nodes_image

- name: Use its AMI for the queues
  ansible.builtin.set_fact:
    cluster_config_custom_image_ami: "{{ nodes_image.ami_id }}"

- name: What a build would do (nothing is built)
  hpc.pcluster.image:
    name: ml-training-cluster-nodes-3f2a9c01b7de
    config_file: ~/.hpc-pcluster/ml-training-cluster/image-config.yaml
  check_mode: true

- name: Delete an image no cluster uses any more
  hpc.pcluster.image:
    name: ml-training-cluster-nodes-3f2a9c01b7de
    state: absent
"""

RETURN = r"""
exists:
  description: Whether the image (or its build stack) exists when the module finished (in check mode, before).
  returned: always
  type: bool
  sample: true
status:
  description: ParallelCluster's image build status (C(imageBuildStatus)); null when the image does not exist.
  returned: always
  type: str
  sample: BUILD_COMPLETE
stack_status:
  description: The build stack's CloudFormation status; null once the stack is gone (a built image's).
  returned: always
  type: str
  sample: CREATE_IN_PROGRESS
imagebuilder_status:
  description: EC2 Image Builder's status of the image while it builds (BUILDING, TESTING, ...).
  returned: always
  type: str
  sample: BUILDING
ami_id:
  description: The AMI of the built image; null until ParallelCluster tagged it available.
  returned: always
  type: str
  sample: ami-0123456789abcdef0
ami_name:
  description: The AMI's name.
  returned: always
  type: str
  sample: ml-training-cluster-nodes-3f2a9c01b7de 2026-11-28T23-00-00.000Z
version:
  description: The ParallelCluster version that built the image.
  returned: always
  type: str
  sample: 3.16.1
image:
  description: The full C(pcluster describe-image) answer in ParallelCluster's camelCase keys, without the presigned
    configuration URL; empty when the image does not exist.
  returned: always
  type: dict
validation_messages:
  description: ParallelCluster's validation messages of the build (or its dryrun), by level (ERROR, WARNING, INFO).
  returned: always
  type: dict
config_changes:
  description: The differences between the stored and the desired configuration, one line each.
  returned: always
  type: list
  elements: str
  sample: ["Build.InstanceType: c5.xlarge -> c5.2xlarge"]
stored_config_error:
  description: Why the stored configuration could not be read (the image is then taken as found by its name).
  returned: when the stored configuration of an existing image could not be read
  type: str
dryrun:
  description: In check mode, how a build was checked (ParallelCluster's dryrun, or why it was skipped).
  returned: in check mode, when the image would be built
  type: str
  sample: "ParallelCluster's dryrun passed"
problems:
  description: The offline problems of the configuration (path, value, message, fix) that stop a check-mode build.
  returned: in check mode, when the offline check finds problems
  type: list
  elements: dict
actions:
  description: What the module did (or, in check mode, would do), in order.
  returned: always
  type: list
  elements: str
  sample: ["build image"]
failure:
  description: The failure report of a failed build or delete.
  returned: on failure of a build or delete
  type: dict
  contains:
    stack_status_reason:
      description: CloudFormation's reason for the build stack's status.
      type: str
    imagebuilder_status_reason:
      description: Image Builder's reason, naming the component that failed.
      type: str
    hint:
      description: What to check, for the component or step that failed.
      type: str
    failed_events:
      description: The first failed CloudFormation events, oldest first.
      type: list
      elements: dict
    log_group:
      description: The build's CloudWatch log group.
      type: str
    log_streams:
      description: The build's log streams, newest first.
      type: list
      elements: str
    build_log:
      description: The build log's last lines and its error lines.
      type: list
      elements: str
waited:
  description: Seconds spent waiting.
  returned: always
  type: float
  sample: 2710.4
"""

import re

from ansible_collections.hpc.pcluster.plugins.module_utils.image.config import IMAGE_ID_PATTERN
from ansible_collections.hpc.pcluster.plugins.module_utils.image.lifecycle import ImageRun
from ansible_collections.hpc.pcluster.plugins.module_utils.pcluster.module_options import lifecycle_argument_spec, run_lifecycle


def argument_spec():
    return lifecycle_argument_spec("image_id", wait_timeout=7200, rollback_on_failure=False,
                                   replace=dict(type="bool", default=False), force=dict(type="bool", default=False))


def name_problems(params):
    if re.match(IMAGE_ID_PATTERN, params["name"]):
        return []
    return ["name=%r must start with a letter and hold only letters, digits and hyphens (at most 128): it names the "
            "image and its CloudFormation stack" % params["name"]]


def main():
    run_lifecycle(argument_spec(), ImageRun, "Image", problems=name_problems)


if __name__ == "__main__":
    main()
