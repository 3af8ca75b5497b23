# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pcluster errors: anything pcluster.lib raises as one PclusterApiError, classified by its code, and explained."""

from __future__ import annotations

import re

VALIDATION_LEVELS = ("ERROR", "WARNING", "INFO")

# What an error is, decided from pcluster's HTTP-style code and exception type, the AWS error code that
# pcluster wraps (botocore's "An error occurred (<Code>)" form) or the botocore exception type.
KIND_DRYRUN_OK = "dryrun_ok"        # 412 DryrunOperationException: a dryrun that would have succeeded
KIND_NOT_FOUND = "not_found"        # 404
KIND_CONFLICT = "conflict"          # 409: the cluster (stack) exists already
KIND_BAD_REQUEST = "bad_request"    # 400: validation, bad parameters, operation not allowed now
KIND_THROTTLED = "throttled"        # 429 or an AWS throttling code: the request was refused, retry later
KIND_UNAVAILABLE = "unavailable"    # AWS 5xx codes, timeouts, dropped connections: try again
KIND_UNREACHABLE = "unreachable"    # no connection to the endpoint at all
KIND_CREDENTIALS = "credentials"    # no credentials, or credentials AWS rejects
KIND_DENIED = "denied"              # the credentials lack a permission
KIND_SERVER = "server"              # pcluster's 500 with nothing more specific
KIND_OTHER = "other"

