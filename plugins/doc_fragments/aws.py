# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    """The AWS connection options every hpc.pcluster module shares."""

    DOCUMENTATION = r"""
options:
  region:
    description:
      - The AWS region of the cluster, for example C(us-east-1).
      - When not set, the E(AWS_REGION) or E(AWS_DEFAULT_REGION) environment variable is used.
      - Set it once for every module with C(module_defaults) and C(group/hpc.pcluster.aws).
    type: str
    aliases: [aws_region]
  profile:
    description:
      - A named profile from the AWS shared credentials and config files.
      - When not set, the E(AWS_PROFILE) environment variable is used, then the default credential chain.
    type: str
    aliases: [aws_profile]
  endpoint_url:
    description:
      - A URL that replaces every AWS service endpoint, for example a local moto server.
      - When not set, the E(AWS_ENDPOINT_URL) environment variable is used.
    type: str
    aliases: [aws_endpoint_url]
requirements:
  - python >= 3.9
  - aws-parallelcluster >= 3.11
  - boto3
notes:
  - Credentials come from the standard AWS chain (environment, shared files, instance profile);
    modules never take or print secret keys.
"""
