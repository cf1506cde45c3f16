"""The video commands of `ballotbox` (CEC pilot 4):

    ballotbox video verify DIR [--key PEM] [--decode] [--json]
    ballotbox video record-sim --minutes M --out DIR [--settings FILE] [--seed S] [--key-dir KDIR]
    ballotbox bench video [--seconds S] [--out JSON]
    ballotbox service run video [--settings F]      (the service's loop: firmware/video/daemon.py)

`verify` needs DIR alone: exit 0 intact, 1 tampered (each problem names the segment and what), 2 bad input.
`record-sim` records the synthetic scene through the box's own pipeline, faster than real time; killed at
any moment (SIGKILL), it is run again on the same DIR to go on: the cut segment is adopted and the time
it was off is a gap. The device key is kept beside DIR, in KDIR (default DIR-device/), never in DIR.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from firmware.errors import EXIT_BAD_INPUT, EXIT_CHECK_FAILED, EXIT_OK, UserError

BENCH_WIDTH, BENCH_HEIGHT, BENCH_FPS = 1280, 720, 15  # BENCHMARKS.md "Video"
BAR_MS_PER_FRAME, BAR_GB_PER_HOUR = 10.0, 0.7


def add_parsers(sub: Any, bench: Any) -> None:
    video = sub.add_parser("video", help="the room camera's recordings (pilot 4)").add_subparsers(metavar="ACTION")
    verify = video.add_parser("verify", help="check a recording directory: signature, chain, every segment; "
                              "exit 1 names each missing, altered, reordered or inserted segment")
    verify.add_argument("directory", type=Path, help="the recording (segments + manifest.json)")
    verify.add_argument("--key", type=Path, help="the device's public key (PEM) to hold the signature to; without "
                        "it, compare the printed fingerprint with the paper report's")
    verify.add_argument("--decode", action="store_true", help="also play every segment: frame counts and every "
                        "masked pixel blank in every frame")
    verify.add_argument("--json", action="store_true", help="print the result as one JSON object")
    verify.set_defaults(run=_verify)

    rec = video.add_parser("record-sim", help="record the synthetic polling station through the box's pipeline "
                           "(faster than real time; SIGKILL-safe: run it again on DIR to go on)")
    rec.add_argument("--minutes", type=float, required=True, help="minutes of station time to record")
    rec.add_argument("--out", type=Path, required=True, metavar="DIR", help="the recording directory")
    rec.add_argument("--settings", type=Path, default=None, help="device settings with a `video` section "
                     "(default config/device-sim.json: 1280x720, 15 fps, the scene's booths and slot masked)")
    rec.add_argument("--seed", type=int, default=1)
    rec.add_argument("--key-dir", type=Path, default=None, help="where the device key is kept (default DIR-device)")
    rec.set_defaults(run=_record_sim)

    b = bench.add_parser("video", help="CPU ms per frame for mask + encode at 1280x720 15 fps, bytes per hour, "
                         "and the masked-pixel check on the decoded output")
    b.add_argument("--seconds", type=float, default=60.0, help="seconds of video to record (default 60)")
    b.add_argument("--out", type=Path, default=Path("out/bench/video.json"), metavar="JSON")
    b.add_argument("--work", type=Path, default=None, help="directory for the recording (default: a new temporary "
                   "directory, kept)")
    b.set_defaults(run=_bench)


def _verify(args: argparse.Namespace) -> int:
    from video.manifest import ManifestError
    from video.verify import verify_recording

    if not args.directory.is_dir():
        raise UserError(f"{args.directory}: no such directory; give a recording directory (segments + manifest.json)")
    key_raw = _public_key(args.key) if args.key else None
    try:
        result = verify_recording(args.directory, key_raw, decode=args.decode)
    except ManifestError as exc:
        raise UserError(str(exc)) from None
    m = result.manifest
    segments = m.segments()
    summary = {"directory": str(args.directory), "intact": result.intact, "key_fingerprint": result.key_fingerprint,
               "segments": len(segments), "frames": sum(e["frames"] for e in segments), "gaps": len(m.gaps()),
               "closed": m.closed, "head": m.head, "masks_sha256": m.masks_sha256,
               "open_segment": result.open_segment,
               "problems": [{"what": p.what, "segment": p.segment, "detail": p.detail} for p in result.problems]}
    if args.decode:
        summary.update(frames_decoded=result.frames_decoded, masked_pixels_checked=result.masked_pixels_checked,
                       worst_masked_deviation=result.worst_masked_deviation)
    if args.json:
        print(json.dumps(summary, ensure_ascii=False))
    else:
        print(f"key fingerprint {result.key_fingerprint} (compare it with the paper report)")
        print(f"{len(segments)} segments, {summary['frames']} frames, {len(m.gaps())} gaps"
              f"{'' if m.closed else ' (recording not closed: cut off or still running)'}; head {m.head}")
        for gap in m.gaps():
            print(f"gap {gap['start']} .. {gap['end']}: {gap['cause']} {gap['detail']}")
        if result.open_segment:
            print(f"NOTE {result.open_segment}")
        if args.decode:
            print(f"decoded {result.frames_decoded} frames; {result.masked_pixels_checked} masked pixels checked, "
                  f"worst {result.worst_masked_deviation} levels from blank")
        for p in result.problems:
            print(f"PROBLEM {p}")
        print("recording intact" if result.intact else f"{len(result.problems)} problem(s): the recording was "
              "tampered with or damaged")
    return EXIT_OK if result.intact else EXIT_CHECK_FAILED


def _public_key(path: Path) -> bytes:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except FileNotFoundError:
        raise UserError(f"--key {path}: no such file; give the device's public key (device-key.pub.pem)") from None
    except ValueError as exc:
        raise UserError(f"--key {path}: not a PEM public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise UserError(f"--key {path}: not an Ed25519 key; the box signs with Ed25519")
    return key.public_bytes_raw()


def load_video_settings(path: Path | None) -> Any:
    from config.device import DEFAULT_DEVICE, DeviceSettingsError, load_device_settings

    try:
        return load_device_settings(path or DEFAULT_DEVICE)
    except DeviceSettingsError as exc:
        raise UserError(str(exc)) from None


def _record_sim(args: argparse.Namespace) -> int:
    import time
    from datetime import datetime, timedelta

    from firmware.common.identity import load_or_provision
    from hal.clock import SystemClock
    from simulator.devices import AcceleratedClock
    from simulator.scene import SyntheticRoomCamera
    from video.manifest import MANIFEST, ManifestError, read_manifest
    from video.masks import MaskError
    from video.recorder import Recorder, RecordingProfile, RecordingStopped
    from video.storage import StorageRefused

    if not 0 < args.minutes <= 24 * 60:
        raise UserError(f"--minutes {args.minutes}: give more than 0 and at most 1440")
    if args.out.exists() and not args.out.is_dir():
        raise UserError(f"--out {args.out}: is a file; give a directory for the recording")
    settings = load_video_settings(args.settings)
    profile = RecordingProfile.from_settings(settings.video)
    key_dir = args.key_dir or args.out.with_name(args.out.name + "-device")
    identity = load_or_provision(key_dir, settings.device_id)
    start = SystemClock().now().replace(microsecond=0)
    resumed = (args.out / MANIFEST).exists()
    if resumed:  # go on after the last recorded moment (the simulated clock runs ahead of the wall's)
        try:
            m, _, _ = read_manifest(args.out)
        except ManifestError as exc:
            raise UserError(str(exc)) from None
        last = m.last_end() or m.epoch_time
        start = max(start, last + timedelta(seconds=30))
        epoch: datetime | None = m.epoch_time
    else:
        epoch = None
    clock = AcceleratedClock(start)
    first = round(((start - epoch).total_seconds() if epoch else 0) * profile.fps)
    camera = SyntheticRoomCamera(profile.width, profile.height, profile.fps, seed=args.seed, clock=clock,
                                 start_frame=first)
    try:
        recorder = Recorder(camera, profile, settings.video.masks, args.out, clock=clock, signer=identity,
                            station="SIM", device_id=settings.device_id, log=_print_event)
        warnings = recorder.start()
    except (MaskError, StorageRefused) as exc:
        raise UserError(f"recording refused: {exc}") from None
    for w in warnings:
        print(f"storage: {w}", file=sys.stderr)
    wall = time.perf_counter()
    try:
        recorder.record_for(args.minutes * 60)
        sha = recorder.stop()
    except RecordingStopped as exc:
        print(f"ballotbox: recording stopped: {exc}", file=sys.stderr)
        return EXIT_CHECK_FAILED
    m = recorder.manifest
    assert m is not None
    seconds = time.perf_counter() - wall
    frames = sum(e["frames"] for e in m.segments())
    print(f"{args.out}: {len(m.segments())} segments, {frames} frames, {len(m.gaps())} gaps; {args.minutes:g} min "
          f"recorded in {seconds:.1f} s ({args.minutes * 60 / max(seconds, 1e-9):.1f}x real time)"
          + ("; resumed after a cut" if resumed else ""))
    print(f"manifest sha256 {sha}; check: ballotbox video verify {args.out}")
    return EXIT_OK


def service_run_video(args: argparse.Namespace) -> int:
    """`ballotbox service run video`: the room camera the settings name, recorded until SIGTERM into
    STATE/device/<video.directory>/ (firmware/video/daemon.py)."""
    from firmware.common.identity import load_or_provision
    from firmware.trust.package import installed_package
    from firmware.video.daemon import run_video_service
    from hal.clock import SystemClock
    from hal.errors import HalError
    from video.manifest import ManifestError
    from video.masks import MaskError
    from video.storage import StorageRefused

    if args.cycles is not None or args.interval is not None:
        raise UserError("service run video: it records until it is stopped (SIGTERM); --interval and --cycles "
                        "are for the services that probe their devices")
    settings = load_video_settings(args.settings)
    video = settings.video
    if not video.enabled:
        raise UserError(f"{args.settings or 'the device settings'}: video.enabled is false: this box records no "
                        "video; set it to true to run the video service")
    state_dir = args.state_dir or Path(settings.data_dir)  # the box's storage, as the scanner's service reads it
    if state_dir.exists() and not state_dir.is_dir():
        raise UserError(f"--state-dir {state_dir}: is a file; give the box's state directory")
    device_dir = state_dir / "device"  # the package and the one device key of every service
    package = installed_package(device_dir)  # TrustError (a UserError) if it cannot be read
    try:
        camera = _service_camera(video)
    except HalError as exc:
        raise UserError(f"service video: cannot open the room camera: {exc}") from None
    try:
        identity = load_or_provision(device_dir, settings.device_id)
        return run_video_service(camera, settings, clock=SystemClock(), identity=identity,
                                 station=package.station if package else "unprovisioned", state_dir=state_dir)
    except (MaskError, StorageRefused, ManifestError) as exc:
        raise UserError(f"service video: recording refused: {exc}") from None
    finally:
        camera.close()


def _service_camera(video: Any) -> Any:
    """The room camera of `video.source`; on picamera2 with the SoC's H.264 encoder (`video.encoder`
    "hardware", or "auto" where the Pi 4's encoder node is there), the Pi 4 path."""
    from hal.drivers.room_camera import PiHardwareH264, soc_h264_encoder_present

    hardware = video.encoder == "hardware" or (video.encoder == "auto" and video.source == "picamera2"
                                               and soc_h264_encoder_present())
    if hardware:
        if video.source != "picamera2":
            raise UserError(f"video.encoder \"hardware\" is the Pi's own H.264 encoder, through picamera2; "
                            f"video.source is {video.source!r}: set video.encoder to \"libx264\" or \"auto\"")
        return PiHardwareH264(video.camera_num, video.width, video.height, video.fps, video.bitrate_kbps,
                              intra_period=max(1, round(video.fps * video.segment_s)))
    if video.source == "synthetic":
        from simulator.scene import RealTimeScene, SyntheticRoomCamera
        return RealTimeScene(SyntheticRoomCamera(video.width, video.height, video.fps))
    from hal.drivers.room_camera import open_room_camera
    return open_room_camera(video)


