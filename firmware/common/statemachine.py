"""An explicit state table, applied: (state, event) -> (next state, actions). Every service's table
(the scanner's polls and ballot, the authentication desk's voter) runs on it; anything not in a table
is refused with an error naming the state and the event, so no service ever improvises a transition."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class TransitionRefused(RuntimeError):
    """An event that the current state does not accept."""


@dataclass
class StateMachine:
    """Applies a transition table; the service runs the returned actions."""

    table: dict
    state: StrEnum
    name: str

    def fire(self, event: StrEnum) -> tuple[str, ...]:
        try:
            nxt, actions = self.table[(self.state, event)]
        except KeyError:
            raise TransitionRefused(f"{self.name}: event '{event}' is not allowed in state '{self.state}'") from None
        self.state = nxt
        return actions

    def allows(self, event: StrEnum) -> bool:
        return (self.state, event) in self.table
