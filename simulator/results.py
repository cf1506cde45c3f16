"""DIR/results.json of a simulated day: the box's results, signed by the device key, beside the
simulator's ground truth and the verdict of the comparison."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import TYPE_CHECKING

from config.election import Election
from firmware.common.identity import software_hash, software_version

if TYPE_CHECKING:
    from simulator.day import DayResult


def write_results(path: Path, election: Election, result: "DayResult") -> dict:
    svc = result.service
    counts = result.counts
    results = {
        "election": election.id,
        "station": election.station.code,
        "device_id": svc.identity.device_id,
        "software_version": software_version(),
        "software_hash": software_hash(),
        "package_hash": election.digest(),
        "opened_at": svc.opened_at.isoformat() if svc.opened_at else None,
        "closed_at": svc.closed_at.isoformat() if svc.closed_at else None,
        "ballots_cast": dict(counts.cast),
        "ballots_returned": dict(counts.returned),
        "contests": result.box_tallies,
    }
    canonical = json.dumps(results, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()
    doc = {
        "results": results,
        "signature": {"alg": "Ed25519", "key_fingerprint": svc.identity.fingerprint,
                      "public_key": svc.identity.public_key_raw.hex(),
                      "value": base64.b64encode(svc.identity.sign(canonical)).decode(),
                      "signed": "canonical JSON (sorted keys, no spaces, UTF-8) of 'results'"},
        "simulation": {"ground_truth": result.truth_tallies, "agree": result.agree,
                       "differences": result.differences, "stats": result.stats},
    }
    path.write_text(json.dumps(doc, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return doc
