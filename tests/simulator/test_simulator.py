"""Tests of the synthetic LFP generator and its LSL source.

Spectral tests check each state's signature with Welch's method on a few channels at modest
sampling rates (the signatures do not depend on the rate). No test asserts speed: that is
measured in ``benchmarks/bench_simulator.py``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import threading
import time

import numpy as np
import pytest
from scipy import signal

from rtdecode.simulator.generator import (
    SCENARIO_CLASSES,
    LfpSimulator,
    SimulatorConfig,
)
from rtdecode.simulator.source import run_lsl_source
from rtdecode.streams import truth_stream_name


# ------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------
def _segments(sim: LfpSimulator, n_total: int) -> list[tuple[int, int, str]]:
    """``(start, stop, state)`` of every state period within the first ``n_total`` samples."""
    changes = sim.state_changes()
    stops = [start for start, _ in changes[1:]] + [n_total]
    return [(start, stop, state) for (start, state), stop in zip(changes, stops)]


def _state_psd(
    data: np.ndarray, sim: LfpSimulator, fs: float, *, trim_s: float = 1.0, min_s: float = 4.0
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Welch PSD (uV^2/Hz) per state, channel-averaged and weighted by period length.

    Each period is trimmed by ``trim_s`` at both ends so that crossfades do not leak in.
    """
    trim = round(trim_s * fs)
    sums: dict[str, np.ndarray] = {}
    weights: dict[str, int] = {}
    freqs = None
    for start, stop, state in _segments(sim, len(data)):
        a, b = start + trim, stop - trim
        if b - a < min_s * fs:
            continue
        freqs, psd = signal.welch(data[a:b], fs=fs, nperseg=round(2 * fs), axis=0)
        sums[state] = sums.get(state, 0.0) + psd.mean(axis=1) * (b - a)
        weights[state] = weights.get(state, 0) + (b - a)
    assert freqs is not None
    return freqs, {state: sums[state] / weights[state] for state in sums}


def _band(freqs: np.ndarray, psd: np.ndarray, lo: float, hi: float) -> float:
    """Power in ``[lo, hi)`` Hz, uV^2."""
    mask = (freqs >= lo) & (freqs < hi)
    return float(psd[mask].sum() * (freqs[1] - freqs[0]))


def _short_sleep(**kw) -> SimulatorConfig:
    """Sleep config with short states so a minute of data holds every state several times."""
    base = dict(
        n_channels=4,
        fs_hz=2000.0,
        seed=11,
        wake_s=(8.0, 10.0),
        nrem_s=(8.0, 10.0),
        rem_s=(8.0, 10.0),
    )
    base.update(kw)
    return SimulatorConfig("sleep", **base)


def _short_seizure(**kw) -> SimulatorConfig:
    base = dict(n_channels=4, fs_hz=2000.0, seed=12, normal_s=(8.0, 10.0), seizure_s=(10.0, 12.0))
    base.update(kw)
    return SimulatorConfig("seizure", **base)


@pytest.fixture(scope="module")
def sleep_run() -> tuple[LfpSimulator, np.ndarray, np.ndarray]:
    sim = LfpSimulator(_short_sleep())
    data, labels = sim.generate(round(90 * sim.config.fs_hz))
    return sim, data, labels


@pytest.fixture(scope="module")
def seizure_run() -> tuple[LfpSimulator, np.ndarray, np.ndarray]:
    sim = LfpSimulator(_short_seizure())
    data, labels = sim.generate(round(90 * sim.config.fs_hz))
    return sim, data, labels


