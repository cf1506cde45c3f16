"""The simulated day's camera draws ahead every sheet the next voter's plan will feed, so the firmware's
thread does not draw them itself: the spoiled sheet, the first of each ballot and the corrected one."""

from __future__ import annotations

from pathlib import Path

import pytest

from ballotbox.cli import main
from simulator.devices import SimCamera


def test_every_planned_sheet_after_the_first_voter_is_drawn_ahead(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first_captures: dict[str, bool] = {}  # sheet key -> drawn ahead (at its first capture)
    original = SimCamera.capture

    def capture(self: SimCamera):  # type: ignore[no-untyped-def]
        sheet = self.path.held
        if sheet is not None and sheet.key not in self._captures:
            first_captures[sheet.key] = sheet.key in self._ahead
        return original(self)

    monkeypatch.setattr(SimCamera, "capture", capture)
    assert main(["simulate", "--voters", "30", "--seed", "3", "--out", str(tmp_path / "out"), "--quiet",
                 "--desk-voters", "0"]) == 0
    fed = {key: ahead for key, ahead in first_captures.items() if not key.startswith("v0.")}  # v0: nobody before
    kinds = {key.split(".")[2] for key in fed}
    assert {"s0", "f0", "c1"} <= kinds, kinds  # the day fed spoiled and corrected sheets: the case is tested
    planned = {key: ahead for key, ahead in fed.items() if key.split(".")[2] in ("s0", "f0", "c1")}
    assert all(planned.values()), sorted(key for key, ahead in planned.items() if not ahead)
