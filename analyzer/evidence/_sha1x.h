/* SHA-1 (FIPS 180-4) with the x86 SHA extensions, of one stream or of two independent
 * streams at once.
 *
 * Theory of operation
 * -------------------
 * The SHA extensions compute SHA-1 four rounds per instruction (SHA1RNDS4), but each
 * such instruction waits for the result of the one before: one stream runs at the
 * instruction's latency (what OpenSSL reaches, ~1.8 GB/s here), with most of the
 * unit idle.  Independent streams (pieces) interleaved instruction by instruction fill
 * that idle time: two go ~1.8x as fast as one on the same core, three ~2.3x.
 *
 * The compression function is the standard sequence for these instructions (Intel's
 * published one: message schedule with SHA1MSG1/SHA1MSG2, E with SHA1NEXTE); the
 * two- and three-stream versions run the same steps on two or three sets of registers.  ``sha1x_ctx``
 * adds the usual buffering of a partial 64-byte block, the length and the final
 * padding.  ``sha1x_updaten`` feeds two or three contexts from their buffers, as many
 * whole blocks of all as it can at once; it returns when one of the buffers is used up
 * (its tail kept in its context), so the caller moves that stream on.
 *
 * ``sha1x_available`` tells whether the processor has the instructions (CPUID); the
 * functions must not be called otherwise.  The verifier never relies on this code
 * alone for a failure: a piece whose digest does not match is hashed again with
 * hashlib (OpenSSL) before it is called failed.
 */
#ifndef BT_SHA1X_H
#define BT_SHA1X_H

#include <stdint.h>
#include <stddef.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#include <cpuid.h>
#define SHA1X_TARGET __attribute__((target("sha,ssse3,sse4.1")))
#define SHA1X_X86 1
#else
#define SHA1X_X86 0
#endif

typedef struct {
    uint32_t h[5];
    unsigned char buf[64];
    unsigned int buflen;          /* bytes in buf (< 64) */
    unsigned long long total;     /* bytes fed */
} sha1x_ctx;

static int sha1x_available(void)
{
#if SHA1X_X86
    unsigned int a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_SSSE3) || !(c & bit_SSE4_1))
        return 0;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
        return 0;
    return (b >> 29) & 1;         /* SHA */
#else
    return 0;
#endif
}

static void sha1x_init(sha1x_ctx* x)
{
    static const uint32_t iv[5] = {0x67452301u, 0xEFCDAB89u, 0x98BADCFEu, 0x10325476u, 0xC3D2E1F0u};
    memcpy(x->h, iv, sizeof iv);
    x->buflen = 0;
    x->total = 0;
}

#if SHA1X_X86

/* Four rounds, k = 4..19, on the registers of stream L. */
#define SHA1X_STEP(L, k, f) do { \
    __m128i *ea_ = ((k) & 1) ? &e1##L : &e0##L, *eb_ = ((k) & 1) ? &e0##L : &e1##L; \
    *ea_ = _mm_sha1nexte_epu32(*ea_, m##L[(k) & 3]); \
    *eb_ = abcd##L; \
    if ((k) <= 18) m##L[((k) + 1) & 3] = _mm_sha1msg2_epu32(m##L[((k) + 1) & 3], m##L[(k) & 3]); \
    abcd##L = _mm_sha1rnds4_epu32(abcd##L, *ea_, f); \
    if ((k) <= 16) m##L[((k) + 3) & 3] = _mm_sha1msg1_epu32(m##L[((k) + 3) & 3], m##L[(k) & 3]); \
    if ((k) <= 17) m##L[((k) + 2) & 3] = _mm_xor_si128(m##L[((k) + 2) & 3], m##L[(k) & 3]); \
} while (0)

#define SHA1X_STEPS(X) X(4, 0); X(5, 1); X(6, 1); X(7, 1); X(8, 1); X(9, 1); X(10, 2); X(11, 2); \
    X(12, 2); X(13, 2); X(14, 2); X(15, 3); X(16, 3); X(17, 3); X(18, 3); X(19, 3)

/* The message block at p, and rounds 0-15. */
#define SHA1X_FIRST(L, p) do { \
    abcd_save##L = abcd##L; e0_save##L = e0##L; \
    m##L[0] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i*)((p) + 0)), mask); \
    m##L[1] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i*)((p) + 16)), mask); \
    m##L[2] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i*)((p) + 32)), mask); \
    m##L[3] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i*)((p) + 48)), mask); \
    e0##L = _mm_add_epi32(e0##L, m##L[0]); e1##L = abcd##L; \
    abcd##L = _mm_sha1rnds4_epu32(abcd##L, e0##L, 0); \
    e1##L = _mm_sha1nexte_epu32(e1##L, m##L[1]); e0##L = abcd##L; \
    abcd##L = _mm_sha1rnds4_epu32(abcd##L, e1##L, 0); \
    m##L[0] = _mm_sha1msg1_epu32(m##L[0], m##L[1]); \
    e0##L = _mm_sha1nexte_epu32(e0##L, m##L[2]); e1##L = abcd##L; \
    abcd##L = _mm_sha1rnds4_epu32(abcd##L, e0##L, 0); \
    m##L[1] = _mm_sha1msg1_epu32(m##L[1], m##L[2]); m##L[0] = _mm_xor_si128(m##L[0], m##L[2]); \
    e1##L = _mm_sha1nexte_epu32(e1##L, m##L[3]); e0##L = abcd##L; \
    m##L[0] = _mm_sha1msg2_epu32(m##L[0], m##L[3]); \
    abcd##L = _mm_sha1rnds4_epu32(abcd##L, e1##L, 0); \
    m##L[2] = _mm_sha1msg1_epu32(m##L[2], m##L[3]); m##L[1] = _mm_xor_si128(m##L[1], m##L[3]); \
} while (0)

