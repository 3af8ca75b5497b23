"""The CloudFormation API calls the engine takes over in moto's server.

CreateStack, UpdateStack, DeleteStack, CreateChangeSet/ExecuteChangeSet (UPDATE change sets),
DescribeStackResource(s) and ListStackResources (each resource's own status and reason, and its
Metadata as cfn-init reads it), and the wait condition handles' signal URLs. DescribeStacks,
ListStacks, DescribeStackEvents, GetTemplate and the rest stay moto's, reading the engine's stacks.
"""

from __future__ import annotations

import json
import logging
import os

from moto.cloudformation import models as cfn_models
from moto.cloudformation import responses as cfn_responses
from moto.cloudformation import urls as cfn_urls
from moto.cloudformation.exceptions import ValidationError
from moto.cloudformation.utils import generate_changeset_id, generate_stack_id
from moto.core.responses import ActionResult, EmptyResult

from . import ec2, waits
from . import template as tpl
from .drivers import unsupported_types
from .engine import Engine
from .stack import Stack

SIGNAL_PATH = "{0}/cloudformation_(?P<region>[^/]+)/waitcondition/(?P<stack>[^/]+)/(?P<logical_id>[^/]+)$"
# Where nodes send their wait condition signals; default: the address the stack's creator called.
SIGNAL_BASE_VARIABLE = "SANDBOX_CFN_SIGNAL_BASE"

ENGINE = Engine(lambda account_id, region: cfn_models.cloudformation_backends[account_id][region])


def _live_stack(backend, name_or_id):
    for stack in backend.stacks.values():
        if name_or_id in (stack.name, stack.stack_id):
            return stack
    if name_or_id in backend.deleted_stacks:
        return backend.deleted_stacks[name_or_id]
    raise ValidationError(name_or_id)


def _template_text(response, stack=None):
    if stack is not None and response._get_bool_param("UsePreviousTemplate", False):  # pylint: disable=protected-access
        return stack.template
    body, url = response._get_param("TemplateBody"), response._get_param("TemplateURL")  # pylint: disable=protected-access
    if body:
        return body
    if url:
        return response._get_stack_from_s3_url(url)  # pylint: disable=protected-access
    raise ValidationError(message="Either Template URL or Template Body must be specified.")


def _parameters(response) -> dict:
    """Given parameters; None stands for UsePreviousValue."""
    out = {}
    for item in response._get_param("Parameters", []) or []:  # pylint: disable=protected-access
        if str(item.get("UsePreviousValue", "")).lower() == "true":
            out[item["ParameterKey"]] = None
        else:
            out[item["ParameterKey"]] = item.get("ParameterValue", "")
    return out


def _checked(template_text):
    try:
        template = tpl.parse(template_text)
    except tpl.TemplateError as exc:
        raise ValidationError(message=str(exc)) from exc
    if "Resources" not in template:
        raise ValidationError(message="Template format error: At least one Resources member must be defined.")
    unsupported = unsupported_types(template)
    if unsupported:
        raise ValidationError(message=f"Template format error: Unrecognized resource types: {unsupported} "
                                      f"(the sandbox's CloudFormation has no model of them)")
    return template


def _signal_base(response) -> str:
    base = os.environ.get(SIGNAL_BASE_VARIABLE)
    if base:
        return base.rstrip("/")
    host = response.headers.get("Host") or response.headers.get("host") or "127.0.0.1"
    return f"http://{host}"


def create_stack(self):
    name = self._get_param("StackName")
    backend = self.cloudformation_backend
    if any(stack.name == name for stack in backend.stacks.values()):
        raise cfn_models.AlreadyExistsException(f"Stack [{name}] already exists")
    text = _template_text(self)
    _checked(text)
    on_failure = self._get_param("OnFailure")
    disable_rollback = self._get_bool_param("DisableRollback", False) or on_failure == "DO_NOTHING"
    try:
        stack = Stack(stack_id=generate_stack_id(name, self.region, self.current_account), name=name,
                      template_text=text, parameters=_parameters(self), account_id=self.current_account,
                      region_name=self.region, tags={t["Key"]: t["Value"] for t in self._get_param("Tags", [])},
                      notification_arns=self._get_param("NotificationARNs", []), role_arn=self._get_param("RoleARN"),
                      disable_rollback=disable_rollback, timeout_in_mins=self._get_param("TimeoutInMinutes"),
                      signal_base=_signal_base(self), stack_policy_body=self._get_param("StackPolicyBody"),
                      enable_termination_protection=self._get_bool_param("EnableTerminationProtection", False))
    except tpl.TemplateError as exc:
        raise ValidationError(message=str(exc)) from exc
    backend.stacks[stack.stack_id] = stack
    ENGINE.start(stack, "create")
    return ActionResult({"StackId": stack.stack_id})


