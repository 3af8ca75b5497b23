"""pcluster_errors: every pcluster error as one PclusterApiError, classified by code, explained."""

from __future__ import annotations

import pytest

from ansible_collections.hpc.pcluster.plugins.module_utils.pcluster import errors
from ansible_collections.hpc.pcluster.plugins.module_utils.pcluster.errors import (
    PclusterApiError,
    convert_error,
    explain_error,
)
from ansible_collections.hpc.pcluster.tests.unit.fixtures.pcluster.fake_pcluster import load, recorded_error


@pytest.mark.parametrize(
    "fixture, code, error_type, kind, text",
    [
        ("describe_cluster_not_found", 404, "NotFoundException", errors.KIND_NOT_FOUND, "does not exist"),
        ("describe_cluster_bad_name", 400, "ParameterException", errors.KIND_BAD_REQUEST, "does not match"),
        ("describe_cluster_bad_region", 400, "BadRequestException", errors.KIND_BAD_REQUEST, "invalid or unsupported region"),
        ("describe_cluster_no_credentials", 500, "InternalServiceException", errors.KIND_CREDENTIALS, "Unable to locate credentials"),
        ("throttled", 429, "LimitExceededException", errors.KIND_THROTTLED, "Rate exceeded"),
        ("throttled_internal", 500, "InternalServiceException", errors.KIND_THROTTLED, "Rate exceeded"),
        ("update_dryrun_success", 412, "DryrunOperationException", errors.KIND_DRYRUN_OK, "DryRun flag is set"),
        ("update_in_progress_conflict", 409, "ConflictException", errors.KIND_CONFLICT, "UPDATE_IN_PROGRESS"),
        ("unexpected_fatal", 500, "InternalServiceException", errors.KIND_SERVER, "Unexpected fatal exception"),
        ("connect_timeout", 500, "InternalServiceException", errors.KIND_UNAVAILABLE, "Connect timeout"),
        ("create_already_exists", 400, "BadRequestException", errors.KIND_BAD_REQUEST, "already exists"),
    ],
)
def test_recorded_errors_are_normalised_and_classified(fixture, code, error_type, kind, text):
    error = convert_error(recorded_error(load(fixture)), "describe_cluster")

    assert (error.code, error.error_type, error.operation, error.kind) == (code, error_type, "describe_cluster", kind)
    assert text in error.message
    assert error.to_result()["error"]["kind"] == kind


def test_wrapped_aws_error_code_is_read_from_botocores_form():
    error = convert_error(recorded_error(load("throttled_internal")))

    assert error.aws_code == "Throttling" and error.transient


@pytest.mark.parametrize(
    "code, aws_code, kind",
    [
        (500, "ServiceUnavailable", errors.KIND_UNAVAILABLE),
        (500, "RequestLimitExceeded", errors.KIND_THROTTLED),
        (500, "ExpiredToken", errors.KIND_CREDENTIALS),
        (500, "AccessDenied", errors.KIND_DENIED),
        (400, "ValidationError", errors.KIND_BAD_REQUEST),
        (500, None, errors.KIND_SERVER),
        (None, None, errors.KIND_OTHER),
    ],
)
def test_classification_follows_codes_not_words(code, aws_code, kind):
    # The message says "throttled" and "timeout" in words: only the codes count.
    message = "An error occurred (%s) when calling X: throttled, read timeout" % aws_code if aws_code else "throttled"
    assert errors.classify(code, "InternalServiceException", message, aws_code) == kind


# What pcluster 3.16.1 raised for describe_cluster when the caller may not call cloudformation:DescribeStacks (the
# sandbox's moto, which says what AWS says): a 500 carrying only AWS's sentence, no "An error occurred (<Code>)".
DENIED_BY_PCLUSTER = ("User: arn:aws:iam::123456789012:user/limited-1a2b3c is not authorized to perform: "
                      "cloudformation:DescribeStacks because no identity-based policy allows the "
                      "cloudformation:DescribeStacks action")


def test_a_denial_pcluster_passes_on_without_a_code_is_recognised_by_awss_sentence():
    error = convert_error(PclusterApiError(DENIED_BY_PCLUSTER, code=500, error_type="InternalServiceException"),
                          "describe_cluster")

    assert error.kind == errors.KIND_DENIED and not error.tolerable_while_waiting and not error.transient
    assert error.to_result()["error"]["denied"] == {"principal": "arn:aws:iam::123456789012:user/limited-1a2b3c",
                                                    "action": "cloudformation:DescribeStacks"}
    explained = explain_error(error)
    assert explained.startswith("AWS denied cloudformation:DescribeStacks to arn:aws:iam::123456789012:user/limited-1a2b3c:")
    assert DENIED_BY_PCLUSTER in explained