#define SHA1X_LAST(L) do { \
    e0##L = _mm_sha1nexte_epu32(e0##L, e0_save##L); abcd##L = _mm_add_epi32(abcd##L, abcd_save##L); \
} while (0)

#define SHA1X_LOAD(L, st) \
    __m128i abcd##L = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i*)(st)), 0x1B); \
    __m128i e0##L = _mm_set_epi32((int)(st)[4], 0, 0, 0), e1##L, abcd_save##L, e0_save##L, m##L[4]

#define SHA1X_STORE(L, st) do { \
    _mm_storeu_si128((__m128i*)(st), _mm_shuffle_epi32(abcd##L, 0x1B)); \
    (st)[4] = (uint32_t)_mm_extract_epi32(e0##L, 3); \
} while (0)

/* n 64-byte blocks at p into state st. */
SHA1X_TARGET static void sha1x_blocks1(uint32_t st[5], const unsigned char* p, size_t n)
{
    const __m128i mask = _mm_set_epi64x(0x0001020304050607ULL, 0x08090a0b0c0d0e0fULL);
    SHA1X_LOAD(a, st);
    for (; n; n--, p += 64) {
        SHA1X_FIRST(a, p);
#define SHA1X_S1(k, f) SHA1X_STEP(a, k, f)
        SHA1X_STEPS(SHA1X_S1);
#undef SHA1X_S1
        SHA1X_LAST(a);
    }
    SHA1X_STORE(a, st);
}

/* n 64-byte blocks at pa into sa and n at pb into sb, interleaved. */
SHA1X_TARGET static void sha1x_blocks2(uint32_t sa[5], const unsigned char* pa,
                                       uint32_t sb[5], const unsigned char* pb, size_t n)
{
    const __m128i mask = _mm_set_epi64x(0x0001020304050607ULL, 0x08090a0b0c0d0e0fULL);
    SHA1X_LOAD(a, sa);
    SHA1X_LOAD(b, sb);
    for (; n; n--, pa += 64, pb += 64) {
        SHA1X_FIRST(a, pa);
        SHA1X_FIRST(b, pb);
#define SHA1X_S2(k, f) SHA1X_STEP(a, k, f); SHA1X_STEP(b, k, f)
        SHA1X_STEPS(SHA1X_S2);
#undef SHA1X_S2
        SHA1X_LAST(a);
        SHA1X_LAST(b);
    }
    SHA1X_STORE(a, sa);
    SHA1X_STORE(b, sb);
}

/* n 64-byte blocks at pa, pb and pc into sa, sb and sc, interleaved. */
SHA1X_TARGET static void sha1x_blocks3(uint32_t sa[5], const unsigned char* pa, uint32_t sb[5],
                                       const unsigned char* pb, uint32_t sc[5], const unsigned char* pc,
                                       size_t n)
{
    const __m128i mask = _mm_set_epi64x(0x0001020304050607ULL, 0x08090a0b0c0d0e0fULL);
    SHA1X_LOAD(a, sa);
    SHA1X_LOAD(b, sb);
    SHA1X_LOAD(c, sc);
    for (; n; n--, pa += 64, pb += 64, pc += 64) {
        SHA1X_FIRST(a, pa);
        SHA1X_FIRST(b, pb);
        SHA1X_FIRST(c, pc);
#define SHA1X_S3(k, f) SHA1X_STEP(a, k, f); SHA1X_STEP(b, k, f); SHA1X_STEP(c, k, f)
        SHA1X_STEPS(SHA1X_S3);
#undef SHA1X_S3
        SHA1X_LAST(a);
        SHA1X_LAST(b);
        SHA1X_LAST(c);
    }
    SHA1X_STORE(a, sa);
    SHA1X_STORE(b, sb);
    SHA1X_STORE(c, sc);
}

#else

static void sha1x_blocks3(uint32_t sa[5], const unsigned char* pa, uint32_t sb[5], const unsigned char* pb,
                          uint32_t sc[5], const unsigned char* pc, size_t n)
{ (void)sa; (void)pa; (void)sb; (void)pb; (void)sc; (void)pc; (void)n; }
static void sha1x_blocks1(uint32_t st[5], const unsigned char* p, size_t n) { (void)st; (void)p; (void)n; }
static void sha1x_blocks2(uint32_t sa[5], const unsigned char* pa, uint32_t sb[5], const unsigned char* pb,
                          size_t n) { (void)sa; (void)pa; (void)sb; (void)pb; (void)n; }

#endif

/* Top up the partial block of x from *p (at most *n bytes); returns whether it is full. */
static int sha1x_top(sha1x_ctx* x, const unsigned char** p, size_t* n)
{
    size_t k = 64 - x->buflen;
    if (k > *n)
        k = *n;
    memcpy(x->buf + x->buflen, *p, k);
    x->buflen += (unsigned int)k;
    x->total += k;
    *p += k;
    *n -= k;
    return x->buflen == 64;
}

/* Top up the partial block of x from *p (at most *n bytes); compress it when full. */
static void sha1x_fill(sha1x_ctx* x, const unsigned char** p, size_t* n)
{
    if (sha1x_top(x, p, n)) {
        sha1x_blocks1(x->h, x->buf, 1);
        x->buflen = 0;
    }
}

static void sha1x_update1(sha1x_ctx* x, const unsigned char* p, size_t n)
{
    size_t k;
    if (x->buflen)
        sha1x_fill(x, &p, &n);
    k = n / 64;
    if (k) {
        sha1x_blocks1(x->h, p, k);
        x->total += 64 * k;
        p += 64 * k;
        n -= 64 * k;
    }
    if (n)
        sha1x_fill(x, &p, &n);
}

/* Feed up to three streams (x[i] from p[i], n[i] bytes; count 2 or 3), whole blocks of all
 * together; returns when one n[i] is 0 (what is left of the others stays to be fed). */
static void sha1x_updaten(sha1x_ctx** x, const unsigned char** p, size_t* n, int count)
{
    size_t k;
    int i, full = 0, all = 1;
    int ready[3] = {0, 0, 0};
    const unsigned char* q[3];
    for (i = 0; i < count; i++)
        if (x[i]->buflen && n[i] && sha1x_top(x[i], &p[i], &n[i])) {
            ready[i] = 1;
            full++;
        }
    if (full) {
        /* partial blocks completed (a stream fed in pieces whose lengths are not multiples of 64,
         * e.g. the TCP segments of a block left in place): compressed with a whole block of each
         * other stream when every one has one, else alone */
        for (i = 0; i < count; i++) {
            if (!ready[i] && n[i] < 64)
                all = 0;
            q[i] = ready[i] ? x[i]->buf : p[i];
        }
        if (all) {
            if (count == 3)
                sha1x_blocks3(x[0]->h, q[0], x[1]->h, q[1], x[2]->h, q[2], 1);
            else
                sha1x_blocks2(x[0]->h, q[0], x[1]->h, q[1], 1);
            for (i = 0; i < count; i++) {
                if (ready[i]) {
                    x[i]->buflen = 0;
                } else {
                    x[i]->total += 64;
                    p[i] += 64;
                    n[i] -= 64;
                }
            }
        } else {
            for (i = 0; i < count; i++)
                if (ready[i]) {
                    sha1x_blocks1(x[i]->h, x[i]->buf, 1);
                    x[i]->buflen = 0;
                }
        }
    }
    k = n[0];
    for (i = 1; i < count; i++)
        if (n[i] < k)
            k = n[i];
    k /= 64;          /* every partial block is empty now, or its stream was used up (k = 0) */
    if (k) {
        if (count == 3)
            sha1x_blocks3(x[0]->h, p[0], x[1]->h, p[1], x[2]->h, p[2], k);
        else
            sha1x_blocks2(x[0]->h, p[0], x[1]->h, p[1], k);
        for (i = 0; i < count; i++) {
            x[i]->total += 64 * k;
            p[i] += 64 * k;
            n[i] -= 64 * k;
        }
    }
    for (i = 0; i < count; i++)
        if (n[i] < 64 && n[i])
            sha1x_fill(x[i], &p[i], &n[i]);
}

static void sha1x_final(sha1x_ctx* x, unsigned char out[20])
{
    unsigned long long bits = x->total * 8;
    int i;
    x->buf[x->buflen++] = 0x80;
    if (x->buflen > 56) {
        memset(x->buf + x->buflen, 0, 64 - x->buflen);
        sha1x_blocks1(x->h, x->buf, 1);
        x->buflen = 0;
    }
    memset(x->buf + x->buflen, 0, 56 - x->buflen);
    for (i = 0; i < 8; i++)
        x->buf[63 - i] = (unsigned char)(bits >> (8 * i));
    sha1x_blocks1(x->h, x->buf, 1);
    for (i = 0; i < 5; i++) {
        out[4 * i] = (unsigned char)(x->h[i] >> 24);
        out[4 * i + 1] = (unsigned char)(x->h[i] >> 16);
        out[4 * i + 2] = (unsigned char)(x->h[i] >> 8);
        out[4 * i + 3] = (unsigned char)x->h[i];
    }
}

#endif