# ------------------------------------------------------------------------------------------
# Spectral signatures
# ------------------------------------------------------------------------------------------
def test_sleep_state_spectra(sleep_run):
    sim, data, _ = sleep_run
    freqs, psd = _state_psd(data, sim, sim.config.fs_hz)
    assert set(psd) == {"wake", "nrem", "rem"}
    delta = {s: _band(freqs, p, 1.0, 4.0) for s, p in psd.items()}
    theta = {s: _band(freqs, p, 6.0, 9.0) for s, p in psd.items()}
    fast = {s: _band(freqs, p, 100.0, 500.0) for s, p in psd.items()}

    # NREM: strong delta.
    assert delta["nrem"] > 5.0 * delta["rem"]
    assert delta["nrem"] > 3.0 * delta["wake"]
    # REM: theta dominates delta, unlike NREM.
    ratio = {s: theta[s] / delta[s] for s in psd}
    assert ratio["rem"] > 5.0 * ratio["nrem"]
    assert ratio["rem"] > 1.0
    # NREM: spindles raise the 10-15 Hz band well above wake and REM.
    sigma = {s: _band(freqs, p, 10.0, 15.0) for s, p in psd.items()}
    assert sigma["nrem"] > 3.0 * sigma["rem"]
    assert sigma["nrem"] > 3.0 * sigma["wake"]
    # Wake: EMG-like broadband activity.
    assert fast["wake"] > 4.0 * fast["nrem"]
    assert fast["wake"] > 4.0 * fast["rem"]
    # Realistic amplitudes: delta of NREM is a few hundred uV peak, i.e. ~100-300 uV rms.
    assert 50.0 < np.sqrt(delta["nrem"]) < 400.0
    assert 10.0 < np.sqrt(theta["wake"]) < 150.0


def test_nrem_has_spindle_bursts(sleep_run):
    """The 11-14 Hz envelope is bursty in NREM (spindles), not in wake or REM."""
    sim, data, _ = sleep_run
    fs = sim.config.fs_hz
    sos = signal.butter(4, [11.0, 14.0], btype="bandpass", fs=fs, output="sos")
    envelope = np.abs(signal.hilbert(signal.sosfiltfilt(sos, data[:, 0].astype(np.float64))))
    burstiness = {}
    for state in sim.classes:
        trim = round(fs)  # keep crossfades out
        e = np.concatenate(
            [
                envelope[a + trim : b - trim]
                for a, b, s in _segments(sim, len(data))
                if s == state and b - a > 3 * trim
            ]
        )
        burstiness[state] = np.percentile(e, 95) / np.median(e)
    assert burstiness["nrem"] > 1.5 * burstiness["rem"]
    assert burstiness["nrem"] > 1.5 * burstiness["wake"]


def test_seizure_spectra(seizure_run):
    sim, data, _ = seizure_run
    freqs, psd = _state_psd(data, sim, sim.config.fs_hz)
    assert set(psd) == {"normal", "seizure"}
    swd = {s: _band(freqs, p, 6.0, 10.0) for s, p in psd.items()}
    hfo = {s: _band(freqs, p, 250.0, 500.0) for s, p in psd.items()}
    assert swd["seizure"] > 5.0 * swd["normal"]
    assert hfo["seizure"] > 4.0 * hfo["normal"]
    # Normal background keeps a mild theta: present, but far below delta + theta of seizure.
    assert swd["normal"] > 50.0


def test_seizure_evolves(seizure_run):
    """Spike-wave frequency drifts down and amplitude ramps up within each seizure."""
    sim, data, _ = seizure_run
    fs = sim.config.fs_hz
    x = data[:, 0].astype(np.float64)
    seizures = [(a, b) for a, b, s in _segments(sim, len(data)) if s == "seizure" and b < len(data)]
    assert seizures
    for start, stop in seizures:
        early = x[start + round(fs) : start + round(4 * fs)]
        late = x[stop - round(4 * fs) : stop - round(fs)]

        def peak_hz(seg: np.ndarray) -> float:
            f, p = signal.welch(seg, fs=fs, nperseg=round(2 * fs))
            band = (f > 4.0) & (f < 12.0)
            return float(f[band][np.argmax(p[band])])

        assert 8.0 <= peak_hz(early) <= 10.0
        assert 6.0 <= peak_hz(late) <= 8.0
        assert late.std() > early.std()


