"""Band power of known signals, live == offline, and the decimated path vs a full-rate FFT."""

import os
import threading
import time

import numpy as np
import pytest
import scipy.signal

from rtdecode.config import Band, FeatureConfig, Ratio
from rtdecode.features._bandpower import join_row
from rtdecode.features.quality import NONFINITE
from rtdecode.features.streaming import (
    StreamingFeatures,
    design_decimation_filter,
    extract_features,
)


def _sines(fs, seconds, parts):
    t = np.arange(int(fs * seconds)) / fs
    return np.stack([a * np.sin(2 * np.pi * f * t + 0.3) for f, a in parts], axis=1).astype(
        np.float32
    )


def _column(config, names, channel, feature):
    return config.feature_names(names).index(f"{channel}:{feature}")


@pytest.mark.parametrize("fs, hop_s", [(32000.0, 0.1), (1000.0, 0.1), (512.0, 0.125)])
def test_sinusoid_power_lands_in_its_band(fs, hop_s):
    config = FeatureConfig(fs_hz=fs, hop_s=hop_s)
    parts = [(7.5, 10.0), (2.5, 3.0), (40.0, 1.0)]  # theta, delta, gamma
    x = _sines(fs, 3.0, parts)
    ends, feats = extract_features(x, config)
    names = ["th", "de", "ga"]
    row = feats[-1]
    # A**2 / 2 in the band that holds the sinusoid (Hann leakage stays inside the band)
    assert row[_column(config, names, "th", "theta")] == pytest.approx(np.log10(50.0), abs=2e-3)
    assert row[_column(config, names, "de", "delta")] == pytest.approx(np.log10(4.5), abs=2e-3)
    assert row[_column(config, names, "ga", "gamma")] == pytest.approx(np.log10(0.5), abs=2e-3)
    # and ~nothing elsewhere (>= 5 orders of magnitude below)
    assert row[_column(config, names, "th", "delta")] < np.log10(50.0) - 5
    ratio = row[_column(config, names, "th", "theta_delta")]
    assert ratio == pytest.approx(
        row[_column(config, names, "th", "theta")] - row[_column(config, names, "th", "delta")]
    )


def test_high_band_survives_decimation_and_alias_is_rejected():
    fs = 32000.0
    config = FeatureConfig(fs_hz=fs)
    assert config.decimation == 16 and config.analysis_fs_hz == 2000.0
    # 300 Hz sits in fast_ripple; 1900 Hz would alias to 100 Hz (high_gamma) without the filter.
    x = _sines(fs, 3.0, [(300.0, 4.0), (1900.0, 100.0)])
    _, feats = extract_features(x, config)
    names = ["fr", "alias"]
    row = feats[-1]
    assert row[_column(config, names, "fr", "fast_ripple")] == pytest.approx(
        np.log10(8.0), abs=5e-3
    )
    # 100 uV at 1900 Hz would give log10(5000) = 3.7 in high_gamma if aliased; >= 80 dB down
    assert row[_column(config, names, "alias", "high_gamma")] < np.log10(5000.0) - 7.5


def test_decision_clock_counts_samples():
    config = FeatureConfig(fs_hz=1000.0, window_s=1.0, hop_s=0.25)
    ends, feats = extract_features(np.zeros((3000, 2), np.float32), config)
    np.testing.assert_array_equal(ends, [1000, 1250, 1500, 1750, 2000, 2250, 2500, 2750, 3000])
    assert feats.shape == (9, 2 * config.features_per_channel)
    assert np.isfinite(feats).all()  # flat input: floored power, finite log


def test_live_chunks_equal_offline_bitwise():
    """The streaming path fed in random chunk sizes gives exactly the offline features."""
    fs = 32000.0
    config = FeatureConfig(fs_hz=fs)
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((int(fs * 3.3), 6)) * 30).astype(np.float32)
    ends, offline = extract_features(x, config)
    live = StreamingFeatures(config, 6)
    rows = []
    pos = 0
    while pos < len(x):
        n = int(rng.integers(1, 7000))
        rows += live.push(x[pos : pos + n])
        pos += n
    assert [r.end_sample for r in rows] == ends.tolist()
    np.testing.assert_array_equal(np.stack([r.features for r in rows]), offline)


