"""One voter at the authentication desk, as a state table (CEC instruction Art. 12).

    document read -> lookup -> capture (quality check, up to MAX_ATTEMPTS) -> match
        -> AUTHENTICATED
        -> NOT_MATCHED -> the committee re-identifies (re-identification register, Art. 12(5)) or refuses
        -> IMPERSONATION (the finger is another voter's of the register, Art. 12(7))
    already authenticated -> IMPERSONATION (a second vote with the same identity, Art. 12(7))
    document unreadable -> read again or type the JMBG (Art. 12(6)); not in the register -> REFUSED;
    no enrolled template -> the committee identifies the voter as for a failed match.

What the voter and the committee see in each state is in `PANEL` (message keys of config/messages),
beside the table, so no screen text is decided anywhere else. A final state accepts only NEXT_VOTER.
"""

from __future__ import annotations

from enum import StrEnum

from firmware.common.statemachine import StateMachine, TransitionRefused  # noqa: F401 (the table refuses with it)

MAX_ATTEMPTS = 3  # the device's retry policy (BENCHMARKS.md); the instruction sets no number: after the last
# failed try Art. 12(5) applies (the committee re-identifies the voter by the document)


class VoterState(StrEnum):
    WAITING_DOCUMENT = "waiting_document"  # operator reads the document
    TYPING_JMBG = "typing_jmbg"  # document unreadable or a passport: the operator types the JMBG
    LOOKING_UP = "looking_up"  # identity read, searching the register extract
    CAPTURING = "capturing"  # voter in the register, finger on the sensor
    MATCHING = "matching"  # a capture of good quality is compared with the enrolled template
    AUTHENTICATED = "authenticated"  # final: the voter goes to sign the excerpt and take the ballots
    COMMITTEE = "committee"  # not matched / no template: the committee identifies the voter
    REIDENTIFIED = "reidentified"  # final: the committee identified the voter (re-identification register)
    REFUSED = "refused"  # final: not in the register, or the committee did not identify the voter
    IMPERSONATION = "impersonation"  # final: alarm and record; voting stops for this person (Art. 12(7))


class VoterEvent(StrEnum):
    DOCUMENT_READ = "document_read"
    DOCUMENT_UNREADABLE = "document_unreadable"  # DocumentError from the scan
    JMBG_TYPED = "jmbg_typed"
    FOUND = "found"
    NOT_IN_REGISTER = "not_in_register"
    NO_TEMPLATE = "no_template"
    ALREADY_AUTHENTICATED = "already_authenticated"
    CAPTURED = "captured"  # quality good enough to match
    POOR_CAPTURE = "poor_capture"  # quality too low (or no finger), attempts left
    ATTEMPTS_EXHAUSTED = "attempts_exhausted"  # the last allowed capture was poor too
    MATCHED = "matched"
    NOT_MATCHED = "not_matched"  # attempts left: capture again
    FINAL_NOT_MATCHED = "final_not_matched"  # no attempts left
    MATCHES_ANOTHER = "matches_another"  # 1:N found another register voter's finger
    COMMITTEE_IDENTIFIED = "committee_identified"
    COMMITTEE_REFUSED = "committee_refused"
    NEXT_VOTER = "next_voter"


S, E = VoterState, VoterEvent
FINAL_STATES = frozenset({S.AUTHENTICATED, S.REIDENTIFIED, S.REFUSED, S.IMPERSONATION})

