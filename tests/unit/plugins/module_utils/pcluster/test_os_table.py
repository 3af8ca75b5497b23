"""The one OS table agrees with ParallelCluster's own tables, and every user of it reads the same values."""

from pcluster import constants

from ansible_collections.hpc.pcluster.plugins.module_utils.pcluster import os_table


def test_supported_oses_are_parallelclusters():
    assert sorted(os_table.SUPPORTED_OSES) == sorted(constants.SUPPORTED_OSES)


def test_users_and_ami_name_parts_are_parallelclusters():
    for name in constants.SUPPORTED_OSES:
        assert os_table.OS_DEFAULT_USER[name] == constants.OS_MAPPING[name]["user"], name
        assert os_table.IMAGE_NAME_PART_OS[constants.OS_TO_IMAGE_NAME_PART_MAP[name]] == name


def test_os_release_ids_of_the_supported_oses():
    assert os_table.OS_RELEASE["ubuntu2204"] == ("ubuntu", "22.04")
    assert os_table.OS_RELEASE["alinux2023"] == ("amzn", "2023")
    assert os_table.OS_RELEASE["rocky9"] == ("rocky", "9")
    assert set(os_table.OS_RELEASE) == set(os_table.OS_DEFAULT_USER) == set(os_table.IMAGE_NAME_PART_OS.values())


def test_older_releases_oses_are_known_but_not_supported():
    assert "alinux2" not in os_table.SUPPORTED_OSES
    assert os_table.OS_DEFAULT_USER["centos7"] == "centos"
    assert os_table.IMAGE_NAME_PART_OS["amzn2-hvm"] == "alinux2"


def test_every_user_reads_the_table():
    from ansible_collections.hpc.pcluster.plugins.filter import verify
    from ansible_collections.hpc.pcluster.plugins.inventory import nodes
    from ansible_collections.hpc.pcluster.plugins.module_utils.config import rules as config_rules

    assert config_rules.SUPPORTED_OSES is os_table.SUPPORTED_OSES
    assert nodes.OS_DEFAULT_USER is os_table.OS_DEFAULT_USER
    assert nodes.IMAGE_NAME_PART_OS is os_table.IMAGE_NAME_PART_OS
    assert verify.OS_RELEASE is os_table.OS_RELEASE
