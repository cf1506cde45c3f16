"""Bad input at every door (issue 12, item 9): every `ballotbox` command, tried as a new user would.

Each row runs the command in-process (`ballotbox.cli.main`) with a bad argument or file and asserts the
contract of the README: exit 2, one line on stderr that names the argument or file (and, where it helps,
the value), no traceback, and nothing written. A batch (`omr interpret`) goes on past a bad image and
exits 1 at the end.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest

from ballotbox.cli import main
from config.election import SAMPLE_ELECTION

SAMPLE = json.loads(SAMPLE_ELECTION.read_text(encoding="utf-8"))


def _election(change: Any) -> dict[str, Any]:
    data = json.loads(json.dumps(SAMPLE))
    change(data)
    return data


def _set(path: str, value: Any) -> Any:
    """A change of the sample election: the field at dotted `path` (list indexes as numbers) set to `value`."""
    def change(data: dict[str, Any]) -> None:
        *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
        node: Any = data
        for p in parents:
            node = node[p]
        node[last] = value
    return change


# Election definitions a CEC tool or a hand edit might get wrong: each must be refused, naming the field.
BAD_ELECTIONS: dict[str, tuple[Any, str]] = {
    "max_preferences_as_string": (_set("contests.1.max_preferences", "3"), "max_preferences: '3'"),
    "definite_as_string": (_set("omr.definite", "0.08"), "omr.definite: '0.08'"),
    "vote_for_as_true": (_set("contests.0.vote_for", True), "vote_for: True"),
    "vote_for_as_float": (_set("contests.0.vote_for", 1.5), "vote_for: 1.5"),
    "registered_voters_negative": (_set("station.registered_voters", -5), "station.registered_voters: -5"),
    "registered_voters_as_string": (_set("station.registered_voters", "800"), "station.registered_voters: '800'"),
    "station_code_as_number": (_set("station.code", 89012), "station.code: 89012"),
    "candidate_number_as_string": (_set("contests.0.candidates.0.number", "1"), "number: '1'"),
    "contests_as_object": (_set("contests", {}), "contests"),
    "polls_opening_as_number": (_set("polls.opening", 7), "polls.opening: 7"),
    "paper_width_as_string": (_set("ballot_styles.0.paper.width_mm", "210"), "width_mm: '210'"),
    "mode_unknown": (_set("mode", "practice"), "mode: 'practice'"),
    "language_unknown": (_set("station.language", "de"), "station.language: 'de'"),
    "top_level_list": (lambda data: None, "(top level)"),  # replaced by a list below
}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bad-input")
    f: dict[str, Path] = {"root": root}
    f["empty"] = root / "empty.json"
    f["empty"].write_bytes(b"")
    f["garbage"] = root / "garbage.bin"
    f["garbage"].write_bytes(bytes(range(256)) * 8)
    f["text"] = root / "notes.txt"
    f["text"].write_text("not what you think\n", encoding="utf-8")
    f["dir"] = root / "a-folder"
    f["dir"].mkdir()
    f["missing"] = root / "no-such-file.json"
    f["under_file"] = f["text"] / "inside.png"  # a path whose "folder" is a file
    f["json_list"] = root / "list.json"
    f["json_list"].write_text("[1, 2, 3]\n", encoding="utf-8")
    f["bomb"] = root / "bomb.png"
    f["bomb"].write_bytes(_png_header(20000, 20000))
    f["tiny"] = root / "tiny.png"
    f["tiny"].write_bytes(_png_header(1, 1, complete=True))
    for name, (change, _) in BAD_ELECTIONS.items():
        data: Any = [SAMPLE] if name == "top_level_list" else _election(change)
        (root / f"election-{name}.json").write_text(json.dumps(data), encoding="utf-8")
    return f


def _png_header(width: int, height: int, complete: bool = False) -> bytes:
    """A PNG that claims width x height (only the header, unless `complete`: a real 1x1 grey image)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    head = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
    if not complete:
        return head + chunk(b"IDAT", zlib.compress(b"\x00\xff"))
    return head + chunk(b"IDAT", zlib.compress(b"\x00\x80")) + chunk(b"IEND", b"")


