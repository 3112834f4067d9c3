"""Operator monitor: a pyqtgraph window over a running decoder. The only module that imports Qt.

Its data come from a feed (:mod:`rtdecode.monitor.feeds`).

The window observes and the decoder never waits for it. ``rtdecode monitor`` (and ``run
--monitor``, which starts it) runs it as its own process at idle CPU priority over
:class:`LslFeed`: only the decoder's outlets (``rtdecode-signal``, its analysis-rate samples, and
``-scores``, ``-state``, ``-features``, ``-status``), so it also runs on another machine and the
source never sends its raw stream twice. :class:`DecoderFeed` shows a decoder of the same process
(tests) from its raw ring buffer. Each frame (a Qt timer, 25 Hz by default) copies the newest
samples out of a ring buffer (a read that never blocks the writer), takes the new decisions and
the status. What it shows:

- a state banner (big, coloured; an alarm state flashes, shows the time since onset and can be
  acknowledged: the acknowledgement goes in the decision log), and ``NO SIGNAL`` when no sample
  has arrived for ``stall_s``;
- traces of a page of channels over the last seconds, drawn as min/max per pixel column computed
  incrementally from the new samples only (32 kHz never reaches the GUI as points);
- band power per channel x band of the newest decision (heat map, with its colour scale) and a
  scrolling spectrogram of one selected channel;
- class probabilities over the last minutes with the hysteresis thresholds, and a state timeline
  (hypnogram-style) with a truth row when a ``NAME-truth`` stream exists, a state in one colour
  in both rows, named by a legend;
- a health panel: input rate vs nominal, lost samples, gaps, overruns, decision latency p50/p99,
  LSL clock offset, the process's CPU.

Every time axis reads the wall clock (:class:`WallClockAxis`), converted from this machine's LSL
clock by one offset (:meth:`MonitorWindow.wall_time`); the spectrogram, probabilities and states
share one time range.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections import deque
from dataclasses import dataclass

import numpy as np
import psutil
import pyqtgraph as pg
from pyqtgraph.Qt import QtCore, QtGui, QtWidgets

from rtdecode.common.channels import labels_or_default
from rtdecode.monitor.feeds import DecoderFeed, _Envelope

__all__ = ["MonitorConfig", "MonitorWindow", "WallClockAxis", "run_monitor", "STATE_COLOURS"]

logger = logging.getLogger("rtdecode")

#: Banner / timeline colours by state name; other states get a colour from the palette.
STATE_COLOURS = {
    "wake": (230, 159, 0),
    "nrem": (86, 180, 233),
    "rem": (0, 158, 115),
    "normal": (70, 130, 70),
    "seizure": (213, 40, 40),
    "no_signal": (110, 110, 110),
    "bad_signal": (140, 90, 40),
}

_POLL_MS = 4  # how often the monitor looks for a new decision (a few microseconds each)

_PALETTE = [(204, 121, 167), (240, 228, 66), (0, 114, 178), (213, 94, 0), (150, 150, 150)]

#: The hysteresis threshold lines: light grey, unlike any state colour, and bright against the
#: plots' black background (black lines on black were invisible).
THRESHOLD_COLOUR = (220, 220, 220)

#: Every time axis is labelled so: the one clock the operator reads (the computer's local time).
TIME_LABEL = "time (wall clock)"

_LEFT_AXIS_PX = 72  # the time-aligned plots' left axes: equal, so their x pixels line up

# Tick steps of the wall-clock axes, seconds: each a whole number of seconds, minutes or hours
# that divides the next unit, so ticks fall on round clock times.
_CLOCK_STEPS_S = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600)


class WallClockAxis(pg.AxisItem):
    """A time axis of unix times labelled ``HH:MM:SS`` (steps under a minute) or ``HH:MM``.

    pyqtgraph's ``DateAxisItem`` switches to millisecond ticks (``53.000 54.000 ...
    01:53:00``) on spans of a few seconds, which the monitor shows at every start. Here the
    step is the smallest round clock step whose labels have room (1.5 label widths apart), at
    least one second, and ticks fall on round local times.
    """

    def __init__(self, orientation: str = "bottom", **kwargs) -> None:
        super().__init__(orientation, **kwargs)
        self.enableAutoSIPrefix(False)
        self._label_px: tuple[float, float] | None = None  # widths of HH:MM:SS and HH:MM

    def _label_widths(self) -> tuple[float, float]:
        if self._label_px is None:  # the font does not change: measure once
            metrics = QtGui.QFontMetricsF(self.style["tickFont"] or self.font())
            self._label_px = (
                metrics.horizontalAdvance("88:88:88"),
                metrics.horizontalAdvance("88:88"),
            )
        return self._label_px

    def tickValues(self, minVal: float, maxVal: float, size: float) -> list:  # noqa: N802, N803 (pyqtgraph API)
        lo, hi = min(minVal, maxVal), max(minVal, maxVal)
        if not (math.isfinite(lo) and math.isfinite(hi)) or size <= 0 or hi <= lo:
            return []
        s_per_px = (hi - lo) / size
        hms_px, hm_px = self._label_widths()
        step = _CLOCK_STEPS_S[-1]
        for candidate in _CLOCK_STEPS_S:
            if candidate / s_per_px >= 1.5 * (hms_px if candidate < 60 else hm_px):
                step = candidate
                break
        # round local times: a step of an hour falls on whole local hours in any time zone
        utc_offset = time.localtime(hi).tm_gmtoff
        first = math.ceil((lo + utc_offset) / step) * step - utc_offset
        return [(float(step), list(np.arange(first, hi + 1e-9, step, dtype=np.float64)))]

    def tickStrings(self, values: list, scale: float, spacing: float) -> list[str]:  # noqa: N802 (pyqtgraph API)
        fmt = "%H:%M:%S" if spacing < 60 else "%H:%M"
        return [time.strftime(fmt, time.localtime(v)) for v in values]


@dataclass(frozen=True)
class MonitorConfig:
    """What the monitor shows and how often it redraws.

    Attributes
    ----------
    channels_per_page : int
        Traces shown at once; keys (PgUp/PgDn) or the spin box page through the rest.
    trace_s : float
        Seconds of traces on screen.
    columns : int
        Min/max columns across the trace plot (about its width in pixels).
    decisions_s : float
        Seconds of probabilities and states shown.
    fps : float
        Redraw rate, at least: frames come in whole numbers per decision hop (25 fps with
        0.1 s hops: 3 per hop, 30 fps).
    stall_s : float
        No sample for this long shows NO SIGNAL.
    alarm_sound : bool
        Beep once a second while an alarm is not acknowledged.
    """

    channels_per_page: int = 16
    trace_s: float = 10.0
    columns: int = 700
    decisions_s: float = 180.0
    fps: float = 25.0
    stall_s: float = 1.0
    alarm_sound: bool = True


def _colour(state: str | None, classes: tuple[str, ...]) -> tuple[int, int, int]:
    if state is None:
        return STATE_COLOURS["no_signal"]
    if state in STATE_COLOURS:
        return STATE_COLOURS[state]
    return _PALETTE[classes.index(state) % len(_PALETTE)] if state in classes else _PALETTE[-1]


class MonitorWindow(QtWidgets.QWidget):
    """The operator window over a running :class:`rtdecode.decoding.decoder.Decoder`.

    Parameters
    ----------
    feed : DecoderFeed or LslFeed
        Where the samples, decisions and status come from: the decoder in this process, or
        its LSL outlets (another process, another machine).
    truth : object with ``drain() -> list[(timestamp, label)]``, optional
        Truth markers (``NAME-truth``) for the timeline's second row.
    config : MonitorConfig
    """

    def __init__(self, feed, *, truth=None, config: MonitorConfig | None = None) -> None:
        super().__init__()
        if not hasattr(feed, "drain"):  # a Decoder given directly
            feed = DecoderFeed(feed)
        self.feed = feed
        self.config = config or MonitorConfig()
        self.truth = truth
        self.classes = tuple(feed.classes)
        self.channel_labels = labels_or_default(feed.channel_labels, feed.n_channels)
        self.n_channels = feed.n_channels
        self.fs_hz = feed.fs_hz
        self.feature_config = feed.feature_config
        import pylsl

        # Decisions, samples, triggers and truth marks carry timestamps of this machine's LSL
        # clock; the operator reads the wall clock. One offset, taken once, converts them all
        # (wall_time), so every time axis shows the same clock and stays aligned.
        self._unix_minus_lsl = time.time() - pylsl.local_clock()
        self.hysteresis = feed.hysteresis
        self.event_class = getattr(self.hysteresis, "event_class", None)
        self._process = psutil.Process(os.getpid())
        self._process.cpu_percent(None)
        per_column = max(1, round(self.config.trace_s * self.fs_hz / self.config.columns))
        self._envelope = _Envelope(self.config.columns, per_column, self.n_channels)
        self._read_until = None  # absolute sample index read so far
        self._scratch = np.empty((int(self.fs_hz), self.n_channels), dtype=np.float32)
        n_dec = int(self.config.decisions_s / self.feature_config.hop_s)
        self._t = deque(maxlen=n_dec)
        self._p = deque(maxlen=n_dec)
        self._decided = deque(maxlen=n_dec)  # the states' codes in the colour table
        self._truth_marks: deque[tuple[float, int]] = deque(maxlen=10000)
        # one colour table for the states (row 0: unknown, transparent): the decoded and truth
        # rows and the legend take their colours from it, so a state looks the same in each
        self._legend_states = tuple(dict.fromkeys((*self.classes, "no_signal", "bad_signal")))
        self._state_codes = {s: k + 1 for k, s in enumerate(self._legend_states)}
        self._state_lut = np.array(
            [(0, 0, 0, 0)] + [(*_colour(s, self.classes), 255) for s in self._legend_states],
            dtype=np.uint8,
        )
        self._n_rows = 2 if truth is not None and getattr(truth, "available", True) else 1
        # spectrogram of the selected channel: a Hann-tapered FFT of its last ~0.25 s of
        # samples (kept here as they are read) at each frame that brings decisions
        self._spec_nfft = int(2 ** round(np.log2(max(64.0, self.fs_hz * 0.25))))
        top_hz = max(b.hi_hz for b in self.feature_config.bands)
        freqs = np.fft.rfftfreq(self._spec_nfft, 1.0 / self.fs_hz)
        self._spec_bins = int(np.searchsorted(freqs, min(top_hz, self.fs_hz / 2), side="right"))
        self._spec_taper = np.hanning(self._spec_nfft).astype(np.float32)
        self._selected_tail = np.zeros(self._spec_nfft, np.float32)
        self._spec_cols = deque(maxlen=n_dec)
        self._spec_t = deque(maxlen=n_dec)  # the wall time of each column
        # the traces' column times relative to the newest sample (min and max of a column at
        # the same x), made once: each frame only adds the newest sample's wall time
        step_s = per_column / self.fs_hz
        self._trace_dx = np.repeat(np.arange(1 - self.config.columns, 1) * step_s, 2)
        self._newest_sample_t: float | None = None  # LSL time of the newest sample read
        self._last_row = None
        self._alarm_onset_t: float | None = None
        self._alarm_acknowledged = False
        self._last_beep = -math.inf
        self.beeps = 0  # alarm beeps so far (the sound itself cannot be checked offscreen)
        self._trigger_t: deque[float] = deque(maxlen=10000)
        self.triggers_seen = 0
        self._last_samples = -1
        self._last_sample_wall = time.monotonic()
        self._frames = 0
        self._next_health_t = 0.0
        self._frame_times: deque[float] = deque(maxlen=100)
        self.page = 0
        self.selected_channel = 0
        self.gain = 1.0
        self.no_signal = False
        self._build()
        # Frames are locked to the decisions: a frame as soon as a decision arrives, then the
        # rest of the hop's frames spread over its first 80 %, so the monitor is idle while the
        # decoder prepares and finishes the next window (on a 2-core machine a GUI drawing at
        # the same moment delays decisions, whatever its priority). Free-running at ``fps``
        # when no decision comes (no signal, before the first window).
        hop_s = self.feature_config.hop_s
        self._frames_per_hop = max(1, math.ceil(self.config.fps * hop_s))
        self._frame_offsets_s = [
            0.8 * hop_s * k / self._frames_per_hop for k in range(self._frames_per_hop)
        ]
        self._frames_due: list[float] = []
        self._last_decision_wall = -math.inf
        self._last_frame_wall = -math.inf
        self._timer = QtCore.QTimer(self)
        self._timer.setTimerType(QtCore.Qt.TimerType.PreciseTimer)
        self._timer.timeout.connect(self._tick)
        self._timer.start(_POLL_MS)

    def _tick(self) -> None:
        """The poll timer: start a hop's frames when a decision arrives, draw those due."""
        now = time.monotonic()
        if self.feed.decision_waiting():
            self._last_decision_wall = now
            self._frames_due = [now + offset for offset in self._frame_offsets_s]
        if self._frames_due and now >= self._frames_due[0]:
            while self._frames_due and now >= self._frames_due[0]:
                self._frames_due.pop(0)
        elif not (
            now - self._last_decision_wall > 2 * self.feature_config.hop_s
            and now - self._last_frame_wall >= 1.0 / self.config.fps
        ):
            return
        self._last_frame_wall = now
        self.refresh()

    # Layout ---------------------------------------------------------------------------------
    def _build(self) -> None:
        self.setWindowTitle(f"rtdecode monitor: {self.feed.name}")
        self.resize(1500, 950)
        layout = QtWidgets.QGridLayout(self)
        self.banner = QtWidgets.QLabel("waiting for decisions")
        self.banner.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        font = self.banner.font()
        font.setPointSize(28)
        font.setBold(True)
        self.banner.setFont(font)
        self.banner.setMinimumHeight(70)
        self.ack_button = QtWidgets.QPushButton("Acknowledge alarm")
        self.ack_button.setEnabled(False)
        self.ack_button.clicked.connect(self.acknowledge_alarm)
        layout.addWidget(self.banner, 0, 0, 1, 2)
        buttons = QtWidgets.QVBoxLayout()
        buttons.addWidget(self.ack_button)
        # stimulation: armed/disarmed by the operator (S), sent to the decoder, which logs it
        self.arm_button = QtWidgets.QPushButton("Disarm stimulation (S)")
        self.arm_button.setVisible(bool(getattr(self.feed, "stim_active", False)))
        self.arm_button.clicked.connect(self.toggle_armed)
        self.stim_armed: bool | None = None
        buttons.addWidget(self.arm_button)
        layout.addLayout(buttons, 0, 2)

        # traces + their controls
        controls = QtWidgets.QHBoxLayout()
        self.page_spin = QtWidgets.QSpinBox()
        self.n_pages = max(1, -(-self.n_channels // self.config.channels_per_page))
        self.page_spin.setRange(1, self.n_pages)
        self.page_spin.setPrefix("page ")
        self.page_spin.setSuffix(f" / {self.n_pages}")
        self.page_spin.valueChanged.connect(lambda v: self.set_page(v - 1))
        self.gain_spin = QtWidgets.QDoubleSpinBox()
        self.gain_spin.setRange(0.01, 1000.0)
        self.gain_spin.setValue(1.0)
        self.gain_spin.setPrefix("gain x")
        self.gain_spin.valueChanged.connect(self._set_gain)
        self.channel_combo = QtWidgets.QComboBox()
        self.channel_combo.addItems(list(self.channel_labels))
        self.channel_combo.currentIndexChanged.connect(self._select_channel)
        for w in (
            QtWidgets.QLabel("channels"),
            self.page_spin,
            self.gain_spin,
            QtWidgets.QLabel("spectrogram of"),
            self.channel_combo,
        ):
            controls.addWidget(w)
        controls.addStretch(1)
        layout.addLayout(controls, 1, 0)
        self.trace_plot = pg.PlotWidget(axisItems={"bottom": WallClockAxis()})
        self.trace_plot.setLabel("bottom", TIME_LABEL)
        self.trace_plot.setMouseEnabled(x=False, y=False)
        self.trace_plot.hideButtons()
        # the x range is set from the newest sample's time: no autorange over every curve
        self.trace_plot.enableAutoRange(x=False)
        self.trace_curves = [
            self.trace_plot.plot(pen=pg.mkPen((40, 40, 40), width=1))
            for _ in range(self.config.channels_per_page)
        ]
        self.trace_plot.setBackground("w")
        layout.addWidget(self.trace_plot, 2, 0, 4, 1)

        # band power heat map and band spectrogram
        self.heat_plot = pg.PlotWidget(title="band power (log10) per channel x band")
        self.heat_img = pg.ImageItem()
        self.heat_plot.addItem(self.heat_img)
        self.heat_img.setColorMap(pg.colormap.get("viridis"))
        bands = [b.name for b in self.feature_config.bands]
        self.heat_plot.getAxis("left").setTicks([list(enumerate(bands))])
        self.heat_plot.setLabel("bottom", "channel")
        # a fixed scale between redraws (rounded out to half decades, see _draw_spectra) that
        # the colours can be read against, rather than levels that jump at each decision
        self.heat_bar = pg.ColorBarItem(
            colorMap=pg.colormap.get("viridis"), interactive=False, width=12, label="log10 power"
        )
        self.heat_bar.setImageItem(self.heat_img, insert_in=self.heat_plot.getPlotItem())
        layout.addWidget(self.heat_plot, 1, 1, 2, 2)
        self.spec_plot = pg.PlotWidget(
            title="spectrogram of the selected channel (log power)",
            axisItems={"bottom": WallClockAxis()},
        )
        self.spec_img = pg.ImageItem()
        self.spec_img.setColorMap(pg.colormap.get("inferno"))
        self.spec_plot.addItem(self.spec_img)
        self.spec_plot.setLabel("left", "frequency", units="Hz")
        self.spec_plot.setLabel("bottom", TIME_LABEL)
        layout.addWidget(self.spec_plot, 3, 1, 1, 2)

        # probabilities, thresholds, timeline
        self.prob_plot = pg.PlotWidget(axisItems={"bottom": WallClockAxis()})
        self.prob_plot.setTitle("class probabilities", justify="left")
        self.prob_plot.setYRange(0, 1)
        self.prob_plot.setLabel("bottom", TIME_LABEL)
        self.prob_curves = [
            self.prob_plot.plot(pen=pg.mkPen(self.state_colour(c), width=2)) for c in self.classes
        ]
        # the legend in the title row, as the timeline's: none over the curves or thresholds
        self.prob_legend = _title_legend(self.prob_plot, len(self.classes))
        for c, curve in zip(self.classes, self.prob_curves):
            self.prob_legend.addItem(curve, c)
        self.threshold_lines: list[pg.InfiniteLine] = []
        if self.event_class is not None:
            on, off = self.hysteresis.on_threshold, self.hysteresis.off_threshold
            dash, dot = QtCore.Qt.PenStyle.DashLine, QtCore.Qt.PenStyle.DotLine
            # labelled at the left, "on" above its line and "off" below its own
            lines = (
                [(on, dash, f"on {on:.2f}", (0, 1)), (off, dot, f"off {off:.2f}", (0, 0))]
                if off != on
                else [(on, dash, f"on/off {on:.2f}", (0, 1))]
            )
            for level, style, text, anchor in lines:
                line = pg.InfiniteLine(
                    level,
                    angle=0,
                    pen=pg.mkPen(THRESHOLD_COLOUR, width=1.5, style=style),
                    label=text,
                    labelOpts={
                        "position": 0.02,
                        "color": THRESHOLD_COLOUR,
                        "anchors": [anchor, anchor],
                    },
                )
                self.prob_plot.addItem(line)
                self.threshold_lines.append(line)
        layout.addWidget(self.prob_plot, 4, 1, 1, 2)
        self._build_timeline()
        layout.addWidget(self.timeline_plot, 5, 1, 1, 2)
        # One column, one time range for what is decided: spectrogram, probabilities and states
        # line up pixel for pixel (same left axis width, linked x, the range set at each
        # decision; linked views disable each other's autorange, so none is used).
        for plot in (self.spec_plot, self.prob_plot, self.timeline_plot):
            plot.getAxis("left").setWidth(_LEFT_AXIS_PX)
            plot.enableAutoRange(x=False)
            if plot is not self.prob_plot:
                plot.setXLink(self.prob_plot)

        self.health = QtWidgets.QLabel()
        self.health.setTextFormat(QtCore.Qt.TextFormat.RichText)
        layout.addWidget(self.health, 6, 0, 1, 3)
        layout.setColumnStretch(0, 3)
        layout.setColumnStretch(1, 2)
        self.set_page(0)

    def _build_timeline(self) -> None:
        """The state timeline: a decoded row, a truth row below it when truth comes, a legend
        of the state colours (the same in both rows) and the triggers between the rows."""
        self.timeline_plot = pg.PlotWidget(axisItems={"bottom": WallClockAxis()})
        plot_item = self.timeline_plot.getPlotItem()
        plot_item.setTitle("state", justify="left")
        self.timeline_plot.setLabel("bottom", TIME_LABEL)
        self.timeline_img = pg.ImageItem()
        self.timeline_plot.addItem(self.timeline_img)
        rows = self._n_rows
        ticks = [(rows - 0.5, "decoded")] + ([(0.5, "truth")] if rows == 2 else [])
        self.timeline_plot.getAxis("left").setTicks([ticks])
        self.timeline_plot.setYRange(0, rows, padding=0)
        self.timeline_plot.setMouseEnabled(y=False)
        self.timeline_plot.enableAutoRange(y=False)
        self.timeline_plot.hideButtons()
        # each row at least twice the label's height, so "decoded" and "truth" never overlap;
        # the rest is the title (30 px), the time axis with its label and margins
        row_px = 2 * QtGui.QFontMetrics(self.timeline_plot.getAxis("left").font()).height()
        self.timeline_plot.setFixedHeight(30 + rows * row_px + 60)
        self.state_legend = _title_legend(self.timeline_plot, len(self._legend_states))
        for state in self._legend_states:
            swatch = pg.ScatterPlotItem(
                symbol="s", size=12, pen=None, brush=pg.mkBrush(self.state_colour(state))
            )
            self.state_legend.addItem(swatch, state.replace("_", " "))
        # each trigger sent: between the two rows, or on the decoded row alone
        self.trigger_marks = pg.ScatterPlotItem(
            symbol="t", size=9, brush=pg.mkBrush(220, 0, 0), pen=None
        )
        self._trigger_y = 1.0 if rows == 2 else 0.5
        self.timeline_plot.addItem(self.trigger_marks)

    def state_colour(self, state: str | None) -> tuple[int, int, int]:
        """The colour of ``state`` everywhere: banner, both timeline rows, legend, curves."""
        if state is None:
            return STATE_COLOURS["no_signal"]
        return tuple(int(v) for v in self._state_lut[self._state_code(state), :3])

    def _state_code(self, state: str | None) -> int:
        """The row of ``state`` in the colour table (0: unknown, drawn transparent)."""
        if state is None:
            return 0
        code = self._state_codes.get(state)
        if code is None:  # a label outside the model's classes (a truth stream's): rare
            code = self._state_codes[state] = len(self._state_lut)
            self._state_lut = np.vstack([self._state_lut, [(*_colour(state, self.classes), 255)]])
        return code

    # Controls -------------------------------------------------------------------------------
    def set_page(self, page: int) -> None:
        """Show channel page ``page`` (0-based), clamped to the pages that exist."""
        self.page = int(min(max(page, 0), self.n_pages - 1))
        if self.page_spin.value() != self.page + 1:
            self.page_spin.setValue(self.page + 1)
        first = self.page * self.config.channels_per_page
        shown = self.page_channels()
        ticks = [(-(i) * 1.0, self.channel_labels[c]) for i, c in enumerate(shown)]
        self.trace_plot.getAxis("left").setTicks([ticks])
        for i, curve in enumerate(self.trace_curves):
            curve.setVisible(first + i < self.n_channels)
        self._draw_traces()

    def page_channels(self) -> list[int]:
        first = self.page * self.config.channels_per_page
        return list(range(first, min(first + self.config.channels_per_page, self.n_channels)))

    def _set_gain(self, value: float) -> None:
        self.gain = float(value)
        self._draw_traces()

    def _select_channel(self, index: int) -> None:
        self.selected_channel = int(index)
        self._spec_cols.clear()  # a new channel's spectrogram starts empty
        self._spec_t.clear()
        self._selected_tail[:] = 0.0

    def keyPressEvent(self, event: QtGui.QKeyEvent) -> None:  # noqa: N802 (Qt API)
        key = event.key()
        if key in (QtCore.Qt.Key.Key_PageDown, QtCore.Qt.Key.Key_Down):
            self.set_page(self.page + 1)
        elif key in (QtCore.Qt.Key.Key_PageUp, QtCore.Qt.Key.Key_Up):
            self.set_page(self.page - 1)
        elif key == QtCore.Qt.Key.Key_Plus:
            self.gain_spin.setValue(self.gain * 2)
        elif key == QtCore.Qt.Key.Key_Minus:
            self.gain_spin.setValue(self.gain / 2)
        elif key == QtCore.Qt.Key.Key_S and self.arm_button.isVisible():
            self.toggle_armed()
        else:
            super().keyPressEvent(event)

    def acknowledge_alarm(self) -> None:
        """Stop the alarm flashing (it stays red while the alarm lasts) and log who saw it."""
        if self._alarm_onset_t is None or self._alarm_acknowledged:
            return
        self._alarm_acknowledged = True
        self.ack_button.setEnabled(False)
        self.feed.acknowledge(self.event_class, self._alarm_onset_t)

    def toggle_armed(self) -> None:
        """Arm stimulation if it is disarmed, else disarm it (the decoder logs who did it)."""
        if not getattr(self.feed, "stim_active", False):
            return
        arm = self.stim_armed is False
        self.feed.set_armed(arm)
        self.stim_armed = arm
        self._show_armed()

    def _show_armed(self) -> None:
        if self.stim_armed is None:
            return
        self.arm_button.setText(
            "Disarm stimulation (S)" if self.stim_armed else "ARM stimulation (S): disarmed"
        )
        self.arm_button.setStyleSheet(
            "" if self.stim_armed else "background-color: rgb(255, 200, 0);"
        )

    @property
    def alarm_on(self) -> bool:
        return self._alarm_onset_t is not None

    @property
    def banner_text(self) -> str:
        return self.banner.text()

    # Frame ----------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Read what is new and redraw (the timer calls it; tests may call it directly)."""
        t0 = time.perf_counter()
        self._read_samples()
        new_decisions = self._read_observations()
        if self.truth is not None:
            for ts, label in self.truth.drain():
                self._truth_marks.append((ts, self._state_code(label)))
        status = self.feed.status()
        if getattr(status, "stim_armed", None) is not None and status.stim_armed != self.stim_armed:
            self.stim_armed = status.stim_armed
            self._show_armed()
        new_triggers = self.feed.triggers() if hasattr(self.feed, "triggers") else []
        for ts, _ in new_triggers:
            self._trigger_t.append(ts)
        self.triggers_seen += len(new_triggers)
        self._update_signal()
        self._draw_traces()
        # decisions come 10 times a second: redraw what depends on them only then, and the
        # health text twice a second (painting is most of the monitor's CPU)
        if new_decisions:
            self._draw_spectra()
            self._draw_decisions()
        self._draw_banner(status)
        if t0 >= self._next_health_t:
            self._next_health_t = t0 + 0.5
            self._draw_health(status)
        self._frames += 1
        self._frame_times.append(time.perf_counter() - t0)

    def _read_samples(self) -> None:
        ring = self.feed.ring
        written = ring.written
        if self._read_until is None:
            self._read_until = max(
                0, written - self._envelope.n_columns * self._envelope.per_column
            )
        # never reach back further than half the ring: a read the writer overtakes would count
        # as an overrun of the decoder's buffer
        start = max(self._read_until, written - ring.capacity // 2)
        while start < written:
            n = min(written - start, self._scratch.shape[0])
            ring.read(start + n, self._scratch[:n])
            self._envelope.push(self._scratch[:n])
            self._keep_selected(self._scratch[:n, self.selected_channel])
            start += n
        if written > self._read_until:
            self._newest_sample_t = ring.timestamp(written - 1)
        self._read_until = written

    def _keep_selected(self, samples: np.ndarray) -> None:
        """Append the selected channel's new samples to its spectrogram buffer."""
        tail, n = self._selected_tail, samples.shape[0]
        if n >= tail.size:
            tail[:] = samples[-tail.size :]
        else:
            tail[:-n] = tail[n:]
            tail[-n:] = samples

    def _read_observations(self) -> int:
        n_bands = len(self.feature_config.bands)
        count = 0
        per_channel = self.feature_config.features_per_channel
        for obs in self.feed.drain():
            count += 1
            self._t.append(obs.timestamp)
            self._p.append(obs.probabilities)
            self._decided.append(self._state_code(obs.state))
            if obs.features is not None:
                row = obs.features.reshape(self.n_channels, per_channel)[:, :n_bands]
                self._last_row = row
            if self.event_class is not None:
                if obs.state == self.event_class and self._alarm_onset_t is None:
                    self._alarm_onset_t = obs.timestamp
                    self._alarm_acknowledged = False
                elif obs.state != self.event_class:
                    self._alarm_onset_t = None
        return count

    def _update_signal(self) -> None:
        now = time.monotonic()
        samples = self.feed.samples_received()
        if samples != self._last_samples:
            self._last_samples = samples
            self._last_sample_wall = now
        self.no_signal = now - self._last_sample_wall > self.config.stall_s

    def _draw_traces(self) -> None:
        env = self._envelope
        n = env.filled
        if n == 0 or self._newest_sample_t is None:
            return
        t_end = self.wall_time(self._newest_sample_t)
        xx = self._trace_dx[-2 * n :] + t_end
        self.trace_plot.setXRange(t_end - self.config.trace_s, t_end, padding=0)
        shown = self.page_channels()
        block = np.empty(2 * n, dtype=np.float32)
        lo, hi = env.lo[-n:], env.hi[-n:]
        # one robust scale for the page: at gain 1 the 1st-99th percentile range of a typical
        # channel fills 0.9 of its row
        spread = (
            np.median(
                np.percentile(hi[:, shown], 99, axis=0) - np.percentile(lo[:, shown], 1, axis=0)
            )
            if shown
            else 1.0
        )
        scale = 0.9 * self.gain / max(float(spread), 1e-12)
        for i, curve in enumerate(self.trace_curves):
            if i >= len(shown):
                continue
            c = shown[i]
            centre = float(np.median(lo[:, c] + hi[:, c]) / 2.0)
            block[0::2] = lo[:, c]
            block[1::2] = hi[:, c]
            curve.setData(xx, (block - centre) * scale - i, skipFiniteCheck=True)

    def wall_time(self, lsl_t):
        """Unix time (s) of an LSL timestamp of this machine (float or array): the one
        conversion behind every time axis of the window."""
        return lsl_t + self._unix_minus_lsl

    def _draw_spectra(self) -> None:
        if self._last_row is not None:
            row = self._last_row
            # the colour scale follows the data, rounded out to half decades: it moves when
            # the data leave it, not at every decision
            lo = math.floor(2.0 * float(np.min(row))) / 2.0
            hi = max(math.ceil(2.0 * float(np.max(row))) / 2.0, lo + 0.5)
            if (lo, hi) != tuple(self.heat_bar.levels()):
                self.heat_bar.setLevels((lo, hi))
            self.heat_img.setImage(row, autoLevels=False)
        spectrum = np.fft.rfft(self._selected_tail * self._spec_taper)[: self._spec_bins]
        self._spec_cols.append(np.log10(np.abs(spectrum) ** 2 + 1e-12).astype(np.float32))
        self._spec_t.append(self.wall_time(self._t[-1]))
        cols = np.array(self._spec_cols)
        x0, step, idx, _ = _regular_columns(
            np.fromiter(self._spec_t, np.float64, len(cols)),
            self.feature_config.hop_s,
            2 * self._spec_t.maxlen,
        )
        if len(idx) != len(cols) or idx[0] != 0 or np.any(np.diff(idx) != 1):
            cols = cols[idx]  # a gap or a frame late: columns onto the clock's grid
        self.spec_img.setImage(cols, autoLevels=True)
        df = self.fs_hz / self._spec_nfft  # row k is centred on k * df
        self.spec_img.setRect(QtCore.QRectF(x0, -df / 2, step * len(cols), self._spec_bins * df))

    def _draw_decisions(self) -> None:
        if not self._t:
            return
        t = np.array(self._t)
        wall = self.wall_time(t)
        p = np.array(self._p)
        for k, curve in enumerate(self.prob_curves):
            curve.setData(wall, p[:, k])
        rows = self._n_rows
        hop_s = self.feature_config.hop_s
        # a column per hop of the clock: a gap in the decisions is a gap in the row (no
        # decision then), not the next states pulled back in time
        x0, step, idx, stale = _regular_columns(wall, hop_s, 2 * self._t.maxlen, 2.5 * hop_s)
        decided = np.fromiter(self._decided, np.intp, len(t))[idx]
        decided[stale] = 0
        img = np.empty((len(idx), rows, 4), dtype=np.uint8)
        img[:, rows - 1] = self._state_lut[decided]
        if rows == 2:
            truth = np.zeros(len(idx), np.intp)  # unknown before the first mark
            if self._truth_marks:
                marks_t = self.wall_time(np.fromiter((m[0] for m in self._truth_marks), np.float64))
                codes = np.fromiter((m[1] for m in self._truth_marks), np.intp)
                grid = x0 + step * np.arange(1, len(idx) + 1)  # each column's end
                at = np.searchsorted(marks_t, grid, side="right") - 1
                truth[at >= 0] = codes[at[at >= 0]]
            img[:, 0] = self._state_lut[truth]
        self.timeline_img.setImage(img, levels=(0, 255))
        self.timeline_img.setRect(QtCore.QRectF(x0, 0.0, step * len(idx), float(rows)))
        # the linked spectrogram and timeline follow
        self.prob_plot.setXRange(x0, wall[-1], padding=0.01)
        if self._trigger_t:
            tt = self.wall_time(np.array(self._trigger_t))
            tt = tt[tt >= wall[0]]
            self.trigger_marks.setData(tt, np.full(tt.size, self._trigger_y))

    def _draw_banner(self, status) -> None:
        if self.no_signal:
            text, colour = "NO SIGNAL", STATE_COLOURS["no_signal"]
            text += f"  (no sample for {time.monotonic() - self._last_sample_wall:.0f} s)"
        elif status.state is None:
            text, colour = "waiting for decisions", STATE_COLOURS["no_signal"]
        else:
            since = status.state_since_s or 0.0
            text = f"{status.state.upper()}  for {_fmt_duration(since)}"
            colour = self.state_colour(status.state)
            if self.alarm_on and status.state == self.event_class:
                text = f"ALARM: {status.state.upper()}  {_fmt_duration(since)} since onset"
                self.ack_button.setEnabled(not self._alarm_acknowledged)
                if not self._alarm_acknowledged:
                    if int(time.monotonic() * 2) % 2:
                        colour = (255, 255, 255)  # flash until acknowledged
                    self._beep()
        fg = "black" if sum(colour) > 450 else "white"
        style = f"background-color: rgb{tuple(colour)}; color: {fg};"
        if text != self.banner.text():
            self.banner.setText(text)
        if style != self.banner.styleSheet():
            self.banner.setStyleSheet(style)

    def _beep(self) -> None:
        """Sound the alarm, once a second (until acknowledged)."""
        now = time.monotonic()
        if self.config.alarm_sound and now - self._last_beep >= 1.0:
            self._last_beep = now
            self.beeps += 1
            QtWidgets.QApplication.beep()

    def _draw_health(self, status) -> None:
        cpu = self._process.cpu_percent(None) / 100.0
        nominal = getattr(self.feed, "input_fs_hz", self.fs_hz)
        rate = status.input_rate_hz
        ok = abs(rate - nominal) < 0.01 * nominal and not self.no_signal
        parts = [
            f"<b>input</b> {rate / 1000:.2f} / {nominal / 1000:.2f} kHz"
            + ("" if ok else " <span style='color:red'><b>!</b></span>"),
            f"<b>lost</b> {status.missing_samples}",
            f"<b>gaps</b> {status.gaps}",
            f"<b>overruns</b> {status.overruns}",
            # no latency before the first decision: "-", not a measured-looking 0.00 ms
            "<b>latency</b> "
            + (
                f"p50 {status.latency_p50_ms:.2f} ms p99 {status.latency_p99_ms:.2f} ms"
                if status.decisions
                else "-"
            ),
            f"<b>clock offset</b> {status.clock_offset_s * 1e3:.3f} ms",
            f"<b>decisions</b> {status.decisions} ({status.decisions_per_s:.1f}/s)",
            _channels_text(status.bad_channels, self.n_channels),
            *(
                [
                    f"<b>triggers</b> {self.triggers_seen}"
                    + ("" if self.stim_armed is not False else " <b>(DISARMED)</b>")
                ]
                if getattr(self.feed, "stim_active", False)
                else []
            ),
            f"<b>stream</b> {status.stream_health}"
            + (
                f", {status.skipped_decisions} skipped, {status.stale_decisions} stale"
                if status.skipped_decisions or status.stale_decisions
                else ""
            ),
        ]
        decoder_cpu = getattr(self.feed, "decoder_cpu_cores", None)
        if decoder_cpu is not None:
            parts.append(f"<b>CPU</b> decoder {decoder_cpu:.3f}, monitor {cpu:.2f} cores")
        else:
            parts.append(f"<b>CPU</b> {cpu:.2f} cores (decoder + monitor)")
        if self.no_signal:
            parts.insert(0, "<span style='color:red'><b>NO SIGNAL</b></span>")
        self.health.setText(" &nbsp;|&nbsp; ".join(parts))

    def frame_cost_ms(self) -> float:
        """Median time of the last frames' refresh, ms (for the benchmark)."""
        return float(np.median(self._frame_times) * 1e3) if self._frame_times else 0.0

    @property
    def frames(self) -> int:
        return self._frames


def _regular_columns(
    times: np.ndarray, step_s: float, max_columns: int, hold_s: float = math.inf
) -> tuple[float, float, np.ndarray, np.ndarray]:
    """Columns of an image on a regular clock grid ending at the newest of ``times``.

    Parameters
    ----------
    times : ndarray, shape (n,), float64, seconds
        Increasing times of the things drawn (decisions, spectra), n >= 1.
    step_s : float
        The grid step, seconds: the decision hop. Larger when the span would need more than
        ``max_columns`` columns.
    max_columns : int
        Most columns made.
    hold_s : float
        A column more than this after the newest thing at or before it is marked stale.

    Returns
    -------
    x0 : float
        Left edge of the first column (column k covers ``x0 + k * step`` to the next).
    step : float
        Column width, seconds.
    idx : ndarray, shape (n_columns,), intp
        Which of ``times`` each column shows: the newest at or before the column's end.
    stale : ndarray, shape (n_columns,), bool
        Columns with nothing drawn in the last ``hold_s`` seconds (a gap).
    """
    span = float(times[-1] - times[0])
    step = max(step_s, span / max(max_columns - 1, 1))
    # unix times hold about 2e-7 s: the tolerance keeps a column per hop despite rounding
    n = int(span / step + 1e-3) + 1
    ends = times[-1] - step * np.arange(n - 1, -1, -1)
    idx = np.searchsorted(times, ends + 1e-3 * step, side="right") - 1
    np.maximum(idx, 0, out=idx)
    return float(ends[0] - step), step, idx, ends - times[idx] > hold_s


def _title_legend(plot: pg.PlotWidget, n_entries: int) -> pg.LegendItem:
    """A one-row legend at the right of ``plot``'s title row (the title is left-justified)."""
    legend = pg.LegendItem(colCount=n_entries, frame=False)
    legend.setParentItem(plot.getPlotItem())
    legend.anchor(itemPos=(1, 0), parentPos=(1, 0), offset=(-10, 0))
    return legend


def _channels_text(bad: dict, n_channels: int) -> str:
    """Health-panel text of the channel checks: all good, or which are bad and why."""
    if not bad:
        return f"<b>channels</b> {n_channels}/{n_channels} ok"
    listed = ", ".join(f"{name} {why}" for name, why in list(bad.items())[:6])
    more = f" +{len(bad) - 6}" if len(bad) > 6 else ""
    return (
        f"<b>channels</b> <span style='color:red'>{n_channels - len(bad)}/{n_channels} ok"
        f"</span> ({listed}{more})"
    )


def _fmt_duration(seconds: float) -> str:
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.1f} s"
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def run_monitor(
    feed,
    *,
    duration_s: float | None = None,
    screenshot: str | None = None,
    truth=None,
    config: MonitorConfig | None = None,
) -> MonitorWindow:
    """Open the window over ``feed`` (a DecoderFeed, an LslFeed, or a Decoder, started here if
    needed) and run Qt until closed, ``duration_s`` passes or the decoder stops; then save
    ``screenshot`` (PNG) if asked. Returns the window."""
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    window = MonitorWindow(feed, truth=truth, config=config)
    feed = window.feed
    if isinstance(feed, DecoderFeed) and not feed.decoder.running:
        feed.decoder.start()
    window.show()
    if duration_s is not None:
        QtCore.QTimer.singleShot(int(duration_s * 1000), app.quit)
    stop_check = QtCore.QTimer()
    stop_check.timeout.connect(lambda: None if feed.running() else app.quit())
    stop_check.start(200)
    proc = psutil.Process(os.getpid())
    cpu0, wall0, frames0 = sum(proc.cpu_times()[:2]), time.monotonic(), window.frames
    app.exec()
    wall = max(1e-9, time.monotonic() - wall0)
    window.stats = {
        "frames": window.frames - frames0,
        "seconds": wall,
        "fps": (window.frames - frames0) / wall,
        "frame_ms": window.frame_cost_ms(),
        "cpu_cores": (sum(proc.cpu_times()[:2]) - cpu0) / wall,
    }
    logger.info(
        "monitor: %(frames)d frames in %(seconds).1f s (%(fps).1f fps), refresh median "
        "%(frame_ms).1f ms, %(cpu_cores).2f cores",
        window.stats,
    )
    if screenshot:
        window.refresh()
        window.grab().save(str(screenshot))
        logger.info("screenshot saved to %s", screenshot)
    window.close()
    return window
