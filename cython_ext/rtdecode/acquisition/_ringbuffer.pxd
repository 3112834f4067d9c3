# Shared C-level interface of the ring buffer, so that other kernels (the acquisition loop) can
# write into it without the GIL.

cdef extern from "rt_sync.h" nogil:
    ctypedef struct rt_sync_t:
        pass


cdef class RingBuffer:
    cdef float[:, ::1] _data
    cdef double[::1] _ts
    cdef object _data_array       # the arrays behind _data and _ts, for zero-copy views
    cdef object _ts_array
    cdef Py_ssize_t _capacity
    cdef Py_ssize_t _n_channels
    cdef long long _written       # samples completely written (published)
    cdef long long _claimed       # samples the writer has started to write (>= _written)
    cdef long long _overruns
    cdef rt_sync_t _sync
    cdef int _closed
    cdef object __weakref__

    cdef void write_ptr(self, const float* src, const double* ts, Py_ssize_t n) noexcept nogil
    cdef long long written_nogil(self) noexcept nogil
