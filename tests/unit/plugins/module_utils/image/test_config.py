"""image_config: the image id, the collection's offline rules for image configs and ParallelCluster's image schema."""

from __future__ import annotations

from ansible_collections.hpc.pcluster.plugins.module_utils.image.config import check_image_id, validate_image_config

GOOD = {
    "Build": {
        "InstanceType": "c5.2xlarge",
        "ParentImage": "ami-0a9c3a1e5c16f0b01",
        "SubnetId": "subnet-0123456789abcdef0",
        "SecurityGroupIds": ["sg-0123456789abcdef0"],
        "Components": [{"Type": "script", "Value": "s3://ml-bootstrap/hpc-pcluster-node-bake-0123456789abcdef.sh"}],
    },
    "Image": {"Name": "ml-training-cluster-nodes"},
}


def test_a_good_config_has_no_problem_and_the_schema_ran():
    assert validate_image_config(GOOD) == ([], True, "")


def test_every_problem_at_once_with_its_path_and_fix():
    config = {"Build": {"InstanceType": "c5 large", "ParentImage": "ubuntu2204", "SubnetId": "subnet-1",
                        "Components": [{"Type": "script", "Value": "http://example.com/x.sh"}], "Bogus": 1}}

    problems, checked, _note = validate_image_config(config)

    paths = [p["path"] for p in problems]
    assert checked is True
    assert paths[:5] == ["Build.ParentImage", "Build.InstanceType", "Build.SubnetId", "Build.SecurityGroupIds",
                         "Build.Components[0].Value"]
    assert "Build.Bogus" in paths  # from ParallelCluster's schema
    assert all(p["fix"] for p in problems)
    assert problems[0]["value"] == "ubuntu2204" and "list-official-images" in problems[0]["fix"]


def test_an_image_builder_arn_is_a_parent_image_too():
    config = {"Build": dict(GOOD["Build"], ParentImage="arn:aws:imagebuilder:us-east-1:aws:image/ubuntu-server-22-lts-x86/x.x.x")}

    assert validate_image_config(config)[0] == []


def test_without_build_the_problem_says_what_to_give():
    problems, _checked, _note = validate_image_config({"Image": {"Name": "x"}})

    assert problems[0]["path"] == "Build" and "InstanceType and ParentImage" in problems[0]["fix"]


def test_image_ids_as_parallelcluster_takes_them():
    problems = []

    assert check_image_id("ml-training-cluster-nodes-3f2a9c01b7de", problems)
    assert not check_image_id("1st-image", problems) and not check_image_id("under_score", problems)
    assert not check_image_id("a" * 129, problems)
    assert len(problems) == 3
