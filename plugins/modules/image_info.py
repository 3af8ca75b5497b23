#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: image_info
short_description: Describe one AWS ParallelCluster custom image, list them, or list ParallelCluster's own AMIs
version_added: 0.1.0
description:
  - With O(name), describes that image like C(pcluster describe-image) - its build status, its AMI id once built, the
    build stack's and EC2 Image Builder's status while it builds - optionally with the configuration it was built
    from, how far its build stack has got, and the failure report of a failed build.
  - Without O(name), lists the region's custom images in one O(image_status) like C(pcluster list-images),
    reading all pages.
  - With O(official=true), lists ParallelCluster's own AMIs of this version like C(pcluster list-official-images),
    for an O(os) and O(architecture), the parent images of custom images.
  - An image that does not exist is not an error; RV(exists) is then V(false).
  - Uses ParallelCluster's Python API (C(pcluster.lib)) on the host that runs the module.
author:
  - hpc.pcluster contributors (@hpc-pcluster)
options:
  name:
    description:
      - The image id to describe. Leave it out to list images.
    type: str
    aliases: [image_id]
  image_status:
    description:
      - When listing custom images, the status to list (ParallelCluster lists one at a time).
    type: str
    choices: [AVAILABLE, PENDING, FAILED]
    default: AVAILABLE
  official:
    description:
      - List ParallelCluster's own AMIs (for O(os) and O(architecture)) instead of custom images.
    type: bool
    default: false
  os:
    description:
      - With O(official=true), only the AMIs of this operating system (C(Image.Os) of a cluster config).
    type: str
    choices: [alinux2023, ubuntu2204, ubuntu2404, rhel8, rocky8, rhel9, rocky9]
  architecture:
    description:
      - With O(official=true), only the AMIs of this architecture.
    type: str
    choices: [x86_64, arm64]
extends_documentation_fragment:
  - hpc.pcluster.describe_details
  - hpc.pcluster.aws
attributes:
  check_mode:
    support: full
    description: Only reads.
  diff_mode:
    support: none
    description: Reads only; there is nothing to diff.
seealso:
  - module: hpc.pcluster.image
"""

EXAMPLES = r"""
- name: The AMI of a built image
  hpc.pcluster.image_info:
    name: ml-training-cluster-nodes-3f2a9c01b7de
  register: nodes_image

- name: Say it
  ansible.builtin.debug:
    msg: "{{ nodes_image.status }} {{ nodes_image.ami_id }}"

- name: ParallelCluster's Ubuntu 22.04 AMI of this version, the parent of a custom image
  hpc.pcluster.image_info:
    official: true
    os: ubuntu2204
    architecture: x86_64
  register: parent

- name: Builds that failed
  hpc.pcluster.image_info:
    image_status: FAILED
"""

RETURN = r"""
exists:
  description: Whether the image (or its build stack) exists.
  returned: with O(name)
  type: bool
  sample: true
status:
  description: ParallelCluster's image build status (C(imageBuildStatus)); null when the image does not exist.
  returned: with O(name)
  type: str
  sample: BUILD_COMPLETE
stack_status:
  description: The build stack's CloudFormation status; null once the stack is gone.
  returned: with O(name)
  type: str
  sample: CREATE_IN_PROGRESS
imagebuilder_status:
  description: EC2 Image Builder's status of the image while it builds.
  returned: with O(name)
  type: str
  sample: BUILDING
ami_id:
  description: The AMI of the built image; null until it is available.
  returned: with O(name)
  type: str
  sample: ami-0123456789abcdef0
ami_name:
  description: The AMI's name.
  returned: with O(name)
  type: str
version:
  description: The ParallelCluster version that built the image.
  returned: with O(name)
  type: str
  sample: 3.16.1
image:
  description: The full C(pcluster describe-image) answer, without the presigned configuration URL.
  returned: with O(name)
  type: dict