def test_decimated_features_close_to_full_rate_fft():
    """Tolerance against full-rate references, 0.02 log10 units (~5 %) per band: a Hann
    periodogram of the window for the slow bands, the mean of its hop-long pieces' (linear trend
    removed) for the fast ones."""
    fs = 32000.0
    config = FeatureConfig(fs_hz=fs)
    short = config.short_window_bands
    rng = np.random.default_rng(7)
    n = int(fs * 2.5)
    white = rng.standard_normal((n, 2))
    pink = scipy.signal.lfilter([1.0], [1.0, -0.995], white, axis=0)  # 1/f^2-like LFP
    x = (pink * 5 + white).astype(np.float32)
    ends, feats = extract_features(x, config)
    end = int(ends[-1])
    window = x[end - config.window_samples : end].astype(np.float64)
    whole = scipy.signal.periodogram(window, fs=fs, window="hann", axis=0)
    pieces = scipy.signal.welch(
        window,
        fs=fs,
        window="hann",
        nperseg=config.hop_samples,
        noverlap=0,
        detrend="linear",
        axis=0,
    )
    for b, band in enumerate(config.bands):
        freqs, psd = pieces if b in short else whole
        sel = (freqs >= band.lo_hz) & (freqs < band.hi_hz)
        ref = np.log10(psd[sel].sum(axis=0) * (freqs[1] - freqs[0]))
        for ch in range(2):
            got = feats[-1, ch * config.features_per_channel + b]
            assert got == pytest.approx(ref[ch], abs=0.02), band.name


@pytest.mark.parametrize("normalisation", ["none", "relative"])
def test_short_windows_give_the_whole_windows_powers(normalisation):
    """The fast bands from hop-long pieces, the slow ones from a second decimation: the same
    powers as one FFT of the whole window at the analysis rate, within 0.01 log10 units (~2 %).
    (On noise the two are different estimates of one power: test_decimated_features_...)"""
    fs = 32000.0
    split = FeatureConfig(fs_hz=fs, normalisation=normalisation)
    whole = FeatureConfig(fs_hz=fs, normalisation=normalisation, short_windows_from_hz=None)
    assert [split.bands[j].name for j in split.short_window_bands] == [
        "high_gamma",
        "ripple",
        "fast_ripple",
    ]
    assert whole.short_window_bands == () and whole.long_window_config() is whole
    assert split.long_window_config().analysis_fs_hz == 400.0  # 2 kHz decimated again by 5
    # a sinusoid in every band, the slow ones the strongest, as in LFP; a DC offset, as an
    # unfiltered electrode has; a little noise
    tones = [(2.0, 40.0), (7.0, 20.0), (12.0, 10.0), (20.0, 8.0), (60.0, 5.0)]
    tones += [(110.0, 3.0), (200.0, 2.0), (400.0, 1.0)]
    x = _sines(fs, 4.0, tones).sum(axis=1, keepdims=True) + 300.0
    x = x + 0.01 * np.random.default_rng(11).standard_normal((x.shape[0], 3))
    x = x.astype(np.float32)
    ends_split, got = extract_features(x, split)
    ends_whole, want = extract_features(x, whole)
    np.testing.assert_array_equal(ends_split, ends_whole)
    np.testing.assert_allclose(got, want, atol=0.01)
    if normalisation == "relative":  # the relative powers of each channel add up to one
        per_channel = got[-1].reshape(3, split.features_per_channel)[:, : len(split.bands)]
        np.testing.assert_allclose((10.0 ** per_channel.astype(np.float64)).sum(axis=1), 1, 1e-5)


def test_short_windows_apply_only_where_they_can():
    # a window that is not a whole number of hops, or no band on one side: the whole window
    assert FeatureConfig(fs_hz=32000.0, window_s=1.05, hop_s=0.1).short_window_bands == ()
    # EEG at 250 and 512 Hz: no rate to shed for the slow bands (from 1 kHz there is)
    assert FeatureConfig(fs_hz=250.0).short_window_bands == ()
    assert FeatureConfig(fs_hz=512.0, hop_s=0.125).short_window_bands == ()
    assert FeatureConfig(fs_hz=1000.0).long_window_config().decimation == 2
    # a hop of more than 1024 analysis samples (pieces are a matrix product: short ones only)
    assert FeatureConfig(fs_hz=32000.0, window_s=2.0, hop_s=1.0).short_window_bands == ()
    assert FeatureConfig(fs_hz=32000.0, window_s=1.0, hop_s=0.5).short_window_bands != ()
    high = (Band("ripple", 150.0, 250.0), Band("fast_ripple", 250.0, 500.0))
    assert FeatureConfig(fs_hz=32000.0, bands=high, ratios=()).short_window_bands == ()
    # a model saved before the option computed every band from the whole window
    saved = FeatureConfig(fs_hz=32000.0).to_dict()
    del saved["short_windows_from_hz"]
    assert FeatureConfig.from_dict(saved).short_windows_from_hz is None
    config = FeatureConfig(fs_hz=32000.0, short_windows_from_hz=100.0)
    assert FeatureConfig.from_dict(config.to_dict()) == config
    assert [config.bands[j].name for j in config.short_window_bands] == ["ripple", "fast_ripple"]


