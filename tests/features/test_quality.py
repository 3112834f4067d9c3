"""Per-window channel checks: NaN, flat, railed and artefact channels are found, their features
replaced, and clean signals (simulated seizures and sleep, the real recordings) are never flagged."""

from __future__ import annotations

import numpy as np
import pytest

from rtdecode.config import EventHysteresis, FeatureConfig
from rtdecode.decoding.smoother import QualityGate, make_smoother
from rtdecode.features.quality import ARTEFACT, FLAT, NONFINITE, RAILED, QualityConfig
from rtdecode.features.streaming import StreamingFeatures, iter_features
from rtdecode.offline.recordings import open_recording
from rtdecode.simulator.faults import ChannelFault
from rtdecode.simulator.generator import LfpSimulator, SimulatorConfig
from rtdecode.streams import BAD_SIGNAL

FS = 2000.0
N_CH = 8


def _simulated(
    scenario: str, seconds: float, n_channels: int = N_CH, fs: float = FS, faults=()
) -> np.ndarray:
    sim = LfpSimulator(SimulatorConfig(scenario=scenario, n_channels=n_channels, fs_hz=fs, seed=3))
    data, _ = sim.generate(int(seconds * fs))
    for fault in faults:
        fault.apply(data, 0, fs)
    return data


def _rows(data: np.ndarray, fs: float = FS, chunk: int = 777):
    ext = StreamingFeatures(FeatureConfig(fs_hz=fs), data.shape[1])
    rows = []
    for i in range(0, data.shape[0], chunk):
        rows += ext.push(np.ascontiguousarray(data[i : i + chunk], dtype=np.float32))
    return rows


@pytest.mark.parametrize("scenario", ["seizure", "sleep"])
def test_clean_simulated_signal_is_never_flagged(scenario):
    # 120 s covers several seizures (and their 5-10x amplitude) or sleep stages
    rows = _rows(_simulated(scenario, 120.0))
    assert len(rows) > 1000
    assert all(r.quality.good_fraction == 1.0 for r in rows)


@pytest.mark.parametrize(
    "kind,flag", [("nan", NONFINITE), ("flat", FLAT), ("rail", RAILED), ("artefact", ARTEFACT)]
)
def test_each_fault_is_flagged_on_its_channel_and_only_while_in_the_window(kind, flag):
    fault = ChannelFault(channel=3, kind=kind, start_s=20.0, end_s=23.0)
    data = _simulated("sleep", 30.0, faults=[fault])
    rows = _rows(data)
    window_s = 2.0
    for r in rows:
        end_s = r.end_sample / FS
        overlaps = end_s > fault.start_s and end_s - window_s < fault.end_s
        # the artefact's 3 Hz swing needs a few samples to exceed the threshold; the rail, a few
        # percent of the window clipped: allow the window edges 0.1 s either way
        near_edge = abs(end_s - fault.start_s) <= 0.1 or abs(end_s - window_s - fault.end_s) <= 0.1
        assert np.isfinite(r.features).all()
        if overlaps and not near_edge:
            assert r.quality.flags[3] & flag, (kind, end_s, r.quality.flags)
            assert np.count_nonzero(r.quality.flags) == 1
            assert r.quality.good_fraction == pytest.approx(7 / 8)
            # the bad channel's features are the median of the good channels'
            per = r.features.reshape(N_CH, -1)
            np.testing.assert_allclose(per[3], np.median(np.delete(per, 3, axis=0), axis=0))
        elif not overlaps and not near_edge:
            assert r.quality.good_fraction == 1.0, (kind, end_s, r.quality.flags)


def test_bad_channels_named_with_reasons():
    data = _simulated("sleep", 8.0, faults=[ChannelFault(1, "nan"), ChannelFault(5, "flat")])
    q = _rows(data)[-1].quality
    assert q.bad_channels([f"ch{i}" for i in range(N_CH)]) == {"ch1": "nonfinite", "ch5": "flat"}


def test_all_channels_bad_gives_finite_features():
    data = np.full((int(6 * FS), 4), np.nan, dtype=np.float32)
    rows = _rows(data)
    assert rows and all(r.quality.good_fraction == 0.0 for r in rows)
    assert all(np.isfinite(r.features).all() for r in rows)


def test_live_chunking_gives_the_same_verdicts_as_offline():
    faults = [ChannelFault(2, "rail", 5.0, 9.0), ChannelFault(6, "nan", 7.0, 7.5)]
    data = _simulated("seizure", 14.0, faults=faults)
    a, b = _rows(data, chunk=65536), _rows(data, chunk=13)
    assert [r.end_sample for r in a] == [r.end_sample for r in b]
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.quality.flags, y.quality.flags)
        np.testing.assert_array_equal(x.features, y.features)


