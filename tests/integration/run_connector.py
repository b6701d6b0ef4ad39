"""One connector run in a process of its own, for a test to kill midway:
`python -m tests.integration.run_connector LEASE_SECONDS RENEW_EVERY_SECONDS`, with the stack's
settings in the environment, as the Functions host would have them."""

from __future__ import annotations

import sys

from shared.context import AppContext
from shared.settings import Settings
from tests.integration.connector_support import connector_with_short_leases

if __name__ == "__main__":
    context = AppContext.build(Settings.from_environment())
    connector_with_short_leases(context, float(sys.argv[1]), float(sys.argv[2])).run()
