"""What moto's IAM evaluation cannot express, and what the sandbox's moto does instead.

moto 5.2.5 enforces IAM when its server runs with ``INITIAL_NO_AUTH_ACTION_COUNT`` (the sandbox sets 0:
every request is checked): it finds the caller from the request's access key (an IAM user's key, or the
temporary key of an ``sts:AssumeRole`` session), checks the signature, collects the identity's policies
(inline and attached; a group's; a role's for a session) and looks for a statement that allows the action
on the request's resource. What it does not do as AWS does, and what ``install()`` makes it do instead:

* **Resources.** moto knows the resource a request acts on only for S3 (bucket and key), IAM roles,
  ``sts:AssumeRole`` and SQS; every other request is checked against the resource ``*``, which a statement
  naming resources never matches, so every resource-scoped statement of ParallelCluster's policies (the
  user's DynamoDB statement on ``table/parallelcluster-*``, the nodes' on their cluster's tables, the head
  node's ``ec2:RunInstances`` on its subnets and launch templates, ...) would allow nothing. Instead:
  DynamoDB requests carry their table's ARN (``table/<name>``, ``table/<name>/index/<index>`` for a Query
  or Scan of an index), so table-scoped statements are evaluated as AWS evaluates them; for the other
  services, a statement's ``Resource`` is taken as matching when moto does not know the resource: such a
  statement allows its actions on every resource.
* **Conditions.** moto evaluates ``StringEquals`` on ``sts:ExternalId`` of an AssumeRole only; every other
  condition is taken as met (``aws:RequestedRegion``, ``iam:PassedToService``, ``ec2:ResourceTag/...``):
  a statement with conditions applies unconditionally. Left as it is: no statement ParallelCluster gives
  its users or nodes is a Deny, so this can only allow more, never less.
* **Service principals.** A role's trust policy naming ``{"Service": "ec2.amazonaws.com"}`` (as every
  instance role's does) makes moto fail (HTTP 500) on AssumeRole: it only knows ``AWS`` principals.
  Instead, a ``Service`` principal admits the IAM user named after the service (path
  ``/sandbox-service/``) that plays that service in the sandbox (the instance metadata service assumes the instance roles as
  ``/sandbox-service/ec2.amazonaws.com``), and an ``AWS`` principal ``arn:aws:iam::<account>:root``
  admits the account's identities.
* **Resource policies** (bucket policies, ...) are not evaluated by moto; ParallelCluster sets none that
  the collection depends on. ``iam:PassRole`` is not checked when a role is passed (RunInstances with an
  instance profile).
* **Presigned URLs.** moto reads the caller only from an ``Authorization`` header, and fails (HTTP 500) on a
  request signed in its query string, such as the presigned URL of the cluster config that ``pcluster
  describe-cluster`` returns. Instead, a query-signed S3 request (signature version 2: ``AWSAccessKeyId``,
  ``Signature``, ``Expires``; version 4: ``X-Amz-Credential``, ``X-Amz-Signature``, ...) is checked as AWS
  checks it: its signature recomputed with the signer's secret key, refused once expired, and the action
  authorized for the identity that signed it.
* **Denials.** moto answers every denial as the query protocol's XML ``AccessDenied``, also for services
  speaking JSON (DynamoDB: botocore then reports the code ``403`` and the XML as the message), and S3's
  says only "Access Denied". Instead, denials say what AWS says: ``User: <principal ARN> is not authorized
  to perform: <action> [on resource: <ARN>] because no identity-based policy allows the <action> action``,
  in JSON (``AccessDeniedException``, HTTP 400) for JSON-protocol requests, as S3's ``AccessDenied`` for
  S3 and as moto's ``AccessDenied`` otherwise.
"""

from __future__ import annotations

SERVICE_USER_PATH = "/sandbox-service/"


def install() -> None:
    """Patch moto's IAM evaluation (call before the server answers its first request)."""
    _dynamodb_resources()
    _unknown_resources_match()
    _service_principals()
    _denial_messages()
    _presigned_requests()


def denial_message(principal: str, action: str, resource: str | None, explicit: bool = False) -> str:
    """AWS's text for an action no identity-based policy allows (or one that explicitly denies it)."""
    where = f" on resource: {resource}" if resource and resource != "*" else ""
    why = ("with an explicit deny in an identity-based policy" if explicit
           else f"because no identity-based policy allows the {action} action")
    return f"User: {principal} is not authorized to perform: {action}{where} {why}"