def test_the_slow_bands_second_decimation_stays_short_and_late_by_at_most_a_quarter_hop():
    """A slow top edge of 5 Hz with a 0.2 s window asked for x100 (4 samples: refused when the
    features were built; 0.3 s late)."""
    bands = (Band("low", 0.0, 5.0), Band("high", 100.0, 500.0))
    config = FeatureConfig(fs_hz=2000.0, window_s=0.2, hop_s=0.1, bands=bands, ratios=())
    slow = config.long_window_config()
    taps = slow.decimation * config.fir_taps_per_phase
    assert (taps - 1) / 2 <= config.hop_samples_analysis / 4
    assert slow.window_samples_analysis >= 64
    _, rows = extract_features(_sines(2000.0, 2.0, [(3.0, 10.0), (200.0, 10.0)]), config)
    assert rows.shape[0] > 0 and np.isfinite(rows).all()
    # the defaults at 32 kHz keep x5 to 400 Hz
    assert FeatureConfig(fs_hz=32000.0).long_window_config().decimation == 5


def test_config_drops_bands_above_nyquist_and_their_ratios():
    config = FeatureConfig(fs_hz=100.0, window_s=2.0, hop_s=0.5)
    assert [b.name for b in config.bands] == ["delta", "theta", "sigma", "beta", "gamma"]
    assert config.bands[-1].hi_hz == 50.0  # clipped at Nyquist
    assert [r.name for r in config.ratios] == ["theta_delta", "sigma_delta", "gamma_delta"]
    assert FeatureConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(fs_hz=-1.0), "fs_hz"),
        (dict(fs_hz=1000.0, hop_s=0.0001), "whole number of samples"),
        (dict(fs_hz=1000.0, hop_s=3.0), "must not exceed"),
        (dict(fs_hz=1000.0, bands=(Band("a", 1, 4), Band("a", 4, 8))), "unique"),
        (dict(fs_hz=1000.0, ratios=(Ratio("x", "delta", "nope"),)), "unknown band"),
        (dict(fs_hz=32000.0, decimation=7), "divide the hop"),
        (dict(fs_hz=32000.0, short_windows_from_hz=0.0), "short_windows_from_hz"),
    ],
)
def test_bad_configs_say_what_is_wrong(kwargs, message):
    with pytest.raises(ValueError, match=message):
        FeatureConfig(**kwargs)


def test_filter_is_unity_gain_lowpass():
    config = FeatureConfig(fs_hz=32000.0)
    taps = design_decimation_filter(config).astype(np.float64)
    assert taps.size == 16 * 12
    assert taps.sum() == pytest.approx(1.0, abs=1e-5)
    w, h = scipy.signal.freqz(taps, worN=[500.0, 1500.0, 4000.0], fs=32000.0)
    gain_db = 20 * np.log10(np.abs(h))
    assert abs(gain_db[0]) < 0.1  # top band edge passes
    assert gain_db[1] < -60 and gain_db[2] < -70  # what would alias into the bands is stopped


@pytest.mark.parametrize("offset", [0.0, 500.0])
def test_head_and_tail_spectrum_equal_one_periodogram(offset):
    """prepare(head) + finish(tail) (the split that keeps the FFT off the latency path) equals a
    float64 Hann periodogram of the whole window, even on a large DC offset."""
    from rtdecode.features.streaming import BandPower

    config = FeatureConfig(fs_hz=32000.0)
    rng = np.random.default_rng(3)
    n = config.window_samples_analysis
    window = (offset + rng.standard_normal((4, n)) * np.linspace(1, 20, 4)[:, None]).astype(
        np.float32
    )
    band_power = BandPower(config, 4)
    assert 1 <= band_power.tail_samples < n // 2
    got = band_power.compute(window).reshape(4, config.features_per_channel)[:, : len(config.bands)]
    freqs, psd = scipy.signal.periodogram(
        window.astype(np.float64), fs=config.analysis_fs_hz, window="hann", axis=-1
    )
    df = freqs[1] - freqs[0]
    for j, band in enumerate(config.bands):
        in_band = (freqs >= band.lo_hz) & (freqs < band.hi_hz)
        expected = np.log10(psd[:, in_band].sum(axis=1) * df)
        np.testing.assert_allclose(got[:, j], expected, atol=2e-4, err_msg=band.name)
    # the two halves called separately give the same bits as compute
    head = n - band_power.tail_samples
    band_power.prepare(window[:, :head])
    again = band_power.finish(window[:, head:])
    np.testing.assert_array_equal(again, band_power.compute(window))