AWS_THROTTLING_CODES = frozenset((
    "Throttling", "ThrottlingException", "ThrottledException", "RequestLimitExceeded", "TooManyRequestsException",
    "RequestThrottled", "RequestThrottledException", "SlowDown", "PriorRequestNotComplete", "BandwidthLimitExceeded",
))
AWS_UNAVAILABLE_CODES = frozenset((
    "ServiceUnavailable", "ServiceUnavailableException", "Unavailable", "InternalError", "InternalFailure",
    "InternalServerError", "InternalServiceError", "RequestTimeout", "RequestTimeoutException",
))
AWS_CREDENTIAL_CODES = frozenset((
    "InvalidClientTokenId", "UnrecognizedClientException", "ExpiredToken", "ExpiredTokenException",
    "RequestExpired", "SignatureDoesNotMatch", "AuthFailure", "InvalidAccessKeyId", "MissingAuthenticationToken",
))
AWS_DENIED_CODES = frozenset(("AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "Forbidden"))

# botocore errors that carry no code, by exception type: pcluster wraps them as a 500 with str(exc), so the
# fixed start of the type's message template (``fmt``) identifies them.
BOTOCORE_KINDS = {
    "NoCredentialsError": KIND_CREDENTIALS,
    "PartialCredentialsError": KIND_CREDENTIALS,
    "CredentialRetrievalError": KIND_CREDENTIALS,
    "ProfileNotFound": KIND_CREDENTIALS,
    "EndpointConnectionError": KIND_UNREACHABLE,
    "ConnectTimeoutError": KIND_UNAVAILABLE,
    "ReadTimeoutError": KIND_UNAVAILABLE,
    "ConnectionClosedError": KIND_UNAVAILABLE,
}
_AWS_CODE = re.compile(r"An error occurred \(([A-Za-z0-9_.]+)\)")
# AWS's sentence for an action the caller's policies do not allow (IAM's, for every service): it names the principal
# and the action. pcluster passes some denials on as a 500 with only this sentence (no code), so for them it is
# the one sign of a denial.
_AWS_DENIAL = re.compile(r"\bUser: (?P<principal>arn:[^\s]+) is not authorized to perform: (?P<action>[\w.-]+:[\w*]+)")
# pcluster says these only in words (no code or type of their own).
PCLUSTER_NO_CHANGE = "no changes found in your cluster configuration"
PCLUSTER_FLEET_MUST_STOP = "compute nodes must be stopped"
PCLUSTER_BAD_REGION = "invalid or unsupported region"
PCLUSTER_ALREADY_EXISTS = "already exists"  # a create of an existing stack: "Bad Request: Cluster <name> already exists."
# After the validators that refused a create or update: how to skip one that cannot work for an account.
SUPPRESS_HINT = ("A validator that cannot work for this account can be skipped: add 'type:<name>' (e.g. 'type:%s') to "
                 "suppress_validators, which the collection's playbooks set from cluster_config_suppress_validators.")


class PclusterMissingError(Exception):
    """aws-parallelcluster is not importable by the Python that runs the module."""


class PclusterApiError(Exception):
    """One error of a pcluster.lib call, whatever pcluster raised.

    ``code`` is the HTTP-style status pcluster uses (400, 404, 409, 412, 429, 500) or None;
    ``error_type`` the exception class name; ``aws_code`` the AWS error code pcluster wrapped, if any;
    ``kind`` one of the KIND_* classes; ``validation_messages`` (``[{id, type, level, message}]``),
    ``update_errors`` and ``change_set`` come with rejected creates and updates; ``content`` is the
    whole camelCase response.
    """

    def __init__(self, message, code=None, error_type=None, operation=None, validation_messages=None,
                 change_set=None, update_errors=None, content=None, kind=None, aws_code=None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.error_type = error_type
        self.operation = operation
        self.validation_messages = validation_messages or []
        self.change_set = change_set or []
        self.update_errors = update_errors or []
        self.content = content if content is not None else {"message": message}
        self.aws_code = aws_code
        self.kind = kind or classify(code, error_type, message, aws_code)

    @property
    def not_found(self):
        return self.kind == KIND_NOT_FOUND

    @property
    def conflict(self):
        return self.kind == KIND_CONFLICT

    @property
    def already_exists(self):
        """A create refused because the cluster exists: a 409, or pcluster's 400 for an existing stack."""
        return self.kind == KIND_CONFLICT or (
            self.kind == KIND_BAD_REQUEST and self.operation == "create_cluster" and PCLUSTER_ALREADY_EXISTS in (self.message or "").lower())

    @property
    def is_dryrun_success(self):
        return self.kind == KIND_DRYRUN_OK

    @property
    def is_no_change(self):
        return self.kind == KIND_BAD_REQUEST and PCLUSTER_NO_CHANGE in (self.message or "").lower()

    @property
    def needs_fleet_stopped(self):
        texts = [self.message or ""] + [str(e.get("message") or "") for e in self.update_errors]
        return any(PCLUSTER_FLEET_MUST_STOP in t.lower() for t in texts)

    @property
    def transient(self):
        """Worth asking again (reads only): the request was throttled or the service was briefly unavailable."""
        return self.kind in (KIND_THROTTLED, KIND_UNAVAILABLE)

    @property
    def tolerable_while_waiting(self):
        """A poll error a wait may see a few times in a row (network blips, pcluster's unexpected 500s)."""
        return self.kind in (KIND_THROTTLED, KIND_UNAVAILABLE, KIND_UNREACHABLE, KIND_SERVER)

    def describe(self):
        """A one-paragraph, human-readable description: the message, the validators that blocked (each once, with
        how to skip one) and the update's errors. Warnings are left out: the modules print them as warnings."""
        lines = [self.message] if not (self.update_errors and self.message == "Update failure") else []
        blocking = self.blocking_validations()
        for msg in blocking:
            lines.append("  - %s: %s" % (msg.get("type") or msg.get("id"), msg.get("message")))
        if blocking:
            lines.append(SUPPRESS_HINT % (blocking[0].get("type") or blocking[0].get("id")))
        for err in self.update_errors:
            lines.append("  - %s: %s (current %s, requested %s)"
                         % (err.get("parameter"), err.get("message"), err.get("currentValue"), err.get("requestedValue")))
        return "\n".join(lines)

    def blocking_validations(self):
        """The validation messages that refused the request: those at ERROR, else (with a lower
        validation_failure_level) every message of a refused request, first seen first, each once."""
        messages = [m for m in self.validation_messages if m.get("level") in ("ERROR", None)]
        if not messages and self.code == 400:
            messages = list(self.validation_messages)
        seen, unique = set(), []
        for msg in messages:
            key = (msg.get("type") or msg.get("id"), msg.get("message"))
            if key not in seen:
                seen.add(key)
                unique.append(msg)
        return unique

    def to_result(self):
        """The error as return values for fail_json."""
        result = {"error": {"code": self.code, "type": self.error_type, "operation": self.operation,
                            "message": self.message, "kind": self.kind, "aws_code": self.aws_code}}
        denial = aws_denial(self.message) if self.kind == KIND_DENIED else None
        if denial:
            result["error"]["denied"] = denial
        if self.validation_messages:
            result["validation_messages"] = group_validation_messages(self.validation_messages)
        if self.change_set:
            result["change_set"] = self.change_set
        if self.update_errors:
            result["update_errors"] = self.update_errors
        return result


def aws_denial(text):
    """{principal, action} of AWS's "User: <arn> is not authorized to perform: <action>" in text, or None."""
    match = _AWS_DENIAL.search(text or "")
    return {"principal": match.group("principal"), "action": match.group("action")} if match else None


def aws_error_code(text):
    """The AWS error code in botocore's "An error occurred (<Code>) when calling ..." text, or None."""
    match = _AWS_CODE.search(text or "")
    return match.group(1) if match else None


def _botocore_templates():
    """{kind: [fixed message starts]} from botocore's own exception templates (empty without botocore)."""
    try:
        from botocore import exceptions as boto_errors  # pylint: disable=import-outside-toplevel
    except ImportError:  # pragma: no cover - pcluster brings botocore
        return {}
    templates = {}
    for name, kind in BOTOCORE_KINDS.items():
        fmt = getattr(getattr(boto_errors, name, None), "fmt", "") or ""
        start = fmt.split("{", 1)[0].strip()
        if start:
            templates.setdefault(kind, []).append(start.lower())
    return templates


def classify(code, error_type=None, message=None, aws_code=None):
    """The KIND_* of an error: pcluster's code and type first, then the AWS code, then botocore's type."""
    if code == 412 or error_type == "DryrunOperationException":
        return KIND_DRYRUN_OK
    if code == 404:
        return KIND_NOT_FOUND
    if code == 409:
        return KIND_CONFLICT
    if code == 429 or aws_code in AWS_THROTTLING_CODES:
        return KIND_THROTTLED
    if aws_code in AWS_UNAVAILABLE_CODES:
        return KIND_UNAVAILABLE
    if aws_code in AWS_CREDENTIAL_CODES or code == 401:
        return KIND_CREDENTIALS
    if aws_code in AWS_DENIED_CODES or code == 403 or (aws_code is None and aws_denial(message)):
        return KIND_DENIED
    if error_type in BOTOCORE_KINDS:
        return BOTOCORE_KINDS[error_type]
    text = (message or "").lower()
    for kind, starts in _botocore_templates().items():
        if any(start in text for start in starts):
            return kind
    if code == 400:
        return KIND_BAD_REQUEST
    if code is not None and code >= 500:
        return KIND_SERVER
    return KIND_OTHER


def _encode(content):
    """pcluster response models (or plain data) as the CLI's camelCase JSON data."""
    if content is None:
        return {}
    if isinstance(content, (dict, list, str, int, float, bool)):
        return content
    try:
        import json  # pylint: disable=import-outside-toplevel

        from pcluster.api import encoder  # pylint: disable=import-outside-toplevel

        return json.loads(encoder.JSONEncoder().encode(content))
    except Exception:  # pylint: disable=broad-except
        to_dict = getattr(content, "to_dict", None)
        return to_dict() if callable(to_dict) else {"message": str(content)}


def _botocore_status(exc):
    """(message, HTTP status, AWS code) of a botocore ClientError; (str, None, None) for other botocore errors."""
    response = getattr(exc, "response", None) or {}
    error = response.get("Error") or {}
    status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
    error_code = error.get("Code")
    message = "%s: %s" % (error_code, error.get("Message")) if error_code else str(exc)
    return message, status if isinstance(status, int) else None, error_code


def convert_error(exc, operation=None):
    """Turn anything a pcluster.lib call (or a boto3 call of the collection) raised into a PclusterApiError."""
    if isinstance(exc, PclusterApiError):
        return exc
    content = getattr(exc, "content", None)
    code = getattr(exc, "code", None)
    if content is None and hasattr(exc, "data"):
        content = exc.data  # pcluster.cli.exceptions.ParameterException / APIOperationException
    content = _encode(content)
    if not isinstance(content, dict):
        content = {"message": str(content)}
    error_type = type(exc).__name__
    message = content.get("message") or str(exc) or error_type
    aws_code = aws_error_code(message)
    if error_type == "ParameterException":
        code = 400
    elif code is None and type(exc).__module__.startswith(("botocore", "boto3")):
        message, code, aws_code = _botocore_status(exc)
    if not isinstance(code, int):
        code = None
    validation = content.get("validationMessages") or content.get("configurationValidationErrors") or []
    return PclusterApiError(message=message, code=code, error_type=error_type, operation=operation,
                            validation_messages=validation, change_set=content.get("changeSet") or [],
                            update_errors=content.get("updateValidationErrors") or [], content=content,
                            aws_code=aws_code)


def group_validation_messages(messages):
    """{ERROR: [...], WARNING: [...], INFO: [...]} from pcluster's validationMessages list."""
    grouped = {level: [] for level in VALIDATION_LEVELS}
    for msg in messages or []:
        level = str(msg.get("level") or "INFO").upper()
        grouped.setdefault(level, []).append(msg)
    return grouped


def explain_error(error, settings=None):
    """The one clear message for the failures users hit first; pcluster's own message otherwise."""
    settings = settings or {}
    text = (error.message or "").lower()
    if error.kind == KIND_CREDENTIALS:
        if error.aws_code:
            return ("The AWS credentials were rejected (%s: invalid or expired). Refresh them and run again."
                    % error.aws_code)
        if settings.get("profile") and "profile" in text:
            return ("AWS profile %r does not exist in ~/.aws/config or ~/.aws/credentials. Fix 'profile' or "
                    "AWS_PROFILE." % settings.get("profile"))
        return ("No AWS credentials found. Export AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, set the module's "
                "'profile' (or AWS_PROFILE) to a profile in ~/.aws/credentials, or run where an instance role "
                "is available.")
    if error.kind == KIND_DENIED:
        denial = aws_denial(error.message)
        if denial:
            return ("AWS denied %s to %s: the credentials in use lack that permission (ParallelCluster's user policies "
                    "list what pcluster needs). %s" % (denial["action"], denial["principal"], error.message))
        return ("AWS denied the request (%s): the credentials in use lack a permission ParallelCluster needs. %s"
                % (error.aws_code or error.code, error.message))
    if error.kind == KIND_BAD_REQUEST and PCLUSTER_BAD_REGION in text:
        return ("AWS region %r is unknown or not supported by ParallelCluster. Set 'region' (or AWS_REGION) "
                "to a region name such as us-east-1." % settings.get("region"))
    if error.kind == KIND_UNREACHABLE:
        where = settings.get("endpoint_url") or "the AWS endpoint"
        return "Cannot reach %s (%s). Check endpoint_url / AWS_ENDPOINT_URL and the network." % (where, error.message)
    return error.describe()