# sandbox/moto_cluster.py marks the stacks it registers without ParallelCluster's template with this key.
REGISTRATION_MARK = "SandboxRegistration"


def _start_update(stack, text, parameters, tags):
    if REGISTRATION_MARK in (stack.template_dict.get("Metadata") or {}):
        raise ValidationError(message=(
            f"Stack {stack.name} was registered by the sandbox (`sandbox.py up`), not created from "
            "ParallelCluster's template, so it cannot be updated. Start the sandbox with `sandbox.py up "
            "--no-cluster` and create the cluster with deploy.yml (`make demo` does both) to update it."))
    if stack.busy:
        raise ValidationError(message=f"Stack:{stack.stack_id} is in {stack.status} state and can not be updated.")
    if stack.status in ("ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "CREATE_FAILED", "DELETE_COMPLETE", "DELETE_FAILED"):
        raise ValidationError(message=f"Stack:{stack.stack_id} is in {stack.status} state and can not be updated.")
    template = _checked(text)
    try:
        resolved = tpl.resolve_parameters(template, parameters, stack.resolved_parameters)
    except tpl.TemplateError as exc:
        raise ValidationError(message=str(exc)) from exc
    same_tags = tags is None or tags == stack.tags
    if template == stack.template_dict and resolved == stack.resolved_parameters and same_tags:
        raise ValidationError(message="No updates are to be performed.")
    ENGINE.start(stack, "update", template_text=text, parameters=parameters, tags=tags)


def update_stack(self):
    stack = _live_stack(self.cloudformation_backend, self._get_param("StackName"))
    tags = {t["Key"]: t["Value"] for t in self._get_param("Tags", []) or []} or None
    _start_update(stack, _template_text(self, stack), _parameters(self), tags)
    return ActionResult({"StackId": stack.stack_id})


def delete_stack(self):
    backend = self.cloudformation_backend
    name_or_id = self._get_param("StackName")
    stack = next((s for s in backend.stacks.values() if name_or_id in (s.name, s.stack_id)), None)
    if stack is not None and not isinstance(stack, Stack):
        backend.delete_stack(name_or_id)
    elif stack is not None and stack.status == "CREATE_IN_PROGRESS":
        stack.delete_requested = True  # the create stops, what it created is deleted
    elif stack is not None and stack.status != "DELETE_IN_PROGRESS":
        if stack.busy:
            raise ValidationError(message=f"Stack [{stack.name}] cannot be deleted while in status {stack.status}")
        ENGINE.start(stack, "delete")
    return EmptyResult()


def _detail(stack, res) -> dict:
    out = dict(res.summary(), StackName=stack.name, StackId=stack.stack_id)
    if res.metadata is not None:
        out["Metadata"] = json.dumps(res.metadata)
    return out


def _resource_stack(self):
    backend = self.cloudformation_backend
    name = self._get_param("StackName")
    physical_id = self._get_param("PhysicalResourceId")
    if name:
        return _live_stack(backend, name)
    for stack in list(backend.stacks.values()):
        if any(r.physical_id == physical_id for r in getattr(stack, "resources", {}).values()):
            return stack
    raise ValidationError(message=f"Stack for {physical_id} does not exist")


def _listed(stack):
    return [res for res in getattr(stack, "resources", {}).values()
            if res.status is not None and res.status != "DELETE_COMPLETE"]


def describe_stack_resource(self):
    stack = _live_stack(self.cloudformation_backend, self._get_param("StackName"))
    logical_id = self._get_param("LogicalResourceId")
    res = getattr(stack, "resources", {}).get(logical_id)
    if res is None or res.status is None:
        raise ValidationError(message=f"Resource {logical_id} does not exist for stack {stack.name}")
    return ActionResult({"StackResourceDetail": _detail(stack, res)})


def describe_stack_resources(self):
    stack = _resource_stack(self)
    logical_id = self._get_param("LogicalResourceId")
    physical_id = self._get_param("PhysicalResourceId")
    resources = [r for r in _listed(stack) if (not logical_id or r.logical_id == logical_id)
                 and (not physical_id or logical_id or r.physical_id == physical_id)]
    out = []
    for res in resources:
        detail = _detail(stack, res)
        detail.pop("Metadata", None)
        detail["Timestamp"] = detail.pop("LastUpdatedTimestamp")
        out.append(detail)
    return ActionResult({"StackResources": out})


def list_stack_resources(self):
    stack = _live_stack(self.cloudformation_backend, self._get_param("StackName"))
    return ActionResult({"StackResourceSummaries": [r.summary() for r in _listed(stack)]})


class _ChangeSet(cfn_models.ChangeSet):  # pylint: disable=too-few-public-methods
    """An UPDATE change set: the engine's view of what the update would add, modify and remove."""

    def diff(self):
        template = _checked(self.template)
        old = self.stack.template_dict.get("Resources") or {}
        new = template.get("Resources") or {}
        changes = [cfn_models.Change("Add", lid, new[lid]["Type"]) for lid in new if lid not in old]
        changes += [cfn_models.Change("Modify", lid, new[lid]["Type"]) for lid in new
                    if lid in old and new[lid] != old[lid]]
        changes += [cfn_models.Change("Remove", lid, old[lid]["Type"]) for lid in old if lid not in new]
        return changes

    def apply(self):
        _start_update(self.stack, self.template, self.parameters, self.tags or None)


def create_change_set(self):
    change_type = self._get_param("ChangeSetType", "CREATE")
    if change_type != "UPDATE":
        raise ValidationError(message="The sandbox's CloudFormation runs UPDATE change sets only; create the "
                                      "stack with CreateStack")
    backend = self.cloudformation_backend
    stack = _live_stack(backend, self._get_param("StackName"))
    name = self._get_param("ChangeSetName")
    change_set_id = generate_changeset_id(name, self.region, self.current_account)
    change_set = _ChangeSet(change_set_type="UPDATE", change_set_id=change_set_id, change_set_name=name,
                            stack=stack, template=_template_text(self, stack), parameters=_parameters(self),
                            description=self._get_param("Description"),
                            tags={t["Key"]: t["Value"] for t in self._get_param("Tags", []) or []})
    change_set.status, change_set.execution_status = "CREATE_COMPLETE", "AVAILABLE"
    if not change_set.changes and change_set.parameters == stack.parameters:
        change_set.status, change_set.execution_status = "FAILED", "UNAVAILABLE"
        change_set.status_reason = ("The submitted information didn't contain changes. Submit different "
                                    "information to create a change set.")
    backend.change_sets[change_set_id] = change_set
    return ActionResult({"Id": change_set_id, "StackId": stack.stack_id})


def execute_change_set(self):
    backend = self.cloudformation_backend
    change_set = backend.describe_change_set(self._get_param("ChangeSetName"))
    if change_set.execution_status != "AVAILABLE":
        raise ValidationError(message=f"ChangeSet [{change_set.change_set_id}] cannot be executed in its current "
                                      f"status of [{change_set.status}]")
    change_set.apply()
    change_set.execution_status = "EXECUTE_COMPLETE"
    return EmptyResult()


def signal_handler(request, full_url, headers):  # pylint: disable=unused-argument
    """PUT <signal base>/cloudformation_<region>/waitcondition/<stack uuid>/<logical id>, as cfn-signal sends."""
    parts = full_url.split("?", 1)[0].rstrip("/").split("/")
    region, uuid, logical_id = parts[-4].split("_", 1)[1], parts[-2], parts[-1]
    body = request.data if hasattr(request, "data") else request.body
    try:
        document = json.loads(body or b"{}")
    except ValueError:
        return 400, {}, "the signal's body must be JSON: {\"Status\", \"Reason\", \"UniqueId\", \"Data\"}"
    for backends in cfn_models.cloudformation_backends.values():
        if region not in backends:
            continue
        for stack in list(backends[region].stacks.values()):
            res = getattr(stack, "resources", {}).get(logical_id)
            if stack.stack_id.endswith("/" + uuid) and res is not None and res.type.endswith("WaitConditionHandle"):
                try:
                    waits.signal(res, document)
                except ValueError as exc:
                    return 400, {}, str(exc)
                return 200, {}, ""
    return 404, {}, f"no wait condition handle {logical_id} in stack {uuid}"


def install() -> None:
    """Make moto's CloudFormation run stacks through the engine (call before its app is created)."""
    log = logging.getLogger("moto_cfn")
    if not log.handlers:  # the engine's own failures (not a resource's) go to moto's log with their traceback
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("moto_cfn %(levelname)s %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.WARNING)
    response = cfn_responses.CloudFormationResponse
    for function in (create_stack, update_stack, delete_stack, describe_stack_resource, describe_stack_resources,
                     list_stack_resources, create_change_set, execute_change_set):
        setattr(response, function.__name__, function)
    cfn_urls.url_paths[SIGNAL_PATH] = signal_handler
    ec2.fix_launch_template_block_devices()
