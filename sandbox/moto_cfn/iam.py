"""AWS::IAM::Role on moto's model, with what that model leaves out and CloudFormation does: the role's
``ManagedPolicyArns`` attached (ParallelCluster's node roles get CloudWatchAgentServerPolicy and the config's
AdditionalIamPolicies this way), kept in step with the template on an update, detached before the role is
deleted; and its inline ``Policies`` put again on an update (moto's model only changes the description).
"""

from __future__ import annotations

from moto.iam.models import Role, iam_backends
from moto.utilities.utils import get_partition

from .resources import MotoModelDriver, ResourceFailed


def _backend(ctx):
    return iam_backends[ctx.account_id][get_partition(ctx.region)]


class RoleDriver(MotoModelDriver):
    def __init__(self):
        super().__init__(Role, ("RoleName", "Path"))

    def create(self, ctx, res):
        super().create(ctx, res)
        self._managed(ctx, res, (), res.properties.get("ManagedPolicyArns") or ())

    def update(self, ctx, res, old_properties):
        super().update(ctx, res, old_properties)
        self._managed(ctx, res, old_properties.get("ManagedPolicyArns") or (),
                      res.properties.get("ManagedPolicyArns") or ())
        wanted = {p["PolicyName"]: p["PolicyDocument"] for p in res.properties.get("Policies") or []}
        for policy in old_properties.get("Policies") or []:
            if policy["PolicyName"] not in wanted:
                _backend(ctx).delete_role_policy(res.model.name, policy["PolicyName"])
        for name, document in wanted.items():
            res.model.put_policy(name, document)

    def delete(self, ctx, res):
        if res.model is not None:
            self._managed(ctx, res, list(res.model.managed_policies), ())
        return super().delete(ctx, res)

    @staticmethod
    def _managed(ctx, res, before, after) -> None:
        backend = _backend(ctx)
        for arn in sorted(set(before) - set(after)):
            if arn in res.model.managed_policies:
                backend.detach_role_policy(arn, res.model.name)
        for arn in sorted(set(after) - set(before)):
            try:
                backend.attach_role_policy(arn, res.model.name)
            except Exception as exc:  # pylint: disable=broad-except  # moto's NotFoundException: IAM's own words
                raise ResourceFailed(str(getattr(exc, "message", None) or exc)) from exc


DRIVERS = {"AWS::IAM::Role": RoleDriver()}
