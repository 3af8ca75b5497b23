#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: slurm_verify_report
short_description: Write the verification report of a cluster as JSON, JUnit XML and Markdown
version_added: 0.1.0
description:
  - Writes the checks returned by M(hpc.pcluster.slurm_verify) to C(report.json), C(junit.xml) and
    C(report.md) in O(path), in one call, and points the C(latest) link next to O(path) at it.
  - Used by the C(hpc.pcluster.verify) role on the controller.
author:
  - hpc.pcluster contributors (@hpc-pcluster)
options:
  path:
    description: Directory to write the report into, normally C(<reports>/<cluster>/<UTC timestamp>). Created when missing.
    type: path
    required: true
  checks:
    description: The checks, each a dict with C(check), C(node), C(expected), C(seen), C(status) and C(hint).
    type: list
    elements: dict
    required: true
  title:
    description: Title of the Markdown report and name of the JUnit test suite.
    type: str
    default: Cluster verification
  meta:
    description: Facts shown at the top of the Markdown report (cluster, head node, time, ...).
    type: dict
    default: {}
  sections:
    description: Markdown sections added to C(report.md) after the table of checks (empty ones are left out).
    type: list
    elements: str
    default: []
  data:
    description: Extra keys stored in C(report.json) next to C(summary) and C(checks).
    type: dict
    default: {}
  latest:
    description: Point a C(latest) symbolic link in the parent of O(path) at O(path).
    type: bool
    default: true
  mode:
    description: File mode of the report files.
    type: raw
    default: "0644"
attributes:
  check_mode:
    support: full
    description: In check mode nothing is written; the paths are returned.
  diff_mode:
    support: none
    description: The report files are new on every run; there is no diff.
"""

EXAMPLES = r"""
- name: Write the report
  hpc.pcluster.slurm_verify_report:
    path: "reports/ml-training-cluster/20260101T000000Z"
    checks: "{{ verify.checks }}"
    title: Verification of ml-training-cluster
    meta: {cluster: ml-training-cluster}
  delegate_to: localhost
"""

RETURN = r"""
path:
  description: The report directory.
  returned: always
  type: str
  sample: /work/reports/ml-training-cluster/20260101T000000Z
files:
  description: The files written.
  returned: always
  type: list
  elements: str
  sample: [report.json, junit.xml, report.md]
summary:
  description: Number of checks per status, and the total.
  returned: always
  type: dict
  sample: {passed: 14, failed: 0, not_available: 12, total: 26}
"""

import json
import os
import tempfile

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hpc.pcluster.plugins.module_utils.verify.report import (
    verify_junit,
    verify_markdown,
    verify_summary,
)


def write_atomic(path, text, mode):
    handle, tmp = tempfile.mkstemp(prefix=".tmp-", dir=os.path.dirname(path))
    try:
        with os.fdopen(handle, "w") as out:
            out.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except Exception:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def point_latest(path):
    link = os.path.join(os.path.dirname(path), "latest")
    tmp = link + ".tmp-%d" % os.getpid()
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(os.path.basename(path), tmp)
    os.replace(tmp, link)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            checks=dict(type="list", elements="dict", required=True),
            title=dict(type="str", default="Cluster verification"),
            meta=dict(type="dict", default={}),
            sections=dict(type="list", elements="str", default=[]),
            data=dict(type="dict", default={}),
            latest=dict(type="bool", default=True),
            mode=dict(type="raw", default="0644"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    path = os.path.abspath(params["path"])
    checks = params["checks"]
    summary = verify_summary(checks)
    try:
        mode = int(str(params["mode"]), 8)
    except ValueError:
        module.fail_json(msg="mode must be an octal file mode such as '0644', got %r" % params["mode"])
    document = dict(params["data"])
    document.update(summary=summary, checks=checks)
    files = {
        "report.json": json.dumps(document, indent=2, sort_keys=False) + "\n",
        "junit.xml": verify_junit(checks, params["title"], str(params["meta"].get("time (UTC)", ""))),
        "report.md": verify_markdown(checks, params["title"], params["meta"], params["sections"]),
    }
    if not module.check_mode:
        try:
            os.makedirs(path, exist_ok=True)
            for name, text in files.items():
                write_atomic(os.path.join(path, name), text, mode)
            if params["latest"]:
                point_latest(path)
        except OSError as exc:
            module.fail_json(msg="Cannot write the report to %s: %s" % (path, exc))
    module.exit_json(changed=not module.check_mode, path=path, files=list(files), summary=summary)


if __name__ == "__main__":
    main()