E = str(SAMPLE_ELECTION)
# (id, argv with {placeholders} from `files`, the words the one stderr line must hold)
CASES: list[tuple[str, list[str], str]] = [
    # -- argparse itself: one line, not a usage block
    ("no_command", [], "give a command"),
    ("unknown_command", ["frobnicate"], "frobnicate"),
    ("simulate_voters_not_a_number", ["simulate", "--voters", "many", "--out", "{root}/d1"], "--voters"),
    # -- simulate
    ("simulate_voters_0", ["simulate", "--voters", "0", "--out", "{root}/d2", "--quiet"], "--voters 0"),
    ("simulate_voters_negative", ["simulate", "--voters", "-3", "--out", "{root}/d3", "--quiet"], "--voters -3"),
    ("simulate_voters_too_many", ["simulate", "--voters", "6000", "--out", "{root}/d4", "--quiet"], "--voters 6000"),
    ("simulate_out_is_a_file", ["simulate", "--voters", "5", "--out", "{text}", "--quiet"], "--out"),
    ("simulate_out_under_a_file", ["simulate", "--voters", "5", "--out", "{under_file}", "--quiet"], "--out"),
    ("simulate_state_dir_is_a_file", ["simulate", "--voters", "5", "--out", "{root}/d5", "--state-dir", "{text}",
                                      "--quiet"], "--state-dir"),
    ("simulate_election_missing", ["simulate", "--voters", "5", "--out", "{root}/d6", "--election", "{missing}",
                                   "--quiet"], "no-such-file.json"),
    ("simulate_election_garbage", ["simulate", "--voters", "5", "--out", "{root}/d7", "--election", "{garbage}",
                                   "--quiet"], "garbage.bin"),
    ("simulate_election_empty", ["simulate", "--voters", "5", "--out", "{root}/d8", "--election", "{empty}",
                                 "--quiet"], "empty.json"),
    ("simulate_election_folder", ["simulate", "--voters", "5", "--out", "{root}/d9", "--election", "{dir}",
                                  "--quiet"], "a-folder"),
    ("simulate_desk_negative", ["simulate", "--voters", "10", "--desk-voters", "-1", "--out", "{root}/d10",
                                "--quiet"], "--desk-voters -1"),
    ("simulate_endpoint_ftp", ["simulate", "--voters", "5", "--out", "{root}/d11", "--endpoint", "ftp://x",
                               "--quiet"], "--endpoint"),
    ("simulate_open_lid_not_a_time", ["simulate", "--voters", "5", "--out", "{root}/d13", "--open-lid", "0a:00",
                                      "--quiet"], "--open-lid 0a:00"),
    ("simulate_open_lid_before_opening", ["simulate", "--voters", "5", "--out", "{root}/d14", "--open-lid",
                                          "06:00", "--quiet"], "--open-lid 06:00"),
    ("simulate_resume_nothing", ["simulate", "--resume", "--out", "{root}/d12", "--quiet"], "--resume"),
    # -- ballots render
    ("render_dpi_0", ["ballots", "render", "--election", E, "--style", "N", "--dpi", "0", "--out", "{root}/r.png"],
     "--dpi: 0"),
    ("render_dpi_negative", ["ballots", "render", "--election", E, "--style", "N", "--dpi", "-5",
                             "--out", "{root}/r.png"], "--dpi: -5"),
    ("render_dpi_nan", ["ballots", "render", "--election", E, "--style", "N", "--dpi", "nan", "--out", "{root}/r.png"],
     "--dpi: nan"),
    ("render_out_folder", ["ballots", "render", "--election", E, "--style", "N", "--out", "{dir}"], "--out"),
    ("render_out_under_file", ["ballots", "render", "--election", E, "--style", "N", "--out", "{under_file}"],
     "--out"),
    ("render_layout_folder", ["ballots", "render", "--election", E, "--style", "N", "--out", "{root}/r1.png",
                              "--layout-json", "{dir}"], "--layout-json"),
    ("render_layout_no_folder", ["ballots", "render", "--election", E, "--style", "N", "--out", "{root}/r2.png",
                                 "--layout-json", "{under_file}"], "--layout-json"),
    ("render_pdf_folder", ["ballots", "render", "--election", E, "--style", "N", "--out", "{root}/r3.png",
                           "--pdf", "{dir}"], "--pdf"),
    ("render_pdf_no_folder", ["ballots", "render", "--election", E, "--style", "N", "--out", "{root}/r4.png",
                              "--pdf", "{under_file}"], "--pdf"),
    ("render_key_folder", ["ballots", "render", "--election", E, "--style", "N", "--out", "{root}/r5.png",
                           "--key", "{dir}"], "--key"),
    ("render_key_missing", ["ballots", "render", "--election", E, "--style", "N", "--out", "{root}/r6.png",
                            "--key", "{missing}"], "--key"),
    ("render_key_garbage", ["ballots", "render", "--election", E, "--style", "N", "--out", "{root}/r7.png",
                            "--key", "{garbage}"], "--key"),
    ("render_key_empty", ["ballots", "render", "--election", E, "--style", "N", "--out", "{root}/r8.png",
                          "--key", "{empty}"], "--key"),
    ("render_style_unknown", ["ballots", "render", "--election", E, "--style", "Q", "--out", "{root}/r9.png"],
     "'Q'"),
    ("render_election_garbage", ["ballots", "render", "--election", "{garbage}", "--style", "N",
                                 "--out", "{root}/r10.png"], "garbage.bin"),
    ("render_election_list", ["ballots", "render", "--election", "{json_list}", "--style", "N",
                              "--out", "{root}/r11.png"], "list.json"),
    # -- ballots test-deck
    ("deck_dpi_0", ["ballots", "test-deck", "--election", E, "--out", "{root}/deck1", "--dpi", "0"], "--dpi: 0"),
    ("deck_out_is_a_file", ["ballots", "test-deck", "--election", E, "--out", "{text}"], "--out"),
    ("deck_key_garbage", ["ballots", "test-deck", "--election", E, "--out", "{root}/deck2", "--key", "{garbage}"],
     "--key"),
    ("deck_election_empty", ["ballots", "test-deck", "--election", "{empty}", "--out", "{root}/deck3"], "empty.json"),
    # -- omr interpret (options; the images are the batch cases below)
    ("interpret_dpi_negative", ["omr", "interpret", "--election", E, "--dpi", "-5", "{tiny}"], "--dpi: -5"),
    ("interpret_dpi_0", ["omr", "interpret", "--election", E, "--dpi", "0", "{tiny}"], "--dpi: 0"),
    ("interpret_election_garbage", ["omr", "interpret", "--election", "{garbage}", "{tiny}"], "garbage.bin"),
    ("interpret_election_folder", ["omr", "interpret", "--election", "{dir}", "{tiny}"], "a-folder"),
    # -- election check
    ("check_missing", ["election", "check", "{missing}"], "no-such-file.json"),
    ("check_empty", ["election", "check", "{empty}"], "empty.json"),
    ("check_garbage", ["election", "check", "{garbage}"], "garbage.bin"),
    ("check_folder", ["election", "check", "{dir}"], "a-folder"),
    *[(f"check_{name}", ["election", "check", f"{{root}}/election-{name}.json"], words)
      for name, (_, words) in BAD_ELECTIONS.items()],
    # -- device
    ("self_test_out_is_a_file", ["device", "self-test", "--out", "{text}"], "--out"),
    ("self_test_out_under_file", ["device", "self-test", "--out", "{under_file}"], "--out"),
    ("self_test_settings_missing", ["device", "self-test", "--settings", "{missing}", "--out", "{root}/st1"],
     "no-such-file.json"),
    ("self_test_settings_garbage", ["device", "self-test", "--settings", "{garbage}", "--out", "{root}/st2"],
     "garbage.bin"),
    ("self_test_settings_empty", ["device", "self-test", "--settings", "{empty}", "--out", "{root}/st3"],
     "empty.json"),
    ("self_test_settings_folder", ["device", "self-test", "--settings", "{dir}", "--out", "{root}/st4"], "a-folder"),
    ("self_test_settings_list", ["device", "self-test", "--settings", "{json_list}", "--out", "{root}/st5"],
     "list.json"),
    ("self_test_election_garbage", ["device", "self-test", "--election", "{garbage}", "--out", "{root}/st6"],
     "garbage.bin"),
    ("set_pin_state_dir_is_a_file", ["device", "set-pin", "--state-dir", "{text}", "--role", "president"],
     "--state-dir"),
    ("set_pin_role_unknown", ["device", "set-pin", "--state-dir", "{root}/sp", "--role", "mayor"], "--role"),
    ("provision_state_dir_is_a_file", ["device", "provision", "--state-dir", "{text}"], "--state-dir"),
    # -- cdf verify
    ("cdf_verify_missing_dir", ["cdf", "verify", "{root}/nothing", "--key", "{text}"], "nothing"),
    ("cdf_verify_dir_is_a_file", ["cdf", "verify", "{text}", "--key", "{text}"], "notes.txt"),
    ("cdf_verify_key_garbage", ["cdf", "verify", "{dir}", "--key", "{garbage}"], "garbage.bin"),
    ("cdf_verify_key_folder", ["cdf", "verify", "{dir}", "--key", "{dir}"], "a-folder"),
    ("cdf_verify_key_missing", ["cdf", "verify", "{dir}", "--key", "{missing}"], "no-such-file.json"),
    # -- bench
    ("bench_omr_ballots_0", ["bench", "omr", "--level", "L1", "--ballots", "0", "--out", "{root}/b1"], "--ballots 0"),
    ("bench_omr_out_is_a_file", ["bench", "omr", "--level", "L1", "--ballots", "1", "--out", "{text}"], "--out"),
    ("bench_total_missing", ["bench", "omr-total", "{missing}"], "no-such-file.json"),
    ("bench_total_garbage", ["bench", "omr-total", "{garbage}"], "garbage.bin"),
    ("bench_total_folder", ["bench", "omr-total", "{dir}"], "a-folder"),
    ("bench_total_list", ["bench", "omr-total", "{json_list}"], "list.json"),
    ("power_cut_runs_0", ["bench", "power-cut", "--runs", "0"], "--runs 0"),
    ("power_cut_work_is_a_file", ["bench", "power-cut", "--runs", "1", "--work", "{text}"], "--work"),
    ("power_cut_out_folder", ["bench", "power-cut", "--runs", "1", "--out", "{dir}"], "--out"),
    ("power_cut_election_garbage", ["bench", "power-cut", "--runs", "1", "--election", "{garbage}",
                                    "--work", "{root}/pc1"], "garbage.bin"),
    ("fingerprints_data_missing", ["bench", "fingerprints", "--data", "{root}/nothing"], "nothing"),
    ("fingerprints_data_is_a_file", ["bench", "fingerprints", "--data", "{text}"], "notes.txt"),
    ("bench_receiver_stations_0", ["bench", "receiver", "--stations", "0"], "--stations: 0"),
    ("bench_receiver_fail_2", ["bench", "receiver", "--stations", "1", "--fail", "2"], "--fail: 2"),
    ("bench_receiver_workers_0", ["bench", "receiver", "--stations", "1", "--workers", "0"], "--workers: 0"),
    ("bench_receiver_concurrency_0", ["bench", "receiver", "--stations", "1", "--concurrency", "0"],
     "--concurrency: 0"),
    ("bench_receiver_database_url", ["bench", "receiver", "--stations", "1", "--database", "mysql://x"],
     "--database"),
    ("bench_receiver_out_folder", ["bench", "receiver", "--stations", "1", "--out", "{dir}"], "--out"),
    # -- outbox
    ("outbox_send_state_dir_missing", ["outbox", "send", "--state-dir", "{root}/nothing", "--endpoint",
                                       "http://127.0.0.1:9"], "nothing"),
    ("outbox_send_endpoint_ftp", ["outbox", "send", "--state-dir", "{dir}", "--endpoint", "ftp://x"], "ftp://x"),
    ("outbox_send_https_without_pin", ["outbox", "send", "--state-dir", "{dir}", "--endpoint", "https://x.example"],
     "--pin"),
    ("outbox_send_give_up_negative", ["outbox", "send", "--state-dir", "{dir}", "--endpoint", "http://127.0.0.1:9",
                                      "--give-up-after", "-1"], "--give-up-after: -1"),
    ("outbox_send_timeout_0", ["outbox", "send", "--state-dir", "{dir}", "--endpoint", "http://127.0.0.1:9",
                               "--timeout", "0"], "--timeout: 0"),
    ("outbox_send_language", ["outbox", "send", "--state-dir", "{dir}", "--endpoint", "http://127.0.0.1:9",
                              "--language", "de"], "--language"),
    ("outbox_status_state_dir_is_a_file", ["outbox", "status", "--state-dir", "{text}"], "--state-dir"),
    ("outbox_status_language", ["outbox", "status", "--state-dir", "{dir}", "--language", "xx"], "--language"),
    # -- receiver
    ("receiver_nothing", ["receiver"], "--port"),
    ("receiver_port_0", ["receiver", "--port", "0", "--store", "{root}/rs", "--devices", "{dir}"], "--port: 0"),
    ("receiver_port_too_big", ["receiver", "--port", "70000", "--store", "{root}/rs", "--devices", "{dir}"],
     "--port: 70000"),
    ("receiver_store_is_a_file", ["receiver", "--port", "8999", "--store", "{text}", "--devices", "{dir}"],
     "--store"),
    ("receiver_devices_missing", ["receiver", "--port", "8999", "--store", "{root}/rs", "--devices",
                                  "{root}/nothing"], "--devices"),
    ("receiver_workers_0", ["receiver", "--port", "8999", "--store", "{root}/rs", "--devices", "{dir}",
                            "--workers", "0"], "--workers: 0"),
    ("receiver_workers_without_database", ["receiver", "--port", "8999", "--store", "{root}/rs", "--devices",
                                           "{dir}", "--workers", "2"], "--workers 2"),
    ("receiver_max_body_0", ["receiver", "--port", "8999", "--store", "{root}/rs", "--devices", "{dir}",
                             "--max-body-mb", "0"], "--max-body-mb: 0"),
    ("receiver_tls_cert_missing", ["receiver", "--port", "8999", "--store", "{root}/rs", "--devices", "{dir}",
                                   "--tls-cert", "{missing}", "--tls-key", "{missing}"], "--tls-cert"),
    ("receiver_tls_cert_without_key", ["receiver", "--port", "8999", "--store", "{root}/rs", "--devices", "{dir}",
                                       "--tls-cert", "{text}"], "--tls-key"),
    ("receiver_list_neither", ["receiver", "list"], "--store"),
    ("receiver_list_store_missing", ["receiver", "list", "--store", "{root}/nothing"], "nothing"),
    ("receiver_list_database_url", ["receiver", "list", "--database", "sqlite://x"], "--database"),
    # -- the services and the committee (ballotbox/service_cli.py)
    ("service_scanner_speed_0", ["service", "run", "scanner", "--state-dir", "{root}/svc", "--speed", "0"],
     "--speed 0"),
    ("service_scanner_voters_0", ["service", "run", "scanner", "--state-dir", "{root}/svc", "--voters", "0"],
     "--voters 0"),
    ("service_scanner_cycles", ["service", "run", "scanner", "--state-dir", "{root}/svc", "--cycles", "1"],
     "--cycles"),
    ("service_scanner_state_dir_is_a_file", ["service", "run", "scanner", "--state-dir", "{text}"], "--state-dir"),
    ("service_uploader_no_package", ["service", "run", "uploader", "--state-dir", "{dir}"],
     "no election package installed"),
    ("service_uploader_sim_option", ["service", "run", "uploader", "--state-dir", "{dir}", "--seed", "3"],
     "--seed"),
    ("committee_pin_file_missing", ["committee", "status", "--role", "operator", "--pin-file", "{missing}",
                                    "--state-dir", "{root}/nothing"], "--pin-file"),
    ("committee_pin_file_empty", ["committee", "open", "--role", "president", "--pin-file", "{empty}",
                                  "--state-dir", "{root}/nothing"], "no PIN"),
    ("committee_no_service", ["committee", "open", "--role", "president", "--pin-file", "{text}",
                              "--state-dir", "{root}/nothing"], "no service is listening"),
    ("committee_role", ["committee", "open", "--role", "mayor", "--pin-file", "{text}"], "--role"),
    ("committee_clear_fault_without_answer", ["committee", "clear-fault", "--role", "operator", "--pin-file",
                                              "{text}"], "--sheet-removed"),
    ("receiver_key_missing", ["receiver", "--port", "8999", "--store", "{root}/rs", "--devices", "{dir}",
                              "--key", "{missing}"], "--key"),
    ("package_build_receipt_key_garbage", ["package", "build", "--election", E, "--endpoint",
                                           "http://127.0.0.1:9", "--receipt-key", "{garbage}", "--out",
                                           "{root}/p.json"], "--receipt-key"),
    # -- biometrics
    ("extract_dpi_0", ["biometrics", "extract", "{tiny}", "--dpi", "0", "--out-dir", "{root}/x1"], "--dpi: 0"),
    ("extract_out_dir_is_a_file", ["biometrics", "extract", "{tiny}", "--out-dir", "{text}"], "--out-dir"),
    ("extract_garbage", ["biometrics", "extract", "{garbage}", "--out-dir", "{root}/x2"], "garbage.bin"),
    ("extract_empty", ["biometrics", "extract", "{empty}", "--out-dir", "{root}/x3"], "empty.json"),
    ("extract_folder", ["biometrics", "extract", "{dir}", "--out-dir", "{root}/x4"], "a-folder"),
    ("match_pairs_missing", ["biometrics", "match-pairs", "{missing}"], "no-such-file.json"),
    ("match_pairs_garbage", ["biometrics", "match-pairs", "{garbage}"], "garbage.bin"),
    ("match_pairs_empty", ["biometrics", "match-pairs", "{empty}"], "empty.json"),
    ("match_pairs_folder", ["biometrics", "match-pairs", "{dir}"], "a-folder"),
    ("identify_probe_missing", ["biometrics", "identify", "{missing}", "--gallery", "{dir}"], "no-such-file.json"),
    ("identify_gallery_missing", ["biometrics", "identify", "{tiny}", "--gallery", "{root}/nothing"], "nothing"),
    ("identify_top_0", ["biometrics", "identify", "{tiny}", "--gallery", "{dir}", "--top", "0"], "--top: 0"),
]


