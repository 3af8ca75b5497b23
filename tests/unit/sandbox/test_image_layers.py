"""Custom images in the sandbox (sandbox/image_layers.py): which layers an instance's root sits on, by its ImageId."""

import hypervisor
import image_layers
import rootfs

STATE = {"containers": {"ami": {"path": "/cache/layers/ami-1"}}}
REQUEST = {"parent_image": "ami-0aaaaaaaaaaaaaaaa", "image_arn": "arn:aws:imagebuilder:us-east-1:1:image/x/3.16.1/1"}


def built(state_dir, name):
    """A build node's upper directories, as NodeHost.capture leaves them."""
    layer = state_dir / "images" / (".build-" + name)
    for overlay, _target, _lowers in rootfs.LAYERED:
        (layer / overlay).mkdir(parents=True)
    (layer / "var" / "baked").write_text(name)
    return str(layer)


def test_an_image_layer_lies_over_the_ami_layer_in_every_overlay():
    lines = dict(line.split("|", 1) for line in rootfs.layer_mounts("/ami", ["/img/b", "/img/a"]).splitlines())
    assert lines["usr"] == "usr|/img/b/usr:/img/a/usr:/ami/usr:/usr"
    assert lines["usrlocal"] == "usr/local|/img/b/usrlocal:/img/a/usrlocal:/ami/usr/local"
    assert lines["var"] == "var|/img/b/var:/img/a/var:/var"
    assert lines["opt"] == "opt|/img/b/opt:/img/a/opt:/ami/opt"
    assert rootfs.layer_mounts("/ami") == rootfs.layer_mounts("/ami", [])
    assert "etc|etc|/ami/etc:/etc" in rootfs.layer_mounts("/ami").splitlines()


def test_an_instance_boots_over_its_images_layers_and_the_sandboxs_ami_over_the_ami_layer_alone(tmp_path):
    image_layers.register(tmp_path, "ami-0bbbbbbbbbbbbbbbb", built(tmp_path, "one"), REQUEST)
    # An image built from that image: its layer on top, its parent's below.
    image_layers.register(tmp_path, "ami-0ccccccccccccccccc", built(tmp_path, "two"),
                          dict(REQUEST, parent_image="ami-0bbbbbbbbbbbbbbbb"))
    one, two = str(tmp_path / "images" / "ami-0bbbbbbbbbbbbbbbb"), str(tmp_path / "images" / "ami-0ccccccccccccccccc")
    assert (tmp_path / "images" / "ami-0bbbbbbbbbbbbbbbb" / "var" / "baked").read_text() == "one"
    assert not list((tmp_path / "images").glob(".build-*"))

    def layers(image_id):
        return hypervisor.node_layout(tmp_path, STATE, "i-1", image_id)["images"]

    assert layers("ami-0bbbbbbbbbbbbbbbb") == [one]
    assert layers("ami-0ccccccccccccccccc") == [two, one]
    assert layers(REQUEST["parent_image"]) == [] and layers(None) == []
    assert hypervisor.node_layout(tmp_path, STATE, "i-1", "ami-0bbbbbbbbbbbbbbbb")["ami"] == "/cache/layers/ami-1"


def test_a_build_without_a_layer_registers_nothing(tmp_path):
    image_layers.register(tmp_path, "ami-0bbbbbbbbbbbbbbbb", None, REQUEST)
    assert image_layers.layers_of(tmp_path, "ami-0bbbbbbbbbbbbbbbb") == []


def test_a_queue_launches_the_image_from_a_new_version_of_its_launch_template_with_the_same_data(monkeypatch):
    import boto3  # pylint: disable=import-outside-toplevel
    from moto import mock_aws  # pylint: disable=import-outside-toplevel

    # moto's mock answers AWS's own endpoints: not a sandbox's that the environment may name.
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_EC2", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)

    with mock_aws():
        ec2 = boto3.client("ec2", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
        data = {"ImageId": "ami-0aaaaaaaaaaaaaaaa", "InstanceType": "g5.8xlarge", "UserData": "dXNlci1kYXRh",
                "NetworkInterfaces": [{"DeviceIndex": 0, "SubnetId": "subnet-1"}]}
        ec2.create_launch_template(LaunchTemplateName="c-q-cr", LaunchTemplateData=data)
        assert image_layers.launch_queue_from(ec2, "c-q-cr", "ami-0bbbbbbbbbbbbbbbb") == 2
        assert image_layers.launch_queue_from(ec2, "c-q-cr", "ami-0ccccccccccccccccc") == 3
        latest = ec2.describe_launch_template_versions(LaunchTemplateName="c-q-cr", Versions=["$Latest"])[
            "LaunchTemplateVersions"][0]["LaunchTemplateData"]
    assert latest == dict(data, ImageId="ami-0ccccccccccccccccc")
