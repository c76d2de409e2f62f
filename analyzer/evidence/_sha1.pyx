# cython: language_level=3
"""SHA-1 of pieces on a worker thread that never takes the interpreter lock.

Theory of operation
-------------------
The verifier hands each piece's blocks, in order, to a ``Sha1Job`` as they
arrive (``update``: a pointer and a length appended to a ring, the block
object kept alive by the job); ``final`` closes the piece.  One native
thread (pthread) takes the ring's entries in batches and feeds them to
OpenSSL's SHA-1 (``EVP_Digest*``, the library ``hashlib`` uses, found with
``dlopen``; no build dependency), one context per piece, so the hashing
runs on the other core while the analysis goes on.  The worker is woken
when a piece is final or the ring holds a batch, not per block.  ``digest``
waits (without the interpreter lock) for the piece's result; ``ready`` asks
without waiting.  A job dropped before its end is aborted; its memory is
freed once the worker is past its entries.

On a processor with the x86 SHA extensions the worker hashes with its own
code (``_sha1x.h``) instead of OpenSSL, up to three pieces at once: SHA-1
of one stream waits on the latency of its round instruction, streams
interleaved go ~1.8x (two) to ~2.3x (three) as fast on the same core.  The
worker takes the ring's entries in batches, links each piece's entries
(``nxt``, in order), and runs ``LANES`` *lanes*, each feeding one piece's
entries in order, pieces taken in the order they first appear; the blocks
of the lanes that have bytes are compressed together (``sha1x_updaten``),
a lone lane's one stream at a time.  To have several pieces in a batch the
worker is woken when ``WAKE_FINALS`` pieces are final, when ``WAKE``
entries wait, or when someone waits for a digest, not per piece.  (A digest is only compared with the torrent's; the verifier hashes a
piece that does not match again with hashlib before calling it failed.)

A block left where it lies in a mapped capture (``flows._inplace.InPlace``) is
fed as its spans, one entry each, nothing copied: the buffer they lie in is
*pinned* (``_pins``, a reference kept until the worker is past the entries)
and ``sync()`` (called at the end of each input file, before the file may be
unmapped) waits until the worker is past everything pushed.  The mapping gives
pages back ``KEEP_BEHIND`` behind its readers, so the worker must read spans
soon: it is woken when ``INPLACE_WAKE`` bytes in place wait, and a feed waits
while ``INPLACE_MAX`` bytes in place are in flight (a page read after it was
given back would be faulted in again, and stay).  Spans of any length are
hashed like any other entries (a partial 64-byte block is buffered in the
piece's context).

``available()`` is false when no libcrypto can be loaded: the verifier then
hashes with ``hashlib`` in the analysis thread.  After a fork the child
starts its own worker (jobs inherited from the parent are never waited for).
"""
from libc.stdlib cimport calloc, free
from libc.string cimport memcpy, memset
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING, PyBytes_GET_SIZE
from posix.dlfcn cimport dlopen, dlsym, RTLD_NOW, RTLD_GLOBAL
from posix.unistd cimport getpid

from analyzer.flows._inplace cimport InPlace, Span, mark_fed
from analyzer.flows._inplace import add_sync


cdef extern from "_sha1x.h" nogil:
    ctypedef struct sha1x_ctx:
        pass
    int sha1x_available()
    void sha1x_init(sha1x_ctx* x)
    void sha1x_update1(sha1x_ctx* x, const unsigned char* p, size_t n)
    void sha1x_updaten(sha1x_ctx** x, const unsigned char** p, size_t* n, int count)
    void sha1x_final(sha1x_ctx* x, unsigned char* out)


cdef extern from "<pthread.h>" nogil:
    ctypedef unsigned long pthread_t
    ctypedef struct pthread_mutex_t:
        pass
    ctypedef struct pthread_cond_t:
        pass
    int pthread_create(pthread_t*, const void*, void* (*)(void*) noexcept nogil, void*)
    int pthread_detach(pthread_t)
    int pthread_mutex_init(pthread_mutex_t*, const void*)
    int pthread_mutex_lock(pthread_mutex_t*)
    int pthread_mutex_unlock(pthread_mutex_t*)
    int pthread_cond_init(pthread_cond_t*, const void*)
    int pthread_cond_wait(pthread_cond_t*, pthread_mutex_t*)
    int pthread_cond_signal(pthread_cond_t*)
    int pthread_cond_broadcast(pthread_cond_t*)


