#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: node_setup_script
short_description: Upload the node-setup boot script to S3 where the cluster config expects it
version_added: 0.1.0
description:
  - Puts a local file (the node-setup boot script of role C(hpc.pcluster.node_setup)) at an C(s3://) URL, the
    step the queues of the cluster config run first in their C(OnNodeConfigured) sequence.
  - Changes nothing when the object already holds the same content - the object records the file's SHA-256 in
    its metadata (C(sha256)); an object without it is read and compared.
  - The URL is the one role C(hpc.pcluster.cluster_config) publishes as C(cluster_config_node_setup_script.url),
    named after the loader's interface (C(hpc-pcluster-node-setup-v1.sh)). A release that changes only the loader's
    body writes the object again, and the cluster config (every queue's C(CustomActions)) stays the same.
author:
  - hpc.pcluster contributors (@hpc-pcluster)
options:
  src:
    description: The file to upload, on the host that runs the module.
    type: path
    required: true
  url:
    description: Where it goes, C(s3://<bucket>/<key>).
    type: str
    required: true
  sha256:
    description:
      - The SHA-256 the file must have; the module fails without uploading when it differs.
      - Empty to skip the check.
    type: str
    default: ""
extends_documentation_fragment:
  - hpc.pcluster.aws
attributes:
  check_mode:
    support: full
    description: Reads the object and reports whether it would upload; uploads nothing.
  diff_mode:
    support: none
    description: No diff is shown.
"""

EXAMPLES = r"""
- name: Upload the node-setup boot script the cluster config names
  hpc.pcluster.node_setup_script:
    src: "{{ cluster_config_node_setup_script.src }}"
    url: "{{ cluster_config_node_setup_script.url }}"
    sha256: "{{ cluster_config_node_setup_script.sha256 }}"
    region: us-east-1
"""

RETURN = r"""
url:
  description: The object's URL.
  returned: always
  type: str
  sample: s3://my-bucket/bootstrap/hpc-pcluster-node-setup-0123456789abcdef.sh
sha256:
  description: The SHA-256 of the file.
  returned: always
  type: str
  sample: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
uploaded:
  description: Whether the object was written (false in check mode).
  returned: always
  type: bool
  sample: true
"""

import hashlib

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hpc.pcluster.plugins.module_utils.aws import aws_argument_spec, boto3_client, caller_arn, setup_aws

# What an S3 error code means for this upload, and what to do about it.
DENIED_FIX = ("Give the controller's credentials s3:PutObject and s3:GetObject on it, or point "
              "cluster_config_node_setup_script_location at a bucket they may write.")
FIXES = {
    "NoSuchBucket": "Create the bucket, or point cluster_config_node_setup_script_location at an existing one.",
    "AccessDenied": DENIED_FIX,
    # S3 answers a HEAD request it refuses with a bare 403: no code, no message naming the action.
    "403": "S3 refused HeadObject (authorized as s3:GetObject). " + DENIED_FIX,
}
DENIED_CODES = ("AccessDenied", "403")


def parse_url(url):
    """s3://bucket/key -> (bucket, key), or None."""
    if not url.startswith("s3://"):
        return None
    bucket, _sep, key = url[len("s3://"):].partition("/")
    return (bucket, key) if bucket and key and not key.endswith("/") else None


def current_sha256(client, bucket, key):
    """The SHA-256 of the object's content, or None when there is no object."""
    from botocore.exceptions import ClientError  # pylint: disable=import-outside-toplevel

    try:
        head = client.head_object(Bucket=bucket, Key=key)
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise
    recorded = (head.get("Metadata") or {}).get("sha256")
    if recorded:
        return recorded
    body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    return hashlib.sha256(body).hexdigest()


def main():
    argument_spec = dict(src=dict(type="path", required=True), url=dict(type="str", required=True),
                         sha256=dict(type="str", default=""))
    argument_spec.update(aws_argument_spec())
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    url = module.params["url"]
    location = parse_url(url)
    if location is None:
        module.fail_json(msg="url=%r is not an s3://<bucket>/<key> URL" % url, url=url)
    try:
        with open(module.params["src"], "rb") as handle:
            content = handle.read()
    except OSError as err:
        module.fail_json(msg="cannot read src=%r: %s" % (module.params["src"], err), url=url)
    sha256 = hashlib.sha256(content).hexdigest()
    expected = module.params["sha256"].lower()
    if expected and expected != sha256:
        module.fail_json(msg="%s has SHA-256 %s, not the %s the cluster config was built with: rebuild the config "
                             "(run role hpc.pcluster.cluster_config again) with this collection" % (
                                 module.params["src"], sha256, expected), url=url, sha256=sha256)
    settings = setup_aws(module)
    bucket, key = location
    from botocore.exceptions import BotoCoreError, ClientError  # pylint: disable=import-outside-toplevel

    try:
        client = boto3_client("s3", settings)
        if current_sha256(client, bucket, key) == sha256:
            module.exit_json(changed=False, url=url, sha256=sha256, uploaded=False)
        if not module.check_mode:
            client.put_object(Bucket=bucket, Key=key, Body=content, ContentType="text/x-shellscript",
                              Metadata={"sha256": sha256})
    except ClientError as err:
        code = err.response.get("Error", {}).get("Code", "")
        who = caller_arn(settings) if code in DENIED_CODES else None
        module.fail_json(msg="uploading the node-setup boot script to %s failed: %s (%s)%s. %s" % (
            url, err.response.get("Error", {}).get("Message", str(err)), code, " for %s" % who if who else "",
            FIXES.get(code, "")), url=url, error_code=code)
    except BotoCoreError as err:
        module.fail_json(msg="uploading the node-setup boot script to %s failed: %s" % (url, err), url=url)
    module.exit_json(changed=True, url=url, sha256=sha256, uploaded=not module.check_mode)


if __name__ == "__main__":
    main()
