# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a run of the cluster, compute_fleet and image modules shares: its clock and actions, its result, the desired
and the stored config."""

from __future__ import annotations

from ansible_collections.hpc.pcluster.plugins.module_utils.config.file import (
    config_yaml,
    desired_config,
    fetch_stored_config,
)
from ansible_collections.hpc.pcluster.plugins.module_utils.pcluster.errors import PclusterApiError


class Stop(Exception):
    """Ends the run early with the result as it stands."""


class LifecycleRun:
    """One run of a module on a ParallelCluster resource (a cluster, an image), within ``params["wait_timeout"]``
    seconds in all, building ``result``.

    Subclasses name the resource (WHAT, as a user reads it) and where describe gives the stored config's presigned
    URL (CONFIG_KEY), keep the last description in ``current``, and do the work in ``present`` and ``absent``.
    """

    WHAT = "configuration"
    CONFIG_KEY = "clusterConfiguration"

    def __init__(self, module, api, result):
        self.module = module
        self.api = api
        self.params = module.params
        self.name = module.params["name"]
        self.check_mode = module.check_mode
        self.started = api.clock()
        self.waited = 0.0
        self.result = result

    @property
    def current(self):
        raise NotImplementedError

    def act(self, action):
        """Record an action and say it in the progress lines."""
        self.result["actions"].append(action)
        self.module.progress("[%s] %s" % (self.name, action))

    def remaining(self):
        """Seconds left of wait_timeout, for all the steps of the run together."""
        return self.params["wait_timeout"] - (self.api.clock() - self.started)

    def desired_config(self):
        try:
            return desired_config(self.params)
        except ValueError as error:
            raise PclusterApiError(str(error), code=400, error_type="ConfigFile") from None

    def diff(self, before, after):
        if self.module._diff:  # pylint: disable=protected-access
            self.result["diff"] = {
                "before": config_yaml(before),
                "after": config_yaml(after),
                "before_header": "%s (stored %s)" % (self.name, self.WHAT),
                "after_header": "%s (desired %s)" % (self.name, self.WHAT),
            }

    def stored_config(self):
        """The stored config or None; why it could not be read is returned as stored_config_error."""
        stored, reason = fetch_stored_config(self.current, endpoint_url=self.module.settings.get("endpoint_url"),
                                             key=self.CONFIG_KEY)
        if reason:
            self.result["stored_config_error"] = reason
        return stored

    def run(self):
        """The run for params["state"]; its result (Stop ends it early with the result as it stands)."""
        try:
            if self.params["state"] == "present":
                self.present()
            else:
                self.absent()
        except Stop:
            pass
        return self.finish()

    def present(self):
        raise NotImplementedError

    def absent(self):
        raise NotImplementedError

    def finish(self, **extra):
        """The result, with the seconds spent waiting and ``extra``."""
        result = dict(self.result)
        result["waited"] = round(self.waited, 1)
        result.update(extra)
        return result