@pytest.mark.parametrize("line_hz", [50.0, 60.0])
def test_line_noise_peak(line_hz):
    fs = 32000.0
    sim = LfpSimulator(SimulatorConfig("sleep", n_channels=4, fs_hz=fs, seed=3, line_hz=line_hz))
    data, _ = sim.generate(round(4 * fs))
    freqs, psd = signal.welch(data, fs=fs, nperseg=round(fs), axis=0)
    psd = psd.mean(axis=1)

    def at(f_hz: float) -> float:
        return float(psd[np.argmin(np.abs(freqs - f_hz))])

    neighbourhood = (np.abs(freqs - line_hz) > 3) & (np.abs(freqs - line_hz) < 15)
    floor = float(np.median(psd[neighbourhood]))
    assert at(line_hz) > 20.0 * floor
    assert at(3.0 * line_hz) > 3.0 * float(
        np.median(psd[(np.abs(freqs - 3 * line_hz) > 3) & (np.abs(freqs - 3 * line_hz) < 15)])
    )
    other = 60.0 if line_hz == 50.0 else 50.0
    assert at(other) < 3.0 * floor


def test_line_noise_disabled():
    fs = 2000.0
    sim = LfpSimulator(SimulatorConfig("seizure", n_channels=2, fs_hz=fs, seed=3, line_hz=0.0))
    data, _ = sim.generate(round(8 * fs))
    freqs, psd = signal.welch(data, fs=fs, nperseg=round(fs), axis=0)
    psd = psd.mean(axis=1)
    near = (np.abs(freqs - 50.0) > 3) & (np.abs(freqs - 50.0) < 15)
    assert psd[freqs == 50.0][0] < 3.0 * np.median(psd[near])


# ------------------------------------------------------------------------------------------
# Output format, amplitude, continuity, determinism
# ------------------------------------------------------------------------------------------
def test_output_format_at_full_rate():
    sim = LfpSimulator(SimulatorConfig("seizure"))  # 64 channels at 32 kHz
    data, labels = sim.generate(16000)
    assert data.shape == (16000, 64)
    assert data.dtype == np.float32 and data.flags.c_contiguous
    assert labels.shape == (16000,) and labels.dtype == np.int8
    assert np.isfinite(data).all()
    rms = data.std(axis=0)
    assert np.all((rms > 10.0) & (rms < 500.0)), rms  # tens of uV of background
    assert np.all(labels == 0)  # starts in "normal"
    assert sim.channel_labels[:2] == ("ch000", "ch001") and len(sim.channel_labels) == 64
    # Channels share latent sources, but not identically.
    corr = np.corrcoef(data[:, :8].T)
    off_diag = corr[~np.eye(8, dtype=bool)]
    assert off_diag.min() > 0.2 and off_diag.max() < 0.999
    empty, empty_labels = sim.generate(0)
    assert empty.shape == (0, 64) and empty.dtype == np.float32 and empty_labels.shape == (0,)
    assert sim.n_generated == 16000


@pytest.mark.parametrize("scenario", sorted(SCENARIO_CLASSES))
def test_split_calls_match_one_call(scenario):
    # Short states so that a crossfade and a state change fall inside the split region.
    kw = {f"{c}_s": (1.2, 1.5) for c in SCENARIO_CLASSES[scenario]}
    cfg = SimulatorConfig(scenario, n_channels=5, fs_hz=1000.0, seed=7, **kw)
    split = LfpSimulator(cfg)
    parts = [split.generate(k) for k in (1000, 2345, 1, 0, 654)]
    whole = LfpSimulator(cfg)
    data, labels = whole.generate(4000)
    np.testing.assert_allclose(np.vstack([p[0] for p in parts]), data, rtol=1e-6, atol=1e-5)
    np.testing.assert_array_equal(np.concatenate([p[1] for p in parts]), labels)
    assert split.state_changes() == whole.state_changes()
    assert len(whole.state_changes()) >= 3


def test_seeds_differ_and_repeat():
    cfg = SimulatorConfig("sleep", n_channels=3, fs_hz=1000.0, seed=1)
    a, _ = LfpSimulator(cfg).generate(2000)
    b, _ = LfpSimulator(cfg).generate(2000)
    c, _ = LfpSimulator(SimulatorConfig("sleep", n_channels=3, fs_hz=1000.0, seed=2)).generate(2000)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_no_startup_transient():
    """Filters start in steady state: the first second is as strong as later ones."""
    fs = 1000.0
    sim = LfpSimulator(SimulatorConfig("sleep", n_channels=2, fs_hz=fs, seed=4))
    data, _ = sim.generate(round(10 * fs))
    first = data[: round(fs)].std()
    rest = data[round(fs) :].std()
    assert 0.5 * rest < first < 2.0 * rest


