# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    """What the info modules (cluster_info, image_info) return beside the describe of one cluster or image."""

    DOCUMENTATION = r"""
options:
  stack_progress:
    description:
      - Also return how far the current CloudFormation operation (the cluster's stack, the image's build stack) has
        got, counted from the stack events the way the progress lines of M(hpc.pcluster.cluster) and
        M(hpc.pcluster.image) count them.
      - Requires O(name).
    type: bool
    default: false
  failure_details:
    description:
      - When the cluster or the image build is in a C(*_FAILED) state, also return the failure report
        M(hpc.pcluster.cluster) and M(hpc.pcluster.image) fail with (failure codes with hints, the first failed
        stack events and the log streams to read; an image's build log).
      - Requires O(name).
    type: bool
    default: false
  stored_config:
    description:
      - Also return the configuration ParallelCluster stored for the cluster or the image (the S3 object behind
        describe-cluster's C(clusterConfiguration.url), describe-image's C(imageConfiguration.url)), read over
        https only (http only from the host of an explicit http O(endpoint_url)) with the collection's config
        loader.
      - Requires O(name).
    type: bool
    default: false
"""
