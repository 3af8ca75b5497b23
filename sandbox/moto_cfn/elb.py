"""AWS::ElasticLoadBalancingV2::LoadBalancer with its Type: moto's model creates every load balancer as an
application load balancer, which refuses the TCP listener of ParallelCluster's login nodes' network load
balancer; this driver creates it as CreateLoadBalancer does, Type and tags included."""

from __future__ import annotations

from moto.elbv2.models import FakeLoadBalancer, elbv2_backends

from .resources import MotoModelDriver


class LoadBalancerDriver(MotoModelDriver):
    def __init__(self):
        super().__init__(FakeLoadBalancer, ("Name", "Scheme", "Type", "Subnets", "SubnetMappings"))

    def create(self, ctx, res):
        props = res.properties
        name = props.get("Name") or ctx.physical_name(res.logical_id, 32).replace("--", "-").strip("-")
        res.model = elbv2_backends[ctx.account_id][ctx.region].create_load_balancer(
            name, props.get("SecurityGroups") or [], props.get("Subnets") or [],
            subnet_mappings=props.get("SubnetMappings"), scheme=props.get("Scheme", "internet-facing"),
            loadbalancer_type=props.get("Type", "application"), ip_address_type=props.get("IpAddressType", "ipv4"),
            tags=props.get("Tags"))
        res.physical_id = res.model.arn

    def update(self, ctx, res, old_properties):
        return None

    def delete(self, ctx, res):
        elbv2_backends[ctx.account_id][ctx.region].delete_load_balancer(res.physical_id)


DRIVERS = {"AWS::ElasticLoadBalancingV2::LoadBalancer": LoadBalancerDriver()}