def dynamodb_resource(params: dict, region: str, account_id: str) -> str:
    """The ARN a DynamoDB request acts on, as IAM sees it: its table, or the table's index; ``*`` for requests
    on no single table (ListTables, batch requests on several tables)."""
    table = params.get("TableName")
    if not table and isinstance(params.get("RequestItems"), dict) and len(params["RequestItems"]) == 1:
        table = next(iter(params["RequestItems"]))
    if not table or not isinstance(table, str):
        return "*"
    if table.startswith("arn:"):
        return table
    arn = f"arn:aws:dynamodb:{region}:{account_id}:table/{table}"
    index = params.get("IndexName")
    return f"{arn}/index/{index}" if index else arn


def _dynamodb_resources() -> None:
    from moto.dynamodb.responses import DynamoHandler  # pylint: disable=import-outside-toplevel

    def _determine_resource(self):
        params = self.body if isinstance(self.body, dict) else {}
        return dynamodb_resource(params, self.region, self.current_account)

    DynamoHandler._determine_resource = _determine_resource  # pylint: disable=protected-access


def _unknown_resources_match() -> None:
    from moto.iam.access_control import IAMPolicyStatement  # pylint: disable=import-outside-toplevel

    original = IAMPolicyStatement.is_action_permitted

    def is_action_permitted(self, action, resource="*", principal=None, incoming_condition_values=None):
        statement = self._statement  # pylint: disable=protected-access
        if resource == "*" and statement.get("Resource") not in (None, "*"):
            self = IAMPolicyStatement(dict(statement, Resource="*"))
        return original(self, action, resource, principal, incoming_condition_values)

    IAMPolicyStatement.is_action_permitted = is_action_permitted


def principal_admitted(expected, principal: str) -> bool:
    """Whether a trust policy statement's Principal admits the caller ARN principal (see the module's doc)."""
    if not expected or expected == "*":
        return True
    if not isinstance(expected, dict):
        return False
    services = expected.get("Service") or []
    for service in [services] if isinstance(services, str) else services:
        # moto leaves the path out of a user's ARN; user names are unique in an account whatever their path.
        if principal.endswith((f":user{SERVICE_USER_PATH}{service}", f":user/{service}")):
            return True
    identities = expected.get("AWS")
    if identities is None:
        return False
    account = principal.split(":")[4] if principal.count(":") >= 5 else None
    for identity in [identities] if isinstance(identities, str) else identities:
        if identity in ("*", principal) or identity in (account, f"arn:aws:iam::{account}:root"):
            return True
    return False


def _service_principals() -> None:
    from moto.iam.access_control import IAMPolicyStatement  # pylint: disable=import-outside-toplevel

    def _check_principal(self, principal):
        return principal_admitted(self._statement.get("Principal"), principal)  # pylint: disable=protected-access

    IAMPolicyStatement._check_principal = _check_principal  # pylint: disable=protected-access


def _denial_messages() -> None:
    # pylint: disable=import-outside-toplevel,protected-access
    from moto.core.exceptions import JsonRESTError, _RESTError
    from moto.iam.access_control import IAMPolicy, IAMRequest, IAMRequestBase, PermissionResult, S3IAMRequest
    from moto.s3.exceptions import S3ClientError

    original_check = IAMRequestBase.check_action_permitted

    def check_action_permitted(self, resource):
        self._sandbox_resource = resource
        return original_check(self, resource)

    def message(request):
        resource = getattr(request, "_sandbox_resource", None) or "*"
        explicit = any(IAMPolicy(policy).is_action_permitted(request._action, resource) == PermissionResult.DENIED
                       for policy in request._access_key.collect_policies())
        return denial_message(request._access_key.arn, request._action, resource, explicit)

    def raise_denied(self):
        content_type = self._headers.get("Content-Type") or self._headers.get("content-type") or ""
        if content_type.startswith("application/x-amz-json"):
            raise JsonRESTError("AccessDeniedException", message(self))
        error = _RESTError("AccessDenied", message(self))
        error.code = 403
        raise error

    def raise_s3_denied(self):
        raise S3ClientError("AccessDenied", message(self))

    IAMRequestBase.check_action_permitted = check_action_permitted
    IAMRequest._raise_access_denied = raise_denied
    S3IAMRequest._raise_access_denied = raise_s3_denied


def query_auth(query: dict) -> dict | None:
    """{version, access_key_id, region, ...} of a request signed in its query string (flat str values), or None."""
    if query.get("AWSAccessKeyId") and query.get("Signature"):
        return {"version": 2, "access_key_id": query["AWSAccessKeyId"], "region": "us-east-1", "service": "s3"}
    credential = query.get("X-Amz-Credential", "")
    if query.get("X-Amz-Signature") and credential.count("/") == 4:
        key, _date, region, service, _term = credential.split("/")
        return {"version": 4, "access_key_id": key, "region": region, "service": service}
    return None


