"""The naive decoder with MNE-LSL's ``StreamLSL`` as its buffer instead of raw pylsl.

    python benchmarks/mne_lsl_baseline.py --source NAME [--window-s 2] [--hop-s 0.1]

Same features and model as ``naive_baseline.py`` (Welch band powers of the last 2 s of every
channel, an XGBoost booster of the bundled model's size), same output convention (probabilities
on `mnelsl-scores`, stamped with the window's last sample). The buffer is MNE-LSL's: it pulls on
its own thread every ``acquisition_delay`` seconds and ``get_data(winsize)`` returns the newest
window; a decision is made each time a hop of new samples has arrived since the last one.
"""

import argparse
import time

import numpy as np
import pylsl
import scipy.signal
import xgboost
from mne_lsl.stream import StreamLSL

from rtdecode.config import DEFAULT_BANDS

ap = argparse.ArgumentParser()
ap.add_argument("--source", required=True)
ap.add_argument("--window-s", type=float, default=2.0)
ap.add_argument("--hop-s", type=float, default=0.1)
ap.add_argument(
    "--acquisition-delay",
    type=float,
    default=0.001,
    help="StreamLSL's pull period, s (its default is 1 ms)",
)
a = ap.parse_args()

stream = StreamLSL(bufsize=a.window_s, name=a.source)
stream.connect(acquisition_delay=a.acquisition_delay, processing_flags=None, timeout=10)
fs, n_ch = stream.info["sfreq"], len(stream.ch_names)
n_hop = int(a.hop_s * fs)
bands = [(b.lo_hz, b.hi_hz) for b in DEFAULT_BANDS if b.lo_hz < fs / 2]

rng = np.random.default_rng(0)
X = rng.standard_normal((600, n_ch * len(bands))).astype(np.float32)
booster = xgboost.train(
    {"objective": "multi:softprob", "num_class": 3, "max_depth": 4, "nthread": 1},
    xgboost.DMatrix(X, label=rng.integers(0, 3, 600)),
    num_boost_round=200,
)

outlet = pylsl.StreamOutlet(
    pylsl.StreamInfo(
        "mnelsl-scores", "Scores", 3, 1 / a.hop_s, "float32", f"mnelsl-scores:{a.source}"
    )
)
# wait for a full window
while stream.n_new_samples < int(a.window_s * fs):
    time.sleep(0.01)
stream.get_data()
while True:
    # MNE-LSL counts new samples since the last get_data: one decision per hop of them (what
    # overshoots a hop is not carried over, as a first version would do)
    if stream.n_new_samples < n_hop:
        time.sleep(0.001)
        continue
    data, ts = stream.get_data(winsize=a.window_s)  # (n_channels, n_times), newest window
    f, pxx = scipy.signal.welch(data, fs=fs, nperseg=int(fs / 2), axis=1)
    feats = np.concatenate(
        [np.log10(pxx[:, (f >= lo) & (f < hi)].sum(axis=1) + 1e-20) for lo, hi in bands]
    )
    probs = booster.predict(xgboost.DMatrix(feats[None, :].astype(np.float32)))[0]
    outlet.push_sample(probs.astype(np.float32), ts[-1])
