"""A moto server of the tests' own (sandbox/moto_server.py with the sandbox's CloudFormation engine,
moto_cfn), prepared as `sandbox.py up` prepares the sandbox's: one per test module. Each test that
creates stacks asks for ``cleanup``, which deletes them and the log groups ParallelCluster's templates
retain, so that the next test can create the same template again.
"""

from __future__ import annotations

import pytest

import moto_cluster  # sandbox/moto_cluster.py (pytest.ini: pythonpath)
from ansible_collections.hpc.pcluster.tests.integration.moto_cfn.cfn_helpers import REGION, Moto, wait_for

# The custom resources' function answers after this long, and a stack delete starts after this long
# (1 s each outside the tests).
SPEED_UP = {"SANDBOX_CFN_LAMBDA_SECONDS": "0.2", "SANDBOX_CFN_DELETE_START_SECONDS": "0.3"}


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    work_dir = tmp_path_factory.mktemp("moto")
    proc, url = moto_cluster.start_moto_server(work_dir, env=SPEED_UP)
    try:
        yield Moto(url, moto_cluster.prepare_account(url, REGION, work_dir), work_dir)
    finally:
        moto_cluster.stop_moto_server(proc)


@pytest.fixture
def cleanup(moto):
    """Deletes the stacks a test created and every log group (ParallelCluster's templates retain theirs)."""
    yield
    cfn = moto.client("cloudformation")
    for summary in cfn.list_stacks()["StackSummaries"]:
        if summary["StackStatus"] != "DELETE_COMPLETE" and not summary.get("ParentId"):
            if summary["StackStatus"].endswith("IN_PROGRESS") and summary["StackStatus"] != "CREATE_IN_PROGRESS":
                wait_for(moto, summary["StackId"])
            cfn.delete_stack(StackName=summary["StackId"])
            wait_for(moto, summary["StackId"])
    logs = moto.client("logs")
    for group in logs.describe_log_groups()["logGroups"]:
        logs.delete_log_group(logGroupName=group["logGroupName"])