def presigned_signature(method: str, url: str, headers: dict, query: dict, credentials) -> str:
    """The signature a query-signed S3 request of url (its query included) should carry, computed as botocore signs."""
    # pylint: disable=import-outside-toplevel
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    from botocore.auth import HmacV1Auth, S3SigV4QueryAuth
    from botocore.awsrequest import AWSRequest

    split = urlsplit(url)
    if "AWSAccessKeyId" in query:
        class Signer(HmacV1Auth):
            def _get_date(self):
                return query.get("Expires", "")

        kept = {k.lower(): v for k, v in headers.items() if k.lower() in ("content-md5", "content-type")
                or k.lower().startswith("x-amz-")}
        return Signer(credentials).get_signature(method, split, kept)
    signed = [h for h in query.get("X-Amz-SignedHeaders", "host").split(";") if h]
    # The signer adds the X-Amz-* parameters again (the security token from the credentials).
    params = [(k, v) for k, v in parse_qsl(split.query, keep_blank_values=True) if not k.startswith("X-Amz-")]
    request = AWSRequest(method=method, url=urlunsplit((split.scheme, split.netloc, split.path, urlencode(params), "")),
                         headers={h: headers.get(h) or headers.get(h.title()) or "" for h in signed if h != "host"})
    request.context["timestamp"] = query.get("X-Amz-Date", "")
    _key, _date, region, service, _term = query["X-Amz-Credential"].split("/")
    signer = S3SigV4QueryAuth(credentials, service, region, expires=int(query.get("X-Amz-Expires", "3600")))
    signer.add_auth(request)
    return dict(parse_qsl(urlsplit(request.url).query))["X-Amz-Signature"]


def presigned_expired(query: dict, now: float) -> bool:
    import datetime  # pylint: disable=import-outside-toplevel

    if "Expires" in query:
        return now > int(query["Expires"])
    signed = datetime.datetime.strptime(query.get("X-Amz-Date", ""), "%Y%m%dT%H%M%SZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()
    return now > signed + int(query.get("X-Amz-Expires", "3600"))


def _presigned_requests() -> None:
    # pylint: disable=import-outside-toplevel,protected-access
    import time
    from urllib.parse import parse_qsl, urlsplit

    from moto.iam.access_control import IAMRequestBase, create_access_key
    from moto.s3.exceptions import S3ClientError
    from moto.utilities.utils import get_partition

    original_init = IAMRequestBase.__init__
    original_check = IAMRequestBase.check_signature

    def __init__(self, account_id, method, path, data, body, headers, action):
        query = dict(parse_qsl(urlsplit(path).query, keep_blank_values=True))
        auth = None if "Authorization" in headers else query_auth(query)
        if auth is None:
            return original_init(self, account_id, method, path, data, body, headers, action)
        self.account_id, self._method, self._path, self._data, self._body = account_id, method, path, data, body
        self._headers, self._region, self._service = headers, auth["region"], auth["service"]
        self._action = f"{self._service}:{action[0] if isinstance(action, list) else action}"
        self._presigned = query
        token = {"X-Amz-Security-Token": query["X-Amz-Security-Token"]} if "X-Amz-Security-Token" in query else {}
        try:
            self._access_key = create_access_key(account_id=account_id, partition=get_partition(self._region),
                                                 access_key_id=auth["access_key_id"], headers={**headers, **token})
        except Exception:  # moto's CreateAccessKeyFailure: an unknown key
            raise S3ClientError("InvalidAccessKeyId",
                                "The AWS Access Key Id you provided does not exist in our records.") from None
        return None

    def check_signature(self):
        query = getattr(self, "_presigned", None)
        if query is None:
            return original_check(self)
        if presigned_expired(query, time.time()):
            raise S3ClientError("AccessDenied", "Request has expired")
        host = self._headers.get("Host") or self._headers.get("host") or "localhost"
        url = f"http://{host}{self._path}"
        expected = presigned_signature(self._method, url, dict(self._headers), query,
                                       self._access_key.create_credentials())
        given = query.get("Signature") or query.get("X-Amz-Signature")
        if expected != given:
            raise S3ClientError("SignatureDoesNotMatch", "The request signature we calculated does not match the "
                                "signature you provided. Check your key and signing method.")
        return None

    IAMRequestBase.__init__ = __init__
    IAMRequestBase.check_signature = check_signature
