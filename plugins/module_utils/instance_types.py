# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the collection knows of EC2 instance types: DescribeInstanceTypes records, in either of the shapes they reach
the collection in (``amazon.aws.ec2_instance_type_info``'s ``instance_types``, snake_case, or boto3's answer,
CamelCase), and the built-in tables used when EC2 cannot be asked.

GPUs: ``GpuInfo.Gpus`` (count, manufacturer and name); ``GPU_TABLE`` is the fallback, by family and size.

Network bandwidth (what an all-reduce across nodes is judged against): the instance's advertised bandwidth,
``NetworkInfo.NetworkPerformance`` (``"4x 100 Gigabit"`` -> 400 Gbps, ``"3200 Gigabit"`` -> 3200 Gbps). For burstable
types (``"Up to 25 Gigabit"``) it is the sustained baseline, the sum of ``NetworkCards[].BaselineBandwidthInGbps``.
The per-card sum is not used otherwise: for some types (g6e.24xlarge: 2 cards of 200 Gbps, 200 Gbps in all) it is
more than the instance carries. ``BUILTIN_GBPS`` is the fallback; it holds the EFA-capable types used for distributed
training, read from DescribeInstanceTypes with the rule above (the unit tests compare it with the instance type data
moto ships, recorded from EC2).
"""

from __future__ import annotations

import re


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


# Fallback GPU counts, used only when EC2 DescribeInstanceTypes cannot be asked.
# family -> (GPU model, {size: count}).
GPU_TABLE = {
    "g4dn": ("NVIDIA T4", {"xlarge": 1, "2xlarge": 1, "4xlarge": 1, "8xlarge": 1, "16xlarge": 1, "12xlarge": 4,
                           "metal": 8}),
    "g5": ("NVIDIA A10G", {"xlarge": 1, "2xlarge": 1, "4xlarge": 1, "8xlarge": 1, "16xlarge": 1, "12xlarge": 4,
                           "24xlarge": 4, "48xlarge": 8}),
    "g6": ("NVIDIA L4", {"xlarge": 1, "2xlarge": 1, "4xlarge": 1, "8xlarge": 1, "16xlarge": 1, "12xlarge": 4,
                         "24xlarge": 4, "48xlarge": 8}),
    "g6e": ("NVIDIA L40S", {"xlarge": 1, "2xlarge": 1, "4xlarge": 1, "8xlarge": 1, "16xlarge": 1, "12xlarge": 4,
                            "24xlarge": 4, "48xlarge": 8}),
    "p3": ("NVIDIA V100", {"2xlarge": 1, "8xlarge": 4, "16xlarge": 8}),
    "p3dn": ("NVIDIA V100", {"24xlarge": 8}),
    "p4d": ("NVIDIA A100", {"24xlarge": 8}),
    "p4de": ("NVIDIA A100 80GB", {"24xlarge": 8}),
    "p5": ("NVIDIA H100", {"4xlarge": 1, "48xlarge": 8}),
    "p5e": ("NVIDIA H200", {"48xlarge": 8}),
    "p5en": ("NVIDIA H200", {"48xlarge": 8}),
}
GPU_FAMILY_PREFIXES = ("g", "p")


def builtin_gpu_info(instance_type):
    """{count, model, source} from the built-in table; count -1 when unknown."""
    family, dummy, size = (instance_type or "").partition(".")
    if family in GPU_TABLE:
        model, sizes = GPU_TABLE[family]
        if size in sizes:
            return {"count": sizes[size], "model": model, "source": "built-in table"}
        return {"count": -1, "model": model, "source": "built-in table (size unknown)"}
    if family and not family.startswith(GPU_FAMILY_PREFIXES):
        return {"count": 0, "model": "", "source": "built-in table (not a GPU family)"}
    return {"count": -1, "model": "", "source": "unknown"}


def _gpu_entry(record):
    gpus = record_field(record_field(record, "gpu_info", "GpuInfo", {}), "gpus", "Gpus", [])
    count = sum(int(record_field(g, "count", "Count", 0)) for g in gpus)
    names = [(record_field(g, "manufacturer", "Manufacturer", ""), record_field(g, "name", "Name", "")) for g in gpus]
    model = ", ".join(" ".join(x for x in pair if x) for pair in names)
    return {"count": count, "model": model, "source": "EC2 DescribeInstanceTypes"}


def instance_gpus(ec2_instance_types, wanted, overrides=None):
    """{instance type: {count, model, source}} for the types in ``wanted``.

    ec2_instance_types: the ``instance_types`` list of ``amazon.aws.ec2_instance_type_info`` (snake
    case) or of boto3's DescribeInstanceTypes (CamelCase); may be empty when EC2 could not be asked.
    overrides: {type: count} the user set; they win.
    """
    answered = by_instance_type(ec2_instance_types, _gpu_entry)
    result = {}
    for itype in wanted or []:
        if overrides and itype in overrides:
            result[itype] = {"count": int(overrides[itype]), "model": "", "source": "verify_gpus_per_instance_type"}
        elif itype in answered:
            result[itype] = answered[itype]
        else:
            result[itype] = builtin_gpu_info(itype)
    return result


BUILTIN_GBPS = {
    "p3dn.24xlarge": 100, "p4d.24xlarge": 400, "p4de.24xlarge": 400, "p5.4xlarge": 100, "p5.48xlarge": 3200,
    "p5e.48xlarge": 3200, "p5en.48xlarge": 3200, "p6-b200.48xlarge": 3200,
    "g4dn.8xlarge": 50, "g4dn.12xlarge": 50, "g4dn.16xlarge": 50, "g4dn.metal": 100,
    "g5.8xlarge": 25, "g5.12xlarge": 40, "g5.16xlarge": 25, "g5.24xlarge": 50, "g5.48xlarge": 100,
    "g6.8xlarge": 25, "g6.12xlarge": 40, "g6.16xlarge": 25, "g6.24xlarge": 50, "g6.48xlarge": 100,
    "g6e.8xlarge": 25, "g6e.12xlarge": 100, "g6e.16xlarge": 35, "g6e.24xlarge": 200, "g6e.48xlarge": 400,
    "trn1.32xlarge": 800, "trn1n.32xlarge": 1600, "trn2.48xlarge": 3200,
    "c5n.9xlarge": 50, "c5n.18xlarge": 100, "c6in.32xlarge": 200, "c7gn.16xlarge": 200,
    "hpc6a.48xlarge": 100, "hpc6id.32xlarge": 200, "hpc7a.96xlarge": 300, "hpc7g.16xlarge": 200,
}

_PERFORMANCE_RE = re.compile(r"^\s*(up to\s+)?(?:(\d+)\s*x\s*)?(\d+(?:\.\d+)?)\s*gigabit", re.I)


def gbps_from_network_info(network_info):
    """(Gbps, how it was read) from one DescribeInstanceTypes NetworkInfo (snake_case or CamelCase)."""
    info = network_info or {}
    performance = str(record_field(info, "network_performance", "NetworkPerformance", ""))
    cards = record_field(info, "network_cards", "NetworkCards", []) or []
    baseline = sum(float(record_field(card, "baseline_bandwidth_in_gbps", "BaselineBandwidthInGbps", 0) or 0)
                   for card in cards)
    match = _PERFORMANCE_RE.match(performance)
    if match and not match.group(1):
        gbps = float(match.group(3)) * int(match.group(2) or 1)
        return gbps, "NetworkPerformance %r" % performance
    if baseline > 0:
        return baseline, "baseline of %d network card(s) (NetworkPerformance %r)" % (len(cards), performance)
    return None, "no bandwidth in NetworkPerformance %r" % performance


def _network_entry(record):
    info = record_field(record, "network_info", "NetworkInfo", {})
    gbps, how = gbps_from_network_info(info)
    return {"gbps": gbps, "efa_supported": bool(record_field(info, "efa_supported", "EfaSupported", False)),
            "source": "EC2 DescribeInstanceTypes: %s" % how}


def instance_network(ec2_instance_types, wanted, overrides=None):
    """{instance type: {gbps, busbw_gbs, efa_supported, source}} for the types in ``wanted``.

    ec2_instance_types: the ``instance_types`` of ``amazon.aws.ec2_instance_type_info`` (snake_case) or of
    boto3 (CamelCase); may be empty. overrides: {type: Gbps} set by the user; they win. busbw_gbs is the
    bandwidth in GB/s (Gbps / 8), the unit nccl-tests prints; None when nothing is known.
    """
    answered = by_instance_type(ec2_instance_types, _network_entry)
    result = {}
    for itype in wanted or []:
        if overrides and itype in overrides:
            entry = {"gbps": float(overrides[itype]), "efa_supported": None, "source": "verify_distributed_network_gbps"}
        elif itype in answered and answered[itype]["gbps"]:
            entry = dict(answered[itype])
        elif itype in BUILTIN_GBPS:
            entry = {"gbps": float(BUILTIN_GBPS[itype]), "efa_supported": None,
                     "source": "built-in table (EC2 DescribeInstanceTypes could not be asked)"}
        else:
            entry = {"gbps": None, "efa_supported": None,
                     "source": "unknown: not in the built-in table and not answered by EC2"}
        entry["busbw_gbs"] = round(entry["gbps"] / 8.0, 3) if entry["gbps"] else None
        result[itype] = entry
    return result
