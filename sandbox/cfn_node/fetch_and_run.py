"""fetch_and_run, the head node's custom actions' entry point (``/opt/parallelcluster/scripts/fetch_and_run``).

``-preinstall`` (OnNodeStart) and ``-postinstall`` (OnNodeConfigured): the sandbox's cookbook stand-in
ran them already, at cinc-client's ``init``, in the cookbook's order; nothing is left to do.
``-postupdate`` (OnNodeUpdated, after a stack update): the head node's OnNodeUpdated scripts from the
cluster config the update stored, run as ParallelCluster's executor runs them (cookbook/custom_actions.py);
a failure is written to ``/var/log/parallelcluster/bootstrap_error_msg`` and exits 1.
"""

from __future__ import annotations

import json
import os
import sys

COOKBOOK = os.environ.get("SANDBOX_COOKBOOK", "/run/sandbox/cookbook")
SHARED_CONFIG = "/opt/parallelcluster/shared/cluster-config.yaml"


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    event = next((a for a in argv if a.startswith("-") and a.lstrip("-") in ("preinstall", "postinstall", "postupdate")),
                 None)
    if event in ("-preinstall", "-postinstall"):
        print(f"fetch_and_run {event}: run by the sandbox's cookbook stand-in at init")
        return 0
    if event != "-postupdate":
        print(f"fetch_and_run: unknown event {argv}", file=sys.stderr)
        return 1
    sys.path.insert(0, COOKBOOK)
    import boto3  # pylint: disable=import-outside-toplevel  # the cookbook virtualenv's
    import custom_actions  # pylint: disable=import-outside-toplevel,import-error  # the sandbox's cookbook stand-in
    import yaml  # pylint: disable=import-outside-toplevel

    with open("/etc/chef/dna.json", encoding="utf-8") as handle:
        region = json.load(handle)["cluster"]["region"]
    with open(SHARED_CONFIG, encoding="utf-8") as handle:
        config = yaml.safe_load(handle)
    steps = custom_actions.sequence(config, "OnNodeUpdated", None)
    if not steps:
        return 0
    try:
        custom_actions.run("OnNodeUpdated", steps, boto3.session.Session(region_name=region).client("s3"), print)
    except custom_actions.ActionFailed as failure:
        custom_actions.write_error(str(failure))
        print(failure, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
