"""The desk's voter state table: every (state, event) pair is either in the table or refused."""

from __future__ import annotations

import itertools

import pytest

from config.election import Language
from firmware.auth.flow import (
    FINAL_STATES,
    FLOW_TABLE,
    PANEL,
    VoterEvent,
    VoterState,
    voter_machine,
)
from firmware.common.i18n import Messages
from firmware.common.statemachine import TransitionRefused

PAIRS = list(itertools.product(VoterState, VoterEvent))


@pytest.mark.parametrize(("state", "event"), PAIRS, ids=[f"{s}-{e}" for s, e in PAIRS])
def test_every_state_event_pair_is_either_a_transition_or_refused(state: VoterState, event: VoterEvent) -> None:
    machine = voter_machine(state)
    if (state, event) in FLOW_TABLE:
        actions = machine.fire(event)
        assert (machine.state, actions) == FLOW_TABLE[(state, event)]
    else:
        with pytest.raises(TransitionRefused, match=f"event '{event}' is not allowed in state '{state}'"):
            machine.fire(event)
        assert machine.state == state


def test_every_state_is_reachable_from_waiting_and_can_reach_a_final_state() -> None:
    reached, frontier = {VoterState.WAITING_DOCUMENT}, [VoterState.WAITING_DOCUMENT]
    while frontier:
        state = frontier.pop()
        for (s, _), (nxt, _) in FLOW_TABLE.items():
            if s == state and nxt not in reached:
                reached.add(nxt)
                frontier.append(nxt)
    assert reached == set(VoterState)
    for state in set(VoterState) - FINAL_STATES:
        seen, todo = {state}, [state]
        while todo:
            s = todo.pop()
            for (a, _), (nxt, _) in FLOW_TABLE.items():
                if a == s and nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        assert seen & FINAL_STATES, state


def test_a_final_state_accepts_only_next_voter_which_returns_to_the_document() -> None:
    for state in FINAL_STATES:
        events = {e for (s, e) in FLOW_TABLE if s == state}
        assert events == {VoterEvent.NEXT_VOTER}
        assert FLOW_TABLE[(state, VoterEvent.NEXT_VOTER)][0] == VoterState.WAITING_DOCUMENT


def test_a_second_vote_and_a_finger_of_another_voter_both_raise_the_impersonation_alarm() -> None:
    assert FLOW_TABLE[(VoterState.LOOKING_UP, VoterEvent.ALREADY_AUTHENTICATED)] == (
        VoterState.IMPERSONATION, ("record_impersonation", "alarm"))
    assert FLOW_TABLE[(VoterState.MATCHING, VoterEvent.MATCHES_ANOTHER)] == (
        VoterState.IMPERSONATION, ("count_attempt", "record_impersonation", "alarm"))


@pytest.mark.parametrize("lang", [lang.value for lang in Language])
def test_every_state_has_a_voter_and_a_committee_text_in_every_language(lang: str) -> None:
    msgs = Messages.for_language(lang)
    assert set(PANEL) == set(VoterState)
    for voter_key, committee_key in PANEL.values():
        assert msgs.t(voter_key) and msgs.t(committee_key)