# ------------------------------------------------------------------------------------------
# Labels and schedule
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("scenario", sorted(SCENARIO_CLASSES))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_labels_follow_state_changes(scenario, seed):
    fs = 500.0
    cfg = SimulatorConfig(scenario, n_channels=1, fs_hz=fs, seed=seed)
    sim = LfpSimulator(cfg)
    n = round(180 * fs)  # 3 minutes at default durations
    _, labels = sim.generate(n)
    changes = sim.state_changes()
    assert changes[0] == (0, cfg.classes[0])

    expected = np.empty(n, dtype=np.int8)
    for start, stop, state in _segments(sim, n):
        expected[start:stop] = cfg.classes.index(state)
    np.testing.assert_array_equal(labels, expected)

    # All classes visited, in the scenario's cycle order, with configured durations.
    names = [state for _, state in changes]
    assert set(names) == set(cfg.classes)
    k = len(cfg.classes)
    order = [cfg.classes.index(name) for name in names]
    assert all(b == (a + 1) % k for a, b in zip(order, order[1:]))
    for start, stop, state in _segments(sim, n)[:-1]:  # the last one is still running
        lo, hi = cfg.durations_s(state)
        assert round(lo * fs) <= stop - start <= round(hi * fs)
    assert all(start < n for start, _ in changes)


def test_state_changes_before_generating():
    sim = LfpSimulator(SimulatorConfig("sleep", n_channels=1, fs_hz=100.0))
    assert sim.state_changes() == [(0, "wake")]
    assert sim.classes == ("wake", "nrem", "rem")


@pytest.mark.parametrize("scenario", sorted(SCENARIO_CLASSES))
def test_crossfade_is_centred_on_label_switch(scenario):
    """Changing only transition_s changes the signal only within +-transition_s/2 of a switch.

    Both runs draw identical noise and schedules (same seed), so their difference isolates
    the crossfade: it must vanish away from the label switches and be present on both sides.
    """
    fs = 500.0
    transition_s = 1.0
    kw = {f"{c}_s": (3.0, 4.0) for c in SCENARIO_CLASSES[scenario]}
    cfg = SimulatorConfig(scenario, n_channels=2, fs_hz=fs, seed=5, transition_s=0.0, **kw)
    abrupt = LfpSimulator(cfg)
    faded = LfpSimulator(dataclasses.replace(cfg, transition_s=transition_s))
    n = round(30 * fs)
    x0, labels0 = abrupt.generate(n)
    x1, labels1 = faded.generate(n)
    np.testing.assert_array_equal(labels0, labels1)
    switches = [start for start, _ in faded.state_changes()[1:]]
    assert len(switches) >= 5

    diff = np.abs(x1.astype(np.float64) - x0).max(axis=1)
    half = round(transition_s * fs / 2)
    inside = np.zeros(n, dtype=bool)
    for s in switches:
        inside[max(0, s - half) : s + half + 1] = True
        before = diff[s - half : s].mean()
        after = diff[s : s + half].mean()
        assert before > 1.0 and after > 1.0  # uV: both halves of the fade differ
    np.testing.assert_array_equal(diff[~inside], 0.0)


# ------------------------------------------------------------------------------------------
# Configuration
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(scenario="dream"), r"scenario must be one of \['seizure', 'sleep'\], got 'dream'"),
        (dict(scenario="sleep", n_channels=0), r"n_channels must be >= 1, got 0"),
        (dict(scenario="sleep", fs_hz=0.0), r"fs_hz must be > 0, got 0"),
        (dict(scenario="sleep", fs_hz=-32000.0), r"fs_hz must be > 0"),
        (dict(scenario="sleep", fs_hz=float("nan")), r"fs_hz must be finite"),
        (dict(scenario="sleep", seed=-1), r"seed must be >= 0"),
        (dict(scenario="sleep", line_hz=-50.0), r"line_hz must be >= 0"),
        (dict(scenario="sleep", wake_s=(10.0, 5.0)), r"wake_s must satisfy 0 < min_s <= max_s"),
        (dict(scenario="sleep", rem_s=(3.0,)), r"rem_s must be a \(min_s, max_s\) pair"),
        (dict(scenario="seizure", seizure_s=(0.5, 2.0)), r"seizure_s=.*transition_s=0.8"),
    ],
)
def test_bad_config_raises_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SimulatorConfig(**kwargs)


