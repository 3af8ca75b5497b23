# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The image lifecycle: every decision of hpc.pcluster.image (build, compare, replace, delete, waits)."""

from __future__ import annotations

from ansible_collections.hpc.pcluster.plugins.module_utils.aws import boto3_client
from ansible_collections.hpc.pcluster.plugins.module_utils.cluster.writes import WriteGuard
from ansible_collections.hpc.pcluster.plugins.module_utils.config.file import config_differences, normalise_config
from ansible_collections.hpc.pcluster.plugins.module_utils.pcluster.failure_report import image_failure_report
from ansible_collections.hpc.pcluster.plugins.module_utils.image.config import validate_image_config
from ansible_collections.hpc.pcluster.plugins.module_utils.pcluster.errors import explain_error, group_validation_messages
from ansible_collections.hpc.pcluster.plugins.module_utils.pcluster.module_base import strip_presigned_urls
from ansible_collections.hpc.pcluster.plugins.module_utils.pcluster.run import LifecycleRun, Stop
from ansible_collections.hpc.pcluster.plugins.module_utils.pcluster.wait import (
    StackPoller,
    WaitTimeout,
    format_duration,
    format_progress_counts,
    format_progress_line,
    wait_until,
)

BUILD_IN_PROGRESS = "BUILD_IN_PROGRESS"
BUILD_COMPLETE = "BUILD_COMPLETE"
BUILD_FAILED = "BUILD_FAILED"
DELETE_IN_PROGRESS = "DELETE_IN_PROGRESS"
DELETE_FAILED = "DELETE_FAILED"
# Where a build wait ends: ParallelCluster's cleanup function tags the AMI and deletes the stack once Image Builder
# made it (BUILD_COMPLETE from the stack alone is not the end: the AMI is not known yet); or it failed, or went.
BUILD_ENDS = (BUILD_FAILED, DELETE_IN_PROGRESS, DELETE_FAILED, "DELETE_COMPLETE")


def ami_id(image):
    """The AMI of a built image (describe-image's ec2AmiInfo), or None."""
    return ((image or {}).get("ec2AmiInfo") or {}).get("amiId")


def image_status(image):
    return (image or {}).get("imageBuildStatus")


def image_goal_reached(goal, snapshot):
    """True when a poll snapshot satisfies an image goal ('built' or 'deleted')."""
    image = snapshot.get("image")
    if goal == "deleted":
        return image is None or image_status(image) == DELETE_FAILED
    if goal == "built":
        return image is None or image_status(image) in BUILD_ENDS or (
            image_status(image) == BUILD_COMPLETE and ami_id(image) is not None)
    raise ValueError("unknown image wait goal %r" % goal)


def image_snapshot_key(snapshot):
    image = snapshot.get("image") or {}
    return (image.get("imageBuildStatus"), image.get("cloudformationStackStatus"), image.get("imagebuilderImageStatus"),
            ami_id(image))


def describe_image_state(snapshot):
    """'BUILD_IN_PROGRESS (stack CREATE_IN_PROGRESS, Image Builder BUILDING)', '... AMI ami-...' or 'image not found'."""
    image = snapshot.get("image")
    if image is None:
        return "image not found (deleted)"
    parts = ["stack %s" % image["cloudformationStackStatus"]] if image.get("cloudformationStackStatus") else []
    if image.get("imagebuilderImageStatus"):
        parts.append("Image Builder %s" % image["imagebuilderImageStatus"])
    if ami_id(image):
        parts.append("AMI %s" % ami_id(image))
    elif image_status(image) == BUILD_COMPLETE:
        parts.append("AMI not tagged available yet")
    return "%s (%s)" % (image_status(image), ", ".join(parts)) if parts else str(image_status(image))


