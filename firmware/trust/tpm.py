"""The device key sealed to the box's TPM 2.0, through the tpm2-tools commands (Debian/Raspberry Pi OS:
`apt install tpm2-tools`).

A TPM 2.0 has no Ed25519, and every verifier of the box's signatures (the receiver, `export verify`, `log
verify`, `cdf verify`) expects Ed25519. So the box does what products with such a TPM do: the key stays
Ed25519, and its 32-byte private seed is **sealed** to the TPM. At rest, on the card, there is only the
sealed blob (``device-key.tpm.json``): a TPM data object whose private part is encrypted under a storage
key that never leaves this TPM. The services unseal the seed into memory when they start; it is never
written to disk again. A copy of the card is useless on another box or a PC: only this TPM can unseal it.

    tpm = Tpm("device:/dev/tpmrm0")
    blob = tpm.seal(seed)            # {"public": b64, "private": b64}: the TPM2B_PUBLIC and TPM2B_PRIVATE
    seed = tpm.unseal(blob)

The parent is the owner hierarchy's storage primary key made from the TCG template (ECC P-256, AES-128
CFB, SHA-256): a primary key is derived from the hierarchy's seed, so the same template gives the same key
after every boot, and nothing needs to be stored in the TPM's own NV memory. The sealed object has
``fixedtpm|fixedparent`` (it cannot be duplicated to another TPM), ``userwithauth`` with an empty password
and ``noda``. It is **not** bound to PCRs: a Raspberry Pi has no measured boot, so there is no PCR value
that would mean "this firmware". Anyone who is root on the running box can therefore unseal the key, as
they could read a key file; what the TPM adds is that the key cannot be copied off the card.

The tpm2-tools leave their objects loaded when they exit; the kernel's resource manager (/dev/tpmrm0)
flushes them, but a TPM reached without one (a bare /dev/tpm0, or the swtpm of the tests) has three object
slots, so each step flushes the transient objects (``tpm2_flushcontext -t``) before the next.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

TPM_DEVICE = Path("/dev/tpmrm0")  # the kernel's TPM 2.0 resource manager
DEVICE_TCTI = f"device:{TPM_DEVICE}"
# The TCG storage-key template (ECC P-256 with AES-128 CFB, name algorithm SHA-256) in the owner hierarchy.
PRIMARY = ("-C", "o", "-g", "sha256", "-G", "ecc256:aes128cfb")
SEALED_ATTRIBUTES = "fixedtpm|fixedparent|userwithauth|noda"
MAX_SEALED_BYTES = 128  # TPM2B_SENSITIVE_DATA: what a sealed data object holds
TOOLS = ("tpm2_createprimary", "tpm2_create", "tpm2_load", "tpm2_unseal", "tpm2_flushcontext")
TIMEOUT_S = 30.0  # a TPM answers in milliseconds; a hang is a fault, not a wait


class TpmError(RuntimeError):
    """The TPM or its tools could not do what was asked; the message says what and what to do."""


class Tpm:
    """A TPM 2.0 reached through a TCTI string (tpm2-tools' TPM2TOOLS_TCTI): "device:/dev/tpmrm0" on the box,
    "swtpm:host=127.0.0.1,port=2321" for the software TPM of the tests."""

    def __init__(self, tcti: str = DEVICE_TCTI) -> None:
        self.tcti = tcti

    def __repr__(self) -> str:
        return f"Tpm({self.tcti!r})"

    def seal(self, secret: bytes) -> dict[str, str]:
        """Seal `secret` (up to 128 bytes) under this TPM's storage primary key; the blob's two halves in
        base64. The secret goes to the TPM on a pipe, never through a file."""
        if not 0 < len(secret) <= MAX_SEALED_BYTES:
            raise ValueError(f"a sealed object holds 1 to {MAX_SEALED_BYTES} bytes, not {len(secret)}")
        with self._workdir() as work:
            self._primary(work)
            self._run(["tpm2_create", "-Q", "-C", "primary.ctx", "-i", "-", "-u", "seal.pub", "-r", "seal.priv",
                       "-a", SEALED_ATTRIBUTES], work, "seal the key", stdin=secret)
            self._flush(work)
            return {"public": base64.b64encode((work / "seal.pub").read_bytes()).decode(),
                    "private": base64.b64encode((work / "seal.priv").read_bytes()).decode()}

    def unseal(self, blob: dict[str, str]) -> bytes:
        """The secret sealed in `blob` (from `seal`), read back from the TPM into memory."""
        try:
            public, private = base64.b64decode(blob["public"]), base64.b64decode(blob["private"])
        except (KeyError, TypeError, ValueError) as exc:
            raise TpmError(f"the sealed blob is damaged ({type(exc).__name__}: {exc})") from None
        with self._workdir() as work:
            (work / "seal.pub").write_bytes(public)
            (work / "seal.priv").write_bytes(private)
            self._primary(work)
            self._run(["tpm2_load", "-Q", "-C", "primary.ctx", "-u", "seal.pub", "-r", "seal.priv", "-c",
                       "seal.ctx"], work, "load the sealed key (a blob sealed by another TPM does not load)")
            self._flush(work)
            secret = self._run(["tpm2_unseal", "-c", "seal.ctx"], work, "unseal the key")
            self._flush(work)
            return secret

    # -- the tools -------------------------------------------------------------------------------
    def _primary(self, work: Path) -> None:
        self._flush(work)  # a TPM without a resource manager may hold another program's leftovers
        self._run(["tpm2_createprimary", "-Q", *PRIMARY, "-c", "primary.ctx"], work, "make the storage key")
        self._flush(work)

    def _flush(self, work: Path) -> None:
        self._run(["tpm2_flushcontext", "-t"], work, "flush its transient objects")

    def _run(self, command: Sequence[str], work: Path, what: str, stdin: bytes | None = None) -> bytes:
        if shutil.which(command[0]) is None:
            raise TpmError(f"{command[0]} is not installed: the TPM cannot {what}; install tpm2-tools "
                           "(apt install tpm2-tools)")
        env = {**os.environ, "TPM2TOOLS_TCTI": self.tcti}
        try:
            done = subprocess.run(list(command), cwd=work, env=env, input=stdin, capture_output=True,
                                  timeout=TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            raise TpmError(f"the TPM ({self.tcti}) did not answer {command[0]} within {TIMEOUT_S:g} s") from None
        if done.returncode != 0:
            errors = [line.strip() for line in done.stderr.decode(errors="replace").splitlines()
                      if line.startswith("ERROR")]
            reason = errors[0].removeprefix("ERROR:").strip() if errors else f"exit {done.returncode}"
            raise TpmError(f"the TPM ({self.tcti}) could not {what}: {command[0]}: {reason}")
        return done.stdout

    @staticmethod
    @contextmanager
    def _workdir() -> Iterator[Path]:
        """A private folder (mkdtemp: 0700) for the tools' context files, removed afterwards."""
        with tempfile.TemporaryDirectory(prefix="ballotbox-tpm-") as work:
            yield Path(work)


def find_tpm(device: Path | None = None) -> Tpm | None:
    """The box's TPM when the kernel shows one (its resource manager's node, TPM_DEVICE), else None."""
    device = device or TPM_DEVICE
    return Tpm(f"device:{device}") if device.exists() else None


def tools_missing() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]
