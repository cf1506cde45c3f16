"""The box's trust chain: signed election packages, provisioning, signed releases, the watchdog."""
