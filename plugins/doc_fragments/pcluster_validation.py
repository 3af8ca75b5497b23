# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    """ParallelCluster's validation of a config the modules hand it (cluster: create, update; image: build)."""

    DOCUMENTATION = r"""
options:
  suppress_validators:
    description:
      - ParallelCluster validators to suppress, as C(ALL) or C(type:<ValidatorName>) entries.
    type: list
    elements: str
  validation_failure_level:
    description:
      - The lowest validation level that makes ParallelCluster refuse the config (a cluster's create or update, an
        image's build).
      - ParallelCluster's default is V(ERROR).
    type: str
    choices: [INFO, WARNING, ERROR]
"""
