"""cfn-signal: a wait condition handle's signal, as ParallelCluster's head node sends it.

    cfn-signal [--exit-code N] [--reason TEXT] [--id UNIQUE_ID] [--data DATA] [--region R] [--url U] HANDLE_URL

Exit code 0 signals SUCCESS, any other FAILURE; the UniqueId is the instance id unless --id gives one.
"""

from __future__ import annotations

import argparse
import sys

import cfn_init


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="cfn-signal", description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("-e", "--exit-code", type=int, default=0)
    parser.add_argument("-r", "--reason", default="")
    parser.add_argument("-i", "--id")
    parser.add_argument("-d", "--data", default="")
    parser.add_argument("--region")
    parser.add_argument("--url")
    parser.add_argument("handle")
    args = parser.parse_args(argv)
    success = args.exit_code == 0
    reason = args.reason or ("Configuration Complete" if success else "Configuration failed")
    cfn_init.signal(args.handle, success, reason, args.id or cfn_init.instance_id(), args.data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
