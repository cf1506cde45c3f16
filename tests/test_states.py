"""The two state tables: every listed transition does what the table says, everything else is refused."""

from __future__ import annotations

import itertools
from enum import StrEnum
from typing import Any

import pytest

from firmware.scanner.service import ScannerService
from firmware.scanner.states import (
    BALLOT_TABLE,
    POLLS_TABLE,
    BallotEvent,
    BallotState,
    PollsEvent,
    PollsState,
    StateMachine,
    TransitionRefused,
    ballot_machine,
    polls_machine,
)

TABLES: dict[str, tuple[dict[Any, Any], type[StrEnum], type[StrEnum]]] = {
    "polls": (POLLS_TABLE, PollsState, PollsEvent),
    "ballot": (BALLOT_TABLE, BallotState, BallotEvent),
}


def _transitions() -> list:
    return [pytest.param(name, state, event, nxt, actions, id=f"{name}:{state.value}--{event.value}->{nxt.value}")
            for name, (table, _, _) in TABLES.items() for (state, event), (nxt, actions) in table.items()]


def _refused() -> list:
    return [pytest.param(name, state, event, id=f"{name}:{state.value}--{event.value}")
            for name, (table, states, events) in TABLES.items()
            for state, event in itertools.product(states, events) if (state, event) not in table]


@pytest.mark.parametrize("name, state, event, nxt, actions", _transitions())
def test_every_listed_transition_goes_to_its_next_state_with_its_actions(
        name: str, state: StrEnum, event: StrEnum, nxt: StrEnum, actions: tuple[str, ...]) -> None:
    table = TABLES[name][0]
    machine = StateMachine(table, state, name)
    assert machine.allows(event)
    assert machine.fire(event) == actions
    assert machine.state == nxt
    assert type(machine.state) is type(state)


@pytest.mark.parametrize("name, state, event", _refused())
def test_every_unlisted_pair_is_refused_naming_state_and_event(name: str, state: StrEnum, event: StrEnum) -> None:
    machine = StateMachine(TABLES[name][0], state, name)
    assert not machine.allows(event)
    with pytest.raises(TransitionRefused) as info:
        machine.fire(event)
    assert str(info.value) == f"{name}: event '{event.value}' is not allowed in state '{state.value}'"
    assert machine.state == state  # a refused event changes nothing


@pytest.mark.parametrize("name", TABLES)
def test_table_entries_use_their_own_enums(name: str) -> None:
    # a key typed with the other table's enum would be a dead entry that no event ever reaches
    table, states, events = TABLES[name]
    for (state, event), (nxt, actions) in table.items():
        assert type(state) is states and type(event) is events and type(nxt) is states, (state, event)
        assert isinstance(actions, tuple) and all(isinstance(a, str) for a in actions), (state, event)


@pytest.mark.parametrize("action", sorted({a for table in (POLLS_TABLE, BALLOT_TABLE)
                                           for _, actions in table.values() for a in actions}))
def test_every_action_of_the_tables_is_implemented_by_the_scanner_service(action: str) -> None:
    assert callable(getattr(ScannerService, f"_do_{action}", None))


def test_the_polls_path_setup_to_transmitted() -> None:
    m = polls_machine()
    assert m.state == PollsState.SETUP and m.name == "polls"
    steps = [
        (PollsEvent.CONFIGURED, PollsState.CLOSED_INITIAL, ("log",)),
        (PollsEvent.ZERO_REPORT, PollsState.CLOSED_INITIAL, ("print_zero_report", "log")),
        (PollsEvent.ZERO_REPORT, PollsState.CLOSED_INITIAL, ("print_zero_report", "log")),  # reprint allowed
        (PollsEvent.OPEN, PollsState.OPEN, ("record_opening", "log")),
        (PollsEvent.PAUSE, PollsState.PAUSED, ("log",)),
        (PollsEvent.RESUME, PollsState.OPEN, ("log",)),
        (PollsEvent.PAUSE, PollsState.PAUSED, ("log",)),
        (PollsEvent.RESUME, PollsState.OPEN, ("log",)),
        (PollsEvent.CLOSE, PollsState.CLOSED_FINAL, ("record_closing", "print_results_report", "log")),
        (PollsEvent.RESULTS_REPORT, PollsState.CLOSED_FINAL, ("print_results_report", "log")),
        (PollsEvent.TRANSMITTED, PollsState.TRANSMITTED, ("log",)),
        (PollsEvent.RESULTS_REPORT, PollsState.TRANSMITTED, ("print_results_report", "log")),
    ]
    for event, state, actions in steps:
        assert m.fire(event) == actions, event
        assert m.state == state, event