images:
  description:
    - Without O(name), the images as C(pcluster list-images) gives them (imageId, imageBuildStatus, ec2AmiInfo.amiId,
      cloudformationStackStatus, region, version).
    - With O(official=true), ParallelCluster's AMIs as C(pcluster list-official-images) gives them (amiId, os, name,
      architecture, version).
  returned: without O(name)
  type: list
  elements: dict
  sample: [{amiId: ami-0123456789abcdef0, os: ubuntu2204, architecture: x86_64, version: 3.16.1,
            name: "aws-parallelcluster-3.16.1-ubuntu-2204-lts-hvm-x86_64-202511170000 2025-11-17T00-00-00.000Z"}]
stored_config:
  description: The image configuration ParallelCluster stored; empty when it could not be read.
  returned: when O(stored_config=true) and the image exists
  type: dict
stored_config_error:
  description: Why the stored configuration could not be read.
  returned: when O(stored_config=true) and it could not be read
  type: str
stack_progress:
  description: How far the build stack has got (operation, resources_total, resources_complete, ...).
  returned: when O(stack_progress=true) and the image has a build stack
  type: dict
failure:
  description: The failure report of a failed build; see M(hpc.pcluster.image).
  returned: when O(failure_details=true) and the build failed
  type: dict
"""

from ansible_collections.hpc.pcluster.plugins.module_utils.config.file import fetch_stored_config
from ansible_collections.hpc.pcluster.plugins.module_utils.pcluster.failure_report import image_failure_report
from ansible_collections.hpc.pcluster.plugins.module_utils.image.lifecycle import ImagePoller, image_summary
from ansible_collections.hpc.pcluster.plugins.module_utils.pcluster.errors import PclusterApiError
from ansible_collections.hpc.pcluster.plugins.module_utils.pcluster.module_base import PclusterModule
from ansible_collections.hpc.pcluster.plugins.module_utils.pcluster.module_options import describe_argument_spec

NEEDS_NAME = ("stored_config", "stack_progress", "failure_details")
OFFICIAL_FILTERS = ("os", "architecture")


def argument_spec():
    return describe_argument_spec(
        "image_id",
        image_status=dict(type="str", default="AVAILABLE", choices=["AVAILABLE", "PENDING", "FAILED"]),
        official=dict(type="bool", default=False),
        os=dict(type="str", choices=["alinux2023", "ubuntu2204", "ubuntu2404", "rhel8", "rocky8", "rhel9", "rocky9"]),
        architecture=dict(type="str", choices=["x86_64", "arm64"]),
    )


def describe_one(module, api):
    params = module.params
    name = params["name"]
    image = api.describe_image(name)
    result = dict(changed=False, **image_summary(image))
    if image is None:
        return result
    if params["stack_progress"] and image.get("cloudformationStackArn"):
        result["stack_progress"] = ImagePoller(api, name).stack_progress(image)
    if params["failure_details"] and str(image.get("imageBuildStatus") or "").endswith("_FAILED"):
        report = image_failure_report(api, name, image)
        report.pop("message")
        result["failure"] = report
    if params["stored_config"]:
        stored, reason = fetch_stored_config(image, endpoint_url=module.settings.get("endpoint_url"),
                                             key="imageConfiguration")
        result["stored_config"] = stored or {}
        if reason:
            result["stored_config_error"] = reason
    return result


def problems(params):
    found = []
    needs_name = [opt for opt in NEEDS_NAME if params[opt]]
    if needs_name and not params["name"]:
        found.append("Options %s need 'name' (the image to describe)" % ", ".join(needs_name))
    filters = [opt for opt in OFFICIAL_FILTERS if params[opt]]
    if filters and not params["official"]:
        found.append("'%s' filter ParallelCluster's own AMIs: set 'official: true' too" % "' and '".join(filters))
    if params["official"] and params["name"]:
        found.append("'official: true' lists ParallelCluster's own AMIs: leave out 'name'")
    return found


def main():
    module = PclusterModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    found = problems(params)
    if found:
        module.fail_json(msg="; ".join(found) + ".")
    api = module.client()
    try:
        if params["name"]:
            result = describe_one(module, api)
        elif params["official"]:
            result = dict(changed=False, images=api.list_official_images(params["os"], params["architecture"]))
        else:
            result = dict(changed=False, images=api.list_images(params["image_status"]))
    except PclusterApiError as error:
        module.fail_json_pcluster(error, msg="Cannot describe %s" % (params["name"] or "the images"))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
