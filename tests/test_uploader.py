"""The uploader against the real receiver over loopback (HTTP and pinned HTTPS), through the fault
proxy, with a fake clock: acknowledged in order, 5xx and timeouts retried, 4xx given up, offline for
hours then caught up, a restart carries on from the outbox alone; the committee's status; the
`outbox send` exit codes."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from transmission_support import ReceiverThread, free_port, provision, self_signed

import firmware.scanner.store as scanner_store
from ballotbox.cli import main
from ballotbox.transmission_cli import send_outbox
from firmware.cec.receiver.app import ReceiverConfig
from firmware.cec.receiver.store import list_documents
from firmware.common.i18n import Messages
from firmware.common.transmission.documents import SignedDocument
from firmware.common.transmission.memory_outbox import MemoryOutbox
from firmware.common.transmission.receipts import load_public_key_pem
from firmware.common.transmission.uploader import (
    EndpointError,
    RetryPolicy,
    Uploader,
    committee_status,
    parse_endpoint,
    parse_pin,
)
from firmware.trust.signing import TEST_RECEIVER_PUBLIC_KEY
from hal.clock import SARAJEVO
from simulator.fault_proxy import ProxyThread

BS = Messages.for_language("bs")
EN = Messages.for_language("en")
EVENING = datetime(2026, 10, 4, 19, 5, tzinfo=SARAJEVO)
FAST = RetryPolicy(base_s=2.0, cap_s=300.0, timeout_s=5.0)


class FakeClock:
    """Station time that moves only when the uploader sleeps."""

    def __init__(self, start: datetime = EVENING) -> None:
        self.t = start
        self.sleeps: list[float] = []
        self.on_sleep: list = []

    def now(self) -> datetime:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += timedelta(seconds=seconds)
        for hook in self.on_sleep:
            hook(len(self.sleeps))


def _outbox(docs: list[SignedDocument]) -> MemoryOutbox:
    at = datetime(2026, 10, 4, 7, 0, tzinfo=SARAJEVO)
    hours = [7, 11, 15, 19, 19, 19]
    return MemoryOutbox((doc, at.replace(hour=h)) for doc, h in zip(docs, hours[:len(docs)], strict=True))


def _uploader(outbox: MemoryOutbox, url: str, clock: FakeClock, pin: str | None = None,
              policy: RetryPolicy = FAST, messages: Messages = BS, receipt_key: Path = TEST_RECEIVER_PUBLIC_KEY,
              ) -> Uploader:
    key = load_public_key_pem(receipt_key.read_bytes(), str(receipt_key))
    return Uploader(outbox, parse_endpoint(url, pin), messages, receipt_key=key, policy=policy, now=clock.now,
                    sleep=clock.sleep, rng=random.Random(3))


def _config(tmp_path: Path) -> ReceiverConfig:
    return ReceiverConfig(tmp_path / "store", tmp_path / "devices")


# -- endpoints and pins ----------------------------------------------------------------------------
def test_https_needs_a_pin_and_plain_http_only_loopback() -> None:
    with pytest.raises(EndpointError, match="needs the CEC's certificate pin"):
        parse_endpoint("https://rezultati.izbori.ba")
    with pytest.raises(EndpointError, match="only on loopback"):
        parse_endpoint("http://10.1.2.3:8000")
    with pytest.raises(EndpointError, match="only on loopback"):
        parse_endpoint("http://rezultati.izbori.ba")
    with pytest.raises(EndpointError, match="give an https:// URL"):
        parse_endpoint("ftp://127.0.0.1")
    for url in ("http://127.0.0.1:8000/", "http://127.8.9.10", "http://[::1]:9000", "http://localhost:1"):
        assert parse_endpoint(url).pin is None
    endpoint = parse_endpoint("https://rezultati.izbori.ba/cik/", "ab" * 32)
    assert endpoint.documents_url == "https://rezultati.izbori.ba/cik/v1/documents"


def test_pins_in_hex_with_colons_or_base64_and_a_wrong_length_is_refused() -> None:
    raw = bytes(range(32))
    assert parse_pin(raw.hex()) == raw
    assert parse_pin(":".join(f"{b:02X}" for b in raw)) == raw
    assert parse_pin("sha256/AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=") == raw
    with pytest.raises(EndpointError, match="not a SHA-256"):
        parse_pin("abcd")


def test_backoff_is_full_jitter_doubling_up_to_the_cap() -> None:
    policy, rng = RetryPolicy(base_s=2.0, cap_s=300.0), random.Random(1)
    assert policy.delay(0, rng) == 0.0
    for failures, bound in ((1, 2.0), (2, 4.0), (5, 32.0), (9, 300.0), (40, 300.0)):
        delays = [policy.delay(failures, rng) for _ in range(400)]
        assert 0.0 <= min(delays) < bound * 0.05 and bound * 0.95 < max(delays) <= bound


# -- against the real receiver -------------------------------------------------------------------
def test_every_document_is_acknowledged_in_order_and_the_status_says_so(tmp_path: Path) -> None:
    docs = provision(tmp_path / "devices")
    outbox, clock = _outbox(docs), FakeClock()
    with ReceiverThread(_config(tmp_path)) as url, _uploader(outbox, url, clock) as uploader:
        result = uploader.run()
    assert (result.acknowledged, result.refused, result.waiting, result.attempts) == (6, 0, 0, 6)
    assert clock.sleeps == []
    rows = list_documents(tmp_path / "store", None)
    assert [r["hash"] for r in sorted(rows, key=lambda r: r["received_at"])] == [d.hash for d in docs]
    entries = outbox.entries()
    assert all(e.receipt is not None and e.receipt["hash"] == e.document.hash for e in entries)
    lines = committee_status(entries, BS)
    local = datetime.fromisoformat(entries[5].receipt["received_at"]).astimezone(SARAJEVO).strftime("%H:%M")
    assert lines[5] == f"rezultati: poslano {local}, potvrda {entries[5].receipt['receipt_id'][:8].upper()}…"
    assert lines[1].startswith("izlaznost 11:00: poslano ")
    assert lines[-1] == "Poslano CIK-u: 6 od 6"


def test_server_errors_are_retried_with_backoff_and_stored_once(tmp_path: Path) -> None:
    docs = provision(tmp_path / "devices")
    outbox, clock = _outbox(docs[:2]), FakeClock()
    faults = iter(["server_error", "server_error", "drop", "drop_answer"])
    with ReceiverThread(_config(tmp_path)) as url:  # noqa: SIM117 (the proxy needs the running receiver's port)
        with ProxyThread(int(url.rsplit(":", 1)[1]), lambda: next(faults, None)) as proxy_port, \
                _uploader(outbox, f"http://127.0.0.1:{proxy_port}", clock) as uploader:
            result = uploader.run()
    assert (result.acknowledged, result.waiting, result.attempts) == (2, 0, 6)
    assert len(clock.sleeps) == 4 and all(0 <= s <= 2.0 * 2 ** i for i, s in enumerate(clock.sleeps))
    assert [e.attempts for e in outbox.entries()] == [5, 1]
    rows = list_documents(tmp_path / "store", None)
    assert sorted(r["deliveries"] for r in rows) == [1, 2]  # the answer lost after storing: delivered twice


def test_a_pass_stops_at_the_first_failure_so_documents_arrive_in_order(tmp_path: Path) -> None:
    docs = provision(tmp_path / "devices")
    outbox, clock = _outbox(docs), FakeClock()
    faults = iter([None, "server_error"])
    with ReceiverThread(_config(tmp_path)) as url:  # noqa: SIM117
        with ProxyThread(int(url.rsplit(":", 1)[1]), lambda: next(faults, None)) as proxy_port, \
                _uploader(outbox, f"http://127.0.0.1:{proxy_port}", clock, messages=EN) as uploader:
            first_pass = uploader.send_pending()
            assert len(first_pass.acknowledged) == 1 and first_pass.failed is not None
            assert len(list_documents(tmp_path / "store", None)) == 1
            status = committee_status(outbox.entries(), EN)
            assert status[1] == "turnout 11:00: waiting for the network (1 attempts, last 19:05: the CEC's server " \
                                "answered 503)"
            assert status[2] == "turnout 15:00: waiting to be sent"
            assert uploader.run().waiting == 0


def test_a_timeout_is_retried_and_the_late_delivery_is_not_stored_twice(tmp_path: Path) -> None:
    docs = provision(tmp_path / "devices")
    outbox, clock = _outbox(docs[:1]), FakeClock()
    faults = iter(["timeout"])
    with ReceiverThread(_config(tmp_path)) as url:  # noqa: SIM117
        with ProxyThread(int(url.rsplit(":", 1)[1]), lambda: next(faults, None), hold_s=0.6) as proxy_port, \
                _uploader(outbox, f"http://127.0.0.1:{proxy_port}", clock,
                          policy=RetryPolicy(timeout_s=0.3), messages=EN) as uploader:
            assert uploader.send_pending().failed.fault == "timeout"
            assert outbox.entries()[0].last_error == "the CEC did not answer within 0.3 s"
            assert uploader.run().waiting == 0
    # the retry stored it; the held original reached the receiver afterwards and got the same receipt
    assert [r["deliveries"] for r in list_documents(tmp_path / "store", None)] == [2]


def test_a_refused_document_is_given_up_with_the_receivers_words_and_the_rest_still_go(tmp_path: Path) -> None:
    docs = provision(tmp_path / "devices")
    stranger = provision(tmp_path / "unprovisioned", station="001A001", device="box-2")
    outbox, clock = _outbox([docs[0], stranger[1], *docs[2:]]), FakeClock()
    with ReceiverThread(_config(tmp_path)) as url, _uploader(outbox, url, clock) as uploader:
        result = uploader.run()
    assert (result.acknowledged, result.refused, result.waiting) == (5, 1, 0)
    refused = outbox.entries()[1]
    assert refused.given_up and refused.receipt is None and refused.attempts == 1
    assert refused.last_error.startswith("odgovor 403: device key ")
    line = committee_status(outbox.entries(), BS)[1]
    assert line.startswith("izlaznost 11:00: CIK je ODBIO dokument (odgovor 403: device key")


def test_offline_for_hours_then_the_receiver_comes_up_and_everything_is_caught_up(tmp_path: Path) -> None:
    docs = provision(tmp_path / "devices")
    outbox, clock = _outbox(docs), FakeClock()
    receiver = ReceiverThread(_config(tmp_path))
    clock.on_sleep.append(lambda n: receiver.start() if n == 40 else None)
    try:
        with _uploader(outbox, receiver.url, clock) as uploader:
            result = uploader.run()
    finally:
        receiver.stop()
    assert result.waiting == 0 and result.acknowledged == 6 and len(clock.sleeps) == 40
    assert max(clock.sleeps) <= 300.0
    assert timedelta(hours=1) < clock.t - EVENING < timedelta(hours=3)  # a long evening, still trying
    assert [e.attempts for e in outbox.entries()] == [41, 1, 1, 1, 1, 1]


def test_after_a_restart_a_new_uploader_carries_on_from_the_outbox_alone(tmp_path: Path) -> None:
    docs = provision(tmp_path / "devices")
    outbox, clock = _outbox(docs), FakeClock()
    port = free_port()
    with _uploader(outbox, f"http://127.0.0.1:{port}", clock) as uploader:
        stopped = uploader.run(give_up_after=600)
    assert stopped.stopped and stopped.waiting == 6 and outbox.entries()[0].attempts == len(clock.sleeps) + 1
    assert "nema veze s CIK-om" in outbox.entries()[0].last_error
    with ReceiverThread(_config(tmp_path), port=port), _uploader(outbox, f"http://127.0.0.1:{port}",
                                                                 FakeClock()) as again:
        assert again.run().waiting == 0
    assert len(list_documents(tmp_path / "store", None)) == 6


def test_https_with_the_pinned_certificate_is_sent_and_a_wrong_pin_sends_nothing(tmp_path: Path) -> None:
    docs = provision(tmp_path / "devices")
    cert, key, spki_pin = self_signed(tmp_path / "tls")
    wrong = "00" * 32
    with ReceiverThread(_config(tmp_path), tls=(cert, key)) as url:
        refused_box = _outbox(docs)
        with _uploader(refused_box, url, FakeClock(), pin=wrong, messages=EN) as uploader:
            attempt = uploader.send_pending().failed
        assert attempt is not None and attempt.fault == "pin"
        assert refused_box.entries()[0].last_error.startswith("the server's certificate is not the CEC's")
        assert list_documents(tmp_path / "store", None) == []  # the pin is checked before the body is sent
        outbox = _outbox(docs)
        with _uploader(outbox, url, FakeClock(), pin=spki_pin) as uploader:
            assert uploader.run().acknowledged == 6
    assert len(list_documents(tmp_path / "store", None)) == 6


# -- ballotbox outbox send ---------------------------------------------------------------------------
def test_outbox_send_exits_0_once_all_are_acknowledged_and_1_when_it_gives_up(tmp_path: Path) -> None:
    docs = provision(tmp_path / "devices")
    lines: list[str] = []
    clock = FakeClock()
    dead = parse_endpoint(f"http://127.0.0.1:{free_port()}")
    options = {"now": clock.now, "sleep": clock.sleep, "rng": random.Random(1), "policy": FAST,
               "receipt_key": load_public_key_pem(TEST_RECEIVER_PUBLIC_KEY.read_bytes(), "test key")}
    outbox = _outbox(docs)
    assert send_outbox(outbox, dead, BS, give_up_after=900, print_line=lines.append, **options) == 1
    assert lines[-2] == "Poslano CIK-u: 0 od 6" and lines[0].startswith("otvaranje biračkog mjesta: čeka mrežu (")
    refused_box = _outbox([*docs[:5], provision(tmp_path / "other", device="box-9")[5]])
    with ReceiverThread(_config(tmp_path)) as url:
        assert send_outbox(outbox, parse_endpoint(url), BS, give_up_after=None, print_line=lines.append,
                           **options) == 0
        assert send_outbox(refused_box, parse_endpoint(url), BS, give_up_after=None, print_line=lines.append,
                           **options) == 1


def test_outbox_send_command_opens_the_state_dirs_outbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    docs = provision(tmp_path / "devices")
    outbox = _outbox(docs)
    (tmp_path / "state" / "device").mkdir(parents=True)
    opened: list[Path] = []
    monkeypatch.setattr(scanner_store, "open_outbox", lambda d: opened.append(d) or outbox, raising=False)
    with ReceiverThread(_config(tmp_path)) as url:
        assert main(["outbox", "send", "--state-dir", str(tmp_path / "state"), "--endpoint", url,
                     "--receipt-key", str(TEST_RECEIVER_PUBLIC_KEY)]) == 0
    assert opened == [tmp_path / "state"]
    assert main(["outbox", "status", "--state-dir", str(tmp_path / "state"), "--language", "en"]) == 0
    out = capsys.readouterr().out
    assert "results: sent " in out and out.rstrip().endswith("Sent to the CEC: 6 of 6")


def test_outbox_send_refuses_bad_input_with_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "device").mkdir()
    assert main(["outbox", "send", "--state-dir", str(tmp_path), "--endpoint", "http://10.0.0.1"]) == 2
    assert "only on loopback" in capsys.readouterr().err
    assert main(["outbox", "send", "--state-dir", str(tmp_path), "--endpoint", "https://cik.ba"]) == 2
    assert "--pin" in capsys.readouterr().err
    assert main(["outbox", "send", "--state-dir", str(tmp_path / "nowhere"), "--endpoint", "http://127.0.0.1"]) == 2
    assert "no device/ folder" in capsys.readouterr().err


def test_a_receipt_not_signed_by_the_packages_receiver_key_is_no_acknowledgement(tmp_path: Path) -> None:
    """A receiver (or anyone on the path) answering 201 with the right hash but another key: retried, the
    reason noted in the outbox; the real receiver's signed receipt then acknowledges it."""
    docs = provision(tmp_path / "devices")
    outbox, clock = _outbox(docs[:1]), FakeClock()
    with ReceiverThread(ReceiverConfig(tmp_path / "impostor", tmp_path / "devices"), receipt_key=None) as url, \
            _uploader(outbox, url, clock, messages=EN) as uploader:
        result = uploader.send_pending()
    assert result.acknowledged == [] and result.failed is not None and result.failed.fault == "receipt"
    entry = outbox.entries()[0]
    assert not entry.acknowledged and not entry.given_up and entry.attempts == 1
    assert "not by the CEC receiver's key of the election package" in (entry.last_error or "")
    with ReceiverThread(_config(tmp_path)) as url, _uploader(outbox, url, clock) as uploader:
        assert uploader.run(give_up_after=60).complete
    assert outbox.entries()[0].acknowledged
