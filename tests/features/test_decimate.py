"""The Cython FIR decimator against a plain numpy reference."""

import numpy as np
import pytest
import scipy.signal

from rtdecode.features._decimate import KERNEL, FirDecimator

# the portable kernel always; this CPU's own too when it is another (AVX2 + FMA on x86-64)
_KERNELS = ["portable"] + (["auto"] if KERNEL != "portable" else [])


def _reference(x, taps, factor):
    """y[m] = sum_k h[k] x[m*D + D - 1 - k], x[i < 0] = x[0] (primed history), float64."""
    pad = len(taps) - 1
    primed = np.concatenate([np.repeat(x[:1], pad, axis=0), x]).astype(np.float64)
    full = scipy.signal.lfilter(taps.astype(np.float64), [1.0], primed, axis=0)[pad:]
    return full[factor - 1 :: factor]


@pytest.mark.parametrize("factor, n_taps", [(1, 1), (4, 24), (16, 192), (5, 7)])
@pytest.mark.parametrize("n_ch", [5, 16, 37, 64])  # the kernel sums 16 channels at a time
@pytest.mark.parametrize("kernel", _KERNELS)
def test_matches_reference_in_random_chunks(factor, n_taps, n_ch, kernel):
    rng = np.random.default_rng(factor)
    taps = rng.standard_normal(n_taps).astype(np.float32)
    x = rng.standard_normal((3001, n_ch)).astype(np.float32)
    # small block: exercise internal steps
    dec = FirDecimator(taps, factor, n_ch, block=97, kernel=kernel)
    outs = []
    pos = 0
    while pos < len(x):
        n = int(rng.integers(1, 400))
        chunk = x[pos : pos + n]
        out = np.empty((dec.n_out_for(len(chunk)), n_ch), np.float32)
        assert dec.process(chunk, out) == len(out)
        outs.append(out)
        pos += n
    got = np.concatenate(outs)
    ref = _reference(x, taps, factor)
    assert got.shape == ref.shape == (len(x) // factor, n_ch)
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * np.abs(taps).sum())


@pytest.mark.parametrize("kernel", _KERNELS)
@pytest.mark.parametrize("n_ch", [3, 64])
def test_chunking_is_bit_identical(kernel, n_ch):
    """Whatever the chunks (so however the outputs fall into the vector kernel's groups of
    four), every output is summed the same way."""
    rng = np.random.default_rng(0)
    taps = rng.standard_normal(48).astype(np.float32)
    x = rng.standard_normal((5000, n_ch)).astype(np.float32)
    whole = FirDecimator(taps, 16, n_ch, kernel=kernel)
    out_whole = np.empty((whole.n_out_for(5000), n_ch), np.float32)
    whole.process(x, out_whole)
    pieces = FirDecimator(taps, 16, n_ch, kernel=kernel)
    outs = []
    for chunk in np.array_split(x, 37):
        out = np.empty((pieces.n_out_for(len(chunk)), n_ch), np.float32)
        pieces.process(np.ascontiguousarray(chunk), out)
        outs.append(out)
    np.testing.assert_array_equal(np.concatenate(outs), out_whole)


@pytest.mark.skipif(KERNEL == "portable", reason="this CPU runs the portable kernel only")
def test_this_cpus_kernel_agrees_with_the_portable_one():
    """The AVX2 + FMA kernel rounds once per multiply-add: the same sums to float32 precision."""
    rng = np.random.default_rng(5)
    taps = scipy.signal.firwin(192, 1000.0, fs=32000.0).astype(np.float32)
    x = (100.0 * rng.standard_normal((32000, 64))).astype(np.float32)
    fast, portable = FirDecimator(taps, 16, 64), FirDecimator(taps, 16, 64, kernel="portable")
    assert (fast.kernel, portable.kernel) == (KERNEL, "portable")
    out_fast, out_portable = (np.empty((2000, 64), np.float32) for _ in range(2))
    fast.process(x, out_fast)
    portable.process(x, out_portable)
    np.testing.assert_allclose(out_fast, out_portable, rtol=0, atol=1e-5 * np.abs(x).max())
    assert not np.array_equal(out_fast, np.zeros_like(out_fast))


def test_reset_forgets_history():
    taps = np.ones(8, np.float32)
    dec = FirDecimator(taps, 2, 1)
    out = np.empty((4, 1), np.float32)
    dec.process(np.ones((8, 1), np.float32), out)
    dec.reset()
    assert dec.n_in == 0
    dec.process(np.full((2, 1), 3.0, np.float32), out)
    # the history is refilled with the first new sample, nothing of the old input is left
    assert out[0, 0] == 24.0


def test_a_dc_offset_gives_no_start_transient():
    """Primed with the first sample, a constant input gives a constant output from the start
    (a zero history would step from 0 to the offset)."""
    taps = np.ones(32, np.float32) / 32
    dec = FirDecimator(taps, 4, 2)
    out = np.empty((25, 2), np.float32)
    dec.process(np.full((100, 2), 1000.0, np.float32), out)
    np.testing.assert_allclose(out, 1000.0, rtol=1e-6)


def test_bad_arguments():
    with pytest.raises(ValueError, match="factor"):
        FirDecimator(np.ones(3, np.float32), 0, 1)
    with pytest.raises(ValueError, match="kernel must be one of"):
        FirDecimator(np.ones(3, np.float32), 2, 1, kernel="avx512")
    dec = FirDecimator(np.ones(3, np.float32), 2, 2)
    with pytest.raises(ValueError, match="channels"):
        dec.process(np.zeros((4, 3), np.float32), np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="out must be"):
        dec.process(np.zeros((4, 2), np.float32), np.zeros((1, 2), np.float32))


@pytest.mark.parametrize("kernel", _KERNELS)
def test_channel_major_output_equals_time_major(kernel):
    rng = np.random.default_rng(3)
    taps = rng.standard_normal(96).astype(np.float32)
    x = rng.standard_normal((2000, 37)).astype(np.float32)
    rows, cols = FirDecimator(taps, 8, 37, kernel=kernel), FirDecimator(taps, 8, 37, kernel=kernel)
    by_row = np.empty((250, 37), np.float32)
    by_col = np.full((37, 260), np.nan, np.float32)
    pos = n_row = 0
    col = 10  # written from this column on
    while pos < len(x):
        chunk = x[pos : pos + int(rng.integers(1, 300))]
        n_row += rows.process(chunk, by_row[n_row:])
        col += cols.process_columns(chunk, by_col, col)
        pos += len(chunk)
    assert n_row == col - 10 == 250
    np.testing.assert_array_equal(by_col[:, 10:], by_row.T)
    assert np.isnan(by_col[:, :10]).all()  # nothing written before the given column
    with pytest.raises(ValueError, match="out must be"):
        cols.process_columns(x[:64], np.empty((37, 4), np.float32), 0)
