"""The stack operations: create, update and delete, with rollback, as CloudFormation runs them.

Each operation runs in a worker thread of the moto server and moves the stack through
CloudFormation's statuses, one event per resource step:

* create: ``CREATE_IN_PROGRESS``; every resource whose Condition holds is created once the
  resources it depends on (DependsOn, Ref, Fn::GetAtt, Fn::Sub) are complete, those that wait
  (wait conditions, nested stacks) side by side with the others; ``CREATE_COMPLETE``. On the first
  failure, resources still in progress are cancelled ("Resource creation cancelled") and the stack
  rolls back (``ROLLBACK_IN_PROGRESS``, every created resource deleted, ``ROLLBACK_COMPLETE``),
  or stays ``CREATE_FAILED`` when the create asked for DisableRollback.
* update: ``UPDATE_IN_PROGRESS``; new resources created, changed ones updated in place or, when a
  property that needs replacement changed, created anew; resources whose properties and metadata
  are unchanged are left alone; ``UPDATE_COMPLETE_CLEANUP_IN_PROGRESS`` deletes removed and replaced
  resources; ``UPDATE_COMPLETE``. On failure: ``UPDATE_ROLLBACK_IN_PROGRESS``, changed resources
  back to their previous properties, ``UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS`` deletes the
  new ones, ``UPDATE_ROLLBACK_COMPLETE``, with the previous template and parameters.
* delete: ``DELETE_IN_PROGRESS``; each resource once nothing depending on it is left
  (``DeletionPolicy: Retain`` -> ``DELETE_SKIPPED``); ``DELETE_COMPLETE`` or ``DELETE_FAILED``.
"""

from __future__ import annotations

import logging
import os
import threading
import time

from moto.cloudformation.utils import generate_stack_id

from . import template as tpl
from .drivers import driver_for
from .resources import Resource, ResourceFailed, UnknownAttribute, now, physical_name
from .stack import Stack

LOG = logging.getLogger("moto_cfn")
POLL_SECONDS = 0.1
# CloudFormation takes a moment between DeleteStack and the first resource event; pcluster relies on it:
# it reads the stack back by name right after DeleteStack (and a deleted stack is found by id only).
DELETE_START_SECONDS = float(os.environ.get("SANDBOX_CFN_DELETE_START_SECONDS", "1"))


class Context:
    """What a driver sees of the operation it runs in."""

    def __init__(self, engine, stack):
        self.engine = engine
        self.stack = stack
        self.account_id = stack.account_id
        self.region = stack.region_name
        self.signal_base = stack.signal_base

    def physical_name(self, logical_id: str, limit: int = 255) -> str:
        return physical_name(self.stack.name, logical_id, limit)

    def ec2_tags(self, res) -> dict:
        """The tags CloudFormation puts on a resource it creates: the stack's and its own aws:cloudformation:*."""
        return dict(self.stack.tags, **{"aws:cloudformation:stack-name": self.stack.name,
                                        "aws:cloudformation:stack-id": self.stack.stack_id,
                                        "aws:cloudformation:logical-id": res.logical_id})


def _failure_text(exc: Exception) -> str:
    if isinstance(exc, ResourceFailed):
        return str(exc)
    if isinstance(exc, UnknownAttribute):
        return f"Template error: attribute {exc} is not supported"
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return f"Resource handler returned message: \"{message}\""