ctypedef void* (*ctx_new_t)() noexcept nogil
ctypedef void (*ctx_free_t)(void*) noexcept nogil
ctypedef const void* (*md_t)() noexcept nogil
ctypedef int (*init_t)(void*, const void*, void*) noexcept nogil
ctypedef int (*update_t)(void*, const void*, size_t) noexcept nogil
ctypedef int (*final_t)(void*, unsigned char*, unsigned int*) noexcept nogil

cdef ctx_new_t ctx_new = NULL
cdef ctx_free_t ctx_free = NULL
cdef md_t md_sha1 = NULL
cdef init_t digest_init = NULL
cdef update_t digest_update = NULL
cdef final_t digest_final = NULL

cdef struct Entry:
    Slot* slot
    const char* ptr
    size_t n
    int op
    int in_place              # ptr lies in a capture buffer (flows._inplace): counted in inplace_inflight

cdef enum:
    RING = 8192               # entries (blocks, or parts of blocks left in place) in flight
    WAKE = 512                # blocks that wake the worker without WAKE_FINALS final ones
    WAKE_FINALS = 6           # pieces final (or aborted) that wake the worker
    OP_UPDATE = 0
    OP_FINAL = 1
    OP_ABORT = 2
    LANES = 3                 # pieces hashed at once
    HSIZE = 2 * RING          # the worker's table of a batch's pieces (open addressing)
    NONE = RING               # no entry

cdef Entry ring[RING]
cdef size_t head = 0          # next entry the worker takes (written under the lock)
cdef size_t tail = 0          # next entry the analysis writes
cdef pthread_mutex_t mu
cdef pthread_cond_t work      # the worker waits for entries
cdef pthread_cond_t progress  # the analysis waits for room or results
cdef int idle = 0
cdef size_t finals = 0        # final or abort entries pushed since the worker took its batch
cdef size_t pushes = 0        # feeds (blocks) since the worker took its batch
cdef size_t inplace_inflight = 0     # bytes of entries in place the worker is not past yet
cdef size_t INPLACE_WAKE = 8 << 20   # ... that wake the worker (about WAKE blocks)
cdef size_t INPLACE_MAX = 16 << 20  # ... beyond which a feed waits (the mapping gives pages back
                                     # KEEP_BEHIND behind its readers: read before then)
cdef unsigned long long inplace_waits = 0  # feeds that waited for the worker (INPLACE_MAX)
cdef list _pins = []          # [owner, tail]: buffers the ring points into, kept until the worker is past
cdef long started_pid = -1
cdef int use_x = 0            # the worker hashes with _sha1x.h (two pieces at once)
cdef size_t bypass_x = 0      # set by tests: OpenSSL even where the SHA extensions are
cdef unsigned long long fed_all = 0      # bytes the worker hashed LANES pieces at once,
cdef unsigned long long fed_paired = 0   # two at once (LANES 3) ...
cdef unsigned long long fed_single = 0   # ... and one at a time (SHA extensions' code)
cdef unsigned long long fed_in_place = 0  # blocks fed as spans where they lie (flows._inplace)

# the worker's batch: entries of one piece linked in order, pieces in order of first appearance
cdef size_t nxt[RING]
cdef size_t tail_of[HSIZE]
cdef Slot* key_of[HSIZE]
cdef size_t first_of[RING]
cdef size_t place_of[RING]


cdef int _load() noexcept:
    global ctx_new, ctx_free, md_sha1, digest_init, digest_update, digest_final
    cdef void* lib = NULL
    for name in (b"libcrypto.so.3", b"libcrypto.so.1.1", b"libcrypto.so"):
        lib = dlopen(<const char*>name, RTLD_NOW | RTLD_GLOBAL)
        if lib != NULL:
            break
    if lib == NULL:
        return 0
    ctx_new = <ctx_new_t>dlsym(lib, "EVP_MD_CTX_new")
    ctx_free = <ctx_free_t>dlsym(lib, "EVP_MD_CTX_free")
    md_sha1 = <md_t>dlsym(lib, "EVP_sha1")
    digest_init = <init_t>dlsym(lib, "EVP_DigestInit_ex")
    digest_update = <update_t>dlsym(lib, "EVP_DigestUpdate")
    digest_final = <final_t>dlsym(lib, "EVP_DigestFinal_ex")
    return ctx_new != NULL and ctx_free != NULL and md_sha1 != NULL and digest_init != NULL \
        and digest_update != NULL and digest_final != NULL


