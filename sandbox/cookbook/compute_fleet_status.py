"""The head node's compute fleet status commands, emulated: ParallelCluster's cookbook file compute_fleet_status.py.

clustermgtd reads the fleet status with ``get-compute-fleet-status.sh`` and sets PROTECTED with
``update-compute-fleet-status.sh --status PROTECTED``; both are cookbook templates on the head node's PATH
(``/usr/local/bin``) calling this script with the cluster's table and region. The cookbook is not published
where the sandbox can install it from, so this is written from its source as facts: ``get`` prints the status
and its time as ISO 8601 with milliseconds; ``update`` changes the status only from RUNNING (conditionally) and
does nothing when it already has the status asked for.

    python compute_fleet_status.py --table-name T --region R --action get
    python compute_fleet_status.py --table-name T --region R --action update --status PROTECTED
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys

from clusterstatusmgtd import FleetStatusTable


def iso_time(text: str) -> str:
    """A timestamp as pcluster writes it (str(datetime)) -> 2021-07-15T01:22:02.655Z."""
    parsed = datetime.datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    return parsed.astimezone(datetime.timezone.utc).isoformat(timespec="milliseconds")[:-6] + "Z"


def get(table: FleetStatusTable) -> str:
    data = table.get()
    return json.dumps({"status": data.get("status"), "lastStatusUpdatedTime": iso_time(data["lastStatusUpdatedTime"])},
                      sort_keys=True, indent=4)


def update(table: FleetStatusTable, status: str) -> None:
    current = table.get().get("status")
    if current == status:
        return
    if current != "RUNNING":
        raise RuntimeError(f"Could not update compute fleet status from '{current}' to {status}.")
    table.update(current, status)


def main(argv=None) -> int:
    import boto3  # pylint: disable=import-outside-toplevel  # the cookbook virtualenv's

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--table-name", required=True)
    parser.add_argument("--region", required=True)
    parser.add_argument("--action", choices=["get", "update"], required=True)
    parser.add_argument("--status")
    args = parser.parse_args(argv)
    table = FleetStatusTable(boto3.resource("dynamodb", region_name=args.region).Table(args.table_name))
    try:
        if args.action == "get":
            print(get(table))
        else:
            update(table, args.status)
    except Exception as exc:  # pylint: disable=broad-except  # one line for clustermgtd's log, as the script does
        verb = "retrieving fleet status from DynamoDB" if args.action == "get" else "updating fleet status"
        print(f"Failed when {verb} with error {exc}.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