class ImagePoller(StackPoller):
    """StackPoller of an image build: describe-image, and the build stack's events while it has one."""

    KEY = "image"

    def describe(self):
        return self.api.describe_image(self.name)

    def events(self, until_event_id):
        return self.api.get_image_stack_events(self.name, until_event_id=until_event_id)

    def has_stack(self, current):
        return bool(current.get("cloudformationStackArn"))


def image_summary(image):
    """The return values about one image (None-safe); the presigned config URL is left out."""
    image = image or {}
    ami = image.get("ec2AmiInfo") or {}
    return {
        "exists": bool(image),
        "status": image.get("imageBuildStatus"),
        "stack_status": image.get("cloudformationStackStatus"),
        "imagebuilder_status": image.get("imagebuilderImageStatus"),
        "ami_id": ami.get("amiId"),
        "ami_name": ami.get("amiName"),
        "version": image.get("version"),
        "image": strip_presigned_urls(image),
    }


def dryrun_account_writes(settings, config):
    """Why pcluster's build-image dryrun would change the account, or None when it would not.

    pcluster's build-image (dryrun included) first makes sure the account's build-image cleanup role exists and is
    set up (pcluster/imagebuilder_utils.py ensure_default_build_image_stack_cleanup_role) unless the config names
    its own Build.Iam.CleanupLambdaRole: it creates the role, attaches policies and tags it when it is missing or not
    marked done, and attaches the Lambda VPC access policy whenever DeploymentSettings.LambdaFunctionsVpcConfig is set.
    """
    if ((config.get("Build") or {}).get("Iam") or {}).get("CleanupLambdaRole"):
        return None
    if (config.get("DeploymentSettings") or {}).get("LambdaFunctionsVpcConfig"):
        return "it attaches AWSLambdaVPCAccessExecutionRole to the account's build-image cleanup role"
    from botocore.exceptions import BotoCoreError, ClientError  # pylint: disable=import-outside-toplevel
    from pcluster.constants import PCLUSTER_BUILD_IMAGE_CLEANUP_ROLE_BOOTSTRAP_TAG_KEY as DONE_TAG  # pylint: disable=import-outside-toplevel
    from pcluster.imagebuilder_utils import get_cleanup_role_name  # pylint: disable=import-outside-toplevel

    try:
        account = boto3_client("sts", settings).get_caller_identity()["Account"]
        name = get_cleanup_role_name(account)
        role = boto3_client("iam", settings).get_role(RoleName=name)["Role"]
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "NoSuchEntity":
            return "it creates the account's build-image cleanup role %s, which does not exist yet" % name
        return "whether it would create the account's build-image cleanup role is unknown (%s)" % error
    except BotoCoreError as error:
        return "whether it would create the account's build-image cleanup role is unknown (%s)" % error
    tags = {tag.get("Key"): str(tag.get("Value")).lower() for tag in role.get("Tags") or []}
    if tags.get(DONE_TAG) != "true":
        return "it finishes setting up the account's build-image cleanup role %s (policies and tag %s)" % (name, DONE_TAG)
    return None