cdef int _loaded = _load()
use_x = sha1x_available()


def available() -> bool:
    """SHA-1 can be computed on the worker thread (libcrypto found)."""
    return bool(_loaded)


def engine() -> str:
    """What the worker hashes with: "sha-ni" (its own code, several pieces at once) or "openssl"."""
    return "sha-ni" if use_x and not bypass_x else "openssl"


def fed_bytes() -> tuple[int, int, int]:
    """Bytes the SHA extensions' code hashed three pieces at once, two at once and one at a
    time, so far (read when the worker is idle: after the digests waited for)."""
    return fed_all, fed_paired, fed_single


def fed_blocks_in_place() -> int:
    """Blocks fed to the worker where they lie in a capture buffer (no copy), so far."""
    return fed_in_place


def in_place_waits() -> int:
    """Times a feed waited because ``INPLACE_MAX`` bytes in place were in flight, so far."""
    return inplace_waits


def in_place_limits(wake=None, most=None) -> tuple[int, int]:
    """Bytes in place in flight that wake the worker, and beyond which a feed waits (tests and
    measurements set them); returns the values now."""
    global INPLACE_WAKE, INPLACE_MAX
    if wake is not None:
        INPLACE_WAKE = wake
    if most is not None:
        INPLACE_MAX = most
    return INPLACE_WAKE, INPLACE_MAX


def use_openssl(bint on) -> None:
    """Tests: jobs made from now on are hashed with OpenSSL even where the SHA extensions are."""
    global bypass_x
    bypass_x = 1 if on else 0


cdef void _run(Entry* e) noexcept nogil:
    cdef Slot* s = e.slot
    cdef unsigned int n = 0
    if e.op == OP_UPDATE:
        if s.ctx == NULL:
            s.ctx = ctx_new()
            if s.ctx == NULL or digest_init(s.ctx, md_sha1(), NULL) != 1:
                s.ok = 0
                return
        if s.ok:
            if digest_update(s.ctx, e.ptr, e.n) != 1:
                s.ok = 0
        return
    if e.op == OP_FINAL and s.ok:
        if s.ctx == NULL:                       # no bytes at all
            s.ctx = ctx_new()
            if s.ctx == NULL or digest_init(s.ctx, md_sha1(), NULL) != 1:
                s.ok = 0
        if s.ok and digest_final(s.ctx, s.digest, &n) != 1:
            s.ok = 0
    if s.ctx != NULL:
        ctx_free(s.ctx)
        s.ctx = NULL


cdef int _x_open(Slot* s) noexcept nogil:
    """The piece's own context (1), or 0 when it failed or had no memory."""
    if not s.ok:
        return 0
    if s.ctx == NULL:
        s.ctx = calloc(1, sizeof(sha1x_ctx))
        if s.ctx == NULL:
            s.ok = 0
            return 0
        sha1x_init(<sha1x_ctx*>s.ctx)
    return 1


cdef void _x_close(Entry* e) noexcept nogil:
    """A final or abort entry."""
    cdef Slot* s = e.slot
    if e.op == OP_FINAL and _x_open(s):
        sha1x_final(<sha1x_ctx*>s.ctx, s.digest)
    if s.ctx != NULL:
        free(s.ctx)
        s.ctx = NULL


cdef size_t _lane_next(size_t i, size_t base, const unsigned char** p, size_t* n, size_t* q,
                       size_t npieces) noexcept nogil:
    """The lane's next entry with bytes to feed, from entry ``i`` of its piece (NONE: take the
    next piece of the batch, from ``q``); final and abort entries on the way are done here.
    Returns the entry (its bytes in p, n) or NONE when the batch has no more pieces."""
    cdef Entry* e
    while True:
        if i == NONE:
            if q[0] == npieces:
                return NONE
            i = first_of[q[0]]
            q[0] += 1
        e = &ring[(base + i) % RING]
        if not e.slot.x:              # a job made for OpenSSL (tests switch engines)
            _run(e)
        elif e.op == OP_UPDATE:
            if _x_open(e.slot) and e.n:
                p[0], n[0] = <const unsigned char*>e.ptr, e.n
                return i
        else:
            _x_close(e)
        i = nxt[i]


