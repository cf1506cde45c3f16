"""The scanner's signed documents for the CEC (Art. 15, 23): polls opened, turnout at the election's
hours, polls closed, and at closing the results. Each is built here from aggregates only (ballots per
style, times of polls events: never a ballot, never its order) and signed with the device key; the
service writes it to the outbox in the transaction of the event it reports.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from firmware.common.identity import software_hash
from firmware.common.transmission.documents import (
    POLLS_CLOSED,
    POLLS_OPENED,
    TURNOUT,
    SignedDocument,
    sign_document,
)

if TYPE_CHECKING:
    from firmware.scanner.service import ScannerService
    from firmware.scanner.store import BallotCounts

FORMAT = "ballotbox-polls/1"  # the shape of the own (non-NIST) documents


def polls_opened(svc: ScannerService, at: datetime) -> SignedDocument:
    counts = svc.store.counts()
    return _sign(svc, POLLS_OPENED, {"at": at.isoformat(), "ballots_cast": dict(counts.cast),
                                     "software_hash": software_hash(), "package_hash": svc.election.digest()})


def turnout(svc: ScannerService, hour: str, at: datetime, counts: BallotCounts) -> SignedDocument:
    """Turnout at `hour` as the box sees it: ballots cast per style (the voters themselves are counted at
    the register, behind the secrecy wall, not here). `at` is when it was taken (later than the hour only
    after a power cut)."""
    return _sign(svc, TURNOUT, {"hour": hour, "at": at.isoformat(), "ballots_cast": dict(counts.cast),
                                "ballots_returned": dict(counts.returned),
                                "voters_registered": svc.election.station.registered_voters})


def at_closing(svc: ScannerService, at: datetime) -> list[SignedDocument]:
    """What the closing transaction puts in the outbox: the results (NIST SP 1500-100 ElectionReport),
    the cast-vote records (SP 1500-103, shuffled, random ids, Merkle root) and the polls-closed document.
    Built once, here: after a power cut they are read back from the outbox, never built again (a new
    shuffle would not be what was signed)."""
    from firmware.common.identity import software_version
    from firmware.scanner.cdf.export import build_cdf_exports
    from firmware.scanner.tally import tally

    counts = svc.store.counts()
    opened = svc.store.polls_record().opened_at
    records = svc.store.cast_vote_records()
    exports = build_cdf_exports(svc.election, tally(svc.election, records), counts, records, identity=svc.identity,
                                generated=at, software_version=software_version(), software_hash=software_hash(),
                                is_test=True if svc.test_type else None, test_type=svc.test_type)
    return [exports.election_report, exports.cvr_report, _sign(svc, POLLS_CLOSED, {"opened_at": opened.isoformat() if opened else None, "closed_at": at.isoformat(),
                                      "ballots_cast": dict(counts.cast), "ballots_returned": dict(counts.returned),
                                      "voters_registered": svc.election.station.registered_voters})]


def _sign(svc: ScannerService, kind: str, fields: dict[str, Any]) -> SignedDocument:
    document = {"format": FORMAT, "kind": kind, "election": svc.election.id, "station": svc.election.station.code,
                "device": svc.identity.device_id, **fields}
    return sign_document(kind, document, device_id=svc.identity.device_id, key=svc.identity.key)
