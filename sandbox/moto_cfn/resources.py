"""A stack's resources: the record CloudFormation keeps of each, and the drivers that create, update
and delete them in moto's backends.

A driver's ``create``/``update``/``delete`` either finishes at once (returns None) or returns a
poll function: called again and again, it returns True when the operation has finished and raises
``ResourceFailed`` with CloudFormation's reason when it failed (a wait condition waiting for its
signal, a nested stack being created). ``UPDATE_REPLACES`` names the properties whose change makes
CloudFormation create a new physical resource instead of updating the existing one ("*": any).
"""

from __future__ import annotations

import copy
import datetime
import random
import string

from moto.cloudformation.exceptions import UnformattedGetAttTemplateException


class ResourceFailed(Exception):
    """A resource operation failed; the message is the event's ResourceStatusReason."""


class UnknownAttribute(Exception):
    """Fn::GetAtt asks for an attribute the resource type does not have."""


def now():
    return datetime.datetime.now(tz=datetime.timezone.utc)


def physical_name(stack_name: str, logical_id: str, limit: int = 255) -> str:
    """A name as CloudFormation generates one: <stack>-<logical id>-<13 random characters>."""
    suffix = "".join(random.choices(string.ascii_uppercase + string.digits, k=13))  # noqa: S311
    prefix = f"{stack_name}-{logical_id}"[: max(1, limit - len(suffix) - 1)]
    return f"{prefix}-{suffix}"


class Resource:  # pylint: disable=too-many-instance-attributes
    """One resource of a stack, as DescribeStackResource shows it."""

    def __init__(self, logical_id: str, definition: dict):
        self.logical_id = logical_id
        self.definition = definition
        self.type = definition["Type"]
        self.properties: dict = {}
        self.metadata: dict | None = None
        self.physical_id: str | None = None
        self.status: str | None = None
        self.reason: str | None = None
        self.timestamp = now()
        self.model = None   # moto's object behind it, when there is one
        self.data: dict = {}  # what a driver keeps between calls

    @property
    def exists(self) -> bool:
        """Whether a physical resource stands behind the record."""
        return self.physical_id is not None and self.status not in (None, "DELETE_COMPLETE")

    def summary(self) -> dict:
        out = {"LogicalResourceId": self.logical_id, "PhysicalResourceId": self.physical_id or "",
               "ResourceType": self.type, "ResourceStatus": self.status, "LastUpdatedTimestamp": self.timestamp,
               "DriftInformation": {"StackResourceDriftStatus": "NOT_CHECKED"}}
        if self.reason:
            out["ResourceStatusReason"] = self.reason
        return out


class Driver:
    """What CloudFormation does for one resource type."""

    UPDATE_REPLACES: tuple = ("*",)

    def create(self, ctx, res: Resource):
        raise NotImplementedError

    def update(self, ctx, res: Resource, old_properties: dict):  # pylint: disable=unused-argument
        """In place; only called when no property in UPDATE_REPLACES changed."""
        return None

    def delete(self, ctx, res: Resource):  # pylint: disable=unused-argument
        return None

    def ref(self, res: Resource):
        return res.physical_id

    def get_att(self, res: Resource, name: str):
        raise UnknownAttribute(name)

    def replaces(self, old: dict, new: dict) -> bool:
        """Whether going from properties old to new needs a new physical resource."""
        if old == new:
            return False
        if "*" in self.UPDATE_REPLACES:
            return True
        return any(old.get(name) != new.get(name) for name in self.UPDATE_REPLACES)


class MotoModelDriver(Driver):
    """A type moto's CloudFormation already implements: its model's create/update/delete."""

    def __init__(self, model_class, update_replaces=("*",)):
        self.model_class = model_class
        self.UPDATE_REPLACES = update_replaces  # pylint: disable=invalid-name

    def _name(self, ctx, res):
        name_property = self.model_class.cloudformation_name_type()
        if name_property and res.properties.get(name_property):
            return res.properties[name_property]
        return physical_name(ctx.stack.name, res.logical_id)

    def _json(self, res):
        # A copy: moto's models change what they are given (a launch template's UserData, for one).
        return {"Type": res.type, "Properties": copy.deepcopy(res.properties)}

    def create(self, ctx, res):
        res.model = self.model_class.create_from_cloudformation_json(
            self._name(ctx, res), self._json(res), ctx.account_id, ctx.region,
            LogicalId=res.logical_id, StackId=ctx.stack.stack_id, ResourceType=res.type)
        res.physical_id = str(res.model.physical_resource_id)

    def update(self, ctx, res, old_properties):
        update = self.model_class.update_from_cloudformation_json
        if getattr(update, "__isabstractmethod__", False):
            return None
        res.model = update(original_resource=res.model, new_resource_name=self._name(ctx, res),
                           cloudformation_json=self._json(res), account_id=ctx.account_id, region_name=ctx.region)
        res.physical_id = str(res.model.physical_resource_id)
        return None

    def delete(self, ctx, res):
        try:
            self._delete(ctx, res)
        except Exception as exc:  # pylint: disable=broad-except
            if "notfound" in type(exc).__name__.lower() or "not found" in str(exc).lower():
                return None  # gone already: CloudFormation's delete succeeds
            raise
        return None

    def _delete(self, ctx, res):
        try:
            res.model.delete(ctx.account_id, ctx.region)
            return
        except (AttributeError, TypeError, NotImplementedError):
            pass
        delete = self.model_class.delete_from_cloudformation_json
        if not getattr(delete, "__isabstractmethod__", False):
            delete(res.physical_id, self._json(res), ctx.account_id, ctx.region)

    def get_att(self, res, name):
        try:
            return res.model.get_cfn_attribute(name)
        except (UnformattedGetAttTemplateException, NotImplementedError) as exc:
            raise UnknownAttribute(name) from exc


class PlaceholderDriver(Driver):
    """A type moto has no backend for and the sandbox needs no behaviour of: a name, and the
    attributes Fn::GetAtt asks for. Nothing is created in moto."""

    def __init__(self, attributes=None, name_property=None):
        self.attributes = attributes or {}
        self.name_property = name_property

    def create(self, ctx, res):
        name = res.properties.get(self.name_property) if self.name_property else None
        res.physical_id = name or physical_name(ctx.stack.name, res.logical_id)

    def get_att(self, res, name):
        if name not in self.attributes:
            raise UnknownAttribute(name)
        return self.attributes[name](res)