FLOW_TABLE: dict[tuple[VoterState, VoterEvent], tuple[VoterState, tuple[str, ...]]] = {
    (S.WAITING_DOCUMENT, E.DOCUMENT_READ): (S.LOOKING_UP, ("start_timer", "look_up")),
    (S.WAITING_DOCUMENT, E.DOCUMENT_UNREADABLE): (S.TYPING_JMBG, ("count_problem",)),
    # A passport carries no JMBG in the MRZ: the operator types it from the start (Art. 12(6)).
    (S.WAITING_DOCUMENT, E.JMBG_TYPED): (S.LOOKING_UP, ("start_timer", "look_up")),
    # The operator may read the document again instead of typing (a smudged MRZ often reads the second time).
    (S.TYPING_JMBG, E.DOCUMENT_READ): (S.LOOKING_UP, ("start_timer", "look_up")),
    (S.TYPING_JMBG, E.DOCUMENT_UNREADABLE): (S.TYPING_JMBG, ("count_problem",)),
    (S.TYPING_JMBG, E.JMBG_TYPED): (S.LOOKING_UP, ("start_timer", "look_up")),
    (S.LOOKING_UP, E.FOUND): (S.CAPTURING, ("capture",)),
    (S.LOOKING_UP, E.NOT_IN_REGISTER): (S.REFUSED, ("count_not_in_register",)),
    (S.LOOKING_UP, E.NO_TEMPLATE): (S.COMMITTEE, ("count_no_template",)),
    # The same identity once more: a second vote attempt (Art. 12(7)); no finger is taken.
    (S.LOOKING_UP, E.ALREADY_AUTHENTICATED): (S.IMPERSONATION, ("record_impersonation", "alarm")),
    (S.CAPTURING, E.CAPTURED): (S.MATCHING, ("match",)),
    (S.CAPTURING, E.POOR_CAPTURE): (S.CAPTURING, ("count_attempt", "capture")),
    (S.CAPTURING, E.ATTEMPTS_EXHAUSTED): (S.COMMITTEE, ("count_attempt", "count_failure")),
    (S.MATCHING, E.MATCHED): (S.AUTHENTICATED, ("count_attempt", "record_authenticated")),
    (S.MATCHING, E.NOT_MATCHED): (S.CAPTURING, ("count_attempt", "capture")),
    (S.MATCHING, E.FINAL_NOT_MATCHED): (S.COMMITTEE, ("count_attempt", "count_failure")),
    # One finger for two identities: the probe is another register voter's (1:N), Art. 12(7).
    (S.MATCHING, E.MATCHES_ANOTHER): (S.IMPERSONATION, ("count_attempt", "record_impersonation", "alarm")),
    (S.COMMITTEE, E.COMMITTEE_IDENTIFIED): (S.REIDENTIFIED, ("record_reidentified",)),
    (S.COMMITTEE, E.COMMITTEE_REFUSED): (S.REFUSED, ("count_refused",)),
    **{(state, E.NEXT_VOTER): (S.WAITING_DOCUMENT, ("stop_timer", "forget_voter")) for state in FINAL_STATES},
}

# What each side of the desk sees: (voter's panel, committee's screen), message keys.
PANEL: dict[VoterState, tuple[str, str]] = {
    S.WAITING_DOCUMENT: ("auth.panel.voter.welcome", "auth.panel.committee.read_document"),
    S.TYPING_JMBG: ("auth.panel.voter.wait", "auth.panel.committee.type_jmbg"),
    S.LOOKING_UP: ("auth.panel.voter.wait", "auth.panel.committee.looking_up"),
    S.CAPTURING: ("auth.panel.voter.place_finger", "auth.panel.committee.capturing"),
    S.MATCHING: ("auth.panel.voter.wait", "auth.panel.committee.matching"),
    S.AUTHENTICATED: ("auth.panel.voter.authenticated", "auth.panel.committee.authenticated"),
    S.COMMITTEE: ("auth.panel.voter.see_committee", "auth.panel.committee.identify"),
    S.REIDENTIFIED: ("auth.panel.voter.authenticated", "auth.panel.committee.reidentified"),
    S.REFUSED: ("auth.panel.voter.refused", "auth.panel.committee.refused"),
    S.IMPERSONATION: ("auth.panel.voter.see_committee", "auth.panel.committee.impersonation"),
}


def voter_machine(state: VoterState = VoterState.WAITING_DOCUMENT) -> StateMachine:
    return StateMachine(FLOW_TABLE, state, "voter")
