"""The one catalogue of event ids: every event any service of the box may write to its event log.

Each event has an id (`polls.opened`), a category of VVSG 2.0 15.1 (power, polls transitions, device
faults, tamper, user actions, errors; plus device status, security and data events), the services whose
log may hold it (scanner, auth, video: one log per service, nothing joins them), and the detail fields it
may carry. firmware.common.eventlog refuses an id that is not here, a service that may not write it and a
detail field that is not declared, so nothing else can slip into a log.

What is never an event (VVSG 2.0 10.2.4-B, ARCHITECTURE "the secrecy wall"): anything per ballot or per
voter. A ballot cast, read, returned or a voter authenticated, each with its time or a sequence number,
would put the ballots in order (lined up with the scanner's cast-vote records' count, the auth desk's
arrivals, the room camera's segments) and give turnout by the minute. Those are counted in the stores'
aggregates and printed on the reports; the log keeps what happened to the device, the polls and the
people who operate the box. A fault that interrupts a ballot (a jam, a foreign sheet) is logged because
the committee must be able to account for it, with the fault's code only: nothing of the ballot's
content, style or verdict, and nothing that ties it to a cast-vote record (those carry no time and sit in
random slots). The catalogue's own test checks that no declared field is a vote or voter key.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Category(StrEnum):
    """VVSG 2.0 15.1's kinds of event, as this box groups them."""

    POWER = "power"  # boot, resumed after a power cut, shutdown
    POLLS = "polls"  # transitions of the polls state table
    DEVICE_FAULT = "device_fault"  # a device failed or needs the operator (jam, sensor, camera, storage)
    TAMPER = "tamper"  # seal and lid switches, the boot-time check of the installed files
    USER_ACTION = "user_action"  # what an operator, the committee president or a technician did
    ERROR = "error"  # a step of the box's own work failed, or an input was refused
    STATUS = "status"  # self-test, turnout, device status that needs no one
    SECURITY = "security"  # the log's own chain and signatures, keys, packages, software
    DATA = "data"  # results and exports written, biometric data wiped


class Service(StrEnum):
    SCANNER = "scanner"
    AUTH = "auth"
    VIDEO = "video"


ALL = frozenset(Service)
SCANNER = frozenset({Service.SCANNER})
AUTH = frozenset({Service.AUTH})
VIDEO = frozenset({Service.VIDEO})

# Keys that make a payload a vote or a voter (VVSG 2.0 10.2.4-B; the auth service's wall): no event of
# the catalogue may declare one, whatever its service.
FORBIDDEN_FIELDS = frozenset({
    "contests", "contest", "list", "lists", "candidates", "candidate", "outcome", "cvr", "selection",
    "style", "ballot", "ballot_id", "slot", "verdict",
    "jmbg", "name", "voter", "register_number", "document_number", "template", "finger",
})


@dataclass(frozen=True)
class EventType:
    id: str
    category: Category
    services: frozenset[Service]
    summary: str  # what happened, for the person reading the log (English; the log is technical)
    fields: frozenset[str] = frozenset()


def _e(id: str, category: Category, services: frozenset[Service], summary: str, *fields: str) -> EventType:
    return EventType(id, category, services, summary, frozenset(fields))


