"""A CloudFormation stack as the engine runs it, stored where moto's CloudFormation keeps its stacks.

It is a moto ``Stack`` (so moto's DescribeStacks, ListStacks, GetTemplate and the other read calls
serialize it unchanged), built without moto's resource map: its resources are the engine's
``Resource`` records, its outputs are resolved from them when asked for.
"""

from __future__ import annotations

import threading

from moto.cloudformation.models import Event
from moto.cloudformation.models import Stack as MotoStack

from . import template as tpl
from .resources import UnknownAttribute, now


class Stack(MotoStack):  # pylint: disable=too-many-instance-attributes
    """A stack whose operations run in the engine's worker threads. (Named Stack like moto's: moto's
    serializer finds StackName, StackStatus... through the class name.)"""

    def __init__(self, *, stack_id, name, template_text, parameters, account_id, region_name, tags=None,  # pylint: disable=super-init-not-called
                 notification_arns=None, role_arn=None, disable_rollback=False, timeout_in_mins=None,
                 parent_id=None, root_id=None, signal_base=None, stack_policy_body=None,
                 enable_termination_protection=False):
        self.stack_id = stack_id
        self.name = name
        self.account_id = account_id
        self.region_name = region_name
        self.template = template_text
        self.template_dict = tpl.parse(template_text) if template_text else {}
        self.description = self.template_dict.get("Description")
        self.parameters = dict(parameters)  # as given (None: use the previous value)
        self.resolved_parameters = tpl.resolve_parameters(self.template_dict, self.parameters) if template_text else {}
        self.notification_arns = notification_arns or []
        self.role_arn = role_arn
        self.tags = dict(tags or {})
        self.events: list = []
        self.timeout_in_minutes = timeout_in_mins
        self.policy = stack_policy_body or ""
        self.cross_stack_resources: dict = {}
        self.enable_termination_protection = bool(enable_termination_protection)
        self.custom_resources: dict = {}
        self.creation_time = now()
        self.last_updated_time = None
        self.deletion_time = None
        self.status = "CREATE_PENDING"
        self.status_reason = None
        self.failure_reason = None  # why the last operation failed (a parent's event quotes it)
        self.disable_rollback = bool(disable_rollback)
        self.parent_id = parent_id
        self.root_id = root_id
        self.signal_base = signal_base
        self.resources: dict = {}  # logical id -> Resource
        self.delete_requested = False  # DeleteStack arrived while the stack was being created
        self.lock = threading.RLock()
        self.operation = None  # the running operation's thread

    # ------------------------------------------------------------------ what moto's responses read

    @property
    def stack_status_reason(self):
        return self.status_reason

    @property
    def parameter_list(self):
        declared = self.template_dict.get("Parameters") or {}
        return [{"ParameterKey": key, "ParameterValue": "****" if (declared.get(key) or {}).get("NoEcho") else value}
                for key, value in self.resolved_parameters.items()]

    @property
    def stack_parameters(self):
        return self.resolved_parameters

    @property
    def stack_resources(self):
        return list(self.resources.values())

    @property
    def exports(self):
        return []

    @property
    def outputs(self):
        scope = self.scope()
        out = []
        for key, definition in (self.template_dict.get("Outputs") or {}).items():
            try:
                if not scope.included(definition):
                    continue
                value = scope.resolve(definition.get("Value"))
            except (tpl.TemplateError, UnknownAttribute, KeyError, TypeError, AttributeError):
                continue  # a resource the output names does not exist (yet or any more)
            if isinstance(value, list):
                value = ",".join(str(v) for v in value)
            entry = {"OutputKey": key, "OutputValue": str(value)}
            if definition.get("Description"):
                entry["Description"] = definition["Description"]
            out.append(entry)
        return out or None

    # ------------------------------------------------------------------ the engine's side

    def scope(self, template=None, parameters=None, resources=None):
        """The intrinsic functions' scope over this stack's (or the given) template, parameters, resources."""
        from .drivers import driver_for  # pylint: disable=import-outside-toplevel

        template = self.template_dict if template is None else template
        resources = self.resources if resources is None else resources

        def resource(logical_id):
            res = resources.get(logical_id)
            if res is None or res.physical_id is None:
                raise tpl.TemplateError(f"Template error: resource {logical_id} does not exist (yet)")
            return res

        def ref(logical_id):
            res = resource(logical_id)
            return driver_for(res.type).ref(res)

        def att(logical_id, attribute):
            res = resource(logical_id)
            try:
                return driver_for(res.type).get_att(res, attribute)
            except UnknownAttribute as exc:
                raise tpl.TemplateError(f"Template error: resource {logical_id} does not support attribute type "
                                        f"{attribute} in Fn::GetAtt") from exc

        pseudo = {"AWS::AccountId": self.account_id, "AWS::Region": self.region_name, "AWS::StackId": self.stack_id,
                  "AWS::StackName": self.name, "AWS::URLSuffix": "amazonaws.com", "AWS::Partition": "aws",
                  "AWS::NotificationARNs": list(self.notification_arns)}
        return tpl.Scope(template, self.resolved_parameters if parameters is None else parameters, pseudo, ref, att)

    def add_event(self, logical_id, physical_id, resource_type, status, reason=None):
        event = Event(stack_id=self.stack_id, stack_name=self.name, logical_resource_id=logical_id,
                      physical_resource_id=physical_id, resource_type=resource_type, resource_status=status,
                      resource_status_reason=reason, resource_properties=None)
        event.timestamp = now()
        self.events.append(event)
        return event

    def set_status(self, status, reason=None):
        """The stack's own status, with its event (as on AWS: the stack is a resource of itself)."""
        self.status, self.status_reason = status, reason
        if reason and (status.endswith("FAILED") or "ROLLBACK_IN_PROGRESS" in status):
            self.failure_reason = reason
        self.add_event(self.name, self.stack_id, "AWS::CloudFormation::Stack", status, reason)

    def resource_event(self, res, status, reason=None):
        res.status, res.reason, res.timestamp = status, reason, now()
        self.add_event(res.logical_id, res.physical_id or "", res.type, status, reason)

    @property
    def busy(self) -> bool:
        return self.status.endswith("_IN_PROGRESS")