def test_polls_close_from_pause() -> None:
    m = polls_machine(PollsState.PAUSED)
    assert m.fire(PollsEvent.CLOSE) == ("record_closing", "print_results_report", "log")
    assert m.state == PollsState.CLOSED_FINAL


@pytest.mark.parametrize("state, event", [
    (PollsState.SETUP, PollsEvent.OPEN),  # no opening without an election and a self-test
    (PollsState.SETUP, PollsEvent.ZERO_REPORT),
    (PollsState.OPEN, PollsEvent.ZERO_REPORT),  # no zero report once ballots may have been cast
    (PollsState.OPEN, PollsEvent.OPEN),
    (PollsState.PAUSED, PollsEvent.OPEN),  # leaving a pause is RESUME, never a second opening
    (PollsState.CLOSED_FINAL, PollsEvent.OPEN),  # polls never reopen
    (PollsState.CLOSED_FINAL, PollsEvent.RESUME),
    (PollsState.TRANSMITTED, PollsEvent.OPEN),
    (PollsState.OPEN, PollsEvent.TRANSMITTED),  # nothing is sent before the close
], ids=lambda v: v.value)
def test_polls_transitions_the_procedure_forbids(state: PollsState, event: PollsEvent) -> None:
    with pytest.raises(TransitionRefused, match=f"state '{state.value}'"):
        polls_machine(state).fire(event)


def test_a_new_ballot_machine_waits() -> None:
    m = ballot_machine()
    assert m.state == BallotState.WAITING and m.name == "ballot"


def test_ballot_happy_paths() -> None:
    m = ballot_machine()
    assert [m.fire(e) for e in (BallotEvent.INSERTED, BallotEvent.HELD, BallotEvent.INTERPRETED,
                                BallotEvent.CAST_CHOSEN, BallotEvent.DROPPED)] == [
        ("take_in",), ("capture", "interpret"), ("show_verdict",), ("write_intent", "drop"), ("confirm_cast",)]
    assert m.state == BallotState.WAITING
    assert [m.fire(e) for e in (BallotEvent.INSERTED, BallotEvent.HELD, BallotEvent.INTERPRETED,
                                BallotEvent.RETURN_CHOSEN, BallotEvent.RETURNED)] == [
        ("take_in",), ("capture", "interpret"), ("show_verdict",), ("return_to_voter",), ("record_return",)]
    assert m.state == BallotState.WAITING


def test_the_intent_is_written_before_the_drop() -> None:
    _, actions = BALLOT_TABLE[(BallotState.VERDICT_SHOWN, BallotEvent.CAST_CHOSEN)]
    assert actions.index("write_intent") < actions.index("drop")


def test_no_cast_without_a_verdict_shown_to_the_voter() -> None:
    into_accepting = [k for k, (nxt, _) in BALLOT_TABLE.items() if nxt == BallotState.ACCEPTING]
    assert into_accepting == [(BallotState.VERDICT_SHOWN, BallotEvent.CAST_CHOSEN)]
    counting = [k for k, (_, actions) in BALLOT_TABLE.items() if "confirm_cast" in actions]
    assert counting == [(BallotState.ACCEPTING, BallotEvent.DROPPED)]


@pytest.mark.parametrize("fault", [BallotState.JAMMED, BallotState.DOUBLE_SHEET, BallotState.COVER_OPEN,
                                   BallotState.BOX_FULL], ids=str)
def test_a_fault_state_accepts_only_the_operators_clear(fault: BallotState) -> None:
    accepted = [e for (s, e) in BALLOT_TABLE if s == fault]
    assert accepted == [BallotEvent.CLEARED]
    assert BALLOT_TABLE[(fault, BallotEvent.CLEARED)][0] == BallotState.WAITING


def test_every_ballot_state_is_reachable_and_leads_back_to_waiting() -> None:
    edges: dict[BallotState, set[BallotState]] = {s: set() for s in BallotState}
    for (state, _), (nxt, _) in BALLOT_TABLE.items():
        edges[state].add(nxt)
    reach = _closure(edges, BallotState.WAITING)
    assert reach == set(BallotState)
    for state in BallotState:
        assert BallotState.WAITING in _closure(edges, state), state


def test_every_polls_state_is_reachable_from_setup() -> None:
    edges: dict[PollsState, set[PollsState]] = {s: set() for s in PollsState}
    for (state, _), (nxt, _) in POLLS_TABLE.items():
        edges[state].add(nxt)
    assert _closure(edges, PollsState.SETUP) == set(PollsState)
    # and the polls never go back: nothing leads out of the closed states except to transmitted
    assert _closure(edges, PollsState.CLOSED_FINAL) == {PollsState.CLOSED_FINAL, PollsState.TRANSMITTED}


def _closure(edges: dict, start: StrEnum) -> set:
    seen, todo = {start}, [start]
    while todo:
        for nxt in edges[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen
