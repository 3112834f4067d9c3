# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The acquisition loop: LSL inlet -> ring buffer, entirely without the GIL.

It calls liblsl's C functions through the addresses of the library that pylsl already loaded
(no second copy of liblsl, no link-time dependency). Each pass waits in ``lsl_pull_sample_*``
(which wakes as soon as a sample arrives: ``pull_chunk`` with a timeout would wait for a full
buffer), drains what else is queued with ``lsl_pull_chunk_*(timeout=0)``, converts the stream's
format to float32 once and publishes the chunk to the ring buffer. Gaps and non-monotonic
timestamps are counted here, per sample, by a ``TimestampClassifier`` (which runs without LSL
too: ``rtdecode.acquisition.timing`` is its reference in plain Python).
"""
import numpy as np
cimport cython
cimport numpy as cnp
from libc.stdint cimport int16_t, int32_t
from libc.math cimport NAN, fabs, floor, isfinite
from posix.time cimport nanosleep, timespec
from posix.stat cimport struct_stat, fstat

cdef extern from "<sys/socket.h>" nogil:
    int setsockopt(int fd, int level, int optname, const void *optval, unsigned int optlen)
    int SOL_SOCKET
    int SO_RCVLOWAT

from rtdecode.acquisition._ringbuffer cimport RingBuffer
from rtdecode.common.memory import resident_zeros

cnp.import_array()

cdef extern from "rt_sync.h" nogil:
    int rt_load_int(const int *p)
    void rt_store_int(int *p, int v)
    long long rt_load(const long long *p)
    void rt_store(long long *p, long long v)
    void rt_fence_release()

ctypedef double (*pull_sample_fn)(void* inlet, void* buf, int32_t n, double timeout,
                                  int32_t* ec) noexcept nogil
ctypedef unsigned long (*pull_chunk_fn)(void* inlet, void* data, double* ts,
                                        unsigned long data_elements, unsigned long ts_elements,
                                        double timeout, int32_t* ec) noexcept nogil
ctypedef double (*clock_fn)() noexcept nogil

# Largest receive low-water mark set on the data socket (bytes).
cdef double _MAX_MARK = 65536.0
cdef double _MARK_FRACTION = 0.75
cdef double _LEAD_S = 0.0015
# With the urgent sample's arrival predicted from the timestamps, blocking starts this long
# before it.
cdef double _EARLY_S = 0.0005
# A forward jump in the timestamps up to this long waits for the next samples' verdict (gap or
# source stall); longer ones are gaps at once.
cdef double _MAX_PENDING_S = 0.5
# Samples drained this soon after a wait returned belong to the packet it began with; the
# packet's delay is noted after.
cdef double _BURST_S = 0.001

# _sock_fd when there is no socket to mark: none given, or the one given went.
cdef enum:
    SOCK_NONE = -1
    SOCK_LOST = -2

# liblsl channel formats we accept (lsl_channel_format_t values).
cdef enum:
    FMT_FLOAT32 = 1
    FMT_DOUBLE64 = 2
    FMT_INT32 = 4
    FMT_INT16 = 5

FORMAT_FLOAT32 = FMT_FLOAT32
FORMAT_DOUBLE64 = FMT_DOUBLE64
FORMAT_INT32 = FMT_INT32
FORMAT_INT16 = FMT_INT16
_DTYPES = {
    FORMAT_FLOAT32: np.float32,
    FORMAT_DOUBLE64: np.float64,
    FORMAT_INT32: np.int32,
    FORMAT_INT16: np.int16,
}

# Indices into the counters array (float64 so one array carries counts and times).
cdef enum:
    I_CHUNKS = 0
    I_SAMPLES = 1
    I_GAPS = 2
    I_MISSING = 3        # samples missing in gaps, estimated from the timestamp jump
    I_NONMONOTONIC = 4
    I_LAST_TS = 5        # LSL timestamp of the newest sample
    I_FIRST_TS = 6
    I_ERROR = 7          # last liblsl error code (0 = none)
    I_LAST_GAP = 8       # absolute index of the first sample after the newest gap (0 = none)
    I_RESETS = 9         # timestamps stepping back by more than the gap tolerance
    I_CLOCK_JUMPS = 10   # clock-offset updates larger than the gap tolerance
    I_PENDING_GAP = 11   # absolute index of the first sample after a forward jump not yet
                         # judged (0 = none): the decoder decides nothing past it meanwhile
    I_STALLS = 12        # forward jumps that the next timestamps made up for (a source that
                         # stalled and stamps its chunks by push time): no sample was missing
    I_BAD_TS = 13        # NaN or infinite timestamps, each replaced by one period after the last
    I_COUNT = 14

cdef enum:
    N_LAGS = 16          # arrival lags kept (the prediction uses their minimum)
    MIN_LAGS = 4         # ... and needs at least this many

COUNTER_NAMES = ("chunks", "samples", "gaps", "missing_samples", "nonmonotonic",
                 "last_ts", "first_ts", "lsl_error", "last_gap_sample", "timestamp_resets",
                 "clock_jumps", "pending_gap_sample", "source_stalls", "bad_timestamps")


cdef inline double _smallest(const double* values, int n) noexcept nogil:
    """The smallest of ``values[:n]`` (``n >= 1``)."""
    cdef double least = values[0]
    cdef int i
    for i in range(1, n):
        if values[i] < least:
            least = values[i]
    return least


@cython.final
cdef class TimestampClassifier:
    """The acquisition's timing policy: classify the step from each sample's timestamp to the
    next (gap, source stall, timestamp reset, jitter, clock jump) into the counters of
    ``COUNTER_NAMES``.

    Parameters
    ----------
    nominal_rate_hz : float
        The stream's nominal rate.
    gap_tolerance_s : float
        A timestamp step longer than one period plus this is a forward jump.

    Notes
    -----
    ``AcquisitionLoop`` holds one and runs it on every chunk it pulls, without the GIL; its
    counters are the loop's. ``push`` and ``pause`` run the same code from Python on synthetic
    timestamps (no LSL), for the tests that hold it to its reference,
    ``rtdecode.acquisition.timing.TimingPolicy``.
    """
    cdef double[::1] _counters
    cdef double _period, _gap_tol
    cdef double _offset_used     # the offset applied to the newest sample
    cdef double _pend_jump       # a forward jump awaiting its verdict: its size (s), ...
    cdef double _pend_back       # ... the backward steps since (s), ...
    cdef long long _pend_until   # ... and the sample count by which it is judged a gap
    # A stalled source pushes its backlog in a burst after its jump, also past the verdict:
    # the loop waits for every packet (no naps) until this sample count
    cdef readonly long long catch_up_until

    def __cinit__(self, double nominal_rate_hz, double gap_tolerance_s=0.05):
        if not (nominal_rate_hz > 0):
            raise ValueError(f"nominal_rate_hz must be > 0, got {nominal_rate_hz}")
        self._period = 1.0 / nominal_rate_hz
        self._gap_tol = gap_tolerance_s
        self._counters = np.zeros(I_COUNT, dtype=np.float64)
        self._offset_used = 0.0
        self._pend_jump = 0.0
        self._pend_back = 0.0
        self._pend_until = 0
        self.catch_up_until = 0

    @property
    def counters(self) -> np.ndarray:
        """Live view of the counters (in the order of ``COUNTER_NAMES``)."""
        return np.asarray(self._counters)

    def counter(self, Py_ssize_t index) -> float:
        """One counter (index into ``COUNTER_NAMES``)."""
        if not 0 <= index < I_COUNT:
            raise IndexError(f"counter index {index} out of range")
        return self._counters[index]

    @property
    def pending(self) -> tuple[int, float, float, int] | None:
        """The forward jump awaiting its verdict, ``(at_sample, jump_s, back_s, judged_at)``
        (its first sample, its size beyond the nominal periods, the backward steps since, the
        sample count from which it is a gap), or None."""
        if self._pend_jump > 0.0:
            return (<long long>self._counters[I_PENDING_GAP], self._pend_jump, self._pend_back,
                    self._pend_until)
        return None

    def push(self, timestamps, double offset_s=0.0) -> np.ndarray:
        """Classify one chunk as the loop does after a pull, and count it as pulled.

        Parameters
        ----------
        timestamps : array_like of float, shape (n,)
            The chunk's timestamps as liblsl gives them (source clock), ``n >= 1`` (the loop
            never classifies an empty chunk).
        offset_s : float
            The clock offset in force (``AcquisitionLoop.set_time_offset``).

        Returns
        -------
        ndarray, shape (n,), float64
            The timestamps with the offset added, as the ring buffer gets them.
        """
        arr = np.array(timestamps, dtype=np.float64, order="C")  # a copy: corrected in place
        if arr.ndim != 1 or arr.shape[0] == 0:
            raise ValueError(f"timestamps must be a non-empty 1-D sequence, got shape {arr.shape}")
        cdef double[::1] ts = arr
        cdef Py_ssize_t n = ts.shape[0]
        self._classify(&ts[0], n, offset_s)
        # as the loop counts a chunk: once it is in the ring buffer
        self._counters[I_CHUNKS] += 1
        self._counters[I_SAMPLES] += n
        return arr

    def pause(self) -> None:
        """The stream paused (a nap or a blocking wait of the loop brought nothing): a forward
        jump still awaiting its verdict is a gap, since no catch-up is coming."""
        self._confirm_gap()

    cdef void _classify(self, double* ts, Py_ssize_t n, double offset) noexcept nogil:
        """Add ``offset`` to the ``n`` timestamps ``ts`` in place and classify them."""
        # A forward step beyond one period + tolerance is a gap (samples lost); a backward step
        # beyond a second is a reset (a restarted device or clock); either starts the windows
        # afresh (I_LAST_GAP). Smaller backward steps are jitter (sources that stamp chunks by
        # their push time step back by up to a chunk): counted, kept. A step
        # that only reflects a new clock offset (data continuous) is a clock jump: counted,
        # never a gap.
        # A forward step of up to _MAX_PENDING_S is judged by what follows: a source that
        # stalls and stamps its chunks by push time (pylsl's default) jumps ahead, then steps
        # back chunk by chunk as it pushes its backlog; nothing is missing. If the backward
        # steps make up half the jump within 1.5 jumps' worth of samples (+ 20 ms), it was a
        # stall (I_STALLS); otherwise, or if the stream pauses first, a gap at the jump.
        # Meanwhile I_PENDING_GAP holds the decoder before the jump.
        cdef Py_ssize_t i
        cdef double last = self._counters[I_LAST_TS], t, dt
        cdef double limit = self._period + self._gap_tol
        cdef double reset_limit = self._gap_tol if self._gap_tol > 1.0 else 1.0
        cdef double step = offset - self._offset_used
        cdef long long at
        if last != 0.0 and (step > self._gap_tol or step < -self._gap_tol):
            self._counters[I_CLOCK_JUMPS] += 1
        cdef Py_ssize_t j
        for i in range(n):
            t = ts[i] + offset
            if not isfinite(t):
                # a NaN or infinite timestamp (a broken or hostile source): counted, and put one
                # period after the sample before it, so that it is no step at all
                self._counters[I_BAD_TS] += 1
                if last != 0.0:
                    t = last + self._period + step
                    dt = t - last - step
                else:  # no sample before: one period before the next finite one, if any
                    t = 0.0
                    for j in range(i + 1, n):
                        if isfinite(ts[j] + offset):
                            t = ts[j] + offset - (j - i) * self._period
                            break
            elif last != 0.0:
                dt = t - last - step
                if (((dt > limit and self._pend_jump + dt - self._period > _MAX_PENDING_S)
                        or dt < -reset_limit)
                        and self._next_on_line(ts, i, n, offset, last, step, limit, reset_limit)):
                    # a step that would be a reset or a gap at once, from one finite timestamp
                    # far off a line its neighbours keep (a glitch in the source's clock):
                    # repaired as a NaN is, not a reset or a gap of its size
                    self._counters[I_BAD_TS] += 1
                    t = last + self._period + step
                    dt = t - last - step
            ts[i] = t
            if last != 0.0:
                step = 0.0  # only the first sample after an offset change carries it
                at = <long long>self._counters[I_SAMPLES] + i
                if dt > limit:
                    if self._pend_jump + dt - self._period <= _MAX_PENDING_S:
                        if self._pend_jump == 0.0:
                            self._pend_back = 0.0
                            self._counters[I_PENDING_GAP] = at
                        self._pend_jump += dt - self._period
                        self._pend_until = at + <long long>(
                            (1.5 * self._pend_jump + 0.02) / self._period)
                        if self._pend_until > self.catch_up_until:
                            self.catch_up_until = self._pend_until
                    else:
                        self._confirm_gap()
                        self._mark_gap(at, dt - self._period)
                elif dt < -reset_limit:
                    self._confirm_gap()
                    self._counters[I_RESETS] += 1
                    self._counters[I_LAST_GAP] = at
                elif dt < 0.0:
                    self._counters[I_NONMONOTONIC] += 1
                    if self._pend_jump > 0.0:
                        self._pend_back -= dt
                        if self._pend_back >= 0.5 * self._pend_jump:
                            # the timestamps came back: a stall, not a gap
                            self._pend_jump = 0.0
                            self._counters[I_STALLS] += 1
                            self._counters[I_PENDING_GAP] = 0
                if self._pend_jump > 0.0 and at >= self._pend_until:
                    self._confirm_gap()
            else:
                self._counters[I_FIRST_TS] = t
                step = 0.0  # the offset in force from the first sample on is no step
            last = t
        self._counters[I_LAST_TS] = last
        self._offset_used = offset

    cdef bint _next_on_line(self, const double* ts, Py_ssize_t i, Py_ssize_t n, double offset,
                            double last, double step, double limit,
                            double reset_limit) noexcept nogil:
        """Whether the sample after ``i`` in the chunk steps normally from ``last`` as if sample
        ``i`` had been on time (so ``i``'s own big step was a lone outlier)."""
        cdef double nxt
        if i + 1 >= n:
            return 0
        nxt = ts[i + 1] + offset
        if not isfinite(nxt):
            return 0
        return -reset_limit <= nxt - last - self._period - step <= limit

    cdef void _mark_gap(self, long long at, double jump_s) noexcept nogil:
        self._counters[I_GAPS] += 1
        self._counters[I_MISSING] += floor(jump_s / self._period + 0.5)
        # the gap's position is published before the pending mark goes: a reader that sees no
        # pending mark sees the gap
        self._counters[I_LAST_GAP] = at
        rt_fence_release()

    cdef void _confirm_gap(self) noexcept nogil:
        """Judge the forward jump awaiting its verdict (if any) a gap."""
        if self._pend_jump > 0.0:
            self._mark_gap(<long long>self._counters[I_PENDING_GAP], self._pend_jump)
            self._pend_jump = 0.0
            self._counters[I_PENDING_GAP] = 0


cdef class AcquisitionLoop:
    """Pull from one LSL inlet into a ring buffer until stopped.

    Parameters
    ----------
    ring : RingBuffer
    inlet_handle : int
        The ``lsl_inlet`` pointer (``pylsl.StreamInlet.obj.value``).
    pull_sample_addr, pull_chunk_addr : int
        Addresses of the liblsl pull functions matching the stream's format.
    channel_format : int
        liblsl channel format code (float32, double64, int32 or int16).
    n_channels : int
    nominal_rate_hz : float
        The stream's nominal rate, used for gap detection.
    gap_tolerance_s : float
        A timestamp step longer than one period plus this counts as a gap.
    max_chunk : int
        Samples drained per pass at most.
    keepalive : object, optional
        Kept referenced while the loop exists (the pylsl inlet whose handle it uses).
    lazy_s : float
        The longest nap between drains while no urgent sample is near.
    clock_addr : int, optional
        Address of ``lsl_local_clock``, to predict when urgent samples arrive (0: from sample
        counts only).

    Notes
    -----
    ``run`` blocks the calling thread (without the GIL) until ``stop`` is called from another
    thread or liblsl reports an error; the counters are readable at any time.
    """
    cdef RingBuffer _ring
    cdef void* _inlet
    cdef pull_sample_fn _pull_sample
    cdef pull_chunk_fn _pull_chunk
    cdef int _fmt
    cdef Py_ssize_t _n_ch, _max_chunk
    cdef double _period
    cdef object _stage_native
    cdef char* _stage_ptr
    cdef Py_ssize_t _item
    cdef float[:, ::1] _stage_f32
    cdef double[::1] _stage_ts
    cdef double[::1] _counters    # the classifier's (one array: counts, times, positions)
    cdef TimestampClassifier _timing
    cdef int _stop
    cdef double _offset
    cdef long long _urgent_at
    cdef long long _urgent_then   # the urgent sample once _urgent_at has arrived (0: none)
    cdef clock_fn _clock          # lsl_local_clock, or NULL: no arrival prediction
    cdef double _lags[N_LAGS]     # newest sample's age at recent prompt pulls (s)
    cdef double _phases[N_LAGS]   # ... and its arrival time minus its count's nominal time (s)
    cdef int _n_lags, _lag_next
    cdef long long _blocking_for  # the urgent sample of the current blocking part
    cdef double _lag_offset       # the time offset those ages were measured under
    cdef long long _lead
    cdef double _lazy_s
    cdef double _last_write    # clock time of the newest write to the ring (0: none yet)
    cdef double _cand_lag, _cand_phase   # a wait's delays, until the rest of its packet is in
    cdef double _cand_t        # ... and when that wait returned (0: none pending)
    cdef bint _cand_settle     # ... and whether the rest of its packet may still be coming
    cdef object _keepalive
    cdef int _sock_fd            # the inlet's data socket, or SOCK_NONE / SOCK_LOST
    cdef unsigned long _sock_inode
    cdef int _lowat              # its SO_RCVLOWAT as last set here
    cdef long long _wire_bytes   # lower bound of one sample's bytes on the wire

    def __cinit__(self, RingBuffer ring not None, size_t inlet_handle, size_t pull_sample_addr,
                  size_t pull_chunk_addr, int channel_format, Py_ssize_t n_channels,
                  double nominal_rate_hz, double gap_tolerance_s=0.05, Py_ssize_t max_chunk=4096,
                  keepalive=None, double lazy_s=0.024, size_t clock_addr=0):
        if channel_format not in _DTYPES:
            raise ValueError(
                f"channel format code {channel_format} is not supported; "
                "use float32, double64, int32 or int16"
            )
        if ring.n_channels != n_channels:
            raise ValueError(f"ring holds {ring.n_channels} channels, stream has {n_channels}")
        if not (nominal_rate_hz > 0):
            raise ValueError(f"nominal_rate_hz must be > 0, got {nominal_rate_hz}")
        if inlet_handle == 0 or pull_sample_addr == 0 or pull_chunk_addr == 0:
            raise ValueError("null inlet handle or liblsl function address")
        self._ring = ring
        self._inlet = <void*>inlet_handle
        self._pull_sample = <pull_sample_fn>pull_sample_addr
        self._pull_chunk = <pull_chunk_fn>pull_chunk_addr
        self._fmt = channel_format
        self._n_ch = n_channels
        self._max_chunk = max_chunk
        self._period = 1.0 / nominal_rate_hz
        # the stages are resident from here: a backlog's large pull must not fault them in
        f32 = resident_zeros((max_chunk, n_channels), np.float32)
        self._stage_f32 = f32
        # float32 streams are pulled straight into the float32 stage (no conversion copy)
        arr = f32 if channel_format == FMT_FLOAT32 else resident_zeros(
            (max_chunk, n_channels), _DTYPES[channel_format])
        self._stage_native = arr
        self._item = arr.itemsize
        self._stage_ptr = <char*>cnp.PyArray_DATA(arr)
        self._stage_ts = np.zeros(max_chunk, dtype=np.float64)
        self._timing = TimestampClassifier(nominal_rate_hz, gap_tolerance_s)
        self._counters = self._timing._counters
        self._stop = 0
        self._offset = 0.0
        self._urgent_at = 0
        self._urgent_then = 0
        # (rtdecode.acquisition.inlet.lazy_nap_s: 24 ms at 64 ch, 8 ms from 256 ch at 32 kHz)
        self._lazy_s = lazy_s
        self._last_write = 0.0
        self._cand_t = 0.0
        self._cand_settle = 0
        self._clock = <clock_fn>clock_addr if clock_addr != 0 else NULL
        self._n_lags = 0
        self._lag_next = 0
        self._lag_offset = 0.0
        self._blocking_for = -1
        # Until the urgent sample's arrival can be predicted from the timestamps, switch to
        # blocking waits this many samples (1.5 ms) before it: while blocking, liblsl's receiver
        # wakes this thread for every packet, so that part is kept short.
        self._lead = <long long>(_LEAD_S * nominal_rate_hz) + 1
        if max_chunk < self._lead:
            raise ValueError(f"max_chunk ({max_chunk}) must hold at least {self._lead} samples")
        # The pylsl inlet must outlive the loop: its handle is used without the GIL.
        self._keepalive = keepalive
        self._sock_fd = SOCK_NONE
        self._sock_inode = 0
        self._lowat = 1
        self._wire_bytes = n_channels * self._item

    def set_receive_socket(self, int fd, unsigned long inode) -> None:
        """The inlet's data socket (its fd and inode), whose receive low-water mark this loop
        then sets: while it naps, liblsl's receiver is woken only once the kernel holds about
        the data the nap spans (instead of at every packet the source sends: one per 1 ms
        chunk); from the blocking part on, at every byte. ``-1`` stops it."""
        self._sock_inode = inode
        self._lowat = 1
        self._sock_fd = fd

    @property
    def receive_socket_lost(self) -> bool:
        """Whether the socket given to ``set_receive_socket`` went (a reconnection)."""
        return self._sock_fd == SOCK_LOST

    @property
    def counters(self) -> np.ndarray:
        """Live view of the counters (in the order of ``COUNTER_NAMES``)."""
        return np.asarray(self._counters)

    def counter(self, Py_ssize_t index) -> float:
        """One counter (index into ``COUNTER_NAMES``), without building an array view."""
        if not 0 <= index < I_COUNT:
            raise IndexError(f"counter index {index} out of range")
        return self._counters[index]

    def set_time_offset(self, double offset_s) -> None:
        """Clock offset added to every timestamp from now on (source clock -> local clock).

        Updated from a slow side thread: liblsl's own in-pull clock synchronisation can hold a
        pull for as long as a time-correction exchange takes, which would be added latency.
        """
        self._offset = offset_s

    @property
    def time_offset(self) -> float:
        return self._offset

    def set_urgent_at(self, long long count, long long then=0) -> None:
        """The absolute sample count whose arrival is latency-critical (the next window's last
        sample), and optionally the one after it (``then``: urgent from the moment ``count``
        has arrived, with no call in between).

        Far from it the loop drains every ``lazy_s`` seconds, its last nap cut to end shortly
        before the sample is due; from there it blocks in ``pull_sample``, which returns as
        soon as a sample arrives. Waiting in ``pull_sample`` all the time makes liblsl's
        receiver signal this thread for every sample (measured: 0.058 cores at 32 kHz x 64 ch,
        mostly futex wake-ups). When the sample is due is predicted from its timestamp (the
        newest sample's plus the nominal periods between them) and the smallest of the recent
        delays between a sample's timestamp and its arrival, but never later than the stream's
        recent pace says (for a source that fell behind and will catch up): blocking starts
        0.5 ms before that. Without a clock, or until those delays are known, it starts 1.5 ms
        before the sample counts at the nominal rate say, counting the bytes the receive mark
        may hold back as arrived. ``0`` = always urgent.
        """
        # ``then`` first: a loop that reads the new ``count`` must not pair it with an old
        # ``then``
        rt_store(&self._urgent_then, then)
        rt_store(&self._urgent_at, count)

    @property
    def urgent(self) -> tuple[int, int]:
        """``(count, then)`` as last given to ``set_urgent_at``."""
        cdef long long count = rt_load(&self._urgent_at)
        return count, rt_load(&self._urgent_then)

    def stop(self) -> None:
        """Ask ``run`` to return after its current wait (<= ``wait_s``)."""
        rt_store_int(&self._stop, 1)

    def run(self, double wait_s=0.05) -> int:
        """Acquire until stopped; return the liblsl error code that ended it (0 when stopped)."""
        cdef int32_t ec = 0
        with nogil:
            ec = self._loop(wait_s)
        return ec

    cdef int32_t _loop(self, double wait_s) noexcept nogil:
        cdef int32_t ec = 0
        cdef double ts0
        cdef unsigned long got
        cdef Py_ssize_t n, rest
        cdef Py_ssize_t C = self._n_ch
        cdef long long urgent
        cdef timespec nap
        cdef double nap_s
        cdef long long written
        cdef int napped = 0
        cdef int waited           # this pass's samples came after a wait in pull_sample
        cdef double mark
        cdef double until_block   # seconds until blocking should start (when far from it)
        cdef bint blocking        # waiting in pull_sample from now (near an urgent sample)
        cdef bint settling        # ... or for the rest of the packet a wait returned with
        cdef double settle_s
        cdef long long then
        cdef double now, lag, phase, known
        while not rt_load_int(&self._stop):
            urgent = rt_load(&self._urgent_at)
            then = rt_load(&self._urgent_then)
            n = 0
            waited = 0
            written = self._ring.written_nogil()
            if then > 0 and written >= urgent:
                urgent = then
            until_block = self._until_block(urgent, written) if urgent > 0 else 0.0
            # the rest of the packet a wait returned with comes in pieces right after it (liblsl
            # queues a 32 ms block so): take it before any nap, whatever the prediction says
            settle_s = 0.0
            if self._cand_settle and self._cand_t > 0.0 and self._clock != NULL:
                settle_s = _BURST_S - (self._clock() - self._cand_t)
            # a source catching up after a forward jump delivers in a burst whose end no
            # prediction from the timestamps or the count knows: no naps until it is over
            blocking = until_block <= 0.0 or written < self._timing.catch_up_until
            settling = settle_s > 0.0 and not blocking
            blocking = blocking or settling
            if blocking:
                # from the blocking part on, liblsl's receiver wakes at every byte (the mark is
                # released before the drain below, so the drain finds what the mark held back)
                self._set_lowat(1)
            # what is queued first: only a sample that arrives during a wait tells when
            # samples arrive
            got = self._pull_chunk(self._inlet, self._stage_ptr, &self._stage_ts[0],
                                   <unsigned long>(self._max_chunk * C),
                                   <unsigned long>self._max_chunk, 0.0, &ec)
            if ec != 0:
                self._counters[I_ERROR] = ec
                return ec
            n = <Py_ssize_t>(got // C)
            rest = 0
            if (n > 0 and (not blocking or self._blocking_for != urgent) and not settling
                    and written < urgent <= written + n):
                # the urgent sample came before its wait began (far from it, or in the first
                # drain of its blocking part; in the rest of a packet it is no sign of that)
                self._prediction_late()
            if not blocking:
                if n == 0:
                    # far from the next window end, nothing queued: nap a lazy period, or
                    # until the blocking part should start if sooner
                    nap_s = until_block
                    if nap_s > self._lazy_s:
                        nap_s = self._lazy_s
                    if nap_s < 0.0005:
                        nap_s = 0.0005
                    if napped:
                        # the last nap brought nothing: the source paused or ended, maybe
                        # with its last samples held below the mark: release them; and no
                        # catch-up is coming for a jump still awaiting its verdict
                        self._set_lowat(1)
                        self._timing._confirm_gap()
                    else:
                        # the mark for this nap: 3/4 of the bytes of the samples due in it (each
                        # sample carries a header too, so fewer bytes than these reach it): the
                        # receiver wakes about once a nap, and at least once, so the nap's end
                        # finds the samples queued (with half the bytes: twice a nap). At most
                        # 64 KiB: from ~512 channels a 1 ms packet is that big, so a wake per
                        # packet costs little beside its data, and marks near the size of TCP's
                        # receive window could hold the sender back
                        mark = _MARK_FRACTION * nap_s * self._wire_bytes / self._period
                        self._set_lowat(<int>(mark if mark < _MAX_MARK else _MAX_MARK))
                    napped = 1
                    nap.tv_sec = <long>nap_s
                    nap.tv_nsec = <long>((nap_s - <double>nap.tv_sec) * 1e9)
                    nanosleep(&nap, NULL)
                    continue
            else:
                if n == 0:
                    ts0 = self._pull_sample(self._inlet, self._stage_ptr, <int32_t>C,
                                            settle_s if settling else wait_s, &ec)
                    if ec != 0:
                        self._counters[I_ERROR] = ec
                        return ec
                    if ts0 == 0.0 and settling:
                        continue  # the packet was whole
                    if ts0 == 0.0:
                        # nothing for wait_s: the stream paused, so no catch-up is coming for a
                        # jump still awaiting its verdict
                        self._timing._confirm_gap()
                        continue
                    self._stage_ts[0] = ts0
                    n = 1
                    rest = self._max_chunk - 1
                    waited = 1
                self._blocking_for = urgent
            napped = 0
            # After a wait, drain until the queue is empty: the wait returns at the first sample
            # of a packet while liblsl's receiver is still queueing the rest, and the delay
            # measured below must be that of the packet's last sample (measured at an earlier
            # one, it is longer by the samples between them, up to a packet: predictions late
            # by that much)
            while rest > 0:
                got = self._pull_chunk(self._inlet, self._stage_ptr + n * C * self._item,
                                       &self._stage_ts[n], <unsigned long>(rest * C),
                                       <unsigned long>rest, 0.0, &ec)
                if ec != 0:
                    self._counters[I_ERROR] = ec
                    return ec
                if got == 0:
                    break
                n += <Py_ssize_t>(got // C)
                rest -= <Py_ssize_t>(got // C)
            self._convert(n)
            # the offset is read once per chunk (the clock thread may change it meanwhile)
            self._timing._classify(&self._stage_ts[0], n, self._offset)
            if self._clock != NULL:
                now = self._clock()
                lag = now - self._counters[I_LAST_TS]
                phase = now - (written + n) * self._period
                if self._cand_t > 0.0 and now - self._cand_t < _BURST_S:
                    # more of the packet a wait began with: liblsl queues a big one (a 32 ms
                    # block) in pieces, and the wait returns at the first, whose newest sample
                    # is older than the packet's by the pieces still to come (noted at once, a
                    # delay late by up to a block: so were the waits predicted from it)
                    if lag < self._cand_lag:
                        self._cand_lag = lag
                    if phase < self._cand_phase:
                        self._cand_phase = phase
                else:
                    if self._cand_t > 0.0:
                        self._note_lag(self._cand_lag, self._cand_phase)
                        self._cand_t = 0.0
                    if waited:
                        # a pull that waited returns as a sample arrives: the newest sample's
                        # age now is about the delay between a timestamp and its arrival (once
                        # the rest of its packet is in)
                        self._cand_lag, self._cand_phase, self._cand_t = lag, phase, now
                        # ... which, when its newest sample is older than the delays known say
                        # (or none is known), may have come in part: wait for the rest then
                        known = self._arrival_lag(0)
                        self._cand_settle = not (lag - known <= _EARLY_S)
                self._last_write = now
            self._ring.write_ptr(&self._stage_f32[0, 0], &self._stage_ts[0], n)
            self._counters[I_CHUNKS] += 1
            self._counters[I_SAMPLES] += n
        self._set_lowat(1)
        return 0

    cdef double _until_block(self, long long urgent, long long written) noexcept nogil:
        """Seconds from now until blocking for sample count ``urgent`` should start (<= 0:
        now)."""
        cdef long long unseen
        cdef double due, on_pace, behind, since
        cdef double lag = self._arrival_lag(1)
        if lag == lag:
            # the urgent sample's timestamp, as the newest one's plus the periods between them
            due = self._counters[I_LAST_TS] + (urgent - written) * self._period + lag
            # ... unless the stream is behind its pace: a source that fell behind stamps its
            # late samples late, then catches up, so the urgent sample can come as early as the
            # stream's best recent pace says (its sample count's nominal time plus the smallest
            # recent difference between the two); predicted from the late stamps, a nap would
            # run through the catch-up.
            on_pace = _smallest(self._phases, self._n_lags) + urgent * self._period
            if on_pace < due:
                due = on_pace
            return due - _EARLY_S - self._clock()
        # With a receive low-water mark set, up to that many bytes' samples may have arrived
        # unseen (held by the kernel): count them as arrived.
        unseen = self._lowat // self._wire_bytes if self._sock_fd >= 0 else 0
        behind = <double>unseen
        if self._clock != NULL and self._last_write > 0.0:
            # ... and those due at the nominal rate since the newest write: a source that sends
            # blocks (32 ms from Open Ephys) brings none between two, and each wake counting
            # the same samples still to come napped again through the next block's arrival
            since = (self._clock() - self._last_write) / self._period
            if since > behind:
                behind = since
        return (urgent - written - self._lead - behind) * self._period

    cdef double _arrival_lag(self, bint forget_stale) noexcept nogil:
        """The smallest recent delay from a sample's timestamp to its arrival (s), or NaN when
        fewer than MIN_LAGS are known under the current clock offset (``forget_stale``: and
        forget those measured under another; only the loop's thread may)."""
        if self._clock == NULL:
            return NAN
        if fabs(self._offset - self._lag_offset) > _EARLY_S / 2:
            if not forget_stale:
                return NAN
            self._forget_lags()  # measured with another clock offset: stale
        if self._n_lags < MIN_LAGS:
            return NAN
        return _smallest(self._lags, self._n_lags)

    @property
    def arrival_lag_s(self) -> float:
        """The smallest recent delay from a sample's timestamp (with the clock offset) to its
        arrival here, seconds (NaN until known): what predicts when an urgent sample is due."""
        return self._arrival_lag(0)

    cdef inline void _forget_lags(self) noexcept nogil:
        self._n_lags = 0
        self._lag_next = 0

    cdef void _prediction_late(self) noexcept nogil:
        """An urgent sample arrived before the wait for it began: if that wait was predicted
        from the arrival delays, they are too long (say, learnt while the source or this machine
        was slow). Forget them: from sample counts again, until waits measure new ones (delays
        are only measured in waits, which a late prediction skips: it would stay late)."""
        if self._n_lags >= MIN_LAGS:
            self._forget_lags()

    cdef void _note_lag(self, double lag_s, double phase_s) noexcept nogil:
        if self._n_lags == 0 or fabs(self._offset - self._lag_offset) > _EARLY_S / 2:
            self._forget_lags()
            self._lag_offset = self._offset
        self._lags[self._lag_next] = lag_s
        self._phases[self._lag_next] = phase_s
        self._lag_next = (self._lag_next + 1) % N_LAGS
        if self._n_lags < N_LAGS:
            self._n_lags += 1

    cdef void _set_lowat(self, int nbytes) noexcept nogil:
        cdef struct_stat st
        if self._sock_fd < 0:
            return
        if nbytes < 1:
            nbytes = 1
        if nbytes == self._lowat:
            return
        # the fd must still be that socket: after a reconnection liblsl closes it, and the
        # number may be reused by anything
        if fstat(self._sock_fd, &st) != 0 or <unsigned long>st.st_ino != self._sock_inode:
            self._sock_fd = SOCK_LOST
            return
        if setsockopt(self._sock_fd, SOL_SOCKET, SO_RCVLOWAT, &nbytes, sizeof(int)) == 0:
            self._lowat = nbytes
        else:
            self._sock_fd = SOCK_LOST

    cdef void _convert(self, Py_ssize_t n) noexcept nogil:
        cdef Py_ssize_t i, total = n * self._n_ch
        cdef float* dst = &self._stage_f32[0, 0]
        cdef const double* f64
        cdef const int32_t* i32
        cdef const int16_t* i16
        if self._fmt == FMT_FLOAT32:
            return  # pulled in place
        elif self._fmt == FMT_DOUBLE64:
            f64 = <const double*>self._stage_ptr
            for i in range(total):
                dst[i] = <float>f64[i]
        elif self._fmt == FMT_INT32:
            i32 = <const int32_t*>self._stage_ptr
            for i in range(total):
                dst[i] = <float>i32[i]
        else:
            i16 = <const int16_t*>self._stage_ptr
            for i in range(total):
                dst[i] = <float>i16[i]