_C = Category
EVENTS: dict[str, EventType] = {e.id: e for e in (
    # -- the log itself (every service) ------------------------------------------------------------
    _e("log.opened", _C.SECURITY, ALL, "a new log: its service, device and key",
       "service", "device_id", "key_fingerprint", "log_id", "format"),
    _e("log.resumed", _C.POWER, ALL, "the service started again on an existing log (a reboot or power cut); "
       "a torn last line left by the cut is named", "torn_line", "torn_bytes", "torn_sha256"),
    _e("log.head_signed", _C.SECURITY, ALL, "the chain's head signed with the device key",
       "head", "head_seq", "signature", "key_fingerprint"),
    _e("log.closed", _C.SECURITY, ALL, "the log closed at the end of the day; nothing follows but its signed head"),
    _e("log.uncatalogued", _C.ERROR, ALL, "a service asked to log a kind the catalogue does not have, or a "
       "detail it does not declare (the detail is dropped)", "kind", "reason"),
    # -- power and status ------------------------------------------------------------------------------
    _e("power.recovered", _C.POWER, SCANNER | AUTH, "after a power cut, what the box decided for an open "
       "intent and the polls (the desk: whether it serves again; never who was at it)", "decisions"),
    _e("device.self_test", _C.STATUS, ALL, "the devices' self-test (Art. 11, 20)", "ok", "failed"),
    _e("device.clock_checked", _C.STATUS, ALL, "the clock's sanity check", "ok", "offset_s"),
    _e("device.network_checked", _C.STATUS, SCANNER, "network reachability (reported, never blocking)", "ok"),
    # -- polls -----------------------------------------------------------------------------------------
    _e("polls.configured", _C.POLLS, SCANNER, "election package loaded and self-test passed", "state"),
    _e("polls.zero_report", _C.POLLS, SCANNER, "zero report printed (Art. 20(4))", "state"),
    _e("polls.opened", _C.POLLS, SCANNER | AUTH, "polls opened", "state"),
    _e("polls.paused", _C.POLLS, SCANNER, "voting paused", "state"),
    _e("polls.resumed", _C.POLLS, SCANNER, "voting resumed", "state"),
    _e("polls.closed", _C.POLLS, SCANNER | AUTH, "polls closed", "state"),
    _e("polls.results_report", _C.POLLS, SCANNER, "results report printed again", "state"),
    _e("polls.transmitted", _C.POLLS, SCANNER, "results acknowledged by the CEC", "state"),
    _e("polls.turnout", _C.STATUS, SCANNER, "turnout at a reporting hour (Art. 15), signed into the outbox",
       "hour", "ballots_cast"),
    # -- scanner's devices -----------------------------------------------------------------------------
    _e("feeder.fault", _C.DEVICE_FAULT, SCANNER, "the paper path stopped: jam, double sheet, cover open, box "
       "full (the fault and the feeder's state, nothing of the ballot)", "fault", "state"),
    _e("camera.capture_failed", _C.DEVICE_FAULT, SCANNER, "the ballot camera gave no image; the sheet went back"),
    _e("ballot.foreign_sheet", _C.ERROR, SCANNER, "a sheet that is not this station's ballot: voting paused for "
       "the committee (Art. 21(10)); the reasons are the ballot code's, never a mark", "reasons"),
    _e("ballot.cycle_failed", _C.ERROR, SCANNER, "a step of the feeder cycle failed; the operator is called",
       "step"),
    _e("printer.failed", _C.DEVICE_FAULT, SCANNER, "a report could not be printed", "report", "reason"),
    # -- tamper (issue 12, item 6) ---------------------------------------------------------------------
    _e("tamper.switch_changed", _C.TAMPER, SCANNER, "the lid or the seal switch changed while the polls were "
       "open or paused (an opening alarms and pauses voting)", "switch", "state"),
    _e("tamper.switch_fault", _C.TAMPER, SCANNER, "a lid or seal contact chattered: reported, not guessed", "error"),
    _e("tamper.alarm_acknowledged", _C.TAMPER, SCANNER, "the committee acknowledged a tamper alarm", "role"),
    _e("tamper.installed_files_mismatch", _C.TAMPER, SCANNER, "at the self-test or the opening the installed "
       "files differ from the signed manifest: opening refused", "files", "reason"),
    # -- people (issue 12, item 8) ---------------------------------------------------------------------
    _e("user.pin_accepted", _C.USER_ACTION, SCANNER | AUTH, "a role's PIN or card accepted", "role", "action"),
    _e("user.pin_refused", _C.USER_ACTION, SCANNER | AUTH, "an action refused: no credential, a wrong PIN, the "
       "wrong role or a locked role (never the PIN itself)", "role", "action", "wrong_secret", "failures",
       "locked"),
    _e("user.locked_out", _C.USER_ACTION, SCANNER | AUTH, "too many wrong PINs: the role is locked", "role",
       "until", "lockouts"),
    _e("user.unlocked", _C.USER_ACTION, SCANNER | AUTH, "a locked role unlocked", "role", "by"),
    _e("user.action", _C.USER_ACTION, ALL, "an operator, president or technician action", "role", "action"),
    _e("control.request", _C.USER_ACTION, SCANNER, "a committee request on the running service's control "
       "socket: the action, its outcome and the caller's process (SO_PEERCRED), never the PIN", "action",
       "result", "pid", "uid", "gid"),
    # -- software, package, keys (issue 12, items 1-3) ---------------------------------------------------
    _e("package.installed", _C.SECURITY, SCANNER, "the CEC's signed election package installed",
       "package_hash", "election_id", "station"),
    _e("package.refused", _C.SECURITY, SCANNER, "an election package refused (signature, station, schema)",
       "package_hash", "reason"),
    _e("software.installed", _C.SECURITY, SCANNER, "a signed release installed into a slot",
       "version", "software_hash", "release_slot"),
    _e("software.rolled_back", _C.SECURITY, SCANNER, "a release failed its health check and was rolled back",
       "version", "release_slot", "reason"),
    _e("device.provisioned", _C.SECURITY, SCANNER, "the device key made", "key_fingerprint"),
    # -- data ------------------------------------------------------------------------------------------
    _e("results.signed", _C.DATA, SCANNER, "the results and cast-vote-record documents signed into the outbox",
       "election_report_sha256", "cvr_report_sha256"),
    _e("export.written", _C.DATA, SCANNER, "the export for the USB drive written (its signed index)",
       "index_sha256", "files"),
    # -- auth service ----------------------------------------------------------------------------------
    _e("register.opened", _C.DATA, AUTH, "the register extract decrypted into memory (polls open)", "records"),
    _e("register.wipe_started", _C.DATA, AUTH, "the wipe of the register extract begins: what it will destroy "
       "and the role whose PIN allowed it (a wipe a power cut interrupts is finished at the next boot)",
       "records", "templates", "register_sha256", "role"),
    _e("register.wiped", _C.DATA, AUTH, "the register extract and its key overwritten and deleted, the reader's "
       "template flash emptied (Art. 34), with the role whose PIN allowed it", "records", "templates",
       "sensor_templates_before", "sensor_templates_after", "key_destroyed", "register_sha256", "role"),
    _e("reader.fault", _C.DEVICE_FAULT, AUTH, "the document reader failed", "problem"),
    _e("sensor.fault", _C.DEVICE_FAULT, AUTH, "the fingerprint sensor failed", "problem"),
    # -- video service (issue 11) ----------------------------------------------------------------------
    # the recorder's events (video/recorder.py, firmware/video/service.py): a day's, never a ballot's
    _e("video.storage_checked", _C.STATUS, VIDEO, "free space against the whole day at the configured bitrate, "
       "before opening (ok / warn / refuse)", "decision", "free", "needed", "message"),
    _e("video.cut_segment_adopted", _C.POWER, VIDEO, "after a power cut, the segment cut off was hashed into "
       "the manifest as far as it plays", "segment", "frames", "end"),
    _e("video.recovered", _C.POWER, VIDEO, "the recorder started again after a power cut: the time off is a gap",
       "cause", "gap_from", "gap_to"),
    _e("video.frame_stall", _C.DEVICE_FAULT, VIDEO, "frames stopped coming (the encoder's or the camera's "
       "stall): a gap", "seconds"),
    _e("video.camera_disconnected", _C.DEVICE_FAULT, VIDEO, "the room camera was lost: a gap until it is back",
       "detail"),
    _e("video.camera_reconnected", _C.DEVICE_FAULT, VIDEO, "the room camera answered again"),
    _e("video.clock_backwards", _C.DEVICE_FAULT, VIDEO, "the clock was behind what is already recorded (no RTC, a "
       "bad NTP step): station times moved on by the difference, so the manifest stays in time order",
       "clock", "recorded_until", "offset_s"),
    _e("video.storage_degraded", _C.DEVICE_FAULT, VIDEO, "storage running low: frame rate or bitrate lowered "
       "one rung", "rung", "free"),
    _e("video.storage_alarm", _C.DEVICE_FAULT, VIDEO, "storage will not last the day even at the lowest rung: "
       "the committee is alarmed", "free"),
    _e("video.stopped", _C.DEVICE_FAULT, VIDEO, "the recording stopped before the close, with its cause",
       "cause", "detail"),
    _e("video.closed", _C.SECURITY, VIDEO, "at the close: the manifest closed and signed; its hash goes on "
       "the results report", "manifest_sha256"),
)}