class Graph:  # pylint: disable=too-few-public-methods
    """Runs one step (create, update or delete) over resources in dependency order, those that wait
    side by side. ``start(logical_id)`` returns None when done, or a poll function."""

    def __init__(self, order, needs, start, on_done, on_failed, keep_going=False, cancelled=lambda: False):
        self.order = list(order)
        self.cancelled = cancelled
        wanted = set(self.order)
        self.needs = {lid: set(needs.get(lid, ())) & wanted for lid in self.order}
        self.start, self.on_done, self.on_failed = start, on_done, on_failed
        self.keep_going = keep_going
        self.done, self.failed = [], []

    def run(self) -> list:
        pending, waiting = list(self.order), {}
        while pending or waiting:
            if self.cancelled():
                return sorted(set(self.failed)), list(waiting)
            progressed = self._start_ready(pending, waiting)
            progressed |= self._poll(waiting)
            if self.failed and not self.keep_going:
                return sorted(set(self.failed)), list(waiting)
            if not waiting and pending and not progressed and not self.keep_going:
                for lid in pending:  # nothing left can start: a dependency cycle
                    self.failed.append(lid)
                    self.on_failed(lid, f"Circular dependency between resources: {sorted(pending)}")
                return sorted(set(self.failed)), []
            if self.keep_going and not waiting and pending and not progressed:
                break  # what is left waits for resources that failed
            if not progressed:
                time.sleep(POLL_SECONDS)
        return sorted(set(self.failed)), []

    def _start_ready(self, pending, waiting) -> bool:
        progressed = False
        for lid in list(pending):
            if self.failed and not self.keep_going:
                break
            if self.needs[lid] - set(self.done):
                continue
            pending.remove(lid)
            progressed = True
            try:
                poll = self.start(lid)
            except Exception as exc:  # pylint: disable=broad-except
                LOG.log(logging.INFO if isinstance(exc, ResourceFailed) else logging.WARNING, "%s failed: %s", lid, exc,
                        exc_info=not isinstance(exc, ResourceFailed))
                self.failed.append(lid)
                self.on_failed(lid, _failure_text(exc))
                continue
            if poll is None:
                self.done.append(lid)
                self.on_done(lid)
            else:
                waiting[lid] = poll
        return progressed

    def _poll(self, waiting) -> bool:
        progressed = False
        for lid, poll in list(waiting.items()):
            try:
                finished = poll()
            except Exception as exc:  # pylint: disable=broad-except
                LOG.log(logging.INFO if isinstance(exc, ResourceFailed) else logging.WARNING, "%s failed: %s", lid, exc,
                        exc_info=not isinstance(exc, ResourceFailed))
                del waiting[lid]
                self.failed.append(lid)
                self.on_failed(lid, _failure_text(exc))
                progressed = True
                continue
            if finished:
                del waiting[lid]
                self.done.append(lid)
                self.on_done(lid)
                progressed = True
        return progressed


def reverse_needs(needs: dict, ids) -> dict:
    """For deletion: each resource waits for those that depend on it."""
    ids = set(ids)
    out = {lid: set() for lid in ids}
    for lid in ids:
        for dependency in needs.get(lid, ()):
            if dependency in ids:
                out[dependency].add(lid)
    return out