cdef void _x_batch(size_t base, size_t count) noexcept nogil:
    """Entries [base, base + count) of the ring, up to ``LANES`` pieces at once."""
    cdef size_t i, h, npieces = 0, q = 0, fed
    cdef size_t key
    cdef Slot* s
    cdef int k, m
    cdef size_t lane[LANES]                      # each lane's entry (NONE: the lane is done)
    cdef const unsigned char* lp[LANES]          # its bytes not fed yet
    cdef size_t ln[LANES]
    cdef sha1x_ctx* cx[LANES]                    # the lanes that have bytes, packed
    cdef const unsigned char* cp[LANES]
    cdef size_t cn[LANES]
    cdef int which[LANES]
    global fed_paired, fed_single, fed_all
    # link each piece's entries in order; pieces in order of first appearance
    for i in range(count):
        s = ring[(base + i) % RING].slot
        nxt[i] = NONE
        key = <size_t>s
        h = ((key >> 4) * <size_t>0x9E3779B97F4A7C15) % HSIZE
        while key_of[h] != NULL and key_of[h] != s:
            h = (h + 1) % HSIZE
        if key_of[h] == NULL:
            key_of[h] = s
            first_of[npieces] = i
            place_of[npieces] = h
            npieces += 1
        else:
            nxt[tail_of[h]] = i
        tail_of[h] = i
    for i in range(npieces):          # clear the table for the next batch
        key_of[place_of[i]] = NULL
    for k in range(LANES):
        lane[k] = _lane_next(NONE, base, &lp[k], &ln[k], &q, npieces)
    while True:
        m = 0
        for k in range(LANES):
            if lane[k] != NONE:
                cx[m] = <sha1x_ctx*>ring[(base + lane[k]) % RING].slot.ctx
                cp[m], cn[m], which[m] = lp[k], ln[k], k
                m += 1
        if m == 0:
            break
        if m == 1:
            sha1x_update1(cx[0], cp[0], cn[0])
            fed_single += cn[0]
            cn[0] = 0
        else:
            fed = 0
            for k in range(m):
                fed += cn[k]
            sha1x_updaten(cx, cp, cn, m)
            for k in range(m):
                fed -= cn[k]
            if m == LANES:
                fed_all += fed
            else:
                fed_paired += fed
        for k in range(m):
            lp[which[k]], ln[which[k]] = cp[k], cn[k]
            if cn[k] == 0:
                lane[which[k]] = _lane_next(nxt[lane[which[k]]], base, &lp[which[k]], &ln[which[k]], &q, npieces)


cdef void* _worker(void* arg) noexcept nogil:
    global head, idle, finals, pushes, inplace_inflight
    cdef size_t i, end, freed
    cdef int x
    cdef Entry* e
    while True:
        pthread_mutex_lock(&mu)
        while head == tail:
            idle = 1
            pthread_cond_wait(&work, &mu)
        idle = 0
        end = tail
        finals = 0
        pushes = 0
        x = use_x
        pthread_mutex_unlock(&mu)
        if x:
            _x_batch(head, end - head)
        else:
            i = head
            while i != end:
                _run(&ring[i % RING])
                i += 1
        pthread_mutex_lock(&mu)
        i = head
        freed = 0
        while i != end:
            e = &ring[i % RING]
            if e.op != OP_UPDATE:
                e.slot.done = 1
            elif e.in_place:
                freed += e.n
            i += 1
        head = end
        inplace_inflight -= freed
        pthread_cond_broadcast(&progress)
        pthread_mutex_unlock(&mu)
    return NULL