def test_a_stream_at_another_rate_gives_the_models_features():
    """A 30 kHz rig decoding with a 32 kHz model: decimate by 15 instead of 16, same analysis
    rate, window and bands; the band powers of the same signal agree."""
    model_config = FeatureConfig(fs_hz=32000.0)
    rig = model_config.at_rate(30000.0)
    assert rig.decimation == 15 and rig.analysis_fs_hz == model_config.analysis_fs_hz
    assert rig.window_samples_analysis == model_config.window_samples_analysis
    assert rig.feature_names(["a"]) == model_config.feature_names(["a"])
    parts = [(2.5, 30.0), (7.5, 20.0), (40.0, 5.0), (300.0, 2.0)]
    multi32 = sum(_sines(32000.0, 2.5, [p]) for p in parts)
    multi30 = sum(_sines(30000.0, 2.5, [p]) for p in parts)
    got = extract_features(multi30, rig)[1][-1]
    want = extract_features(multi32, model_config)[1][-1]
    n_bands = len(model_config.bands)
    names = [b.name for b in model_config.bands]
    # the bands with a sinusoid; the others hold leakage, > 60 dB below the strongest
    holding = np.isin(names, ["delta", "theta", "gamma", "fast_ripple"])
    np.testing.assert_allclose(got[:n_bands][holding], want[:n_bands][holding], atol=0.02)
    assert (got[:n_bands][~holding] < want[:n_bands].max() - 6).all()
    for bad, why in [
        (25000.0, "not a whole multiple of the model's analysis rate 2000 Hz"),
        (1000.0, "not a whole multiple"),
    ]:
        with pytest.raises(ValueError, match=why):
            model_config.at_rate(bad)


@pytest.mark.parametrize("normalisation", ["relative", "baseline"])
def test_normalised_features_ignore_electrode_gain(normalisation):
    """Per-channel gain (electrode, amplifier) cancels in relative and running-baseline features;
    absolute band power moves by log10(gain**2)."""
    config = FeatureConfig(fs_hz=1000.0, window_s=1.0, hop_s=0.25, normalisation=normalisation)
    rng = np.random.default_rng(5)
    x = (
        rng.standard_normal((6000, 3)) + _sines(1000.0, 6.0, [(6.0, 2.0), (20.0, 1.0), (70.0, 0.5)])
    ).astype(np.float32)
    gains = np.array([0.2, 3.7, 40.0], dtype=np.float32)
    _, plain = extract_features(x, config)
    _, scaled = extract_features(x * gains, config)
    np.testing.assert_allclose(scaled, plain, atol=2e-4)
    _, absolute = extract_features(x * gains, FeatureConfig(fs_hz=1000.0, window_s=1.0, hop_s=0.25))
    _, absolute1 = extract_features(x, FeatureConfig(fs_hz=1000.0, window_s=1.0, hop_s=0.25))
    n_bands = len(config.bands)
    shift = (absolute - absolute1).reshape(len(absolute), 3, -1)[:, :, :n_bands]
    np.testing.assert_allclose(
        shift, np.broadcast_to(2 * np.log10(gains)[None, :, None], shift.shape), atol=2e-4
    )
    if normalisation == "baseline":
        # the running mean starts from the first row: that row is all zeros, later ones are not
        assert np.abs(plain[0]).max() == 0 and np.abs(plain[-1]).max() > 0.01


@pytest.mark.parametrize(
    ("kwargs", "n_channels"),
    [
        (dict(fs_hz=2000.0, window_s=1.0, hop_s=0.1), 4),
        (dict(fs_hz=32000.0), 64),
        (dict(fs_hz=1000.0, window_s=30.0, hop_s=30.0), 2),  # a sleep epoch
        (dict(fs_hz=32000.0, window_s=0.5, hop_s=0.1), 512),
        (dict(fs_hz=20000.0, decimation=1, window_s=1.0), 8),
    ],
)
def test_feature_memory_bytes_bounds_what_the_features_allocate(kwargs, n_channels):
    """The estimate a model is refused by (rtdecode.decoding.model.MAX_FEATURE_BYTES) holds
    what the features allocate, their first window included, and not much more."""
    import tracemalloc

    from rtdecode.features.streaming import feature_memory_bytes

    config = FeatureConfig(**kwargs)
    samples = np.zeros((config.window_samples + config.hop_samples, n_channels), np.float32)
    tracemalloc.start()
    try:
        StreamingFeatures(config, n_channels).push(samples)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak <= feature_memory_bytes(config, n_channels) <= 2.5 * peak