class Engine:
    """Starts and runs stack operations in worker threads."""

    def __init__(self, backend_for):
        self.backend_for = backend_for  # (account id, region) -> moto's CloudFormationBackend

    # ------------------------------------------------------------------ stacks

    def new_stack(self, ctx, res, template_text, parameters) -> Stack:
        """A nested stack for resource res of ctx.stack, registered in the backend."""
        parent = ctx.stack
        name = physical_name(parent.name, res.logical_id, 128)
        # A nested stack that fails stays CREATE_FAILED (disable_rollback): its parent's rollback deletes it.
        stack = Stack(stack_id=generate_stack_id(name, parent.region_name, parent.account_id), name=name,
                      template_text=template_text, parameters=parameters, account_id=parent.account_id,
                      region_name=parent.region_name, tags=parent.tags, parent_id=parent.stack_id,
                      root_id=parent.root_id or parent.stack_id, signal_base=parent.signal_base, disable_rollback=True)
        self.backend_for(parent.account_id, parent.region_name).stacks[stack.stack_id] = stack
        return stack

    def start(self, stack: Stack, operation: str, **kwargs) -> None:
        """Run stack's operation ("create", "update", "delete") in a worker thread."""
        with stack.lock:
            if stack.operation is not None and stack.operation.is_alive():
                raise tpl.TemplateError(f"Stack {stack.stack_id} is in {stack.status} state and can not be updated.")
            runner = {"create": self._create, "update": self._update, "delete": self._delete}[operation]
            if operation == "create":
                stack.set_status("CREATE_IN_PROGRESS", "User Initiated")
            elif operation == "update":
                stack.set_status("UPDATE_IN_PROGRESS", "User Initiated")
            else:
                stack.set_status("DELETE_IN_PROGRESS", "User Initiated")
            delay = DELETE_START_SECONDS if operation == "delete" else 0
            stack.operation = threading.Thread(target=self._run, args=(runner, stack, kwargs, delay),
                                               name=f"cfn-{operation}-{stack.name}", daemon=True)
            stack.operation.start()

    def _run(self, runner, stack, kwargs, delay):
        try:
            time.sleep(delay)
            runner(stack, **kwargs)
        except Exception as exc:  # pylint: disable=broad-except
            LOG.exception("stack %s: %s", stack.name, exc)
            failed = {"CREATE": "CREATE_FAILED", "UPDATE": "UPDATE_ROLLBACK_FAILED", "DELETE": "DELETE_FAILED",
                      "ROLLBACK": "ROLLBACK_FAILED"}
            stack.set_status(failed.get(stack.status.split("_")[0], "UPDATE_ROLLBACK_FAILED"), str(exc))

    # ------------------------------------------------------------------ steps shared by the operations

    @staticmethod
    def _included(stack, template, scope) -> list:
        return [lid for lid, definition in (template.get("Resources") or {}).items() if scope.included(definition)]

    def _create_resource(self, ctx, scope, res, event_status="CREATE"):
        stack = ctx.stack
        res.properties = scope.resolve(res.definition.get("Properties") or {})
        res.metadata = scope.resolve(res.definition["Metadata"]) if "Metadata" in res.definition else None
        stack.resource_event(res, f"{event_status}_IN_PROGRESS")
        poll = driver_for(res.type).create(ctx, res)
        if poll is not None:
            stack.resource_event(res, f"{event_status}_IN_PROGRESS", "Resource creation Initiated")
        return poll

    def _delete_all(self, stack, ids, template, *, retain=True, keep_going=True):
        """Delete the resources ids (of template) in reverse dependency order. Returns those that failed."""
        ctx = Context(self, stack)
        needs = reverse_needs(tpl.dependencies(template.get("Resources") or {}), ids)
        records = {lid: stack.resources[lid] for lid in ids}

        def start(lid):
            res = records[lid]
            if res.status == "DELETE_COMPLETE":
                return None
            if retain and res.definition.get("DeletionPolicy") == "Retain" and res.physical_id:
                stack.resource_event(res, "DELETE_SKIPPED")
                return None
            stack.resource_event(res, "DELETE_IN_PROGRESS")
            if res.physical_id is None:
                return None
            return driver_for(res.type).delete(ctx, res)

        def done(lid):
            if records[lid].status != "DELETE_SKIPPED":
                stack.resource_event(records[lid], "DELETE_COMPLETE")

        def failed(lid, reason):
            stack.resource_event(records[lid], "DELETE_FAILED", reason)

        order = [lid for lid in (template.get("Resources") or {}) if lid in records][::-1]
        graph = Graph(order, needs, start, done, failed, keep_going=keep_going)
        return graph.run()[0]

    # ------------------------------------------------------------------ create

    def _create(self, stack: Stack):
        ctx, template = Context(self, stack), stack.template_dict
        scope = stack.scope()
        ids = self._included(stack, template, scope)
        for lid in ids:
            stack.resources[lid] = Resource(lid, template["Resources"][lid])

        def start(lid):
            return self._create_resource(ctx, scope, stack.resources[lid])

        def done(lid):
            stack.resource_event(stack.resources[lid], "CREATE_COMPLETE")

        def failed(lid, reason):
            stack.resource_event(stack.resources[lid], "CREATE_FAILED", reason)

        failures, cancelled = Graph(ids, tpl.dependencies(template["Resources"]), start, done, failed,
                                    cancelled=lambda: stack.delete_requested).run()
        for lid in cancelled:
            stack.resource_event(stack.resources[lid], "CREATE_FAILED", "Resource creation cancelled")
        if stack.delete_requested:  # DeleteStack while the stack was being created
            stack.set_status("DELETE_IN_PROGRESS", "User Initiated")
            self._delete(stack)
            return
        if not failures:
            stack.set_status("CREATE_COMPLETE")
            return
        names = ", ".join(sorted(set(failures) | set(cancelled)))
        if stack.disable_rollback:
            stack.set_status("CREATE_FAILED", f"The following resource(s) failed to create: [{names}]. ")
            return
        stack.set_status("ROLLBACK_IN_PROGRESS",
                         f"The following resource(s) failed to create: [{names}]. Rollback requested by user.")
        started = [lid for lid in ids if stack.resources[lid].status is not None]
        left = self._delete_all(stack, started, template)
        if left:
            stack.set_status("ROLLBACK_FAILED", f"The following resource(s) failed to delete: [{', '.join(left)}]. ")
        else:
            stack.set_status("ROLLBACK_COMPLETE")

    # ------------------------------------------------------------------ delete

    def _delete(self, stack: Stack):
        ids = list(stack.resources)
        left = self._delete_all(stack, ids, stack.template_dict)
        if left:
            stack.set_status("DELETE_FAILED", f"The following resource(s) failed to delete: [{', '.join(left)}]. ")
            return
        stack.resources = {lid: res for lid, res in stack.resources.items() if res.status == "DELETE_SKIPPED"}
        stack.deletion_time = now()
        stack.set_status("DELETE_COMPLETE")
        backend = self.backend_for(stack.account_id, stack.region_name)
        backend.stacks.pop(stack.stack_id, None)
        backend.deleted_stacks[stack.stack_id] = stack

    # ------------------------------------------------------------------ update

    def _update(self, stack: Stack, template_text, parameters, tags=None):
        update = Update(self, stack, template_text, parameters, tags)
        update.run()


