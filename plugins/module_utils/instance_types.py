# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""EC2 DescribeInstanceTypes records, in either of the shapes they reach the collection in:
``amazon.aws.ec2_instance_type_info``'s ``instance_types`` (snake_case) or boto3's answer (CamelCase)."""

from __future__ import annotations


def record_field(record, snake, camel, default=None):
    """A field of a record in either shape; ``default`` when it is absent or null."""
    value = record.get(snake, record.get(camel))
    return default if value is None else value


def by_instance_type(ec2_instance_types, read):
    """{instance type: read(record)} for the records of an answer (None or empty: {}); records that name no
    instance type are left out."""
    answered = {}
    for record in ec2_instance_types or []:
        itype = record_field(record, "instance_type", "InstanceType")
        if itype:
            answered[itype] = read(record)
    return answered
