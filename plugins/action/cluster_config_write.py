# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Writes a cluster configuration as YAML on the controller (see the cluster_config_write module docs)."""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.hpc.pcluster.plugins.module_utils.config.file import CLUSTER_CONFIG_HEADER, render_yaml


class ActionModule(ActionBase):
    """Render with a YAML dumper, compare, and replace the file atomically only when it differs."""

    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("config", "dest", "mode", "header"))
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        _validation, args = self.validate_argument_spec(argument_spec=dict(
            config=dict(type="dict", required=True),
            dest=dict(type="path", required=True),
            mode=dict(type="str", default="0600"),
            header=dict(type="str", default=CLUSTER_CONFIG_HEADER),
        ))
        try:
            mode = int(args["mode"], 8)
        except ValueError:
            raise AnsibleActionFail("mode must be an octal string such as '0600', not %r" % args["mode"]) from None
        dest = os.path.realpath(os.path.expanduser(args["dest"]))
        directory = os.path.dirname(dest)
        data = render_yaml(args["config"], " ".join(args["header"].split())).encode("utf-8")

        before, before_mode = None, None
        if os.path.exists(dest):
            if not os.path.isfile(dest):
                raise AnsibleActionFail("%s exists and is not a regular file" % dest)
            with open(dest, "rb") as handle:
                before = handle.read()
            before_mode = stat.S_IMODE(os.stat(dest).st_mode)
        content_changed = before != data
        mode_changed = before_mode is not None and before_mode != mode

        result.update(dest=dest, mode="%04o" % mode, checksum=hashlib.sha1(data).hexdigest(), size=len(data),
                      changed=content_changed or mode_changed)
        if self._task.diff and content_changed:
            result["diff"] = {
                "before_header": dest if before is not None else "%s (absent)" % dest,
                "after_header": dest,
                "before": before.decode("utf-8", "replace") if before is not None else "",
                "after": data.decode("utf-8"),
            }
        if self._task.check_mode or not result["changed"]:
            return result

        if not os.path.isdir(directory):
            os.makedirs(directory, mode=0o700)
        if content_changed:
            fd, temp_path = tempfile.mkstemp(dir=directory, prefix=".%s." % os.path.basename(dest))
            try:
                os.fchmod(fd, mode)
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(temp_path, dest)
            except BaseException:
                if os.path.exists(temp_path):
                    os.unlink(temp_path)
                raise
        else:
            os.chmod(dest, mode)
        return result
