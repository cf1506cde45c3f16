"""Nothing outside hal.drivers may import a hardware library (ARCHITECTURE.md: "hal/ is the only place
that knows hardware"; drivers import theirs lazily). Every module of the packages below is imported in
a fresh interpreter, one after another; an import hook records any attempt to import a hardware
library, whether it succeeds (pyserial is installed here) or fails (RPi.GPIO is not), together with
the module that was being imported at the time. New modules are picked up as they are added;
packages that do not exist yet are skipped.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ["firmware", "hal", "omr", "biometrics", "video", "config", "simulator"]
HARDWARE_LIBRARIES = ["RPi", "picamera2", "serial", "tflite_runtime"]
SKIPPED_PREFIX = "hal.drivers."  # the drivers are where the hardware libraries belong

_PROBE = r"""
import importlib, importlib.abc, importlib.util, json, pkgutil, sys, traceback

packages, banned, skipped_prefix = json.loads(sys.argv[1])
current = ["(start-up)"]
attempts = {}

class HardwareImportRecorder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] in banned:
            attempts.setdefault(current[0], set()).add(fullname)
        return None  # let the normal finders go on: only recording

sys.meta_path.insert(0, HardwareImportRecorder())
failures = {}
checked = []

def check(name, is_package):
    current[0] = name
    try:
        module = importlib.import_module(name)
    except Exception:
        failures[name] = traceback.format_exc(limit=3)
        return
    checked.append(name)
    if is_package:
        for info in pkgutil.iter_modules(module.__path__, name + "."):
            if info.name.startswith(skipped_prefix) or info.name.endswith(".__main__"):
                continue
            check(info.name, info.ispkg)

for package in packages:
    if importlib.util.find_spec(package) is None:
        continue  # not written yet
    check(package, True)

loaded = sorted(n for n in sys.modules if n.split(".")[0] in banned)
print(json.dumps({
    "checked": checked,
    "failures": failures,
    "attempts": {k: sorted(v) for k, v in attempts.items()},
    "loaded": loaded,
}))
"""


@dataclass(frozen=True)
class ProbeReport:
    checked: list[str]
    failures: dict[str, str]  # module -> traceback
    attempts: dict[str, list[str]]  # module -> hardware libraries it tried to import
    loaded: list[str]  # hardware modules in sys.modules at the end


def run_probe(packages: list[str] = PACKAGES, cwd: Path = PROJECT_ROOT) -> ProbeReport:
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps([packages, HARDWARE_LIBRARIES, SKIPPED_PREFIX])],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"the import probe crashed:\n{result.stderr}"
    return ProbeReport(**json.loads(result.stdout.strip().splitlines()[-1]))


def test_no_module_outside_the_drivers_imports_a_hardware_library() -> None:
    report = run_probe()
    offenders = "; ".join(f"{module}: {', '.join(libraries)}" for module, libraries in report.attempts.items())
    assert report.attempts == {}, f"hardware libraries imported outside hal.drivers: {offenders}"
    assert report.loaded == []
    broken = "\n".join(f"{module}:\n{trace}" for module, trace in report.failures.items())
    assert report.failures == {}, f"modules that cannot be imported, so cannot be checked:\n{broken}"
    checked = report.checked
    # The probe really walked the tree: the hal interfaces and the twins are among what it imported,
    # and none of the drivers.
    for module in ("hal.feeder", "hal.printer", "simulator.gpio_twin", "simulator.escpos_twin", "hal.drivers"):
        assert module in checked
    assert not [m for m in checked if m.startswith(SKIPPED_PREFIX)]


def test_the_probe_catches_a_top_level_hardware_import(tmp_path: Path) -> None:
    """The hook must see an import even when it fails and the module swallows the error."""
    package = tmp_path / "sneaky"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "gpio_helper.py").write_text("try:\n    import RPi.GPIO\nexcept ImportError:\n    pass\n")
    report = run_probe(["sneaky"], cwd=tmp_path)
    assert report.attempts == {"sneaky.gpio_helper": ["RPi"]}
    assert report.checked == ["sneaky", "sneaky.gpio_helper"]