def _print_event(event: dict[str, Any]) -> None:
    if event.get("e") in ("cut_segment_adopted", "recovered", "stopped", "storage_alarm", "camera_disconnected"):
        print(f"video: {json.dumps(event, ensure_ascii=False)}", flush=True)


def _bench(args: argparse.Namespace) -> int:
    import tempfile

    from simulator.bench_video import run

    if not 1 <= args.seconds <= 3600:
        raise UserError(f"--seconds {args.seconds}: give 1 to 3600")
    if args.work is not None and args.work.exists() and any(args.work.iterdir()):
        raise UserError(f"--work {args.work}: not empty; give a new directory")
    work = args.work or Path(tempfile.mkdtemp(prefix="ballotbox-bench-video-"))
    report = run(work, args.seconds, BENCH_WIDTH, BENCH_HEIGHT, BENCH_FPS)
    report["bars"] = {"ms_per_frame": BAR_MS_PER_FRAME, "gb_per_hour": BAR_GB_PER_HOUR}
    report["bars_met"] = {"ms_per_frame": report["cpu_ms_per_frame_mask_encode"] <= BAR_MS_PER_FRAME,
                          "gb_per_hour": report["gb_per_hour"] <= BAR_GB_PER_HOUR,
                          "gb_per_hour_at_peak_rate": report["gb_per_hour_at_peak_rate"] <= BAR_GB_PER_HOUR,
                          "gb_per_hour_noisy_scene": report["noisy_scene"]["gb_per_hour"] <= BAR_GB_PER_HOUR,
                          "masked_pixels_blank": report["masked_pixels_blank"]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(f"video {report['width']}x{report['height']} @ {report['fps']} fps, {report['frames']} frames "
          f"({report['seconds']:g} s): CPU {report['cpu_ms_per_frame_mask_encode']} ms/frame for mask + overlay + "
          f"encode + segments (mask alone {report['cpu_ms_per_frame_mask']} ms), wall "
          f"{report['wall_ms_per_frame']} ms/frame")
    print(f"bytes: {report['bytes']} = {report['gb_per_hour']} GB/hour on the synthetic scene; at the peak rate "
          f"(VBV {report['bitrate_kbps']} kbit/s) at most {report['gb_per_hour_at_peak_rate']} GB/hour")
    noisy = report["noisy_scene"]
    print(f"noisy scene (+-{noisy['noise_levels']} levels on every pixel, {noisy['seconds']} s): {noisy['gb_per_hour']} "
          f"GB/hour, CPU {noisy['cpu_ms_per_frame']} ms/frame, worst masked pixel {noisy['worst_masked_deviation']} "
          "levels from blank")
    print(f"masked pixels: {report['masked_pixels_checked']} checked in {report['frames_decoded']} decoded frames, "
          f"worst {report['worst_masked_deviation']} levels from blank (tolerance {report['blank_tolerance']}); "
          f"before encoding: {report['unmasked_before_encoding']} unblanked")
    print(f"figures in {args.out}; recording kept in {work}")
    ok = all(report["bars_met"].values())
    return EXIT_OK if ok else EXIT_CHECK_FAILED


__all__ = ["EXIT_BAD_INPUT", "add_parsers"]


def write_day_video(out: Path, result: Any, save_report: Any, console: Any) -> Path | None:
    """`simulate`: OUT/video (the recording, exported as to the USB stick at close: segments, manifest.json,
    device-key.pub.pem) and the video record (Art. 40) beside the other reports."""
    from firmware.common.identity import software_hash, software_version
    from firmware.common.reports import build_header

    video = getattr(result, "video", None)
    if video is None or not video.opened and video.closed_hash() is None:
        return None
    target = video.service.export(out / "video")
    svc = result.service
    header = build_header(svc.election, device_id=svc.identity.device_id, software_version=software_version(),
                          software_hash=software_hash(), device_key_fingerprint=svc.identity.fingerprint,
                          printed_at=svc.d.clock.now())
    record = video.service.record(header)
    save_report("video", record)
    console.print(f"video: {record.segments} segments, {record.frames} frames (320x180, a frame every 60 s of "
                  f"station time), {len(record.gaps)} gaps; manifest sha256 {record.manifest_sha256} (on the results "
                  f"report); check: ballotbox video verify {target}")
    return target