class ImageRun(LifecycleRun):
    """One run of hpc.pcluster.image on a PclusterModule: the decisions and their result."""

    WHAT = "image configuration"
    CONFIG_KEY = "imageConfiguration"

    def __init__(self, module, api):
        super().__init__(module, api, dict(changed=False, validation_messages=group_validation_messages([]),
                                           config_changes=[], actions=[]))
        self.image = None
        self.writes = WriteGuard(self)

    @property
    def current(self):
        return self.image

    # ----- helpers

    def describe(self):
        self.image = self.api.describe_image(self.name)
        return self.image

    def status(self):
        return image_status(self.image)

    def finish(self, **extra):
        return super().finish(**dict(image_summary(self.image), **extra))

    def fail(self, msg, **extra):
        result = self.finish(**extra)
        result.pop("msg", None)
        self.module.fail_json(msg=msg, **result)

    def fail_error(self, error, prefix):
        self.module.fail_json_pcluster(error, msg=prefix, **self.finish())

    def fail_report(self, what):
        report = image_failure_report(self.api, self.name, self.image)
        message = report.pop("message")
        self.fail("%s\n%s" % (what, message), failure=report)

    def report(self, snapshot, _elapsed):
        self.module.progress(format_progress_line(self.name, snapshot, self.api.clock() - self.started,
                                                  self.params["wait_timeout"], describe_image_state, image_goal_reached))

    def wait_for(self, goal):
        """Wait for ``goal`` with progress lines; a timeout fails the task with the last state seen."""
        poller = ImagePoller(self.api, self.name, self.image)
        start = self.api.clock()
        try:
            snapshot = wait_until(poller, goal, max(self.remaining(), 0), sleep=self.api.sleep, clock=self.api.clock,
                                  report=self.report, reached=image_goal_reached, key=image_snapshot_key)
        except WaitTimeout as exc:
            self.waited += self.api.clock() - start
            self.image = exc.snapshot.get("image")
            counts = format_progress_counts(poller.stack_progress(self.image)) if self.image and poller.has_stack(
                self.image) else ""
            self.fail("Timed out after %s waiting for image %s to be %s: it is %s%s. The build goes on in AWS; run the "
                      "task again to keep waiting, or raise wait_timeout." % (
                          format_duration(self.params["wait_timeout"]), self.name, goal,
                          describe_image_state(exc.snapshot), ", " + counts if counts else ""))
        self.waited += self.api.clock() - start
        self.image = snapshot.get("image")
        return snapshot

    def settle(self, goal):
        """A build or delete is under way: wait for it (not in check mode, not with wait=false)."""
        if self.check_mode or not self.params["wait"]:
            why = "check mode does not wait" if self.check_mode else "nothing done (wait: false)"
            self.result["msg"] = "image %s is %s; %s" % (self.name, self.status(), why)
            raise Stop()
        self.act("wait for %s" % self.status())
        self.wait_for(goal)

    # ----- present

    def present(self):
        desired = self.desired_config()
        self.describe()
        if self.status() == DELETE_IN_PROGRESS:
            self.settle("deleted")
        elif self.status() == BUILD_IN_PROGRESS:
            self.settle("built")
        if self.image is None:
            return self.build(desired)
        if self.status() in (BUILD_FAILED, DELETE_FAILED):
            if not self.params["replace"]:
                self.fail_report("Image %s cannot be used." % self.name)
            return self.replace(desired, "it is %s" % self.status())
        differences = self.compare(desired)
        if differences:
            if not self.params["replace"]:
                self.fail("Image %s exists with another configuration than the one given:\n  %s\nAn image cannot be "
                          "changed: give the new configuration another name (role hpc.pcluster.image_config names "
                          "images after their configuration), or set replace: true to delete this one and build "
                          "again." % (self.name, "\n  ".join(differences[:20])), config_changes=differences)
            self.result["config_changes"] = differences
            return self.replace(desired, "its configuration differs")
        self.result["msg"] = "image %s already has the desired configuration" % self.name
        if ami_id(self.image) is None and self.status() == BUILD_COMPLETE and self.params["wait"] and not self.check_mode:
            self.act("wait for the AMI")
            self.wait_for("built")
            self.check_built()
        return None

    def compare(self, desired):
        """The differences between the stored and the desired config ([] when equal or unreadable)."""
        stored = self.stored_config()
        if stored is None:
            self.module.warn("The stored configuration of image %s cannot be read (%s): the image is taken as it is, "
                             "found by its name." % (self.name, self.result["stored_config_error"]))
            return []
        differences = config_differences(normalise_config(stored), normalise_config(desired))
        if differences:
            self.diff(stored, desired)
        return differences

    def replace(self, desired, why):
        self.module.warn("Image %s is deleted and built again (replace: true): %s." % (self.name, why))
        self.delete()
        if self.check_mode:
            self.result["msg"] = "image %s would be deleted and built again" % self.name
            return
        self.image = None
        self.build(desired)

    def build(self, desired):
        self.diff(None, desired)
        self.result["config_changes"] = self.result["config_changes"] or ["<image>: built"]
        self.result["changed"] = True
        if self.check_mode:
            self.plan_build(desired)
            return
        self.act("build image")
        response = self.writes.write("build", lambda: self.api.build_image(
            self.name, desired, self.params["suppress_validators"], self.params["validation_failure_level"],
            self.params["rollback_on_failure"]), lambda: self.describe() is not None)
        if response is not None:
            self.result["validation_messages"] = self.module.validation_warnings(response.get("validationMessages"))
        if not self.params["wait"]:
            self.describe()
            return
        self.wait_for("built")
        self.check_built()

    def plan_build(self, desired):
        """Check mode: pcluster's dryrun when it changes nothing in the account, else the offline checks."""
        writes = dryrun_account_writes(self.module.settings, desired)
        if writes is None:
            self.act("dryrun build image")
            dry = self.api.dryrun_build_image(self.name, desired, self.params["suppress_validators"],
                                              self.params["validation_failure_level"])
            self.result["validation_messages"] = self.module.validation_warnings(dry["validation_messages"])
            self.result["dryrun"] = "ParallelCluster's dryrun passed" if dry["success"] else "refused"
            if not dry["success"]:
                self.fail("ParallelCluster would refuse to build image %s: %s" % (
                    self.name, explain_error(dry["error"], self.module.settings)))
        else:
            problems, _checked, note = validate_image_config(desired)
            if problems:
                self.fail("Image %s would not be built: its configuration has %d problem%s:\n%s" % (
                    self.name, len(problems), "" if len(problems) == 1 else "s", "\n".join(
                        "- %s: %s. Fix: %s" % (p["path"] or "(config)", p["message"].rstrip("."), p["fix"])
                        for p in problems)), problems=problems)
            self.result["dryrun"] = "skipped: %s; checked offline%s" % (writes, " (%s)" % note if note else "")
            self.module.warn("Check mode did not run ParallelCluster's build-image dryrun for %s, because %s. The "
                             "configuration was checked offline only." % (self.name, writes))
        self.act("build image")
        self.result["msg"] = "image %s would be built" % self.name

    def check_built(self):
        if self.image is None:
            self.fail("Image %s disappeared while it was being built (deleted by someone else, or a rollback "
                      "removed it)." % self.name)
        if self.status() in (BUILD_FAILED, DELETE_FAILED):
            self.fail_report("The build of image %s failed." % self.name)
        if self.status() != BUILD_COMPLETE:
            self.fail("The build of image %s ended %s: its stack is being deleted without an AMI tagged available "
                      "(deleted by someone else, or ParallelCluster's cleanup found no image to tag). Look at it with "
                      "hpc.pcluster.image_info and build it again." % (self.name, describe_image_state({"image": self.image})))

    # ----- absent

    def delete(self):
        if self.status() == BUILD_IN_PROGRESS:
            self.settle("built")  # pcluster refuses to delete while Image Builder runs
        self.act("delete image")
        self.result["changed"] = True
        if self.check_mode:
            return
        self.writes.write("delete", lambda: self.api.delete_image(
            self.name, force=self.params["force"]), lambda: self.describe() is None or self.status() == DELETE_IN_PROGRESS)
        if not self.params["wait"]:
            self.describe()
            return
        self.wait_for("deleted")
        if self.image is not None:
            self.fail_report("The deletion of image %s failed." % self.name)

    def absent(self):
        self.describe()
        if self.image is None:
            self.result["msg"] = "image %s does not exist" % self.name
            return
        if self.status() == DELETE_IN_PROGRESS:
            self.settle("deleted")
            if self.image is None:
                return
        self.diff(self.stored_config(), None)
        self.result.pop("stored_config_error", None)
        self.delete()
        if self.check_mode:
            self.result["msg"] = "image %s would be deleted" % self.name
