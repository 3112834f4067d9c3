/* The decimator's inner kernel (rtdecode.features._decimate), compiled twice on x86-64: for the
 * baseline instruction set (SSE2) and for AVX2 + FMA, chosen once per process by the CPU it runs
 * on (rt_fir_select): a package built once for a cluster of mixed machines cannot use
 * -march=native. Measured at 64 ch x 32 kHz, decimation by 16 with 192 taps: 2.5 ms per second
 * of data portable, 1.5 ms with AVX2 + FMA. Elsewhere (ARM, other compilers) only the portable
 * build exists. */
#ifndef RT_FIR_H
#define RT_FIR_H
#include <stddef.h>
#include <string.h>

#define RT_FIR_LANES 16 /* channels summed together in registers (4 SSE / 2 AVX vectors) */

#if defined(__GNUC__)
#define RT_ALWAYS_INLINE static inline __attribute__((always_inline))
#else
#define RT_ALWAYS_INLINE static inline
#endif

/* Outputs of `width` (<= RT_FIR_LANES) adjacent channels: for output i,
 * out[i*out_i + c*out_c] = sum_k h[k] * x0[(first + i*step - k)*S + c], summed in k order
 * (S: the input's row stride; the output strides give time-major or channel-major output).
 *
 * One block of channels at a time, all its outputs before the next block: the block's history
 * (one cache line per sample at 16 channels) stays in cache while every output reuses it, and
 * the partial sums stay in registers across the taps. The additions per channel are in a plain
 * loop's order, so the result does not depend on the chunking of the input. A last block
 * narrower than RT_FIR_LANES reads the rows' zero padding and keeps `width` sums. This one sums
 * one output at a time in a scalar array the compiler keeps in registers: the portable build
 * (SSE2 on x86-64, NEON on ARM), where rt_fir_block_vector's 8-float vectors would be split
 * and spilled. */
RT_ALWAYS_INLINE void rt_fir_block_scalar(const float *h, ptrdiff_t L, const float *x0,
                                          ptrdiff_t S, ptrdiff_t width, ptrdiff_t first,
                                          ptrdiff_t step, ptrdiff_t n_out, float *out,
                                          ptrdiff_t out_i, ptrdiff_t out_c) {
    ptrdiff_t i, k, c;
    for (i = 0; i < n_out; i++) {
        const float *row = x0 + (first + i * step) * S;
        float a[RT_FIR_LANES];
        for (c = 0; c < RT_FIR_LANES; c++) a[c] = 0.0f;
        for (k = 0; k < L; k++) {
            const float hk = h[k];
            const float *r = row - k * S;
            for (c = 0; c < RT_FIR_LANES; c++) a[c] += hk * r[c];
        }
        /* a variable bound would keep `a` out of registers: copy it first */
        {
            float last[RT_FIR_LANES];
            for (c = 0; c < RT_FIR_LANES; c++) last[c] = a[c];
            for (c = 0; c < width; c++) out[i * out_i + c * out_c] = last[c];
        }
    }
}

typedef void (*rt_fir_block_t)(const float *, ptrdiff_t, const float *, ptrdiff_t, ptrdiff_t,
                               ptrdiff_t, ptrdiff_t, ptrdiff_t, float *, ptrdiff_t, ptrdiff_t);

static void rt_fir_block_portable(const float *h, ptrdiff_t L, const float *x0, ptrdiff_t S,
                                  ptrdiff_t width, ptrdiff_t first, ptrdiff_t step,
                                  ptrdiff_t n_out, float *out, ptrdiff_t out_i, ptrdiff_t out_c) {
    rt_fir_block_scalar(h, L, x0, S, width, first, step, n_out, out, out_i, out_c);
}

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define RT_FIR_HAVE_AVX2 1

/* 8 floats, loaded from any float's address: 16 channels are two of them (GCC/Clang vector
 * extensions: one AVX register each; may alias the floats it is loaded from) */
typedef float rt_v8f __attribute__((vector_size(32), aligned(4), __may_alias__));
#define RT_V8(p) (*(const rt_v8f *)(p))

/* Store one output's two vectors: `width` channels, `out_c` apart. (Compiled for AVX, as its
 * only caller: 256-bit vectors passed by value need it.) */
