"""cfn-hup, as ParallelCluster's head node runs it: the hook that applies a stack update to the head node.

The cookbook writes ``/etc/cfn/cfn-hup.conf`` (``[main]``: stack, region) and
``/etc/cfn/hooks.d/pcluster-update.conf`` (``triggers=post.update``,
``path=Resources.<launch template>.Metadata.AWS::CloudFormation::Init``, ``action=... cfn-init
--configsets update ...``) and runs ``cfn-hup --no-daemon`` again and again, a minute apart
(``cfn-hup-runner.sh``). Each run reads the path from CloudFormation (DescribeStackResource, the
node's own credentials) and, when it changed since the last run (``/var/lib/cfn-hup/data``), runs the
hook's action through the shell as root; the first run only records it.

    cfn-hup --no-daemon          one check (the runner's loop calls it again)
"""

from __future__ import annotations

import configparser
import glob
import json
import os
import subprocess
import sys
import time

import cfn_init

CONF = "/etc/cfn/cfn-hup.conf"
HOOKS = "/etc/cfn/hooks.d/*.conf"
DATA = "/var/lib/cfn-hup/data/metadata_db.json"
LOG = "/var/log/cfn-hup.log"


def say(text: str) -> None:
    os.makedirs(os.path.dirname(LOG), exist_ok=True)
    with open(LOG, "a", encoding="utf-8") as handle:
        handle.write(f"{time.strftime('%Y-%m-%d %H:%M:%S,000')} [INFO] {text}\n")


def read_path(cloudformation, stack: str, path: str):
    """The value at path (Resources.<logical id>.Metadata.<key>...) of the stack."""
    parts = path.split(".")
    if len(parts) < 3 or parts[0] != "Resources" or parts[2] != "Metadata":
        raise ValueError(f"unsupported path {path}")
    detail = cloudformation.describe_stack_resource(StackName=stack, LogicalResourceId=parts[1])["StackResourceDetail"]
    value = json.loads(detail.get("Metadata") or "{}")
    for key in parts[3:]:  # "AWS::CloudFormation::Init" holds colons, not dots
        value = (value or {}).get(key)
    return value


def check() -> int:
    main = configparser.ConfigParser(interpolation=None)
    main.read(CONF)
    stack, region = main.get("main", "stack"), main.get("main", "region")
    cloudformation = cfn_init.cloudformation(region)
    try:
        with open(DATA, encoding="utf-8") as handle:
            seen = json.load(handle)
    except (OSError, ValueError):
        seen = {}
    failed = 0
    for hook_file in sorted(glob.glob(HOOKS)):
        hooks = configparser.ConfigParser(interpolation=None)
        hooks.read(hook_file)
        for name in hooks.sections():
            hook = hooks[name]
            if "post.update" not in hook.get("triggers", ""):
                continue
            value = read_path(cloudformation, stack, hook["path"])
            key = f"{name}:{hook['path']}"
            if key in seen and seen[key] != value:
                say(f"Data has changed from previous state; action for {name} will be run")
                result = subprocess.run(hook["action"], shell=True, capture_output=True, text=True, check=False)  # noqa: S602
                say(f"Action for {name} output: {result.stdout}{result.stderr}")
                failed |= result.returncode != 0
            seen[key] = value
    os.makedirs(os.path.dirname(DATA), exist_ok=True)
    with open(DATA, "w", encoding="utf-8") as handle:
        json.dump(seen, handle)
    return 1 if failed else 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--no-daemon" not in argv:
        print("the sandbox's cfn-hup runs with --no-daemon only (ParallelCluster's cfn-hup-runner.sh)", file=sys.stderr)
        return 2
    return check()


if __name__ == "__main__":
    sys.exit(main())
