"""moto's server, with the service modules the sandbox uses imported while it starts.

moto imports a service's code on the first request to it (EC2 alone takes 1-3 s
on this machine); importing them in a thread at start takes that off the
critical path of `sandbox.py up`. Arguments are moto_server's.
"""

import sys
import threading


def _preload():
    # Imported for their side effect: moto's lazy service loading finds them ready.
    # EC2 first (the seeding needs it first); CloudFormation last (it imports most services).
    # IAM and STS are left to pcluster's first calls: `up` does not use them.
    import moto.ec2.models  # noqa: F401  pylint: disable=unused-import,import-outside-toplevel
    import moto.s3.models  # noqa: F401  pylint: disable=unused-import,import-outside-toplevel
    import moto.dynamodb.models  # noqa: F401  pylint: disable=unused-import,import-outside-toplevel
    import moto.cloudformation.models  # noqa: F401  pylint: disable=unused-import,import-outside-toplevel


if __name__ == "__main__":
    threading.Thread(target=_preload, daemon=True).start()
    from moto.server import main

    sys.exit(main())
