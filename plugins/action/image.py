# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of hpc.pcluster.image: runs the module as a background job and prints its progress lines."""

from __future__ import annotations

from ansible_collections.hpc.pcluster.plugins.plugin_utils.progress_relay import ProgressRelayAction


class ActionModule(ProgressRelayAction):
    """The module does every step and wait; see ProgressRelayAction for what this adds."""

    MODULE = "hpc.pcluster.image"
    DEFAULT_TIMEOUT = 7200