def test_a_botocore_denial_names_the_action_and_the_principal():
    from botocore.exceptions import ClientError  # pylint: disable=import-outside-toplevel

    message = ("User: arn:aws:sts::123456789012:assumed-role/RoleHeadNode-X/i-0123 is not authorized to perform: "
               "dynamodb:Scan on resource: arn:aws:dynamodb:us-east-1:123456789012:table/parallelcluster-slurm-c "
               "because no identity-based policy allows the dynamodb:Scan action")
    error = convert_error(ClientError({"Error": {"Code": "AccessDeniedException", "Message": message},
                                       "ResponseMetadata": {"HTTPStatusCode": 400}}, "Scan"))

    assert error.kind == errors.KIND_DENIED and error.aws_code == "AccessDeniedException"
    assert explain_error(error).startswith(
        "AWS denied dynamodb:Scan to arn:aws:sts::123456789012:assumed-role/RoleHeadNode-X/i-0123:")


def test_words_alone_decide_nothing_when_a_code_is_there():
    message = "An error occurred (Throttling) when calling X: User: arn:aws:iam::1:user/u is not authorized to perform: a:B"
    assert errors.classify(500, "InternalServiceException", message, "Throttling") == errors.KIND_THROTTLED


def test_update_errors_and_change_set_are_kept():
    error = convert_error(recorded_error(load("update_dryrun_needs_fleet_stop")))

    assert error.needs_fleet_stopped and not error.transient
    assert [c["parameter"].rsplit(".", 1)[1] for c in error.change_set] == ["InstanceType", "MaxCount"]
    assert "All compute nodes must be stopped" in error.describe()
    assert "Update failure" not in error.describe()


def test_no_change_and_already_exists_are_recognised():
    assert convert_error(recorded_error(load("update_dryrun_no_change"))).is_no_change
    assert convert_error(recorded_error(load("create_already_exists")), "create_cluster").already_exists
    assert convert_error(recorded_error(load("update_in_progress_conflict")), "update_cluster").already_exists
    assert not convert_error(recorded_error(load("describe_cluster_bad_region")), "create_cluster").already_exists


@pytest.mark.parametrize(
    "fixture, transient, tolerable",
    [
        ("throttled", True, True),
        ("throttled_internal", True, True),
        ("connect_timeout", True, True),
        ("unexpected_fatal", False, True),
        ("describe_cluster_no_credentials", False, False),
        ("describe_cluster_not_found", False, False),
        ("describe_cluster_bad_region", False, False),
        ("update_dryrun_needs_fleet_stop", False, False),
    ],
)
def test_retryable_and_tolerable_errors(fixture, transient, tolerable):
    error = convert_error(recorded_error(load(fixture)))

    assert (error.transient, error.tolerable_while_waiting) == (transient, tolerable)


def test_botocore_errors_are_classified_by_their_type_and_code():
    from botocore.exceptions import ClientError, EndpointConnectionError  # pylint: disable=import-outside-toplevel

    throttled = convert_error(ClientError({"Error": {"Code": "Throttling", "Message": "Rate exceeded"},
                                           "ResponseMetadata": {"HTTPStatusCode": 400}}, "DescribeStacks"))
    unreachable = convert_error(EndpointConnectionError(endpoint_url="http://127.0.0.1:9"))

    assert throttled.kind == errors.KIND_THROTTLED and throttled.message == "Throttling: Rate exceeded"
    assert unreachable.kind == errors.KIND_UNREACHABLE and not unreachable.transient


@pytest.mark.parametrize(
    "message, code, settings, expected",
    [
        ("Unable to locate credentials", 500, {}, "No AWS credentials found"),
        ("Bad Request: invalid or unsupported region 'mars-1'", 400, {"region": "mars-1"}, "AWS region 'mars-1' is unknown"),
        ("Bad Request: The config profile (dev) could not be found", 400, {"profile": "dev"}, "AWS profile 'dev' does not exist"),
        ("Could not connect to the endpoint URL: \"http://127.0.0.1:9/\"", None, {"endpoint_url": "http://127.0.0.1:9"},
         "Cannot reach http://127.0.0.1:9"),
        ("An error occurred (ExpiredToken) when calling the DescribeStacks operation: expired", 500, {},
         "The AWS credentials were rejected (ExpiredToken"),
        ("An error occurred (AccessDenied) when calling the DescribeStacks operation: no", 500, {}, "AWS denied the request (AccessDenied)"),
    ],
)
def test_first_time_errors_read_clearly(message, code, settings, expected):
    error = PclusterApiError(message, code=code, aws_code=errors.aws_error_code(message))

    assert explain_error(error, settings).startswith(expected)


def test_validation_messages_are_grouped_by_level():
    grouped = errors.group_validation_messages([{"level": "WARNING", "message": "a"}, {"level": "error", "message": "b"}, {}])

    assert [len(grouped[level]) for level in ("ERROR", "WARNING", "INFO")] == [1, 1, 1]
