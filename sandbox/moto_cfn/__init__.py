"""CloudFormation for the sandbox's moto server: ParallelCluster's cluster templates, run as
CloudFormation runs them.

moto 5.2.5's CloudFormation creates a stack's resources in the request that creates it, has no model
of several types ParallelCluster's templates use, no nested stack statuses, wait conditions or
per-resource events. ``install()`` (called by ``moto_server.py`` before moto's CloudFormation app is
created) hands CreateStack, UpdateStack, DeleteStack, UPDATE change sets and the resource calls to
an engine of its own:

* ``engine``: operations in worker threads, with CloudFormation's statuses, events and rollbacks;
* ``template``: parameters, conditions, intrinsic functions and dependencies;
* ``drivers``: which code creates each resource type - moto's own models where they are right
  (IAM, DynamoDB, Logs, Lambda, launch templates, dashboards, ...), EC2 (``ec2``), CloudWatch alarms,
  metric filters and hosted zones (``monitoring``) on moto's backends, wait conditions and nested
  stacks (``waits``), ParallelCluster's Lambda-backed custom resources (``custom_resources``), and
  placeholders where moto has nothing and the sandbox needs nothing (placement groups);
* ``service``: the API calls and the wait condition signal URL.
"""


def install() -> None:
    from .service import install as _install  # pylint: disable=import-outside-toplevel

    _install()
