"""The Image Builder resources of ParallelCluster's image template in the sandbox's CloudFormation: the build request
the image resource hands to the sandbox's image builder, and a build no builder takes. (The builds themselves, with
the real pcluster and the image builder: tests/unit/plugins/modules/test_image_moto.py.)"""

from __future__ import annotations

import json
import time

import moto_cluster  # sandbox/ (pytest.ini: pythonpath)
import pytest

from ansible_collections.hpc.pcluster.tests.integration.moto_cfn.cfn_helpers import REGION, Moto, wait_for

RECIPE_NAME = "ParallelClusterImage-nodes-1"
# The shape of ParallelCluster's image template (pcluster/templates/imagebuilder_stack.py), cut to the build.
TEMPLATE = {"Resources": {
    "ScriptComponent0": {"Type": "AWS::ImageBuilder::Component", "Properties": {
        "Name": "ParallelClusterImage-Script-0-abc", "Version": "3.16.1", "Platform": "Linux", "Data": "name: x",
        "Description": "This component is custom component for script, script name is bake.sh, script url is "
                       "s3://ml-bootstrap/bake.sh"}},
    "ImageRecipe": {"Type": "AWS::ImageBuilder::ImageRecipe", "Properties": {
        "Name": RECIPE_NAME, "Version": "3.16.1", "ParentImage": moto_cluster.OFFICIAL_AMI_ID,
        "Components": [{"ComponentArn": {"Ref": "ScriptComponent0"}}]}},
    "InfrastructureConfiguration": {"Type": "AWS::ImageBuilder::InfrastructureConfiguration", "Properties": {
        "Name": "ParallelClusterImage-abc", "InstanceTypes": ["c5.2xlarge"], "InstanceProfileName": "profile"}},
    "DistributionConfiguration": {"Type": "AWS::ImageBuilder::DistributionConfiguration", "Properties": {
        "Name": "ParallelClusterImage-abc", "Distributions": [{"Region": REGION, "AmiDistributionConfiguration": {
            "Name": "nodes-1 {{ imagebuilder:buildDate }}", "AmiTags": {"parallelcluster:image_id": "nodes-1"}}}]}},
    "ParallelClusterImage": {"Type": "AWS::ImageBuilder::Image", "Properties": {
        "ImageRecipeArn": {"Ref": "ImageRecipe"},
        "InfrastructureConfigurationArn": {"Ref": "InfrastructureConfiguration"},
        "DistributionConfigurationArn": {"Ref": "DistributionConfiguration"}}},
}}


@pytest.fixture(name="builds_moto", scope="module")
def builds_moto_fixture(tmp_path_factory):
    work = tmp_path_factory.mktemp("moto")
    proc, url = moto_cluster.start_moto_server(work, env={"SANDBOX_IMAGE_BUILDS": str(work / "builds"),
                                                          "SANDBOX_IMAGE_CLAIM_SECONDS": "2"})
    try:
        yield url, work / "builds"
    finally:
        moto_cluster.stop_moto_server(proc)


def test_the_image_hands_its_build_to_the_sandbox_and_fails_when_no_builder_takes_it(builds_moto):
    url, builds = builds_moto
    cfn = moto_cluster.client("cloudformation", url, REGION)

    cfn.create_stack(StackName="nodes-1", TemplateBody=json.dumps(TEMPLATE), DisableRollback=True)
    deadline = time.monotonic() + 30
    while not list(builds.glob("*.request.json")) and time.monotonic() < deadline:
        time.sleep(0.2)
    request = json.loads(next(builds.glob("*.request.json")).read_text())
    final = wait_for(Moto(url, {}, builds), "nodes-1")["StackStatus"]

    assert request["image_arn"] == "arn:aws:imagebuilder:us-east-1:123456789012:image/%s/3.16.1/1" % RECIPE_NAME.lower()
    assert request["parent_image"] == moto_cluster.OFFICIAL_AMI_ID and request["instance_type"] == "c5.2xlarge"
    assert [c["script_url"] for c in request["components"]] == ["s3://ml-bootstrap/bake.sh"]
    assert request["components"][0]["arn"].endswith(":component/parallelclusterimage-script-0-abc/3.16.1/1")
    assert request["log_group"] == "/aws/imagebuilder/%s" % RECIPE_NAME and request["log_stream"] == "3.16.1/1"
    assert request["ami_tags"] == {"parallelcluster:image_id": "nodes-1"}
    assert final == "CREATE_FAILED"
    image = cfn.describe_stack_resource(StackName="nodes-1", LogicalResourceId="ParallelClusterImage")
    assert image["StackResourceDetail"]["ResourceStatusReason"].startswith(
        "No image builder of the sandbox took the build within 2 s")