def test_quality_gate_holds_then_reannounces():
    smoother = QualityGate(
        make_smoother(EventHysteresis(event_class="seizure"), ("normal", "seizure"), 0.1), 0.5
    )
    p = np.array([0.9, 0.1], np.float32)
    assert smoother.update(p, 1.0) == ("normal", True)
    assert smoother.update(p, 1.0) == ("normal", False)
    assert smoother.update(p, 0.4) == (BAD_SIGNAL, True)
    assert smoother.update(p, 0.2) == (BAD_SIGNAL, False)
    assert smoother.state == BAD_SIGNAL
    assert smoother.update(p, 0.9) == ("normal", True)  # announced again


def test_quality_config_validation():
    with pytest.raises(ValueError, match="artefact_factor"):
        QualityConfig(artefact_factor=1.0)
    with pytest.raises(ValueError, match="min_good_fraction"):
        QualityConfig(min_good_fraction=0.0)
    with pytest.raises(ValueError, match="CH:KIND"):
        ChannelFault.parse("3-nan")
    assert ChannelFault.parse("3:NaN@5-8") == ChannelFault(3, "nan", 5.0, 8.0)


@pytest.mark.data
def test_real_recordings_flag_only_true_saturation(shared_data):
    """The rat recording (27 seizures) has no bad window; DREAMS excerpt 1 is clipped at its EDF
    digital limits around 126-143 s, and exactly the windows with samples stuck there are
    flagged, as railed."""
    rat = open_recording(shared_data / "rat-seizure" / "rat_seizure_dev.edf")
    rows = list(
        iter_features(rat.chunks(65536), FeatureConfig(fs_hz=rat.fs_hz, hop_s=0.5), rat.n_channels)
    )
    assert len(rows) > 1900 and all(r.quality.good_fraction == 1.0 for r in rows)

    eeg = open_recording(shared_data / "dreams" / "excerpt1.edf")
    x = np.concatenate(list(eeg.chunks(65536)))[:, 0]
    config = FeatureConfig(fs_hz=eeg.fs_hz, hop_s=0.5)
    rows = list(iter_features([x[:, None]], config, 1))
    window = config.window_samples
    at_rail = (x[1:] == x[:-1]) & ((x[1:] == x.max()) | (x[1:] == x.min()))
    flagged, clipped = [], []
    for r in rows:
        flagged.append(r.quality.good_fraction < 1.0)
        clipped.append(at_rail[r.end_sample - window : r.end_sample - 1].sum() >= 0.02 * window)
        if flagged[-1]:
            assert r.quality.bad_channels() == {"0": "railed"}
    assert sum(flagged) >= 20 and flagged == clipped


def test_compiled_fast_path_agrees_with_the_full_verdict():
    """The one-pass check of the common case (all channels fine) and numpy's full verdict give
    the same flags and move the typical values the same way, window after window, including
    windows where a channel's size jumps (where the fast path must hand over)."""
    from rtdecode.features._quality import summarise_bins
    from rtdecode.features.quality import ChannelQuality

    n_ch, window_a, hop_a = 6, 400, 100
    fast = ChannelQuality(QualityConfig(), n_ch, window_a, hop_a, 0.1)
    full = ChannelQuality(QualityConfig(), n_ch, window_a, hop_a, 0.1)
    rng = np.random.default_rng(11)
    store = rng.standard_normal((n_ch, 40 * hop_a)).astype(np.float32)
    store[2, 20 * hop_a : 22 * hop_a] *= 50.0  # an artefact passing through channel 2
    handed_over = 0
    for end_a in range(window_a, store.shape[1] + 1, hop_a):
        got = fast.window(store, end_a, end_a)
        # the same summaries, then the full verdict whatever the fast path would say
        g = full._bin
        start = max(full._done, end_a - window_a)
        summarise_bins(
            store,
            start,
            (end_a - start) // g,
            g,
            full._min_run,
            start // g,
            full._min,
            full._max,
            full._nonfinite.view(np.uint8),
            full._repeats,
            full._at_max,
            full._at_min,
        )
        full._done = end_a
        want = full._verdict()
        handed_over += got.good_fraction < 1.0
        np.testing.assert_array_equal(got.flags, want.flags)
        np.testing.assert_allclose(fast._log_typical, full._log_typical, rtol=0, atol=1e-12)
        np.testing.assert_array_equal(fast._n_typical, full._n_typical)
    assert handed_over > 0  # the artefact windows went through the full verdict
