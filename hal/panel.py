"""Voter panel: shows the verdict ("važeći" / "nevažeći" ...) and asks the voter to cast or return."""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol, runtime_checkable

from hal.errors import DeviceStatus


class PanelVerdict(StrEnum):
    VALID = "valid"  # važeći
    INVALID = "invalid"  # nevažeći
    AMBIGUOUS = "ambiguous"  # unclear mark: return advised
    FOREIGN = "foreign"  # not a ballot of this station: committee called, cannot be cast
    UNREADABLE = "unreadable"  # reinsert


class VoterChoice(StrEnum):
    CAST = "cast"  # ubaci
    RETURN = "return"  # vrati
    NONE = "none"  # timed out


@runtime_checkable
class VoterPanel(Protocol):
    def show_verdict(self, verdict: PanelVerdict, text: str, castable: bool) -> None:
        """Show the verdict with its text in the station's language. `castable` False hides 'cast'."""
        ...

    def ask_cast_or_return(self, timeout_s: float) -> VoterChoice: ...

    def show_message(self, text: str) -> None:
        """Idle/status text ("Ubacite glasački listić", "Biračko mjesto je zatvoreno", ...)."""
        ...

    def self_test(self) -> DeviceStatus: ...

    def close(self) -> None: ...
