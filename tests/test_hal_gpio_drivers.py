"""The real GPIO drivers (feeder, switches, button panel) against the pin-level twins, in simulated
time: simulator.gpio_twin provides RPi.GPIO, the paper path's physics, switches and buttons.

Numbers below follow from the reference geometry (simulator.gpio_twin.PaperPathGeometry): the voter
leaves the leading edge at 30 mm, the imaging sensor is at 330 mm, the rollers move 250 mm/s, and
the drivers sample every 2 ms with a 15 ms debounce (feeder) or 30 ms (switches, panel).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from config.device import FeederPins, PanelPins, SwitchPins
from hal.drivers.gpio import PinUnstable
from hal.drivers.gpio_feeder import GpioFeeder
from hal.drivers.gpio_panel import GpioButtonPanel
from hal.drivers.gpio_switches import GpioSwitches
from hal.errors import DeviceStatus, HardwareUnavailable
from hal.feeder import (
    BoxFull,
    CoverOpen,
    DoubleSheet,
    Feeder,
    FeederError,
    FeederSensors,
    PaperJam,
)
from hal.panel import PanelVerdict, VoterChoice, VoterPanel
from hal.switches import Indicator, SealState, Switches
from simulator.gpio_twin import (
    ButtonPanelTwin,
    GpioTwin,
    MotorState,
    PanelButton,
    PaperPathTwin,
    SwitchBoardTwin,
)


@dataclass
class Rig:
    twin: GpioTwin
    paper: PaperPathTwin
    feeder: GpioFeeder
    switchboard: SwitchBoardTwin
    switches: GpioSwitches
    buttons: ButtonPanelTwin
    panel: GpioButtonPanel

    def now(self) -> float:
        return self.twin.clock.monotonic()

    def ms_since(self, start: float) -> int:
        """Simulated milliseconds since `start` (the twin's clock counts whole microseconds)."""
        return round((self.now() - start) * 1000)

    def motor_on_writes(self) -> int:
        return sum(1 for write in self.twin.writes_to(self.paper.pins.motor_enable) if write.high)


@pytest.fixture
def rig() -> Iterator[Rig]:
    twin = GpioTwin()
    feeder_pins, switch_pins, panel_pins = FeederPins(), SwitchPins(), PanelPins()
    paper = PaperPathTwin(twin, feeder_pins)
    switchboard = SwitchBoardTwin(twin, switch_pins)
    buttons = ButtonPanelTwin(twin, panel_pins)
    with twin.installed():
        feeder = GpioFeeder(feeder_pins, clock=twin.clock)
        switches = GpioSwitches(switch_pins, clock=twin.clock)
        panel = GpioButtonPanel(panel_pins, clock=twin.clock)
        yield Rig(twin, paper, feeder, switchboard, switches, buttons, panel)
        for device in (feeder, switches, panel):
            device.close()
    assert paper.bridge_faults == [], "both H-bridge inputs were high at once"


def test_drivers_implement_the_hal_interfaces(rig: Rig) -> None:
    assert isinstance(rig.feeder, Feeder)
    assert isinstance(rig.switches, Switches)
    assert isinstance(rig.panel, VoterPanel)


# -- feeder: happy paths -----------------------------------------------------------------------------


def test_take_in_holds_the_ballot_at_the_imaging_sensor(rig: Rig) -> None:
    rig.paper.insert_ballot()
    assert rig.feeder.wait_for_ballot(timeout_s=1.0) is True
    rig.feeder.take_in()
    # Stopped 4 mm past the imaging sensor (330 mm): debounce 15 ms, seen at the 8th 2 ms sample,
    # 16 ms x 250 mm/s = 4 mm.
    assert rig.paper.sheet is not None
    assert rig.paper.sheet.lead_mm == 334.0
    assert rig.paper.motor is MotorState.STOPPED
    assert rig.feeder.sensors() == FeederSensors(imaging=True)


def test_wait_for_ballot_times_out_with_an_empty_slot(rig: Rig) -> None:
    start = rig.now()
    assert rig.feeder.wait_for_ballot(timeout_s=0.5) is False
    assert rig.ms_since(start) == 500


def test_drop_puts_the_ballot_in_the_box(rig: Rig) -> None:
    rig.paper.insert_ballot()
    rig.feeder.take_in()
    rig.feeder.drop_into_box()
    assert rig.paper.ballots_in_box == 1
    assert rig.paper.sheet is None
    assert rig.paper.motor is MotorState.STOPPED
    assert rig.feeder.sensors() == FeederSensors()


def test_return_presents_the_ballot_in_the_slot_for_the_voter(rig: Rig) -> None:
    rig.paper.insert_ballot()
    rig.feeder.take_in()
    rig.feeder.return_to_voter()
    # Pushed back until its far edge left the first nip (25 mm): it hangs in the slot, over the
    # entry sensor, out of the rollers.
    assert rig.paper.presented is True
    assert rig.paper.sheet is not None and rig.paper.sheet.lead_mm == 25.0
    assert rig.feeder.sensors() == FeederSensors(entry=True)
    rig.paper.take_presented_ballot()
    assert rig.feeder.sensors() == FeederSensors()
    assert rig.paper.ballots_in_box == 0


def test_a_returned_ballot_reinserted_is_taken_in_and_cast(rig: Rig) -> None:
    rig.paper.insert_ballot()
    rig.feeder.take_in()
    rig.feeder.return_to_voter()
    rig.paper.reinsert_presented_ballot()
    rig.feeder.take_in()
    rig.feeder.drop_into_box()
    assert rig.paper.ballots_in_box == 1


def test_return_twice_does_not_run_the_motor_again(rig: Rig) -> None:
    rig.paper.insert_ballot()
    rig.feeder.take_in()
    rig.feeder.return_to_voter()
    runs = rig.motor_on_writes()
    rig.feeder.return_to_voter()
    assert rig.motor_on_writes() == runs == 2


# -- feeder: faults ----------------------------------------------------------------------------------


def test_jam_during_take_in_raises_paper_jam_after_the_time_budget(rig: Rig) -> None:
    rig.paper.insert_ballot()
    rig.paper.inject_jam(at_mm=200.0)
    start = rig.now()
    with pytest.raises(PaperJam) as caught:
        rig.feeder.take_in()
    # take_in_timeout_s = 2.5; the settle read before moving takes 16 ms, the brake 50 ms.
    assert rig.ms_since(start) == 16 + 2500 + 50
    assert caught.value.code == "paper_jam"
    assert "did not reach the imaging sensor within 2.5 s" in caught.value.message
    assert "still at the entry sensor" in caught.value.message
    assert rig.paper.sheet is not None and rig.paper.sheet.lead_mm == 200.0
    assert rig.paper.motor is MotorState.STOPPED
    # The committee clears the path; the feeder reads idle again.
    rig.paper.remove_sheet()
    assert rig.feeder.sensors() == FeederSensors()


def test_double_sheet_stops_take_in_near_the_slot_and_can_be_returned(rig: Rig) -> None:
    rig.paper.insert_ballot(sheets=2)
    with pytest.raises(DoubleSheet) as caught:
        rig.feeder.take_in()
    assert caught.value.code == "double_sheet"
    # Double-sheet sensor at 45 mm; stopped after the 16 ms debounce: 45 + 4 = 49 mm.
    assert rig.paper.sheet is not None and rig.paper.sheet.lead_mm == 49.0
    assert rig.paper.motor is MotorState.STOPPED
    rig.feeder.return_to_voter()
    assert rig.paper.presented is True
    assert rig.paper.ballots_in_box == 0


def test_box_full_is_refused_before_the_motor_moves(rig: Rig) -> None:
    rig.paper.insert_ballot()
    rig.feeder.take_in()
    runs = rig.motor_on_writes()
    rig.paper.set_box_full()
    with pytest.raises(BoxFull) as caught:
        rig.feeder.drop_into_box()
    assert caught.value.code == "box_full"
    assert rig.motor_on_writes() == runs == 1
    assert rig.paper.sheet is not None and rig.paper.sheet.lead_mm == 334.0
    assert rig.paper.ballots_in_box == 0


def test_box_reaching_capacity_refuses_the_next_drop() -> None:
    twin = GpioTwin()
    pins = FeederPins()
    paper = PaperPathTwin(twin, pins, box_capacity=1)
    with twin.installed():
        feeder = GpioFeeder(pins, clock=twin.clock)
        paper.insert_ballot()
        feeder.take_in()
        feeder.drop_into_box()
        paper.insert_ballot()
        feeder.take_in()
        with pytest.raises(BoxFull):
            feeder.drop_into_box()
        feeder.close()
    assert paper.ballots_in_box == 1


def test_cover_open_refuses_to_move(rig: Rig) -> None:
    rig.paper.insert_ballot()
    rig.paper.open_cover()
    with pytest.raises(CoverOpen) as caught:
        rig.feeder.take_in()
    assert caught.value.code == "cover_open"
    assert rig.motor_on_writes() == 0
    assert rig.paper.sheet is not None and rig.paper.sheet.lead_mm == 30.0


def test_cover_opened_while_feeding_stops_the_motor(rig: Rig) -> None:
    rig.paper.insert_ballot()
    rig.paper.open_cover(delay_s=0.5)
    with pytest.raises(CoverOpen) as caught:
        rig.feeder.take_in()
    assert "opened while taking in" in caught.value.message
    assert rig.paper.motor is MotorState.STOPPED
    # Motor started after the 16 ms settle read; the cover opened at 0.5 s and was confirmed 16 ms
    # later: the sheet moved (0.5 - 0.016 + 0.016) s x 250 mm/s = 125 mm from 30 mm.
    assert rig.paper.sheet is not None and rig.paper.sheet.lead_mm == 155.0


def test_jam_in_the_exit_path_says_the_ballot_is_partly_in_the_box(rig: Rig) -> None:
    rig.paper.insert_ballot()
    rig.feeder.take_in()
    rig.paper.inject_jam(at_mm=400.0)
    with pytest.raises(PaperJam) as caught:
        rig.feeder.drop_into_box()
    assert "reached the exit sensor but did not clear it" in caught.value.message
    assert rig.paper.ballots_in_box == 0


def test_drop_with_nothing_held_moves_nothing(rig: Rig) -> None:
    with pytest.raises(FeederError) as caught:
        rig.feeder.drop_into_box()
    assert "no ballot at the imaging position" in caught.value.message
    assert rig.motor_on_writes() == 0


def test_feeder_self_test_reports_a_leftover_sheet(rig: Rig) -> None:
    assert rig.feeder.self_test() == DeviceStatus("feeder", True, "paper path clear, cover closed, box not full")
    rig.paper.insert_ballot()
    assert rig.feeder.self_test() == DeviceStatus("feeder", False, "paper at the entry sensor")


def test_the_configured_gpio_chip_reaches_rpi_lgpio(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RPI_LGPIO_CHIP", "0")  # the device setting wins over the environment
    twin = GpioTwin()
    with twin.installed():
        feeder = GpioFeeder(FeederPins(), clock=twin.clock, chip=4)
        feeder.close()
    assert twin.chip_opened == 4


def test_without_rpi_gpio_the_driver_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(__import__("sys").modules, "RPi", None)
    monkeypatch.setitem(__import__("sys").modules, "RPi.GPIO", None)
    with pytest.raises(HardwareUnavailable) as caught:
        GpioFeeder(FeederPins(), clock=GpioTwin().clock)
    assert "RPi.GPIO module cannot be imported" in caught.value.message
    assert "rpi-lgpio" in caught.value.remedy


def test_close_releases_only_the_feeders_pins(rig: Rig) -> None:
    rig.switches.set_indicator(Indicator.READY, True)
    rig.feeder.close()
    assert rig.twin.is_output(rig.paper.pins.motor_enable) is False
    assert rig.switchboard.lit_indicators() == {Indicator.READY}


# -- switches ----------------------------------------------------------------------------------------


def test_switches_read_seal_and_lid(rig: Rig) -> None:
    assert rig.switches.read() == SealState(seal_intact=True, lid_closed=True)
    rig.switchboard.set_lid_closed(False)
    assert rig.switches.read() == SealState(seal_intact=True, lid_closed=False)


def test_a_bouncing_seal_contact_is_read_once_it_is_stable(rig: Rig) -> None:
    start = rig.now()
    # The seal breaks, chattering 6 times 4 ms apart: settled (broken) from 24 ms on.
    rig.switchboard.set_seal_intact(False, bounce_toggles=6, bounce_interval_s=0.004)
    assert rig.twin.level(rig.switchboard.pins.seal) is True  # first contact: already "broken"
    assert rig.switches.read() == SealState(seal_intact=False, lid_closed=True)
    # 24 ms of bounce + 30 ms debounce.
    assert rig.ms_since(start) == 24 + 30


def test_a_seal_contact_that_never_settles_is_reported(rig: Rig) -> None:
    rig.switchboard.set_seal_intact(False, bounce_toggles=1000, bounce_interval_s=0.004)
    with pytest.raises(PinUnstable) as caught:
        rig.switches.read()
    assert caught.value.message == "GPIO23 (switches seal loop) did not hold one level for 30 ms within 1 s"


def test_indicators_and_beeps(rig: Rig) -> None:
    rig.switches.set_indicator(Indicator.ATTENTION, True)
    rig.switches.set_indicator(Indicator.BUSY, True)
    rig.switches.set_indicator(Indicator.BUSY, False)
    assert rig.switchboard.lit_indicators() == {Indicator.ATTENTION}
    start = rig.now()
    rig.switches.beep(3)
    assert rig.switchboard.beeps == 3
    assert rig.ms_since(start) == 500  # on 100, off 100, on 100, off 100, on 100


def test_switches_self_test_reports_a_broken_seal(rig: Rig) -> None:
    rig.switchboard.set_seal_intact(False)
    status = rig.switches.self_test()
    assert status == DeviceStatus("switches", True, "SEAL BROKEN, lid closed; lamps and buzzer pulsed")
    assert rig.switchboard.beeps == 1
    assert rig.switchboard.lit_indicators() == set()


# -- voter panel -------------------------------------------------------------------------------------


def test_verdict_lights_its_lamp_and_keeps_the_text(rig: Rig) -> None:
    rig.panel.show_verdict(PanelVerdict.VALID, "Važeći listić", castable=True)
    assert rig.buttons.lit_lamps() == {"valid"}
    assert rig.panel.last_text == "Važeći listić"
    rig.panel.show_verdict(PanelVerdict.FOREIGN, "Listić nije sa ovog biračkog mjesta", castable=False)
    assert rig.buttons.lit_lamps() == {"ambiguous"}
    rig.panel.show_message("Ubacite glasački listić")
    assert rig.buttons.lit_lamps() == set()
    assert rig.panel.last_text == "Ubacite glasački listić"


def test_cast_press_with_bounce_is_one_cast(rig: Rig) -> None:
    rig.panel.show_verdict(PanelVerdict.VALID, "Važeći listić", castable=True)
    rig.buttons.press(PanelButton.CAST, delay_s=0.3, bounce_toggles=5, bounce_interval_s=0.002)
    start = rig.now()
    assert rig.panel.ask_cast_or_return(timeout_s=5.0) is VoterChoice.CAST
    # Pressed at 300 ms; the 5th toggle, at 308 ms, lands on "pressed" for good; 30 ms of debounce.
    assert rig.ms_since(start) == 308 + 30


def test_return_press_is_returned(rig: Rig) -> None:
    rig.panel.show_verdict(PanelVerdict.INVALID, "Nevažeći listić", castable=True)
    rig.buttons.press(PanelButton.RETURN, delay_s=0.1)
    assert rig.panel.ask_cast_or_return(timeout_s=5.0) is VoterChoice.RETURN


def test_cast_is_ignored_when_the_verdict_cannot_be_cast(rig: Rig) -> None:
    rig.panel.show_verdict(PanelVerdict.FOREIGN, "Listić nije sa ovog biračkog mjesta", castable=False)
    rig.buttons.press(PanelButton.CAST, delay_s=0.1)
    rig.buttons.press(PanelButton.RETURN, delay_s=0.6)
    assert rig.panel.ask_cast_or_return(timeout_s=5.0) is VoterChoice.RETURN


def test_no_press_times_out(rig: Rig) -> None:
    rig.panel.show_verdict(PanelVerdict.VALID, "Važeći listić", castable=True)
    start = rig.now()
    assert rig.panel.ask_cast_or_return(timeout_s=2.0) is VoterChoice.NONE
    assert rig.ms_since(start) == 2000


def test_a_button_held_from_before_counts_only_after_release(rig: Rig) -> None:
    rig.buttons.press(PanelButton.CAST, hold_s=None)  # still held from the previous ballot
    rig.panel.show_verdict(PanelVerdict.VALID, "Važeći listić", castable=True)
    assert rig.panel.ask_cast_or_return(timeout_s=1.0) is VoterChoice.NONE
    rig.buttons.release(PanelButton.CAST)
    rig.buttons.press(PanelButton.CAST, delay_s=0.2)
    assert rig.panel.ask_cast_or_return(timeout_s=1.0) is VoterChoice.CAST


def test_panel_self_test_reports_a_stuck_button(rig: Rig) -> None:
    assert rig.panel.self_test() == DeviceStatus("panel", True, "lamps pulsed; cast and return buttons released")
    rig.buttons.press(PanelButton.RETURN, hold_s=None)
    assert rig.panel.self_test() == DeviceStatus(
        "panel", False, "return button reads pressed with nobody pressing: stuck or shorted"
    )


def test_device_settings_refuse_a_pin_wired_twice() -> None:
    from pydantic import ValidationError

    from config.device import DeviceSettings
    with pytest.raises(ValidationError, match=r"GPIO 17 is wired to both feeder.motor_forward and panel.button_cast"):
        DeviceSettings.model_validate({"panel": {"button_cast": 17}})
