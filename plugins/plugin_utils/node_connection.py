# -*- coding: utf-8 -*-
# Copyright: hpc.pcluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""How Ansible and people reach cluster nodes: the ssh hop through the head node, the ssh and Session Manager
command lines, and whether this controller can start a Session Manager session."""

from __future__ import annotations

import os
import shlex
import shutil

SSM_PLUGIN = "session-manager-plugin"
# Where the amazon.aws.aws_ssm connection looks for the Session Manager plugin, after AWS_SESSION_MANAGER_PLUGIN
# and before PATH.
SSM_PLUGIN_DEFAULT_PATH = "/usr/local/bin/session-manager-plugin"


def proxy_command_args(common_args, user, head_address):
    """ssh -o ProxyCommand=... arguments that reach a node through head_address.

    The hop gets the same options as the final connection (known_hosts, key, ...): ssh does not pass
    -o options on to a -J jump host, so a ProxyCommand running its own ssh is used. '%' in the options is
    doubled because ssh expands %-tokens in ProxyCommand.
    """
    hop = ["ssh"] + [arg.replace("%", "%%") for arg in shlex.split(common_args)]
    if user:
        hop += ["-l", user]
    hop += ["-W", "%h:%p", head_address]
    return "-o " + shlex.quote("ProxyCommand=" + " ".join(shlex.quote(arg) for arg in hop))


def ssh_command(ssh_args, user, address):
    """The ssh command line that reaches a node the way the inventory does (pcluster ssh's equivalent)."""
    argv = ["ssh"] + shlex.split(ssh_args) + ["%s@%s" % (user, address) if user else address]
    return " ".join(shlex.quote(arg) for arg in argv)


def ssm_command(instance_id, region, profile=None, endpoint_url=None):
    """The AWS CLI command that opens a Session Manager shell on a node."""
    argv = ["aws", "ssm", "start-session", "--target", instance_id, "--region", region]
    if profile:
        argv += ["--profile", profile]
    if endpoint_url:
        argv += ["--endpoint-url", endpoint_url]
    return " ".join(shlex.quote(arg) for arg in argv)


def ssm_plugin_problem(environ=None):
    """Why the amazon.aws.aws_ssm connection cannot start on this controller, or None.

    It runs the AWS Session Manager plugin from AWS_SESSION_MANAGER_PLUGIN, else /usr/local/bin, else PATH.
    """
    environ = os.environ if environ is None else environ
    configured = environ.get("AWS_SESSION_MANAGER_PLUGIN")
    if configured:
        if os.path.exists(configured):
            return None
        return ("use_ssm: AWS_SESSION_MANAGER_PLUGIN is %s, which does not exist: point it at the AWS Session "
                "Manager plugin (%s)" % (configured, SSM_PLUGIN))
    if os.path.exists(SSM_PLUGIN_DEFAULT_PATH) or shutil.which(SSM_PLUGIN, path=environ.get("PATH")):
        return None
    return ("use_ssm: true needs the AWS Session Manager plugin (%s) on this controller; it is neither at %s nor on "
            "PATH. Install it (https://docs.aws.amazon.com/systems-manager/latest/userguide/"
            "session-manager-working-with-install-plugin.html), or set AWS_SESSION_MANAGER_PLUGIN to its path, "
            "or reach the nodes over SSH (use_ssm: false)" % (SSM_PLUGIN, SSM_PLUGIN_DEFAULT_PATH))
