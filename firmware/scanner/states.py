"""The two state tables of the scanner: the polls, and a ballot in the feeder.

Each is an explicit table (state, event) -> (next state, actions). Anything not in the table is refused
with an error naming the state and event; the firmware never improvises a transition. Every hardware
quirk is commented beside the transition it explains.
"""

from __future__ import annotations

from enum import StrEnum

from firmware.common.statemachine import StateMachine, TransitionRefused  # noqa: F401 (the tables refuse with it)


# ---------------------------------------------------------------------------------------------
# Polls: setup -> closed-initial -> open <-> paused -> closed-final -> transmitted
# ---------------------------------------------------------------------------------------------
class PollsState(StrEnum):
    SETUP = "setup"  # device installed, no election loaded or self-test not passed
    CLOSED_INITIAL = "closed_initial"  # election loaded, self-test passed, zero report may be printed
    OPEN = "open"
    PAUSED = "paused"  # committee stopped voting (foreign ballot, Art. 21(10); device fault)
    CLOSED_FINAL = "closed_final"  # polls closed, results report printed
    TRANSMITTED = "transmitted"  # preliminary results sent and receipted (Art. 23(3))


class PollsEvent(StrEnum):
    CONFIGURED = "configured"  # election package loaded and self-test passed
    ZERO_REPORT = "zero_report"  # zero report printed (Art. 20(4)); allowed repeatedly before opening
    OPEN = "open"
    PAUSE = "pause"
    RESUME = "resume"
    CLOSE = "close"
    RESULTS_REPORT = "results_report"  # reprint of the results report, any time after close
    TRANSMITTED = "transmitted"


POLLS_TABLE: dict[tuple[PollsState, PollsEvent], tuple[PollsState, tuple[str, ...]]] = {
    (PollsState.SETUP, PollsEvent.CONFIGURED): (PollsState.CLOSED_INITIAL, ("log",)),
    (PollsState.CLOSED_INITIAL, PollsEvent.CONFIGURED): (PollsState.CLOSED_INITIAL, ("log",)),
    (PollsState.CLOSED_INITIAL, PollsEvent.ZERO_REPORT): (PollsState.CLOSED_INITIAL, ("print_zero_report", "log")),
    # Opening requires a zero report on paper and a count of 0 (VVSG 1.1.3-B; CEC Art. 20(4)); the
    # service checks both before firing this event.
    (PollsState.CLOSED_INITIAL, PollsEvent.OPEN): (PollsState.OPEN, ("record_opening", "log")),
    (PollsState.OPEN, PollsEvent.PAUSE): (PollsState.PAUSED, ("log",)),
    (PollsState.PAUSED, PollsEvent.RESUME): (PollsState.OPEN, ("log",)),
    (PollsState.OPEN, PollsEvent.CLOSE): (PollsState.CLOSED_FINAL, ("record_closing", "print_results_report", "log")),
    # Closing from pause: the committee may close a station whose voting it had to stop.
    (PollsState.PAUSED, PollsEvent.CLOSE): (PollsState.CLOSED_FINAL, ("record_closing", "print_results_report", "log")),
    (PollsState.CLOSED_FINAL, PollsEvent.RESULTS_REPORT): (PollsState.CLOSED_FINAL, ("print_results_report", "log")),
    (PollsState.CLOSED_FINAL, PollsEvent.TRANSMITTED): (PollsState.TRANSMITTED, ("log",)),
    (PollsState.TRANSMITTED, PollsEvent.RESULTS_REPORT): (PollsState.TRANSMITTED, ("print_results_report", "log")),
}


# ---------------------------------------------------------------------------------------------
# A ballot in the feeder
# ---------------------------------------------------------------------------------------------
class BallotState(StrEnum):
    WAITING = "waiting"  # nothing in the path; panel says "Ubacite glasački listić"
    SCANNING = "scanning"  # rollers pulling the sheet to the imaging position
    INTERPRETING = "interpreting"  # sheet held still, image being read
    VERDICT_SHOWN = "verdict_shown"  # panel shows važeći/nevažeći, waiting for the voter
    ACCEPTING = "accepting"  # intent written, rollers dropping the sheet into the box
    RETURNING = "returning"  # rollers pushing the sheet back to the voter
    JAMMED = "jammed"
    DOUBLE_SHEET = "double_sheet"
    COVER_OPEN = "cover_open"
    BOX_FULL = "box_full"
    ERROR = "error"  # a device or the store failed unexpectedly: the operator is called, nothing is guessed