def _argv(template: list[str], files: dict[str, Path]) -> list[str]:
    return [part.format(**{k: str(v) for k, v in files.items()}) for part in template]


@pytest.mark.parametrize(("argv", "words"), [pytest.param(argv, words, id=name) for name, argv, words in CASES])
def test_bad_input_exits_2_with_one_line_naming_it(argv: list[str], words: str, files: dict[str, Path],
                                                   capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(files["root"])  # anything a command might write by default lands in the scratch folder
    before = _listing(files["root"])
    rc = main(_argv(argv, files))
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert rc == 2, captured.err
    assert "Traceback" not in captured.err + captured.out
    assert len(lines) == 1, lines
    assert words in lines[0], lines[0]
    assert _listing(files["root"]) == before  # nothing written, not even half


def _listing(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))


def test_interpret_reads_the_rest_of_a_batch_past_a_decompression_bomb(files: dict[str, Path],
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    images = [files["bomb"], files["garbage"], files["empty"], files["dir"], files["missing"], files["tiny"]]
    rc = main(["omr", "interpret", "--election", E, "--no-second-opinion", *map(str, images)])
    captured = capsys.readouterr()
    records = [json.loads(line) for line in captured.out.splitlines()]
    assert rc == 1  # the job ran; some images could not be read
    assert "Traceback" not in captured.err
    assert [r["image"] for r in records] == [str(p) for p in images]
    assert [r["verdict"] for r in records] == ["unreadable"] * 6
    assert "20000 x 20000 pixels" in records[0]["error"]
    assert "no such file" in records[4]["error"]
    assert "error" not in records[5] and "ms" in records[5]  # the last image was read and interpreted


def test_render_writes_nothing_when_a_later_output_is_bad(files: dict[str, Path],
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    png = files["root"] / "half.png"
    rc = main(["ballots", "render", "--election", E, "--style", "N", "--dpi", "100", "--out", str(png),
               "--layout-json", str(files["root"] / "half.json"), "--pdf", str(files["dir"])])
    assert rc == 2
    assert "--pdf" in capsys.readouterr().err
    assert not png.exists() and not (files["root"] / "half.json").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file whatever its permissions")
def test_unreadable_election_exits_2(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    locked = files["root"] / "locked.json"
    locked.write_text(SAMPLE_ELECTION.read_text(encoding="utf-8"), encoding="utf-8")
    locked.chmod(0)
    try:
        assert main(["election", "check", str(locked)]) == 2
        assert "locked.json" in capsys.readouterr().err
    finally:
        locked.chmod(0o600)
