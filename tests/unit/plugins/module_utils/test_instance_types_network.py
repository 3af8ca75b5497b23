"""Network bandwidth per instance type (module_utils/instance_types.py): EC2 NetworkInfo, the built-in table, overrides."""

import gzip
import importlib.util
import json
import pathlib

import pytest

from ansible_collections.hpc.pcluster.plugins.module_utils import instance_types as nb


def _moto_instance_types():
    # The data file only: importing moto takes seconds.
    found = importlib.util.find_spec("moto")
    if found is None:
        pytest.skip("moto is not installed")
    path = pathlib.Path(found.origin).parent / "ec2" / "resources" / "instance_types.json.gz"
    with gzip.open(path) as handle:
        return json.loads(handle.read())


@pytest.mark.parametrize("info,gbps", [
    ({"NetworkPerformance": "4x 100 Gigabit", "NetworkCards": [{"BaselineBandwidthInGbps": 100.0}] * 4}, 400),
    ({"network_performance": "3200 Gigabit", "network_cards": [{"baseline_bandwidth_in_gbps": 100.0}] * 32}, 3200),
    # More per-card bandwidth than the instance carries: the advertised figure wins.
    ({"NetworkPerformance": "200 Gigabit", "NetworkCards": [{"BaselineBandwidthInGbps": 200.0}] * 2}, 200),
    # Burstable: the sustained baseline, not the "up to" peak.
    ({"NetworkPerformance": "Up to 25 Gigabit",
      "NetworkCards": [{"BaselineBandwidthInGbps": 5.0, "PeakBandwidthInGbps": 25.0}]}, 5),
    ({"NetworkPerformance": "Moderate"}, None),
])
def test_gbps_from_network_info(info, gbps):
    assert nb.gbps_from_network_info(info)[0] == gbps


def test_overrides_then_ec2_then_table():
    ec2 = [{"instance_type": "g5.8xlarge", "network_info": {"network_performance": "25 Gigabit",
                                                            "efa_supported": True}}]
    found = nb.instance_network(ec2, ["g5.8xlarge", "p4d.24xlarge", "x9.large", "p5.48xlarge"], {"p5.48xlarge": 1600})
    assert found["g5.8xlarge"]["gbps"] == 25 and found["g5.8xlarge"]["busbw_gbs"] == 3.125
    assert found["g5.8xlarge"]["source"] == "EC2 DescribeInstanceTypes: NetworkPerformance '25 Gigabit'"
    assert found["g5.8xlarge"]["efa_supported"] is True
    assert found["p4d.24xlarge"]["gbps"] == 400 and found["p4d.24xlarge"]["source"].startswith("built-in table")
    assert found["x9.large"]["busbw_gbs"] is None and found["x9.large"]["source"].startswith("unknown")
    assert found["p5.48xlarge"] == {"gbps": 1600.0, "efa_supported": None, "busbw_gbs": 200.0,
                                    "source": "verify_distributed_network_gbps"}


def test_builtin_table_matches_ec2s_recorded_instance_data():
    """Every entry of the table is what the rule reads from DescribeInstanceTypes (moto ships EC2's answers)."""
    recorded = _moto_instance_types()
    different = {}
    for itype, gbps in nb.BUILTIN_GBPS.items():
        assert itype in recorded, itype
        read, _how = nb.gbps_from_network_info(recorded[itype]["NetworkInfo"])
        if read != gbps:
            different[itype] = (gbps, read)
    assert different == {}
