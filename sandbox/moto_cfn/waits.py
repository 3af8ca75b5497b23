"""Wait conditions and nested stacks: the resources whose operation takes time.

``AWS::CloudFormation::WaitConditionHandle``: its Ref is a URL that takes the signals cfn-signal
(or curl) PUTs, a JSON body ``{"Status": "SUCCESS"|"FAILURE", "Reason", "UniqueId", "Data"}``;
here ``<signal base>/cloudformation_<region>/waitcondition/<stack uuid>/<logical id>`` on the moto
server itself.

``AWS::CloudFormation::WaitCondition`` stays CREATE_IN_PROGRESS until its handle has ``Count``
(default 1) SUCCESS signals of different UniqueIds; a FAILURE signal fails it with
"WaitCondition received failed message: '<Reason>' for uniqueId: <UniqueId>", and ``Timeout``
seconds without enough signals with "WaitCondition timed out. Received <n> conditions when
expecting <Count>", CloudFormation's own reasons. ``Fn::GetAtt Data`` is the signals' Data as a
JSON object keyed by UniqueId.

``AWS::CloudFormation::Stack``: a nested stack from ``TemplateURL`` (an S3 object in moto) with
``Parameters``, created, updated and deleted by the engine as a stack of its own (ParentId and
RootId set); ``Fn::GetAtt Outputs.<key>`` reads its outputs.
"""

from __future__ import annotations

import json
import time

from moto.cloudformation.utils import get_stack_from_s3_url
from moto.utilities.utils import get_partition

from .resources import Driver, ResourceFailed, UnknownAttribute


class WaitConditionHandleDriver(Driver):
    UPDATE_REPLACES = ()

    def create(self, ctx, res):
        uuid = ctx.stack.stack_id.rsplit("/", 1)[-1]
        res.physical_id = f"{ctx.signal_base}/cloudformation_{ctx.region}/waitcondition/{uuid}/{res.logical_id}"
        res.data["signals"] = []


def signal(res, body: dict) -> None:
    """Record a signal sent to a wait condition handle."""
    status = str(body.get("Status", "")).upper()
    if status not in ("SUCCESS", "FAILURE"):
        raise ValueError(f"Status must be SUCCESS or FAILURE, not {body.get('Status')!r}")
    res.data.setdefault("signals", []).append({
        "Status": status, "Reason": str(body.get("Reason", "")), "UniqueId": str(body.get("UniqueId", "")),
        "Data": str(body.get("Data", ""))})


class WaitConditionDriver(Driver):
    UPDATE_REPLACES = ("*",)

    def create(self, ctx, res):
        handle_url = res.properties.get("Handle")
        handle = next((r for r in ctx.stack.resources.values()
                       if r.type == "AWS::CloudFormation::WaitConditionHandle" and r.physical_id == handle_url), None)
        if handle is None:
            raise ResourceFailed(f"Handle {handle_url} is invalid")
        count = int(res.properties.get("Count") or 1)
        timeout = float(res.properties.get("Timeout") or 43200)
        started = time.monotonic()
        res.physical_id = handle_url
        res.data.update(handle=handle, count=count)

        def poll():
            signals = handle.data.get("signals", [])
            failure = next((s for s in signals if s["Status"] == "FAILURE"), None)
            if failure is not None:
                raise ResourceFailed(f"WaitCondition received failed message: '{failure['Reason']}' "
                                     f"for uniqueId: {failure['UniqueId']}")
            successes = {s["UniqueId"] for s in signals if s["Status"] == "SUCCESS"}
            if len(successes) >= count:
                return True
            if time.monotonic() - started > timeout:
                raise ResourceFailed(f"WaitCondition timed out. Received {len(successes)} conditions when "
                                     f"expecting {count}")
            return False

        return poll

    def get_att(self, res, name):
        if name != "Data":
            raise UnknownAttribute(name)
        signals = res.data["handle"].data.get("signals", [])
        return json.dumps({s["UniqueId"]: s["Data"] for s in signals if s["Status"] == "SUCCESS"})


NESTED_DONE = {"create": "CREATE_COMPLETE", "update": "UPDATE_COMPLETE", "delete": "DELETE_COMPLETE"}
NESTED_WORDS = {"create": "created", "update": "updated", "delete": "deleted"}


class NestedStackDriver(Driver):
    UPDATE_REPLACES = ()

    @staticmethod
    def _template(ctx, res):
        try:
            return get_stack_from_s3_url(res.properties["TemplateURL"], account_id=ctx.account_id,
                                         partition=get_partition(ctx.region))
        except Exception as exc:
            raise ResourceFailed(f"TemplateURL must be a supported URL: {res.properties.get('TemplateURL')} "
                                 f"({exc})") from exc

    @staticmethod
    def _parameters(res):
        return {key: ",".join(value) if isinstance(value, list) else str(value)
                for key, value in (res.properties.get("Parameters") or {}).items()}

    @staticmethod
    def _waiter(child, operation):
        def poll():
            status = child.status
            if status == NESTED_DONE[operation]:
                return True
            if status.endswith("_IN_PROGRESS"):
                return False
            raise ResourceFailed(f"Embedded stack {child.stack_id} was not successfully {NESTED_WORDS[operation]}: "
                                 f"{child.failure_reason or child.status_reason or status}")
        return poll

    def create(self, ctx, res):
        child = ctx.engine.new_stack(ctx, res, self._template(ctx, res), self._parameters(res))
        res.physical_id, res.model = child.stack_id, child
        ctx.engine.start(child, "create")
        return self._waiter(child, "create")

    def update(self, ctx, res, old_properties):
        child = res.model
        ctx.engine.start(child, "update", template_text=self._template(ctx, res), parameters=self._parameters(res),
                         tags=dict(ctx.stack.tags))
        return self._waiter(child, "update")

    def delete(self, ctx, res):
        child = res.model
        if child is None or child.status == "DELETE_COMPLETE":
            return None
        if child.status == "CREATE_IN_PROGRESS":
            child.delete_requested = True  # its create stops and deletes what it made
        else:
            ctx.engine.start(child, "delete")
        return self._waiter(child, "delete")

    def get_att(self, res, name):
        if not name.startswith("Outputs."):
            raise UnknownAttribute(name)
        key = name.split(".", 1)[1]
        for output in res.model.outputs or []:
            if output["OutputKey"] == key:
                return output["OutputValue"]
        raise UnknownAttribute(name)
