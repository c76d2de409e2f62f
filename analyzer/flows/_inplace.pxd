from libc.stdint cimport uint8_t


cdef struct Span:
    const uint8_t* p
    Py_ssize_t n


cdef class InPlace:
    cdef object owner           # the buffer the spans lie in (None once materialised)
    cdef bytes copy             # the bytes, once materialised (None before)
    cdef Span* spans
    cdef Py_ssize_t nspans
    cdef Py_ssize_t nbytes
    cdef void* prev             # the registry of blocks still in place (borrowed links, oldest first)
    cdef void* next
    cdef int fed                # on the registry's list of blocks handed to a hasher (1) or not (0)

    cdef bytes materialize(self)


cdef InPlace make_in_place(object owner, const Span* spans, Py_ssize_t nspans, Py_ssize_t nbytes)
cdef int sweep(object owner, const uint8_t* now) except -1
cdef void mark_fed(InPlace b) noexcept
