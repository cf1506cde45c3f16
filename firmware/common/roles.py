"""Who may do what on the box: the roles, the actions each may take, PINs (or cards) and the lockout.

The roles follow the CEC instruction on the 2024 pilots (DOMAIN.md):

- **president** (predsjednik biračkog odbora): the polls. Opens them after the zero report is signed
  (Art. 20(3-4)), pauses ("stops the voting", Art. 21(10)) and resumes, closes them (Art. 23); after the
  close, has the biometric data wiped and signs the deletion record (Art. 34; the technician may too).
- **operator**: runs the box for the committee during the day - clears a paper jam and answers the box's
  questions about a sheet (Art. 10(1), 18(1): "rješavanje tehničkih problema"), prints the zero and results
  reports (Art. 20(4), 23(1)).
- **technician** (the CEC's operater, Art. 10, 11, 18, 19, 30, 38): installs, checks and uninstalls - the
  self-test (Art. 11, 20(1)), provisioning, the wipe of biometric data at the end (Art. 16, 27, 35, 41).
  The instruction's operater does the operator's work too, so a technician's credential is also taken for
  the operator's actions.

A credential is a role and a secret: a PIN typed on the panel, or a card's id read by a reader (both are
secrets checked the same way). Secrets are stored only as salted scrypt hashes (RFC 7914) in the device's
`access.json`. Three wrong secrets in a row for a role lock that role out for 5 minutes, doubled at each
further lockout (up to an hour); every refusal, lockout and granted action is logged (never the secret).
The lockout is rebuilt from the log at start-up, so a power cut does not reset it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

ACCESS_FILE = "access.json"


class Role(StrEnum):
    OPERATOR = "operator"
    PRESIDENT = "president"
    TECHNICIAN = "technician"


# Which roles may take each action (the module docstring gives the articles).
ACTION_ROLES: dict[str, frozenset[Role]] = {
    "open_polls": frozenset({Role.PRESIDENT}),
    "pause": frozenset({Role.PRESIDENT}),
    "resume": frozenset({Role.PRESIDENT}),
    "close_polls": frozenset({Role.PRESIDENT}),
    "clear_fault": frozenset({Role.OPERATOR, Role.TECHNICIAN}),
    "operator_decision": frozenset({Role.OPERATOR, Role.TECHNICIAN}),  # e.g. after a power cut: "taken out?"
    "print_report": frozenset({Role.OPERATOR, Role.TECHNICIAN}),
    "status": frozenset(Role),  # the committee's look at the running service (ballots counted, faults)
    "self_test": frozenset({Role.TECHNICIAN}),
    "provision": frozenset({Role.TECHNICIAN}),
    "wipe": frozenset({Role.PRESIDENT, Role.TECHNICIAN}),  # the biometric data and the sensor's flash, at close
}

# Three tries: a person who mistypes twice still gets in; guessing a 6-digit PIN at 3 tries per lockout
# (5 min, doubling to an hour) takes years.
MAX_FAILURES = 3
LOCKOUT = timedelta(minutes=5)
MAX_LOCKOUT = timedelta(hours=1)
# scrypt cost (RFC 7914): N = 2^15, r = 8 takes 32 MiB and ~0.1 s on a Pi 4 core - slow to guess offline,
# quick enough for a person at the panel. Hashes below MIN_N are refused when read.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
MIN_N = 2**10
SALT_BYTES = 16


class AccessRefused(PermissionError):
    """An action refused for want of the right credential; the message says why and what to do."""


class AccessLocked(AccessRefused):
    """A role locked out after repeated wrong secrets."""


@dataclass(frozen=True)
class Credential:
    """What a person gives at the panel: the role they act in and its PIN (or the id their card gives)."""

    role: Role
    secret: str

    def __repr__(self) -> str:  # never the secret in a log line or a traceback
        return f"Credential(role={self.role.value!r}, secret=***)"


@dataclass(frozen=True)
class SecretHash:
    salt: bytes
    digest: bytes
    n: int = SCRYPT_N
    r: int = SCRYPT_R
    p: int = SCRYPT_P

    def matches(self, secret: str) -> bool:
        return hmac.compare_digest(_scrypt(secret, self.salt, self.n, self.r, self.p), self.digest)

    def to_json(self) -> dict[str, Any]:
        return {"scrypt": {"salt": self.salt.hex(), "hash": self.digest.hex(), "n": self.n, "r": self.r,
                           "p": self.p}}


def hash_secret(secret: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> SecretHash:
    """A salted scrypt hash of a PIN or card id."""
    salt = secrets.token_bytes(SALT_BYTES)
    return SecretHash(salt, _scrypt(secret, salt, n, r, p), n, r, p)


class AccessError(ValueError):
    """An access file that cannot be used; the message names it and what to do."""


def write_access_file(device_dir: Path, hashes: Mapping[Role, SecretHash]) -> Path:
    """The roles' hashes into DEVICE_DIR/access.json (0600), replacing those of the roles given."""
    path = Path(device_dir) / ACCESS_FILE
    current = {role: h for role, h in load_access_file(device_dir).items()} if path.exists() else {}
    current.update(hashes)
    body = {"roles": {role.value: h.to_json() for role, h in sorted(current.items())}}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(json.dumps(body, indent=1) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def load_access_file(device_dir: Path) -> dict[Role, SecretHash]:
    path = Path(device_dir) / ACCESS_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        roles = data["roles"]
        found = {}
        for name, entry in roles.items():
            s = entry["scrypt"]
            h = SecretHash(bytes.fromhex(s["salt"]), bytes.fromhex(s["hash"]), int(s["n"]), int(s["r"]), int(s["p"]))
            if h.n < MIN_N or len(h.salt) < 8 or len(h.digest) != 32:
                raise AccessError(f"{path}: role {name}: too weak a hash (n={h.n}); set its PIN again")
            found[Role(name)] = h
        return found
    except FileNotFoundError:
        raise AccessError(f"{path}: no such file; the box has no PINs: set them at provisioning "
                          "(ballotbox device set-pin)") from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        if isinstance(exc, AccessError):
            raise
        raise AccessError(f"{path}: not a usable access file ({type(exc).__name__}: {exc}); set the PINs again "
                          "(ballotbox device set-pin)") from None


class _Clock(Protocol):
    def now(self) -> datetime: ...


class AccessControl:
    """Checks credentials for the box's actions, with the lockout; `log(kind, at, detail)` records each
    decision (the scanner store's log_event). `on_lockout(role)` lets the service alarm the panel."""

    def __init__(self, hashes: Mapping[Role, SecretHash], clock: _Clock,
                 log: Callable[[str, datetime, dict[str, Any]], None],
                 on_lockout: Callable[[Role], None] | None = None) -> None:
        self._hashes = dict(hashes)
        self._clock = clock
        self._log = log
        self.on_lockout = on_lockout
        self._failures: dict[Role, int] = {}
        self._locked_until: dict[Role, datetime] = {}
        self._lockouts: dict[Role, int] = {}

    def restore(self, events: Iterable[Any]) -> None:
        """Rebuild failures and lockouts from the logged events (objects with .kind, .at and .detail)."""
        for e in events:
            role = e.detail.get("role") if isinstance(e.detail, dict) else None
            if role not in {r.value for r in Role}:
                continue
            role = Role(role)
            if e.kind == "access_refused" and e.detail.get("wrong_secret"):
                self._failures[role] = int(e.detail.get("failures", 0))
            elif e.kind == "access_granted":
                self._failures[role] = 0
                self._lockouts[role] = 0
            elif e.kind == "access_locked":
                self._failures[role] = 0
                self._lockouts[role] = int(e.detail.get("lockouts", 1))
                self._locked_until[role] = datetime.fromisoformat(e.detail["until"])

    def authorize(self, action: str, credential: Credential | None) -> Role:
        """The role that may take `action` with this credential, or AccessRefused saying why."""
        allowed = ACTION_ROLES.get(action)
        if allowed is None:
            raise KeyError(f"no such action {action!r} in ACTION_ROLES")
        who = " or ".join(sorted(r.value for r in allowed))
        now = self._clock.now()
        if credential is None:
            self._log("access_refused", now, {"action": action, "role": None, "wrong_secret": False})
            raise AccessRefused(f"{action}: needs the {who}'s PIN or card")
        role = credential.role
        until = self._locked_until.get(role)
        if until is not None and now < until:
            self._log("access_refused", now, {"action": action, "role": role.value, "wrong_secret": False,
                                              "locked": True})
            raise AccessLocked(f"{action}: the {role.value}'s PIN is locked after {MAX_FAILURES} wrong tries "
                               f"until {until.strftime('%H:%M')}; wait, or call the technician")
        stored = self._hashes.get(role)
        if stored is None or not stored.matches(credential.secret):
            failures = self._failures.get(role, 0) + 1
            self._failures[role] = failures
            self._log("access_refused", now, {"action": action, "role": role.value, "wrong_secret": True,
                                              "failures": failures})
            if failures >= MAX_FAILURES:
                self._lock(role, now)
                raise AccessLocked(f"{action}: wrong PIN for the {role.value} {failures} times: locked until "
                                   f"{self._locked_until[role].strftime('%H:%M')}")
            if stored is None:
                raise AccessRefused(f"{action}: this box has no PIN for the {role.value}; set it at provisioning")
            raise AccessRefused(f"{action}: wrong PIN for the {role.value} ({MAX_FAILURES - failures} tries left "
                                "before a lockout)")
        if role not in allowed:
            self._log("access_refused", now, {"action": action, "role": role.value, "wrong_secret": False})
            raise AccessRefused(f"{action}: needs the {who}, not the {role.value}")
        self._failures[role] = 0
        self._lockouts[role] = 0
        self._log("access_granted", now, {"action": action, "role": role.value})
        return role

    def locked(self, role: Role) -> bool:
        until = self._locked_until.get(role)
        return until is not None and self._clock.now() < until

    def _lock(self, role: Role, now: datetime) -> None:
        lockouts = self._lockouts.get(role, 0) + 1
        self._lockouts[role] = lockouts
        self._failures[role] = 0
        until = now + min(LOCKOUT * 2 ** (lockouts - 1), MAX_LOCKOUT)
        self._locked_until[role] = until
        self._log("access_locked", now, {"role": role.value, "until": until.isoformat(), "lockouts": lockouts})
        if self.on_lockout is not None:
            self.on_lockout(role)


@dataclass(frozen=True)
class LoggedAccess:
    """One access decision as a service's signed log holds it, in AccessControl.restore's terms."""

    kind: str
    at: datetime
    detail: dict[str, Any]


# The signed log's ids (firmware/common/events.py) of AccessControl's kinds.
ACCESS_EVENT_IDS = {"user.pin_refused": "access_refused", "user.pin_accepted": "access_granted",
                    "user.locked_out": "access_locked"}


def access_events_from_log(path: Path) -> list[LoggedAccess]:
    """The access decisions in a signed event log (JSON lines), for AccessControl.restore: a service whose
    store keeps no events of its own (the auth desk) rebuilds its lockouts from its log. A torn last line
    is skipped."""
    found = []
    try:
        lines = Path(path).read_bytes().splitlines()
    except FileNotFoundError:
        return []
    for raw in lines:
        try:
            line = json.loads(raw)
            kind = ACCESS_EVENT_IDS.get(line.get("event"))
            if kind is not None:
                found.append(LoggedAccess(kind, datetime.fromisoformat(line["at"]), dict(line.get("detail") or {})))
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
    return found


def _scrypt(secret: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(secret.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=256 * 1024 * 1024, dklen=32)