cdef int _start() except -1:
    """The worker of this process (a new one after a fork)."""
    global started_pid, head, tail, idle, finals, pushes, inplace_inflight
    cdef pthread_t t
    cdef long pid = getpid()
    if started_pid == pid:
        return 0
    head = tail = 0
    idle = 0
    finals = 0
    pushes = 0
    inplace_inflight = 0
    del _pins[:]                        # (a child's: the parent's worker had those entries)
    memset(key_of, 0, sizeof(key_of))   # a fork in the middle of the parent's batch left it filled
    pthread_mutex_init(&mu, NULL)
    pthread_cond_init(&work, NULL)
    pthread_cond_init(&progress, NULL)
    if pthread_create(&t, NULL, _worker, NULL) != 0:
        raise OSError("cannot start the SHA-1 worker thread")
    pthread_detach(t)
    started_pid = pid
    return 0


cdef inline bint _full(size_t n) noexcept nogil:
    """No room for an entry, or (``n`` bytes in place to add) the bytes in place in flight would pass
    ``INPLACE_MAX`` (the lock held)."""
    return tail - head >= RING or (n != 0 and inplace_inflight != 0 and inplace_inflight + n > INPLACE_MAX)


cdef void _room(size_t n) noexcept nogil:
    """Wait until ``_full(n)`` is false (the lock is not held on entry or exit)."""
    pthread_mutex_lock(&mu)
    if idle:
        pthread_cond_signal(&work)
    while _full(n):
        pthread_cond_wait(&progress, &mu)
    pthread_mutex_unlock(&mu)


cdef inline void _append(Slot* s, const char* p, size_t n, int op, int in_place) noexcept nogil:
    """An entry at the tail (the lock held, room checked)."""
    global tail, finals, inplace_inflight
    ring[tail % RING].slot = s
    ring[tail % RING].ptr = p
    ring[tail % RING].n = n
    ring[tail % RING].op = op
    ring[tail % RING].in_place = in_place
    tail += 1
    if op != OP_UPDATE:
        finals += 1
    if in_place:
        inplace_inflight += n


cdef inline void _wake() noexcept nogil:
    """Wake the idle worker when the batch is worth it (the lock held)."""
    if idle and (finals >= WAKE_FINALS or pushes >= WAKE or inplace_inflight >= INPLACE_WAKE):
        pthread_cond_signal(&work)


cdef void _push(Slot* s, const char* p, size_t n, int op) noexcept:
    """Append an entry (waiting, without the interpreter lock, while the ring is full).
    The lock is never held while the interpreter lock is being taken: several Python
    threads may push."""
    global pushes
    pthread_mutex_lock(&mu)
    while _full(0):
        pthread_mutex_unlock(&mu)
        with nogil:
            _room(0)
        pthread_mutex_lock(&mu)
    _append(s, p, n, op, 0)
    if op == OP_UPDATE:
        pushes += 1
    _wake()
    pthread_mutex_unlock(&mu)


cdef void _push_spans(Slot* s, const Span* spans, Py_ssize_t k) noexcept:
    """Append an entry for each span of a block left in place (one feed), waiting while the ring is
    full or ``INPLACE_MAX`` bytes in place are in flight: the worker reads them soon, while the
    mapping still has their pages (it gives pages back ``KEEP_BEHIND`` behind its readers)."""
    global pushes, inplace_waits
    cdef Py_ssize_t i
    pthread_mutex_lock(&mu)
    for i in range(k):
        while _full(spans[i].n):
            inplace_waits += 1
            pthread_mutex_unlock(&mu)
            with nogil:
                _room(spans[i].n)
            pthread_mutex_lock(&mu)
        _append(s, <const char*>spans[i].p, spans[i].n, OP_UPDATE, 1)
    pushes += 1
    _wake()
    pthread_mutex_unlock(&mu)


cdef void _sync() noexcept nogil:
    pthread_mutex_lock(&mu)
    if idle and head != tail:
        pthread_cond_signal(&work)
    while head != tail:
        pthread_cond_wait(&progress, &mu)
    pthread_mutex_unlock(&mu)


def sync() -> None:
    """Wait until the worker is past every entry pushed so far; the buffers it pointed into
    (blocks left in place) are let go.  ``flows._inplace.release_all`` calls it at the end of
    each input file, before the file may be unmapped."""
    cdef size_t h
    if started_pid != getpid():
        del _pins[:]                    # (no worker here: nothing pushed in this process)
        return
    with nogil:
        _sync()
    pthread_mutex_lock(&mu)
    h = head
    pthread_mutex_unlock(&mu)
    while _pins and _pins[0][1] <= h:  # (another thread may have pushed meanwhile)
        del _pins[0]