def test_bad_types_raise_type_error():
    with pytest.raises(TypeError, match="n_channels must be an int"):
        SimulatorConfig("sleep", n_channels=4.0)
    with pytest.raises(TypeError, match="config must be a SimulatorConfig"):
        LfpSimulator({"scenario": "sleep"})
    sim = LfpSimulator(SimulatorConfig("sleep", n_channels=1, fs_hz=100.0))
    with pytest.raises(TypeError, match="n_samples must be an int"):
        sim.generate(10.0)
    with pytest.raises(ValueError, match="n_samples must be >= 0, got -1"):
        sim.generate(-1)


def test_config_round_trips_through_json():
    cfg = SimulatorConfig("seizure", n_channels=np.int64(8), fs_hz=2000, seizure_s=[5, 9])
    assert cfg.n_channels == 8 and isinstance(cfg.n_channels, int)
    assert cfg.seizure_s == (5.0, 9.0)
    again = SimulatorConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg
    with pytest.raises(ValueError, match="unknown simulator config keys"):
        SimulatorConfig.from_dict({**cfg.to_dict(), "colour": "blue"})


def test_low_sampling_rate_drops_out_of_band_sources():
    """At 250 Hz the EMG and fast-ripple bands are clipped or dropped, without errors."""
    sim = LfpSimulator(SimulatorConfig("seizure", n_channels=2, fs_hz=250.0, seed=0))
    data, _ = sim.generate(2500)
    assert np.isfinite(data).all() and data.std() > 1.0


# ------------------------------------------------------------------------------------------
# LSL source
# ------------------------------------------------------------------------------------------
def test_lsl_source_rejects_bad_arguments():
    cfg = SimulatorConfig("sleep", n_channels=1, fs_hz=100.0)
    with pytest.raises(ValueError, match="chunk_samples must be >= 1, got 0"):
        run_lsl_source(cfg, "x", chunk_samples=0)
    with pytest.raises(ValueError, match="name must be a non-empty string"):
        run_lsl_source(cfg, "")
    with pytest.raises(ValueError, match="duration_s must be None or a finite number >= 0"):
        run_lsl_source(cfg, "x", duration_s=-1.0)


def _pull_all(inlet, n_channels: int, thread: threading.Thread, deadline: float):
    """Pull chunks into a preallocated numpy buffer until the source has finished."""
    buf = np.empty((1024, n_channels), dtype=np.float32)
    chunks, stamps = [], []
    while time.monotonic() < deadline:
        _, ts = inlet.pull_chunk(timeout=0.2, max_samples=len(buf), dest_obj=buf)
        if ts:
            chunks.append(buf[: len(ts)].copy())
            stamps.extend(ts)
        elif not thread.is_alive():
            break
    return np.vstack(chunks) if chunks else np.empty((0, n_channels), np.float32), np.array(stamps)