class BallotEvent(StrEnum):
    INSERTED = "inserted"  # entry sensor
    HELD = "held"  # imaging sensor: sheet in position
    INTERPRETED = "interpreted"
    CAST_CHOSEN = "cast_chosen"
    RETURN_CHOSEN = "return_chosen"  # voter chose "vrati", or the sheet cannot be cast (foreign, unreadable)
    DROPPED = "dropped"  # exit sensor saw the sheet pass
    RETURNED = "returned"
    JAM = "jam"
    DOUBLE = "double"
    COVER_OPENED = "cover_opened"
    BOX_IS_FULL = "box_is_full"
    CLEARED = "cleared"  # operator cleared the fault; the sheet, if any, is back with the voter
    FAILED = "failed"  # an action raised (store full, device error): stop safely


BALLOT_TABLE: dict[tuple[BallotState, BallotEvent], tuple[BallotState, tuple[str, ...]]] = {
    (BallotState.WAITING, BallotEvent.INSERTED): (BallotState.SCANNING, ("take_in",)),
    (BallotState.SCANNING, BallotEvent.HELD): (BallotState.INTERPRETING, ("capture", "interpret")),
    # A double sheet is stopped before imaging: two ballots must never be read as one (they come back).
    (BallotState.SCANNING, BallotEvent.DOUBLE): (BallotState.DOUBLE_SHEET, ("return_to_voter", "alert")),
    (BallotState.SCANNING, BallotEvent.JAM): (BallotState.JAMMED, ("alert",)),
    (BallotState.SCANNING, BallotEvent.COVER_OPENED): (BallotState.COVER_OPEN, ("alert",)),
    (BallotState.INTERPRETING, BallotEvent.INTERPRETED): (BallotState.VERDICT_SHOWN, ("show_verdict",)),
    # A camera failure while held is handled as "cannot be cast": the sheet goes back.
    (BallotState.INTERPRETING, BallotEvent.RETURN_CHOSEN): (BallotState.RETURNING, ("return_to_voter",)),
    # The intent is written BEFORE the motor moves: after a power cut during the drop, recovery finds
    # the intent and asks the sensors whether the sheet is still in the path.
    (BallotState.VERDICT_SHOWN, BallotEvent.CAST_CHOSEN): (BallotState.ACCEPTING, ("write_intent", "drop")),
    (BallotState.VERDICT_SHOWN, BallotEvent.RETURN_CHOSEN): (BallotState.RETURNING, ("return_to_voter",)),
    (BallotState.ACCEPTING, BallotEvent.DROPPED): (BallotState.WAITING, ("confirm_cast",)),
    # Box full is checked before moving: the sheet never left the imaging position, so the intent is
    # void and the ballot goes back to the voter to cast into the next box.
    (BallotState.ACCEPTING, BallotEvent.BOX_IS_FULL): (BallotState.BOX_FULL, ("abort_intent", "return_to_voter", "alert")),
    # A jam while accepting: the sheet was in the exit path. The operator clears it; whether it fell into
    # the box is what the exit sensor and the operator's look decide (CLEARED with dropped / not dropped).
    (BallotState.ACCEPTING, BallotEvent.JAM): (BallotState.JAMMED, ("alert",)),
    (BallotState.ACCEPTING, BallotEvent.COVER_OPENED): (BallotState.COVER_OPEN, ("alert",)),
    (BallotState.RETURNING, BallotEvent.RETURNED): (BallotState.WAITING, ("record_return",)),
    (BallotState.RETURNING, BallotEvent.JAM): (BallotState.JAMMED, ("alert",)),
    (BallotState.JAMMED, BallotEvent.CLEARED): (BallotState.WAITING, ("resolve_intent",)),
    (BallotState.DOUBLE_SHEET, BallotEvent.CLEARED): (BallotState.WAITING, ()),
    (BallotState.COVER_OPEN, BallotEvent.CLEARED): (BallotState.WAITING, ("resolve_intent",)),
    (BallotState.BOX_FULL, BallotEvent.CLEARED): (BallotState.WAITING, ()),
    # Anything that fails mid-cycle stops the feeder where it is. The intent, if one was written, stays
    # open: whether the sheet reached the box is decided when the operator clears the fault.
    **{(state, BallotEvent.FAILED): (BallotState.ERROR, ("safe_stop", "alert"))
       for state in (BallotState.SCANNING, BallotState.INTERPRETING, BallotState.VERDICT_SHOWN,
                     BallotState.ACCEPTING, BallotState.RETURNING)},
    (BallotState.ERROR, BallotEvent.CLEARED): (BallotState.WAITING, ("resolve_intent",)),
}


def polls_machine(state: PollsState = PollsState.SETUP) -> StateMachine:
    return StateMachine(POLLS_TABLE, state, "polls")


def ballot_machine() -> StateMachine:
    return StateMachine(BALLOT_TABLE, BallotState.WAITING, "ballot")
