"""The authentication desk's device factory: the real drivers built from the device settings, here against
the protocol twins on pseudo-terminals; a port that does not open is a named error, and nothing stays open."""

from __future__ import annotations

import pytest

from config.device import DeviceSettings
from hal.devices import build_pi_auth_devices
from hal.errors import HalError
from simulator.document_reader_twin import DocumentReaderTwin
from simulator.fingerprint_twin import FingerprintModuleTwin


def test_the_factory_builds_both_real_drivers_from_the_settings_and_they_pass_the_self_test() -> None:
    with FingerprintModuleTwin((256, 288)) as module, DocumentReaderTwin() as reader:
        settings = DeviceSettings(kind="pi", fingerprint={"port": module.port},
                                  document_reader={"port": reader.port, "suffix": "crlf"})
        devices = build_pi_auth_devices(settings)
        try:
            checks = devices.self_test()
            assert [(c.device, c.ok) for c in checks] == [("document_reader", True), ("fingerprint_sensor", True)]
            reader.scan("IDBIH1234567890")
            # line endings are the MRZ's own separators: the driver hands them on, the parser reads them
            assert devices.document_reader.read(timeout_s=2.0) == "IDBIH1234567890\r\n"
        finally:
            devices.close()
        assert module.templates == set()  # closing the sensor emptied its template flash


def test_a_fingerprint_port_that_does_not_open_names_it_and_closes_the_reader(tmp_path) -> None:
    with DocumentReaderTwin() as reader:
        settings = DeviceSettings(kind="pi", fingerprint={"port": str(tmp_path / "ttyUSB9")},
                                  document_reader={"port": reader.port})
        with pytest.raises(HalError, match="ttyUSB9"):
            build_pi_auth_devices(settings)


def test_a_reader_suffix_outside_the_list_is_refused_with_the_field_named() -> None:
    with pytest.raises(ValueError, match="document_reader.suffix"):
        DeviceSettings(document_reader={"suffix": "tab"})