def _other_threads_cpu_s() -> float:
    """CPU seconds (user + system) of every thread of this process but the calling one."""
    me = threading.get_native_id()
    total = 0
    for task in os.listdir("/proc/self/task"):
        if int(task) == me:
            continue
        try:
            with open(f"/proc/self/task/{task}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total / os.sysconf("SC_CLK_TCK")


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs Linux's /proc")
def test_offline_features_keep_blas_on_the_calling_thread():
    # The head's cross terms at a 12 ms tail are products BLAS would split over two threads,
    # and its idle workers then spin: offline features took twice their CPU time.
    config = FeatureConfig(fs_hz=32000.0)
    x = np.random.default_rng(0).standard_normal((32000 * 12, 64)).astype(np.float32)
    extract_features(x[:64000], config)
    others_before, mine_before = _other_threads_cpu_s(), time.thread_time()
    extract_features(x, config)
    others, mine = _other_threads_cpu_s() - others_before, time.thread_time() - mine_before
    assert mine > 0.02
    assert others < 0.2 * mine, f"other threads used {others:.3f} s beside {mine:.3f} s"


def test_a_nan_is_flagged_while_any_band_of_its_channel_still_holds_it():
    """A NaN leaves the checked window before it leaves the slow bands' second decimator: the
    windows in between still flag its channel (not a NaN feature), and only its channel."""
    fs = 32000.0
    config = FeatureConfig(fs_hz=fs)
    assert config.short_window_bands
    x = (np.random.default_rng(1).standard_normal((int(fs * 5), 3)) * 10).astype(np.float32)
    nan_at = int(fs * 1.08)
    x[nan_at, 1] = np.nan
    extractor = StreamingFeatures(config, 3)
    rows = []
    for start in range(0, x.shape[0], 320):
        rows += extractor.push(x[start : start + 320])
    flagged = [bool(r.quality.flags[1] & NONFINITE) for r in rows]
    holds = [r.end_sample - config.window_samples <= nan_at < r.end_sample for r in rows]
    assert all(np.isfinite(r.features).all() for r in rows)
    assert not any(r.quality.flags[[0, 2]].any() for r in rows)
    assert all(f for f, h in zip(flagged, holds) if h)
    first_clean = holds.index(False)
    assert flagged[first_clean]  # in the second decimator's history only
    assert not any(flagged[first_clean + 2 :])


@pytest.mark.parametrize("relative", [False, True])
def test_join_row_matches_numpy(relative):
    """The compiled end of a window with pieces against the same arithmetic in numpy: band
    order, floor, normalisation, ratios, and the channels it reports non-finite."""
    rng = np.random.default_rng(5)
    n_ch, n_pieces = 6, 20
    long_bands, short_bands = np.array([0, 2, 3]), np.array([1, 4])
    ratio_num, ratio_den = np.array([2, 4]), np.array([0, 1])
    long_logs = rng.uniform(-3, 3, (n_ch, 3)).astype(np.float32)
    pieces = rng.uniform(0, 100, (n_pieces, n_ch, 2)).astype(np.float32)
    pieces[:, 1, 0] = 0.0  # below the floor
    pieces[3, 2, 1] = np.nan
    pieces[4, 3, 0] = np.inf
    long_logs[4, 1] = np.nan
    out = np.empty((n_ch, 7), np.float32)
    nonfinite = np.zeros(n_ch, np.uint8)
    n_bad = join_row(
        long_logs, pieces, long_bands, short_bands, ratio_num, ratio_den,
        relative, 1e-20, out, nonfinite,
    )  # fmt: skip
    logs = np.empty((n_ch, 5), np.float64)
    logs[:, long_bands] = long_logs
    with np.errstate(invalid="ignore"):
        logs[:, short_bands] = np.log10(np.maximum(pieces.astype(np.float64).mean(axis=0), 1e-20))
        if relative:
            logs -= np.log10((10.0**logs).sum(axis=1, keepdims=True))
        want = np.concatenate([logs, logs[:, ratio_num] - logs[:, ratio_den]], axis=1)
    np.testing.assert_allclose(out, want, rtol=1e-6, atol=1e-6)
    expected_bad = ~np.isfinite(want).all(axis=1)
    assert list(np.flatnonzero(expected_bad)) == [2, 3, 4]
    np.testing.assert_array_equal(nonfinite.astype(bool), expected_bad)
    assert n_bad == 3