def event_type(event_id: str) -> EventType:
    """The catalogue's entry for `event_id`; KeyError naming the catalogue if there is none."""
    try:
        return EVENTS[event_id]
    except KeyError:
        raise KeyError(f"event id {event_id!r} is not in the catalogue (firmware/common/events.py): add it there "
                       "with its VVSG 15.1 category, services and fields") from None


# The kinds the scanner store has always written (firmware/scanner/store.py log_event) and their ids.
SCANNER_KINDS: dict[str, str] = {
    "self_test": "device.self_test",
    "polls_configured": "polls.configured",
    "polls_zero_report": "polls.zero_report",
    "polls_open": "polls.opened",
    "polls_pause": "polls.paused",
    "polls_resume": "polls.resumed",
    "polls_close": "polls.closed",
    "polls_results_report": "polls.results_report",
    "polls_transmitted": "polls.transmitted",
    "turnout": "polls.turnout",
    "feeder_fault": "feeder.fault",
    "capture_failed": "camera.capture_failed",
    "foreign_ballot": "ballot.foreign_sheet",
    "ballot_cycle_failed": "ballot.cycle_failed",
    "power_cut_recovery": "power.recovered",
    "tamper": "tamper.switch_changed",
    "tamper_switch_fault": "tamper.switch_fault",
    "access_refused": "user.pin_refused",
    "access_granted": "user.pin_accepted",
    "access_locked": "user.locked_out",
}

# The video recorder's kinds (its log's "e") and their ids.
VIDEO_KINDS: dict[str, str] = {kind: f"video.{kind}" for kind in (
    "cut_segment_adopted", "recovered", "frame_stall", "camera_disconnected", "camera_reconnected",
    "clock_backwards", "storage_degraded", "storage_alarm", "stopped", "closed")} | {"storage_check": "video.storage_checked"}

# The auth store's kinds (firmware/auth/store.py log_event) and their ids.
AUTH_KINDS: dict[str, str] = {
    "polls.opened": "polls.opened",
    "polls.closed": "polls.closed",
    "register.opened": "register.opened",
    "register.wiped": "register.wiped",
    "register.wipe_started": "register.wipe_started",
    "power_cut_recovery": "power.recovered",
    "access_refused": "user.pin_refused",
    "access_granted": "user.pin_accepted",
    "access_locked": "user.locked_out",
}