@pytest.mark.lsl
@pytest.mark.timeout(60)
def test_lsl_source_over_loopback(caplog):
    pylsl = pytest.importorskip("pylsl")
    name = f"rtdecode-test-sim-{os.getpid()}"
    fs, n_ch, duration_s = 2000.0, 8, 2.0
    cfg = SimulatorConfig("sleep", n_channels=n_ch, fs_hz=fs, seed=21)
    result: dict[str, object] = {}
    states: list[tuple[str, float]] = []

    def source() -> None:
        try:
            result["pushed"] = run_lsl_source(
                cfg,
                name,
                duration_s=duration_s,
                chunk_samples=32,
                wait_for_consumers_s=20.0,
                on_state_change=lambda state, ts: states.append((state, ts)),
            )
        except BaseException as exc:  # surfaced below, not swallowed in the thread
            result["error"] = exc

    caplog.set_level(logging.INFO, logger="rtdecode")
    thread = threading.Thread(target=source, name="lsl-source", daemon=True)
    thread.start()
    try:
        found = pylsl.resolve_byprop("name", name, 1, 15.0)
        found_truth = pylsl.resolve_byprop("name", truth_stream_name(name), 1, 15.0)
        assert found and found_truth, "streams not found on loopback"
        truth = pylsl.StreamInlet(found_truth[0])
        truth.open_stream(10.0)
        inlet = pylsl.StreamInlet(found[0], max_chunklen=32)
        inlet.open_stream(10.0)

        info = inlet.info(10.0)
        assert info.name() == name and info.type() == "EEG"
        assert info.channel_count() == n_ch
        assert info.nominal_srate() == fs
        assert info.channel_format() == pylsl.cf_float32
        assert name in info.source_id()
        ch = info.desc().child("channels").child("channel")
        assert ch.child_value("label") == "ch000"
        assert ch.child_value("unit") == "microvolts"
        assert ch.child_value("type") == "LFP"
        assert name in truth.info(10.0).source_id()

        data, stamps = _pull_all(inlet, n_ch, thread, time.monotonic() + 30.0)
        marker, marker_ts = truth.pull_sample(timeout=5.0)
    finally:
        thread.join(30.0)
    assert not thread.is_alive()
    if "error" in result:
        raise result["error"]

    n_expected = round(duration_s * fs)
    assert result["pushed"] == n_expected
    assert len(data) == n_expected
    # The stream carries exactly the simulator's output, in order.
    reference, _ = LfpSimulator(cfg).generate(n_expected)
    np.testing.assert_array_equal(data, reference)
    # Timestamps: 1/fs apart within a chunk and on a real-time line overall. Chunks carry
    # their push time, so a late push may overlap the previous chunk by the lateness; only
    # the jitter is bounded here, not monotonicity.
    steps = np.diff(stamps)
    assert np.median(steps) == pytest.approx(1.0 / fs, rel=1e-3)
    line = stamps[0] + np.arange(len(stamps)) / fs
    assert np.abs(stamps - line).max() < 0.1
    assert stamps[-1] - stamps[0] == pytest.approx(duration_s, abs=0.1)

    assert marker == ["wake"]
    assert marker_ts == pytest.approx(stamps[0], abs=1e-6)
    assert states and states[0][0] == "wake"
    assert states[0][1] == pytest.approx(marker_ts, abs=1e-9)
    assert any("true state: wake" in r.getMessage() for r in caplog.records)


@pytest.mark.lsl
@pytest.mark.timeout(30)
def test_lsl_source_stops_on_event():
    cfg = SimulatorConfig("seizure", n_channels=2, fs_hz=1000.0, seed=0)
    stop = threading.Event()
    result: dict[str, int] = {}
    thread = threading.Thread(
        target=lambda: result.setdefault(
            "pushed", run_lsl_source(cfg, f"rtdecode-test-stop-{os.getpid()}", stop_event=stop)
        ),
        daemon=True,
    )
    thread.start()
    time.sleep(0.5)
    generating = [t for t in threading.enumerate() if t.name == "rtdecode-sim-generate"]
    policy = (
        os.sched_getscheduler(generating[0].native_id)
        if generating and hasattr(os, "SCHED_IDLE")
        else None
    )
    stop.set()
    thread.join(10.0)
    assert not thread.is_alive()
    # the generating thread yields to every other thread of the machine (its bursts held up
    # a decoder's threads woken on its CPU)
    assert len(generating) == 1
    if hasattr(os, "SCHED_IDLE"):
        assert policy == os.SCHED_IDLE
    # Paced at real time: about 0.5 s worth of samples, not a burst.
    assert 100 <= result["pushed"] <= 5000
    # the thread generating blocks ahead (blocked on its full queue by then) ended with it
    assert not [t for t in threading.enumerate() if t.name == "rtdecode-sim-generate"]