cdef void _pin(object owner) noexcept:
    """``owner`` stays alive until the worker is past the entries pushed so far."""
    cdef size_t h, t
    pthread_mutex_lock(&mu)
    h, t = head, tail
    pthread_mutex_unlock(&mu)
    while _pins and _pins[0][1] <= h:
        del _pins[0]
    if _pins and _pins[len(_pins) - 1][0] is owner:
        _pins[len(_pins) - 1][1] = t
    else:
        _pins.append([owner, t])


add_sync(sync)


cdef void _done(Slot* s) noexcept nogil:
    pthread_mutex_lock(&mu)
    if idle:
        pthread_cond_signal(&work)
    while not s.done:
        pthread_cond_wait(&progress, &mu)
    pthread_mutex_unlock(&mu)


cdef void _wait(Slot* s) noexcept:
    cdef int done
    pthread_mutex_lock(&mu)
    done = s.done
    pthread_mutex_unlock(&mu)
    if not done:
        with nogil:
            _done(s)


cdef class Sha1Job:
    """The SHA-1 of one piece, fed in order (``update``), computed on the worker."""

    def __cinit__(self):
        if not _loaded:
            raise RuntimeError("no libcrypto for the SHA-1 worker")
        _start()
        self.slot = <Slot*>calloc(1, sizeof(Slot))
        if self.slot == NULL:
            raise MemoryError()
        self.slot.ok = 1
        self.slot.pid = getpid()
        self.slot.x = use_x and not bypass_x
        self.refs = []

    def update(self, data) -> None:
        self.feed(data)

    cdef int feed(self, object data) except -1:
        """The next bytes of the piece (bytes, any buffer that stays unchanged, or a block left in
        place: its spans are hashed where they lie, the buffer pinned until the worker is past)."""
        global fed_in_place
        cdef Py_buffer view
        cdef const char* p
        cdef Py_ssize_t n
        cdef InPlace b
        if self.closed:
            raise ValueError("piece already final")
        if type(data) is InPlace:
            b = <InPlace>data
            if b.owner is not None:
                if b.nbytes == 0:
                    return 0
                self.pushed = True
                _push_spans(self.slot, b.spans, b.nspans)
                _pin(b.owner)
                mark_fed(b)
                fed_in_place += 1
                return 0
            data = b.copy                    # materialised: its copy
        if type(data) is bytes:
            p, n = PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data)
        else:
            PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
            p, n = <const char*>view.buf, view.len
            PyBuffer_Release(&view)  # the object stays alive (and unchanged) in refs
        if n == 0:
            return 0
        self.refs.append(data)
        self.pushed = True
        _push(self.slot, p, n, OP_UPDATE)
        return 0

    def final(self) -> None:
        """No more bytes: the worker may finish the digest."""
        if not self.closed:
            self.closed = True
            self.pushed = True
            _push(self.slot, NULL, 0, OP_FINAL)

    def ready(self) -> bool:
        """The digest is there (final, and the worker is past it)."""
        cdef int done
        if not self.closed:
            return False
        pthread_mutex_lock(&mu)
        done = self.slot.done
        if not done and idle:
            pthread_cond_signal(&work)      # a lone final piece is not waited for otherwise
        pthread_mutex_unlock(&mu)
        return bool(done)

    def digest(self) -> bytes | None:
        """The 20-byte SHA-1 (waits for the worker); None if OpenSSL failed."""
        self.final()
        _wait(self.slot)
        self.refs = []
        if not self.slot.ok:
            return None
        return PyBytes_FromStringAndSize(<const char*>self.slot.digest, 20)

    def abort(self) -> None:
        """The piece is given up: no digest."""
        if not self.closed:
            self.closed = True
            if self.pushed:
                _push(self.slot, NULL, 0, OP_ABORT)
            else:
                self.slot.done = 1

    def __dealloc__(self):
        if self.slot == NULL:
            return
        if self.slot.pid == getpid() and started_pid == self.slot.pid and self.pushed:
            if not self.closed:
                self.closed = True
                _push(self.slot, NULL, 0, OP_ABORT)
            _wait(self.slot)
            free(self.slot)
        elif not self.pushed:
            free(self.slot)
        # else: inherited across a fork, the parent's worker had it: left alone
        self.slot = NULL
