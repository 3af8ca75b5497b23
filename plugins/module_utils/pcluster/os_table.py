# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The operating systems of ParallelCluster in one table: os-release ids, default users, AMI name parts, support."""

from __future__ import annotations

from collections import namedtuple

OsInfo = namedtuple("OsInfo", "release_id release_version default_user ami_name_part supported")

# Image.Os name -> what /etc/os-release says (ID, VERSION_ID or its prefix), the login user of the
# official AMI, the part of the official AMI's name that names the OS, and whether ParallelCluster 3.16
# accepts it (pcluster.constants SUPPORTED_OSES, OS_MAPPING, OS_TO_IMAGE_NAME_PART_MAP). The
# unsupported ones are those of older releases, so clusters they made are still recognised.
OS_TABLE = {
    "alinux2023": OsInfo("amzn", "2023", "ec2-user", "amzn2023-hvm", True),
    "ubuntu2204": OsInfo("ubuntu", "22.04", "ubuntu", "ubuntu-2204-lts-hvm", True),
    "ubuntu2404": OsInfo("ubuntu", "24.04", "ubuntu", "ubuntu-2404-lts-hvm", True),
    "rhel8": OsInfo("rhel", "8", "ec2-user", "rhel8-hvm", True),
    "rocky8": OsInfo("rocky", "8", "rocky", "rocky8-hvm", True),
    "rhel9": OsInfo("rhel", "9", "ec2-user", "rhel9-hvm", True),
    "rocky9": OsInfo("rocky", "9", "rocky", "rocky9-hvm", True),
    "alinux2": OsInfo("amzn", "2", "ec2-user", "amzn2-hvm", False),
    "ubuntu2004": OsInfo("ubuntu", "20.04", "ubuntu", "ubuntu-2004-lts-hvm", False),
    "ubuntu1804": OsInfo("ubuntu", "18.04", "ubuntu", "ubuntu-1804-lts-hvm", False),
    "centos7": OsInfo("centos", "7", "centos", "centos7-hvm", False),
}

# The views the collection uses, all read from the table above.
SUPPORTED_OSES = tuple(name for name, info in OS_TABLE.items() if info.supported)
OS_DEFAULT_USER = {name: info.default_user for name, info in OS_TABLE.items()}
IMAGE_NAME_PART_OS = {info.ami_name_part: name for name, info in OS_TABLE.items()}
OS_RELEASE = {name: (info.release_id, info.release_version) for name, info in OS_TABLE.items()}
