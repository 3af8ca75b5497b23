# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every check module of the verify role shares: the check record, its collector, the command runner.

A check is ``{check, node, expected, seen, status, hint}``, and ``subject`` when one node has several checks
of that name (the mount of a storage check); status is passed, failed or not_available.
A module collects its checks in a ``CheckReport`` and returns ``report.checks``; the role merges the
checks of every module into one report (module_utils/verify/report.py writes it).
"""

from __future__ import annotations

import os

PASSED = "passed"
FAILED = "failed"
NOT_AVAILABLE = "not_available"

# Other names a check answers to in not_available: a family name covers several checks.
CHECK_FAMILIES = {
    "pyxis_plugin": ("pyxis",),
    "pyxis_loaded": ("pyxis",),
    "container_smoke": ("pyxis",),
    "container_staged": ("container_registry",),
    "nvidia_smi": ("gpu",),
    "gpu_count": ("gpu",),
    "storage_mount": ("storage",),
    "storage_writable": ("storage",),
    "storage_type": ("storage",),
}


class CheckReport:
    """Collects checks; a check named in not_available is reported as such, never as passed."""

    def __init__(self, not_available, families=None):
        self.not_available = dict(not_available or {})
        self.families = CHECK_FAMILIES if families is None else families
        self.checks = []

    def reason(self, check, node, aliases=()):
        """Why a check is not available here (from not_available), or None."""
        for key in ["%s:%s" % (check, node), check] + list(aliases) + list(self.families.get(check, ())):
            if key in self.not_available:
                return str(self.not_available[key])
        return None

    def add(self, check, node, expected, seen, ok, hint="", unavailable_reason=None, aliases=(), subject=None):
        """Record one check; ``unavailable_reason`` makes it not_available (e.g. not run in check mode).

        ``subject``: what the check is about when a node has several checks of this name (e.g. a mount)."""
        listed = self.reason(check, node, aliases)
        if listed is not None:
            status, hint = NOT_AVAILABLE, listed
        elif unavailable_reason:
            status, hint = NOT_AVAILABLE, unavailable_reason
        else:
            status = PASSED if ok else FAILED
            hint = "" if ok else hint
        record = dict(check=check, node=node, expected=str(expected), seen=str(seen), status=status, hint=hint)
        if subject:
            record["subject"] = str(subject)
        self.checks.append(record)

    @property
    def failed(self):
        return [c for c in self.checks if c["status"] == FAILED]


class CommandRunner:
    """Runs commands for the checks through the module, each killed after a timeout."""

    def __init__(self, module, slurm_bin=""):
        self.module = module
        self.slurm_bin = slurm_bin

    def slurm(self, name):
        """Path of a Slurm command (in slurm_bin when it is known)."""
        return os.path.join(self.slurm_bin, name) if self.slurm_bin else name

    def run(self, argv, timeout=60):
        """(rc, stdout, stderr) of argv, killed after timeout seconds (rc 124); rc 127 when it is missing."""
        command = ["timeout", "--kill-after=10", str(int(timeout))] + list(argv)
        rc, out, err = self.module.run_command(command, check_rc=False)
        if rc == 124:
            err = "timed out after %ss. %s" % (timeout, err)
        elif rc == 127 and not err.strip():
            err = "%s: command not found" % argv[0]
        return rc, out, err
