"""TEST ONLY: the PINs of the simulated committee and technician, and the box's access file made from them.

These PINs are public (they are in this source file): they exist so that `ballotbox simulate`, the tests
and training days can act in every role. A real box gets its PINs at provisioning
(`ballotbox device set-pin`), never these.
"""

from __future__ import annotations

from pathlib import Path

from firmware.common.roles import (
    ACCESS_FILE,
    MIN_N,
    Credential,
    Role,
    SecretHash,
    hash_secret,
    load_access_file,
    write_access_file,
)

# TEST ONLY - never on a real box.
TEST_PINS: dict[Role, str] = {Role.OPERATOR: "111111", Role.PRESIDENT: "222222", Role.TECHNICIAN: "333333"}
# The simulator's hashes use the lowest cost the box accepts: the PINs are public anyway, and a simulated
# day (or a thousand of them in the power-cut bench) checks a PIN at every action.
TEST_SCRYPT_N = MIN_N


def credential_for(role: Role) -> Credential:
    """The simulated person's credential for `role` (TEST ONLY)."""
    return Credential(role, TEST_PINS[role])


def provision_test_pins(device_dir: Path) -> dict[Role, SecretHash]:
    """The box's access file with the test PINs, made on first use (as provisioning would), then read."""
    if not (Path(device_dir) / ACCESS_FILE).exists():
        write_access_file(device_dir, {role: hash_secret(pin, n=TEST_SCRYPT_N) for role, pin in TEST_PINS.items()})
    return load_access_file(device_dir)