__attribute__((target("avx2,fma"))) RT_ALWAYS_INLINE void
rt_fir_store(rt_v8f lo, rt_v8f hi, float *dst, ptrdiff_t width, ptrdiff_t out_c) {
    float sums[RT_FIR_LANES];
    ptrdiff_t c;
    memcpy(sums, &lo, sizeof lo);
    memcpy(sums + 8, &hi, sizeof hi);
    for (c = 0; c < width; c++) dst[c * out_c] = sums[c];
}

/* The same sums as rt_fir_block_scalar, four outputs at a time: one output's sums are two
 * chains of dependent multiply-adds, and the core would wait on their latency (measured: 2.1 ms
 * per second of 64 ch x 32 kHz one at a time, 1.5 ms four at a time). Each output's additions
 * stay in the scalar loop's order, so the grouping does not change them. */
__attribute__((target("avx2,fma"))) RT_ALWAYS_INLINE void
rt_fir_block_vector(const float *h, ptrdiff_t L, const float *x0, ptrdiff_t S, ptrdiff_t width,
                    ptrdiff_t first, ptrdiff_t step, ptrdiff_t n_out, float *out, ptrdiff_t out_i,
                    ptrdiff_t out_c) {
    const ptrdiff_t gap = step * S; /* from one output's newest input row to the next's */
    ptrdiff_t i = 0, k;
    for (; i + 4 <= n_out; i += 4) {
        const float *row = x0 + (first + i * step) * S;
        rt_v8f a0 = {0}, a1 = {0}, b0 = {0}, b1 = {0}, c0 = {0}, c1 = {0}, d0 = {0}, d1 = {0};
        for (k = 0; k < L; k++) {
            const rt_v8f hk = (rt_v8f){0} + h[k];
            const float *r = row - k * S;
            a0 += hk * RT_V8(r);
            a1 += hk * RT_V8(r + 8);
            b0 += hk * RT_V8(r + gap);
            b1 += hk * RT_V8(r + gap + 8);
            c0 += hk * RT_V8(r + 2 * gap);
            c1 += hk * RT_V8(r + 2 * gap + 8);
            d0 += hk * RT_V8(r + 3 * gap);
            d1 += hk * RT_V8(r + 3 * gap + 8);
        }
        rt_fir_store(a0, a1, out + i * out_i, width, out_c);
        rt_fir_store(b0, b1, out + (i + 1) * out_i, width, out_c);
        rt_fir_store(c0, c1, out + (i + 2) * out_i, width, out_c);
        rt_fir_store(d0, d1, out + (i + 3) * out_i, width, out_c);
    }
    for (; i < n_out; i++) {
        const float *row = x0 + (first + i * step) * S;
        rt_v8f a0 = {0}, a1 = {0};
        for (k = 0; k < L; k++) {
            const rt_v8f hk = (rt_v8f){0} + h[k];
            a0 += hk * RT_V8(row - k * S);
            a1 += hk * RT_V8(row - k * S + 8);
        }
        rt_fir_store(a0, a1, out + i * out_i, width, out_c);
    }
}

__attribute__((target("avx2,fma"))) static void
rt_fir_block_avx2(const float *h, ptrdiff_t L, const float *x0, ptrdiff_t S, ptrdiff_t width,
                  ptrdiff_t first, ptrdiff_t step, ptrdiff_t n_out, float *out, ptrdiff_t out_i,
                  ptrdiff_t out_c) {
    rt_fir_block_vector(h, L, x0, S, width, first, step, n_out, out, out_i, out_c);
}
#else
#define RT_FIR_HAVE_AVX2 0
#endif

/* The kernel for this CPU; `*name` says which ("avx2+fma" or "portable"). */
static inline rt_fir_block_t rt_fir_select(const char **name) {
#if RT_FIR_HAVE_AVX2
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        *name = "avx2+fma";
        return rt_fir_block_avx2;
    }
#endif
    *name = "portable";
    return rt_fir_block_portable;
}

/* The portable kernel whatever the CPU (tests compare the two). */
static inline rt_fir_block_t rt_fir_portable(void) { return rt_fir_block_portable; }

#endif
