"""DescribeInstanceTypes records in both shapes: amazon.aws's snake_case and boto3's CamelCase."""

from ansible_collections.hpc.pcluster.plugins.module_utils.instance_types import by_instance_type, record_field


def test_record_field_reads_either_shape_and_falls_back_on_null():
    assert record_field({"instance_type": "g5.8xlarge"}, "instance_type", "InstanceType") == "g5.8xlarge"
    assert record_field({"InstanceType": "p5.48xlarge"}, "instance_type", "InstanceType") == "p5.48xlarge"
    assert record_field({"gpu_info": None}, "gpu_info", "GpuInfo", {}) == {}
    assert record_field({}, "gpu_info", "GpuInfo") is None
    # An empty value is a value: only absent or null falls back.
    assert record_field({"gpus": []}, "gpus", "Gpus", None) == []


def test_by_instance_type_keys_every_record_by_its_type_and_skips_records_without_one():
    answer = [{"instance_type": "g5.8xlarge", "v": 1}, {"InstanceType": "c5n.18xlarge", "v": 2}, {"v": 3},
              {"instance_type": "", "v": 4}]
    assert by_instance_type(answer, lambda record: record["v"]) == {"g5.8xlarge": 1, "c5n.18xlarge": 2}
    assert not by_instance_type(None, lambda record: record)
    assert not by_instance_type([], lambda record: record)