class Update:  # pylint: disable=too-many-instance-attributes
    """One stack update, and its rollback."""

    def __init__(self, engine, stack, template_text, parameters, tags):
        self.engine, self.stack = engine, stack
        self.ctx = Context(engine, stack)
        self.old = {"template": stack.template, "dict": stack.template_dict, "parameters": stack.parameters,
                    "resolved": stack.resolved_parameters, "tags": dict(stack.tags)}
        self.new_dict = tpl.parse(template_text)
        self.new_text = template_text
        self.new_resolved = tpl.resolve_parameters(self.new_dict, parameters, stack.resolved_parameters)
        self.new_parameters = parameters
        self.tags = tags
        self.previous = {}   # logical id -> the Resource before this update (replaced or updated in place)
        self.added, self.replaced, self.updated = [], [], []

    def run(self):
        stack = self.stack
        stack.template, stack.template_dict = self.new_text, self.new_dict
        stack.parameters, stack.resolved_parameters = self.new_parameters, self.new_resolved
        if self.tags is not None:
            stack.tags = dict(self.tags)
        stack.last_updated_time = now()
        scope = stack.scope()
        ids = Engine._included(stack, self.new_dict, scope)  # pylint: disable=protected-access
        removed = [lid for lid in stack.resources if lid not in ids]
        graph = Graph(ids, tpl.dependencies(self.new_dict["Resources"]), lambda lid: self._start(scope, lid),
                      self._done, self._failed)
        failures, cancelled = graph.run()
        for lid in cancelled:
            stack.resource_event(stack.resources[lid], "UPDATE_FAILED", "Resource update cancelled")
        if failures:
            self._roll_back(failures + cancelled)
            return
        stack.set_status("UPDATE_COMPLETE_CLEANUP_IN_PROGRESS")
        self._clean_up(removed)
        stack.set_status("UPDATE_COMPLETE")

    def _start(self, scope, lid):
        stack = self.stack
        definition = self.new_dict["Resources"][lid]
        current = stack.resources.get(lid)
        if current is None or not current.exists:
            res = Resource(lid, definition)
            stack.resources[lid] = res
            self.added.append(lid)
            return self.engine._create_resource(self.ctx, scope, res)  # pylint: disable=protected-access
        properties = scope.resolve(definition.get("Properties") or {})
        metadata = scope.resolve(definition["Metadata"]) if "Metadata" in definition else None
        if current.type != definition["Type"]:
            raise ResourceFailed(f"Update of resource type is not permitted. The new template modifies resource "
                                 f"type of resource {lid}.")
        current.definition = definition
        if properties == current.properties and metadata == current.metadata:
            current.data["unchanged"] = True
            return None
        current.data.pop("unchanged", None)
        driver = driver_for(current.type)
        self.previous[lid] = current
        if driver.replaces(current.properties, properties):
            res = Resource(lid, definition)
            stack.resources[lid] = res
            self.replaced.append(lid)
            res.properties, res.metadata = properties, metadata
            stack.resource_event(res, "UPDATE_IN_PROGRESS", "Requested update requires the creation of a new "
                                                            "physical resource; hence creating one.")
            return driver.create(self.ctx, res)
        clone = _copy(current)
        self.previous[lid] = clone
        old_properties = current.properties
        current.properties, current.metadata = properties, metadata
        stack.resource_event(current, "UPDATE_IN_PROGRESS")
        self.updated.append(lid)
        if properties == old_properties:
            return None
        return driver.update(self.ctx, current, old_properties)

    def _done(self, lid):
        res = self.stack.resources[lid]
        if res.data.pop("unchanged", False):
            return
        self.stack.resource_event(res, "CREATE_COMPLETE" if lid in self.added else "UPDATE_COMPLETE")

    def _failed(self, lid, reason):
        res = self.stack.resources[lid]
        self.stack.resource_event(res, "CREATE_FAILED" if lid in self.added else "UPDATE_FAILED", reason)

    def _clean_up(self, removed):
        stack = self.stack
        old_resources = dict(stack.resources)
        for lid in self.replaced:  # the physical resources the update replaced, unless UpdateReplacePolicy keeps them
            if self.previous[lid].definition.get("UpdateReplacePolicy") == "Retain":
                continue
            stack.resources[lid] = self.previous[lid]
            self.engine._delete_all(stack, [lid], self.old["dict"], retain=False)  # pylint: disable=protected-access
            stack.resources[lid] = old_resources[lid]
        if removed:
            for lid in removed:
                stack.resources.setdefault(lid, old_resources.get(lid))
            self.engine._delete_all(stack, removed, self.old["dict"])  # pylint: disable=protected-access
            for lid in removed:
                stack.resources.pop(lid, None)

    def _roll_back(self, failures):
        stack = self.stack
        names = ", ".join(sorted(set(failures)))
        stack.set_status("UPDATE_ROLLBACK_IN_PROGRESS", f"The following resource(s) failed to update: [{names}]. ")
        new_resources = dict(stack.resources)
        stack.template, stack.template_dict = self.old["template"], self.old["dict"]
        stack.parameters, stack.resolved_parameters = self.old["parameters"], self.old["resolved"]
        stack.tags = self.old["tags"]
        for lid in self.replaced:
            stack.resources[lid] = self.previous[lid]
        scope = stack.scope()
        for lid in reversed(self.updated):
            self._revert(scope, lid)
        stack.set_status("UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS")
        for lid in self.replaced:
            stack.resources[lid] = new_resources[lid]
            self.engine._delete_all(stack, [lid], self.new_dict, retain=False)  # pylint: disable=protected-access
            stack.resources[lid] = self.previous[lid]
        if self.added:
            self.engine._delete_all(stack, self.added, self.new_dict, retain=False)  # pylint: disable=protected-access
            for lid in self.added:
                stack.resources.pop(lid, None)
        stack.set_status("UPDATE_ROLLBACK_COMPLETE")

    def _revert(self, scope, lid):
        stack, res, before = self.stack, self.stack.resources[lid], self.previous[lid]
        stack.resource_event(res, "UPDATE_IN_PROGRESS")
        changed = res.properties != before.properties
        new_properties = res.properties
        res.properties, res.metadata, res.definition = before.properties, before.metadata, before.definition
        try:
            poll = driver_for(res.type).update(self.ctx, res, new_properties) if changed else None
            while poll is not None and not poll():
                time.sleep(POLL_SECONDS)
        except Exception as exc:  # pylint: disable=broad-except
            stack.resource_event(res, "UPDATE_FAILED", _failure_text(exc))
            return
        stack.resource_event(res, "UPDATE_COMPLETE")
        del scope


def _copy(res: Resource) -> Resource:
    clone = Resource(res.logical_id, res.definition)
    clone.properties, clone.metadata, clone.physical_id = res.properties, res.metadata, res.physical_id
    clone.status, clone.reason, clone.model, clone.data = res.status, res.reason, res.model, dict(res.data)
    return clone
