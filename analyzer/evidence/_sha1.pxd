cdef struct Slot:
    void* ctx
    unsigned char digest[20]
    int done                  # set by the worker (under the lock) after FINAL or ABORT
    int ok
    long pid                  # the process whose worker has its entries
    int x                     # hashed by _sha1x.h (else OpenSSL): fixed when the job is made


cdef class Sha1Job:
    cdef Slot* slot
    cdef list refs            # the buffers handed over, alive until the worker is past them
    cdef bint closed          # FINAL or ABORT pushed
    cdef bint pushed          # any entry pushed

    cdef int feed(self, object data) except -1
