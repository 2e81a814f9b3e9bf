// CPU kernels of the static graph executor. Not compiled on its own: kernels_<level>.cc include it
// once per ISA level (baseline x86-64, AVX2 + FMA, AVX-512), each copy in namespace
// sdc::<level> under `#pragma GCC target`, and isa.cc picks one at load (see isa.h).
#ifndef SDC_ISA_NS
#error "kernels.cc is included by kernels_<level>.cc, which define SDC_ISA_NS and SDC_ISA_LEVEL"
#endif
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

#if SDC_ISA_LEVEL >= 2
#include <immintrin.h>
#endif

#include "isa.h"
#include "kernels.h"

#define SDC_PRAGMA_(x) _Pragma(#x)
#define SDC_TARGET_PRAGMA(t) SDC_PRAGMA_(GCC target(t))

namespace sdc {
namespace SDC_ISA_NS {
#ifdef SDC_ISA_TARGET
#pragma GCC push_options
SDC_TARGET_PRAGMA(SDC_ISA_TARGET)
#endif
#if SDC_ISA_LEVEL >= 2
// GCC 12's AVX-512 intrinsics start from _mm512_undefined_*(), which -Wmaybe-uninitialized (or,
// inlined some ways, -Wuninitialized) reports once they are inlined (GCC bug 105593, fixed in
// GCC 13); the x86-64 level, the same code without intrinsics, keeps both warnings
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

// ---------------------------------------------------------------------------------------------
// elementwise math: float versions of runtime/graph/ops.ts, written so that loops vectorize
// (no libm calls in the hot ones) and NaN propagates (no fmin/fmax, which drop NaNs)

static inline float bits_to_float(std::uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

static inline float sdc_exp(float x) {
  x = x < -87.3f ? -87.3f : x;
  x = x > 88.3f ? 88.3f : x;
  float k = std::floor(x * 1.44269504088896341f + 0.5f);
  float r = x - k * 0.693359375f - k * -2.12194440e-4f;
  float p = 1.9875691500E-4f;
  p = p * r + 1.3981999507E-3f;
  p = p * r + 8.3334519073E-3f;
  p = p * r + 4.1665795894E-2f;
  p = p * r + 1.6666665459E-1f;
  p = p * r + 5.0000001201E-1f;
  p = p * r * r + r + 1.0f;
  std::int32_t ki = static_cast<std::int32_t>(k == k ? k : 0.0f);  // NaN: no cast of it (undefined); p is NaN already
  return p * bits_to_float(static_cast<std::uint32_t>(ki + 127) << 23);
}
static inline float sdc_sigmoid(float x) { return 1.0f / (1.0f + sdc_exp(-x)); }
static inline float sdc_tanh(float x) {
  float c = x < -15.0f ? -15.0f : (x > 15.0f ? 15.0f : x);
  float e = sdc_exp(2.0f * c);
  return (e - 1.0f) / (e + 1.0f);
}
static inline float sdc_erf(float x) {
  float s = x < 0.0f ? -1.0f : (x > 0.0f ? 1.0f : 0.0f);
  float a = std::fabs(x);
  float t = 1.0f / (1.0f + 0.3275911f * a);
  float y = 1.0f - ((((1.061405429f * t - 1.453152027f) * t + 1.421413741f) * t - 0.284496736f) * t + 0.254829592f) * t * sdc_exp(-a * a);
  return s * y;
}
static constexpr float GC = 0.7978845608028654f;  // sqrt(2 / pi)
static constexpr float GK = 0.044715f;
static inline float sdc_gelu_t(float x) { return 0.5f * x * (1.0f + sdc_tanh(GC * (x + GK * x * x * x))); }
static inline float sdc_gelu_t_g(float x, float dy) {
  float t = sdc_tanh(GC * (x + GK * x * x * x));
  return dy * (0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * GC * (1.0f + 3.0f * GK * x * x));
}
static inline float sdc_gelu_e(float x) { return 0.5f * x * (1.0f + sdc_erf(x * 0.7071067811865476f)); }
static inline float sdc_gelu_e_g(float x, float dy) { return dy * (0.5f * (1.0f + sdc_erf(x * 0.7071067811865476f)) + x * sdc_exp(-0.5f * x * x) * 0.3989422804014327f); }
static inline float sdc_silu_g(float x, float dy) {
  float s = sdc_sigmoid(x);
  return dy * s * (1.0f + x * (1.0f - s));
}

#if SDC_ISA_LEVEL >= 2
// gelu_tanh and its gradient in AVX-512 registers, four vectors at a time: the operations of
// sdc_gelu_t / sdc_gelu_t_g as GCC compiles their `omp simd` loops here (its FMA contractions, in
// its order), so the bits are the same (compared once on all 2^32 fp32 inputs, with masked
// tails, on a Zen 5; test/graph/native.test.ts checks every 4,096th on each level), at 1.45-1.6
// times the speed in L1: the compiled loop spends a third of its instructions on the clamps'
// compares and blends and on the NaN test of the exponent.
// max(c, x) and min(c, x) return x when x is NaN, as the clamps do; a NaN's exponent bits are
// garbage, but p is NaN already.
static inline __m512 v_exp(__m512 x) {
  x = _mm512_max_ps(_mm512_set1_ps(-87.3f), x);
  x = _mm512_min_ps(_mm512_set1_ps(88.3f), x);
  const __m512 k = _mm512_roundscale_ps(_mm512_fmadd_ps(x, _mm512_set1_ps(1.44269504088896341f), _mm512_set1_ps(0.5f)), _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(k, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fmadd_ps(k, _mm512_set1_ps(2.12194440e-4f), r);
  __m512 p = _mm512_fmadd_ps(r, _mm512_set1_ps(1.9875691500E-4f), _mm512_set1_ps(1.3981999507E-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073E-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894E-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459E-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201E-1f));
  p = _mm512_add_ps(_mm512_fmadd_ps(_mm512_mul_ps(p, r), r, r), _mm512_set1_ps(1.0f));
  const __m512i ki = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvttps_epi32(k), _mm512_set1_epi32(127)), 23);
  return _mm512_mul_ps(p, _mm512_castsi512_ps(ki));
}
static inline __m512 v_tanh(__m512 x) {
  __m512 c = _mm512_max_ps(_mm512_set1_ps(-15.0f), x);
  c = _mm512_min_ps(_mm512_set1_ps(15.0f), c);
  const __m512 e = v_exp(_mm512_add_ps(c, c));
  return _mm512_div_ps(_mm512_add_ps(e, _mm512_set1_ps(-1.0f)), _mm512_add_ps(e, _mm512_set1_ps(1.0f)));
}
static inline __m512 v_gelu_inner(__m512 x) {  // tanh(GC (x + GK x^3))
  const __m512 t0 = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_mul_ps(x, _mm512_set1_ps(GK)), x), x, x);
  return v_tanh(_mm512_mul_ps(t0, _mm512_set1_ps(GC)));
}
static inline __m512 v_gelu_t(__m512 x, __m512) { return _mm512_mul_ps(_mm512_mul_ps(x, _mm512_set1_ps(0.5f)), _mm512_add_ps(v_gelu_inner(x), _mm512_set1_ps(1.0f))); }
static inline __m512 v_gelu_t_g(__m512 x, __m512 dy) {
  const __m512 t = v_gelu_inner(x), one = _mm512_set1_ps(1.0f), half = _mm512_set1_ps(0.5f);
  const __m512 q = _mm512_fmadd_ps(_mm512_mul_ps(x, _mm512_set1_ps(3.0f * GK)), x, one);  // 1 + 3 GK x^2
  __m512 s = _mm512_mul_ps(_mm512_mul_ps(x, half), _mm512_fnmadd_ps(t, t, one));         // 0.5 x (1 - t^2)
  s = _mm512_mul_ps(_mm512_mul_ps(s, _mm512_set1_ps(GC)), q);
  return _mm512_mul_ps(_mm512_fmadd_ps(_mm512_add_ps(t, one), half, s), dy);
}
// d[i] = F(a[i], b[i]) for i < len (b unread when null), four vectors an iteration, the tail masked
template <__m512 (*F)(__m512, __m512)>
static inline void v_map(const float* a, const float* b, float* d, int len) {
  int i = 0;
  for (; i + 64 <= len; i += 64) {
    __m512 x[4];
    for (int u = 0; u < 4; u++) x[u] = F(_mm512_loadu_ps(a + i + 16 * u), b ? _mm512_loadu_ps(b + i + 16 * u) : _mm512_setzero_ps());
    for (int u = 0; u < 4; u++) _mm512_storeu_ps(d + i + 16 * u, x[u]);
  }
  for (; i < len; i += 16) {
    const __mmask16 m = len - i >= 16 ? __mmask16(0xffff) : __mmask16((1u << (len - i)) - 1);
    _mm512_mask_storeu_ps(d + i, m, F(_mm512_maskz_loadu_ps(m, a + i), b ? _mm512_maskz_loadu_ps(m, b + i) : _mm512_setzero_ps()));
  }
}
#endif

// ---------------------------------------------------------------------------------------------
// elementwise kernels

static constexpr int CH = 256;  // chunk of the innermost axis evaluated at once

namespace {
struct Val {
  const float* p;  // CH values, or null for a scalar
  float s;
};
// A Val copied field by field: its two fields are written by two stores, and a 16-byte load of
// the whole struct right after them cannot be forwarded from the store buffer (a stall of ~20
// cycles for each operand of each chunk, most of ew_chunks' own time on rows of 96 floats).
static inline Val val_of(const Val& v) {
  const float* p = v.p;
  const float s = v.s;
  return Val{p, s};
}
}  // namespace

int ew_arity(int op) {
  switch (op) {
#define EW1(ID, NAME, EXPR) \
  case ID:                  \
    return 1;
#define EW2(ID, NAME, EXPR) \
  case ID:                  \
    return 2;
#include "ew_ops.inc"
#undef EW1
#undef EW2
  }
  return -1;
}

// An operator's id by its name in ew_ops.inc (-1: none), at compile time.
static constexpr bool same_name(const char* a, const char* b) { return *a == *b && (*a == 0 || same_name(a + 1, b + 1)); }
static constexpr int ew_id(const char* name) {
#define EW1(ID, NAME, EXPR) \
  if (same_name(name, #NAME)) return ID;
#define EW2(ID, NAME, EXPR) \
  if (same_name(name, #NAME)) return ID;
#include "ew_ops.inc"
#undef EW1
#undef EW2
  return -1;
}
static_assert(ew_id("gelu_tanh") >= 0 && ew_id("gelu_tanh_grad") >= 0, "ew_ops.inc names gelu_tanh and gelu_tanh_grad");

// Apply operator `op` to args over `len` values into dst; returns a scalar Val when every
// argument is one.
static inline Val ew_apply(int op, const Val* v, float* dst, int len) {
  const Val A = val_of(v[0]);
  const Val B = val_of(v[1 < ew_arity(op) ? 1 : 0]);
#if SDC_ISA_LEVEL >= 2
  // the hand-vectorized operators (the same bits as the loops below)
  if (op == ew_id("gelu_tanh") && A.p) {
    v_map<v_gelu_t>(A.p, nullptr, dst, len);
    return Val{dst, 0.0f};
  }
  if (op == ew_id("gelu_tanh_grad") && A.p && B.p) {
    v_map<v_gelu_t_g>(A.p, B.p, dst, len);
    return Val{dst, 0.0f};
  }
#endif
  switch (op) {
#define EW1(ID, NAME, EXPR)                          \
  case ID: {                                         \
    if (!A.p) {                                      \
      float a = A.s;                                 \
      return Val{nullptr, (EXPR)};                   \
    }                                                \
    const float* __restrict pa = A.p;                \
    float* __restrict d = dst;                       \
    _Pragma("omp simd") for (int i = 0; i < len; i++) { \
      float a = pa[i];                               \
      d[i] = (EXPR);                                 \
    }                                                \
    return Val{dst, 0.0f};                           \
  }
#define EW2(ID, NAME, EXPR)                                    \
  case ID: {                                                   \
    float* __restrict d = dst;                                 \
    if (!A.p && !B.p) {                                        \
      float a = A.s, b = B.s;                                  \
      return Val{nullptr, (EXPR)};                             \
    } else if (!A.p) {                                         \
      const float a = A.s;                                     \
      const float* __restrict pb = B.p;                        \
      _Pragma("omp simd") for (int i = 0; i < len; i++) {      \
        float b = pb[i];                                       \
        d[i] = (EXPR);                                         \
      }                                                        \
    } else if (!B.p) {                                         \
      const float b = B.s;                                     \
      const float* __restrict pa = A.p;                        \
      _Pragma("omp simd") for (int i = 0; i < len; i++) {      \
        float a = pa[i];                                       \
        d[i] = (EXPR);                                         \
      }                                                        \
    } else {                                                   \
      const float* __restrict pa = A.p;                        \
      const float* __restrict pb = B.p;                        \
      _Pragma("omp simd") for (int i = 0; i < len; i++) {      \
        float a = pa[i], b = pb[i];                            \
        d[i] = (EXPR);                                         \
      }                                                        \
    }                                                          \
    return Val{dst, 0.0f};                                     \
  }
#include "ew_ops.inc"
#undef EW1
#undef EW2
  }
  std::abort();
}

// Per-thread buffers of the elementwise kernels (the stack's chunks, gathered operands, the row
// index and the operands' offsets), grown as needed and kept: no allocation per kernel.
namespace {
struct EwScratch {
  std::vector<float> regs;
  std::vector<Val> stack, ins;
  std::vector<std::int64_t> idx, off;
};
}  // namespace
static thread_local EwScratch t_ew;

// Evaluates chunks b .. e of the kernel: row o = it / cpr (every index but the last axis), columns
// c0 .. c0 + len of it. The row's multi-index and each operand's offset are computed once and then
// moved row by row (an odometer), not divided out per chunk.
static void ew_chunks(const EwKernel& k, std::int64_t b, std::int64_t e, std::int64_t cpr) {
  const int nd = static_cast<int>(k.shape.size());
  const std::int64_t inner = k.shape[nd - 1];
  const int nin = static_cast<int>(k.in.size());
  const int depth = std::max(1, k.depth);
  EwScratch& t = t_ew;
  if (t.regs.size() < static_cast<size_t>(depth + nin) * CH + 16) t.regs.resize(static_cast<size_t>(depth + nin) * CH + 16);
  if (t.stack.size() < static_cast<size_t>(depth + 1)) t.stack.resize(depth + 1);
  if (t.ins.size() < static_cast<size_t>(nin)) t.ins.resize(nin);
  if (t.idx.size() < static_cast<size_t>(nd)) t.idx.resize(nd);
  if (t.off.size() < static_cast<size_t>(nin)) t.off.resize(nin);
  float* regs = t.regs.data();
  float* gather = regs + static_cast<size_t>(depth) * CH;
  Val* stack = t.stack.data();
  Val* ins = t.ins.data();
  std::int64_t* idx = t.idx.data();
  std::int64_t* off = t.off.data();
  std::int64_t o = b / cpr, c = b % cpr;
  std::int64_t rem = o;
  for (int d = nd - 2; d >= 0; d--) {
    idx[d] = rem % k.shape[d];
    rem /= k.shape[d];
  }
  for (int j = 0; j < nin; j++) {
    off[j] = 0;
    for (int d = 0; d < nd - 1; d++) off[j] += idx[d] * k.in[j].st[d];
  }
  const int nc = static_cast<int>(k.code.size());
  for (std::int64_t it = b; it < e; it++) {
    const std::int64_t c0 = c * CH;
    const int len = static_cast<int>(std::min<std::int64_t>(CH, inner - c0));
    for (int j = 0; j < nin; j++) {
      const Strided& s = k.in[j];
      const std::int64_t si = s.st[nd - 1];
      if (si == 0) {
        ins[j] = Val{nullptr, s.p[off[j]]};
      } else if (si == 1) {
        ins[j] = Val{s.p + off[j] + c0, 0.0f};
      } else {
        float* g = gather + static_cast<size_t>(j) * CH;
        const float* src = s.p + off[j] + c0 * si;
        for (int i = 0; i < len; i++) g[i] = src[i * si];
        ins[j] = Val{g, 0.0f};
      }
    }
    float* out = k.out + o * inner + c0;  // the output is contiguous: row o starts at o * inner
    int sp = 0;
    for (int pc = 0; pc < nc; pc++) {
      const EwCode& ins_c = k.code[pc];
      if (ins_c.kind == 0) {
        stack[sp++] = val_of(ins[ins_c.op]);
      } else if (ins_c.kind == 1) {
        stack[sp++] = Val{nullptr, ins_c.c};
      } else {
        const int a = ew_arity(ins_c.op);
        sp -= a;
        float* dst = pc == nc - 1 ? out : regs + static_cast<size_t>(sp) * CH;
        stack[sp] = ew_apply(ins_c.op, &stack[sp], dst, len);
        sp++;
      }
    }
    const Val r = stack[0];
    if (!r.p) {
      for (int i = 0; i < len; i++) out[i] = r.s;
    } else if (r.p != out) {
      std::memmove(out, r.p, sizeof(float) * len);  // an operand may overlap the output
    }
    if (++c < cpr) continue;
    // the next row: advance the multi-index, and each operand's offset with it
    c = 0;
    o++;
    for (int d = nd - 2; d >= 0; d--) {
      for (int j = 0; j < nin; j++) off[j] += k.in[j].st[d];
      if (++idx[d] < k.shape[d]) break;
      for (int j = 0; j < nin; j++) off[j] -= k.shape[d] * k.in[j].st[d];
      idx[d] = 0;
    }
  }
}

void run_ew(const EwKernel& k) {
  const int nd = static_cast<int>(k.shape.size());
  const std::int64_t inner = k.shape[nd - 1];
  std::int64_t outer = 1;
  for (int d = 0; d < nd - 1; d++) outer *= k.shape[d];
  const std::int64_t cpr = (inner + CH - 1) / CH;
  const std::int64_t items = outer * cpr;
  if (items == 0) return;
  parallel_for(items, std::max<std::int64_t>(1, 32768 / CH), [&](std::int64_t b, std::int64_t e, int) { ew_chunks(k, b, e, cpr); });
}

// ---------------------------------------------------------------------------------------------
// GEMM: packed panels and a register-blocked micro-kernel (BLIS / GotoBLAS structure)

#if SDC_ISA_LEVEL >= 2
static constexpr int VL = 16;
static constexpr int MR = 8;
#elif SDC_ISA_LEVEL == 1
static constexpr int VL = 8;
static constexpr int MR = 6;
#else
static constexpr int VL = 4;
static constexpr int MR = 4;
#endif
static constexpr int NR = 2 * VL;
static constexpr int KC = 256;
static constexpr int KC_MAX = 384;  // the fp32 GEMM's K block: all of K up to this (one pass over C), else KC
static constexpr int MC = MR * (128 / MR);
static constexpr int NB = NR * 16;
typedef float vf __attribute__((vector_size(VL * 4)));

static inline vf vload(const float* p) {
  vf v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
static inline void vstore(float* p, vf v) { std::memcpy(p, &v, sizeof v); }

// acc[MR][2] = sum_k A(k, i) * B(k, j) for a tile of MR rows and NR columns. B's NR columns are
// contiguous, its rows bs floats apart: B[k * bs + j] (bs = NR: a packed panel; a row-major B read
// in place: its row stride); A by mode: 0 packed (A[k * MR + i]), 1 rows in place
// (A[i * as + k]: a row-major operand), 2 k-major in place (A[k * as + i]: a transposed one).
// NV 1: the panel's first VL columns alone (a panel of at most VL columns: the last of N = 72, say),
// acc[i][1] zero; each column's sum is the same sequence of operations either way (the same bits).
template <int AM, int NV = 2>
static inline void ukernel(int kc, const float* __restrict A, std::int64_t as, const float* __restrict B, std::int64_t bs, vf acc[MR][2]) {
  static_assert(NV == 1 || NV == 2, "one or two vectors of columns");
  vf c[MR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MR; i++)
    for (int v = 0; v < NV; v++) c[i][v] = vf{};
  for (int k = 0; k < kc; k++) {
    const vf b0 = vload(B + k * bs);
    const vf b1 = NV == 2 ? vload(B + k * bs + VL) : vf{};
#pragma GCC unroll 16
    for (int i = 0; i < MR; i++) {
      const float ai = AM == 1 ? A[i * as + k] : AM == 2 ? A[k * as + i] : A[k * MR + i];
      c[i][0] += ai * b0;
      if (NV == 2) c[i][NV - 1] += ai * b1;
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < MR; i++) {
    acc[i][0] = c[i][0];
    acc[i][1] = NV == 2 ? c[i][NV - 1] : vf{};
  }
}
// ukernel for a panel of w columns: one vector of them where w <= VL
template <int AM>
static inline void ukernel_w(int w, int kc, const float* A, std::int64_t as, const float* B, std::int64_t bs, vf acc[MR][2]) {
  if (w <= VL) ukernel<AM, 1>(kc, A, as, B, bs, acc);
  else ukernel<AM, 2>(kc, A, as, B, bs, acc);
}

// ukernel's A mode for an operand with row stride as_m and k stride as_k: 1 rows in place, 2
// k-major in place, 0 packed (neither stride 1)
static inline int a_mode(std::int64_t as_m, std::int64_t as_k) { return as_k == 1 ? 1 : as_m == 1 ? 2 : 0; }
// ukernel_w in A mode `mode` (a panel packed into MR rows where it is 0)
static inline void ukernel_mode(int mode, int w, int kc, const float* ap, std::int64_t as_m, std::int64_t as_k, const float* b, std::int64_t bs, vf acc[MR][2]) {
  if (mode == 1) ukernel_w<1>(w, kc, ap, as_m, b, bs, acc);
  else if (mode == 2) ukernel_w<2>(w, kc, ap, as_k, b, bs, acc);
  else ukernel_w<0>(w, kc, ap, 0, b, bs, acc);
}

namespace {
struct PackBuffers {
  float* a = nullptr;
  float* b = nullptr;
  PackBuffers() {
    a = static_cast<float*>(std::aligned_alloc(64, sizeof(float) * MR * KC_MAX));
    b = static_cast<float*>(std::aligned_alloc(64, sizeof(float) * KC_MAX * NB));
  }
  ~PackBuffers() {
    std::free(a);
    std::free(b);
  }
};
}  // namespace
static thread_local PackBuffers t_pack;

// fp32 -> bf16 bits, rounded to nearest even in integer arithmetic; a NaN stays a (quiet) NaN
static inline std::uint16_t to_bf16(float x) {
  std::uint32_t u;
  std::memcpy(&u, &x, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((u >> 16) | 0x40u);
  return static_cast<std::uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
// x rounded to the nearest bf16 value, as a float
static inline float round_bf16(float x) { return bits_to_float(static_cast<std::uint32_t>(to_bf16(x)) << 16); }
template <bool R>
static inline float maybe_round(float x) { return R ? round_bf16(x) : x; }

#if SDC_ISA_LEVEL >= 2
// A transposed B (x W^T, attention's k^T: column j of B contiguous over k, sn apart) into a panel:
// 16 x 16 blocks (16 columns' runs of 16 k, loaded as vectors, masked at the ends) transposed in
// registers (unpacks, then 128-bit lane shuffles), 16 k rows of 16 columns stored at once, where
// the scalar loop stores one float at a time.
static void pack_b_transposed(float* __restrict d, const float* s, std::int64_t sn, int kc, int w) {
  static_assert(VL == 16 && NR % 16 == 0, "16 x 16 blocks of a panel");
  for (int j0 = 0; j0 < NR; j0 += 16) {
    for (int kb = 0; kb < kc; kb += 16) {
      const int kn = std::min(16, kc - kb);
      const __mmask16 km = static_cast<__mmask16>((1u << kn) - 1);
      __m512 r[16], t[16];
      for (int i = 0; i < 16; i++) r[i] = j0 + i < w ? _mm512_maskz_loadu_ps(km, s + (j0 + i) * sn + kb) : _mm512_setzero_ps();
      for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
      }
      for (int i = 0; i < 16; i += 4) {  // r[i + c]: rows i .. i+3 at k = 4 l + c in 128-bit lane l
        r[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[i]), _mm512_castps_pd(t[i + 2])));
        r[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[i]), _mm512_castps_pd(t[i + 2])));
        r[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[i + 1]), _mm512_castps_pd(t[i + 3])));
        r[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[i + 1]), _mm512_castps_pd(t[i + 3])));
      }
      for (int c = 0; c < 4; c++) {  // k = 4 l + c: lane l of r[c], r[4 + c], r[8 + c], r[12 + c]
        const __m512 v0 = _mm512_shuffle_f32x4(r[c], r[4 + c], 0x44), v1 = _mm512_shuffle_f32x4(r[c], r[4 + c], 0xee);
        const __m512 v2 = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0x44), v3 = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0xee);
        t[c] = _mm512_shuffle_f32x4(v0, v2, 0x88);
        t[4 + c] = _mm512_shuffle_f32x4(v0, v2, 0xdd);
        t[8 + c] = _mm512_shuffle_f32x4(v1, v3, 0x88);
        t[12 + c] = _mm512_shuffle_f32x4(v1, v3, 0xdd);
      }
      for (int k = 0; k < kn; k++) _mm512_storeu_ps(d + (kb + k) * NR + j0, t[k]);
    }
  }
}
#endif

// pack B[k0 .. k0+kc, n0 .. n0+w] (w <= NR) into one panel of NR columns (zero padded); R: each
// value rounded to bf16 (the bf16 GEMM's portable path)
template <bool R = false>
static void pack_b_panel(float* __restrict d, const float* B, std::int64_t sk, std::int64_t sn, std::int64_t k0, int kc, std::int64_t n0, int w) {
  const float* s = B + k0 * sk + n0 * sn;
  if (sn == 1 && w == NR && !R) {  // full panels of the fp32 GEMM: two vector copies per k
    for (int k = 0; k < kc; k++) {
      vstore(d + k * NR, vload(s + k * sk));
      vstore(d + k * NR + VL, vload(s + k * sk + VL));
    }
  } else if (sn == 1 && !R) {  // a partial panel: copies the compiler cannot turn into masked loads (slow on Zen 4)
    for (int k = 0; k < kc; k++) {
      std::memcpy(d + k * NR, s + k * sk, sizeof(float) * w);
      std::memset(d + k * NR + w, 0, sizeof(float) * (NR - w));
    }
  } else if (sn == 1) {
    for (int k = 0; k < kc; k++) {
      const float* row = s + k * sk;
      float* dr = d + k * NR;
      int j = 0;
      for (; j < w; j++) dr[j] = maybe_round<R>(row[j]);
      for (; j < NR; j++) dr[j] = 0.0f;
    }
  } else {
#if SDC_ISA_LEVEL >= 2
    if (sk == 1 && !R) return pack_b_transposed(d, s, sn, kc, w);
#endif
    for (int j = 0; j < w; j++) {
      const float* col = s + j * sn;
      for (int k = 0; k < kc; k++) d[k * NR + j] = maybe_round<R>(col[k * sk]);
    }
    for (int j = w; j < NR; j++)
      for (int k = 0; k < kc; k++) d[k * NR + j] = 0.0f;
  }
}

// pack A[m0 .. m0+h, k0 .. k0+kc] (h <= MR) into one panel of MR rows (zero padded); R: rounded to bf16
template <bool R = false>
static void pack_a_panel(float* __restrict d, const float* A, std::int64_t sm, std::int64_t sk, std::int64_t m0, int h, std::int64_t k0, int kc) {
  const float* s = A + m0 * sm + k0 * sk;
  if (sk == 1) {
    for (int i = 0; i < h; i++) {
      const float* row = s + i * sm;
      for (int k = 0; k < kc; k++) d[k * MR + i] = maybe_round<R>(row[k]);
    }
  } else {
    for (int k = 0; k < kc; k++) {
      const float* col = s + k * sk;
      for (int i = 0; i < h; i++) d[k * MR + i] = maybe_round<R>(col[i * sm]);
    }
  }
  for (int i = h; i < MR; i++)
    for (int k = 0; k < kc; k++) d[k * MR + i] = 0.0f;
}

// One row of a whole tile (NR floats at c): alpha * acc plus the bias on the first K block, or
// added to what c holds; the one definition of a stored sum (store_tile, run_gemm_skinny), so
// every path rounds it the same way.
static inline void store_row(float* c, const vf acc[2], float alpha, vf bias0, vf bias1, bool first) {
  const vf x0 = acc[0] * alpha, x1 = acc[1] * alpha;
  if (first) {
    vstore(c, x0 + bias0);
    vstore(c + VL, x1 + bias1);
  } else {
    vstore(c, vload(c) + x0);
    vstore(c + VL, vload(c + VL) + x1);
  }
}

// C tile (h x w at row mrow, column ncol) = alpha * acc (+ bias on the first K block), or += it
static inline void store_tile(const GemmKernel& g, float* C, vf acc[MR][2], int h, int w, std::int64_t mrow, std::int64_t ncol, bool first) {
  if (w == NR && g.cs[3] == 1) {
    vf bias0 = vf{}, bias1 = vf{};
    if (first && g.bias) {
      bias0 = vload(g.bias + ncol);
      bias1 = vload(g.bias + ncol + VL);
    }
    for (int i = 0; i < h; i++) store_row(C + (mrow + i) * g.cs[2] + ncol, acc[i], g.alpha, bias0, bias1, first);
    return;
  }
  // a partial tile: a whole first vector where the row has one, the rest element by element, in
  // a loop kept scalar (vectorized, its masked loads of values just stored wait for the stores to
  // retire: no store forwarding; that tripled a small batched GEMM's time on Zen 4)
  const std::int64_t cs3 = g.cs[3];
  const float* bias = first && g.bias ? g.bias + ncol : nullptr;
#if SDC_ISA_LEVEL >= 2
  if (first && cs3 == 1) {  // nothing of C read: masked stores of the row's last vector (no store forwarding involved)
    for (int i = 0; i < h; i++) {
      float* c = C + (mrow + i) * g.cs[2] + ncol;
      for (int v = 0; v * VL < w; v++) {
        const int left = w - v * VL;
        const __mmask16 cols = left >= VL ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << left) - 1);
        const vf x = acc[i][v] * g.alpha + (bias ? (vf)_mm512_maskz_loadu_ps(cols, bias + v * VL) : vf{});
        _mm512_mask_storeu_ps(c + v * VL, cols, (__m512)x);
      }
    }
    return;
  }
#endif
  for (int i = 0; i < h; i++) {
    float* c = C + (mrow + i) * g.cs[2] + ncol * cs3;
    const vf x[2] = {acc[i][0] * g.alpha, acc[i][1] * g.alpha};
    int j = 0;
    if (cs3 == 1 && w >= VL) {
      vstore(c, x[0] + (bias ? vload(bias) : first ? vf{} : vload(c)));
      j = VL;
    }
    for (; j < w; j++) {
      __asm__ volatile("" ::: "memory");
      const float v = x[j / VL][j % VL];
      c[j * cs3] = v + (bias ? bias[j] : first ? 0.0f : c[j * cs3]);
    }
  }
}

// The fp32 GEMM packs B once for the whole GEMM (into the program's scratch) when B is not
// row-major (x W^T: a transposed weight) or too large to stay in L2 (more than B_L2_FLOATS, half of
// a Zen 4 core's), where every row block's task packing it again would read it from L3 each time.
// Not for a batched GEMM whose rows fit one row block (attention's: a batch is a task, which packs
// its B once, into a buffer that stays in L1 and L2, where a whole-GEMM scratch is written to
// memory and read back).
static constexpr std::int64_t B_L2_FLOATS = std::int64_t(1) << 17;
static inline bool fp32_prepacks_b(const GemmKernel& g) {
  if (g.batch[0] * g.batch[1] >= 8 && g.m <= MC && g.k <= KC_MAX && g.n <= NB) return false;
  return g.bs[3] != 1 || g.n > B_L2_FLOATS / std::max<std::int64_t>(1, g.k);
}

// A skinny GEMM: few rows (M <= SKINNY_M: the batch, in the adaLN modulations and the
// conditioning MLPs) against a large weight. Run as gemm_task would, its B (the weight, K x N:
// 3.5 MB for sd3-seed's modulations) would be packed once per GEMM, written to memory and read
// back for a product that uses each weight once per row, so the packing costs as much as the
// arithmetic. Computed instead as its transpose, C^T = B^T A^T (run_gemm_skinny): the weight is
// the micro-kernel's A operand, read in place MR rows at a time (streamed from memory once), and
// only the activations (M x K) are packed, into at most two NR panels.
static constexpr std::int64_t SKINNY_M = 2 * NR;
static inline bool fp32_skinny(const GemmKernel& g) {
  return !g.bf16 && g.batch[0] * g.batch[1] == 1 && g.m <= SKINNY_M && g.n >= 128 && g.k >= 32 && (g.bs[2] == 1 || g.bs[3] == 1);
}

std::int64_t gemm_scratch_floats(const GemmKernel& g) {
  if (g.bf16) {  // B packed once, rounded: per batch, panels of NR columns over K rounded up to even
    std::int64_t nbatch, panels, f;
    if (__builtin_mul_overflow(g.batch[0], g.batch[1], &nbatch) || __builtin_mul_overflow(nbatch, (g.n + NR - 1) / NR, &panels) || __builtin_mul_overflow(panels, (g.k + 1) / 2 * 2 * NR, &f)) return -1;
    return f;
  }
  if (fp32_skinny(g)) return (g.m + NR - 1) / NR * g.k * NR;  // A^T's panels (A: M x K, M <= SKINNY_M, K an int32)
  if (!fp32_prepacks_b(g)) return 0;
  std::int64_t nbatch, panels, f;
  if (__builtin_mul_overflow(g.batch[0], g.batch[1], &nbatch) || __builtin_mul_overflow(nbatch, (g.n + NR - 1) / NR, &panels) || __builtin_mul_overflow(panels, g.k * NR, &f)) return -1;
  return f;
}

// The GEMM's tasks (batch, row block, column block): row blocks of equal height (at most MC rows,
// a multiple of MR), as many as make at least two tasks per thread and, while there are fewer
// than eight per thread, a multiple of the thread count: tasks are claimed one at a time
// (parallel_tasks), so the threads end together (a weight gradient's M = 384 made 3 blocks of
// 120 rows and one of 24, one thread doing 240 rows and the other 144). Below ~0.5 MFLOP one task
// list runs on the caller (the fork costs more than the second thread gains). Shared by the fp32
// and bf16 GEMMs. The row blocks depend on the thread count, but each output element's sum does
// not (the same bits for any count).
struct GemmTasks {
  std::int64_t mc, nblocks, mblocks, tasks;
  bool serial;
};
static GemmTasks gemm_tasks(const GemmKernel& g, std::int64_t nbatch, double flops) {
  if (g.m <= 0 || g.n <= 0 || nbatch <= 0) return {MR, 1, 1, 0, true};  // no output element: no task (m = 0 divided by zero blocks)
  const std::int64_t T = threads();
  const std::int64_t nblocks = (g.n + NB - 1) / NB, most = (g.m + MR - 1) / MR;
  std::int64_t mblocks = (g.m + MC - 1) / MC;
  const auto few = [&](std::int64_t mb) {
    const std::int64_t t = nbatch * nblocks * mb;
    return t < 2 * T || (t < 8 * T && t % T != 0);
  };
  while (mblocks < most && few(mblocks)) mblocks++;
  const std::int64_t mc = ((g.m + mblocks - 1) / mblocks + MR - 1) / MR * MR;
  mblocks = (g.m + mc - 1) / mc;
  return {mc, nblocks, mblocks, nbatch * mblocks * nblocks, flops < 5e5};
}

// Task t's batch (bi = b1 * batch[1] + b2) and block of rows and columns.
struct TaskBlock {
  std::int64_t bi, b1, b2, m0, n0;
  int ml, nl;
};
static inline TaskBlock task_block(const GemmKernel& g, const GemmTasks& part, std::int64_t t) {
  const std::int64_t nbk = t % part.nblocks, mbk = t / part.nblocks % part.mblocks, bi = t / part.nblocks / part.mblocks;
  const std::int64_t m0 = mbk * part.mc, n0 = nbk * NB;
  return {bi, bi / g.batch[1], bi % g.batch[1], m0, n0, static_cast<int>(std::min<std::int64_t>(part.mc, g.m - m0)), static_cast<int>(std::min<std::int64_t>(NB, g.n - n0))};
}

// The fp32 GEMM's K block: all of K up to KC_MAX (C written once), else KC. Depends on K alone, so
// every element sums its products in the same order for any thread count.
static inline std::int64_t fp32_kc(std::int64_t k) { return k <= KC_MAX ? k : KC; }

// One task of the fp32 GEMM: rows m0 .. m0+ml and columns n0 .. n0+nl of one batch (A, B, C at
// its offsets), K block by K block. A is read in place, MR rows at a time (row-major or k-major:
// kept in L1 while the B block streams from L2), where a panel is whole and its layout allows;
// other panels are packed into Ap. B is read from `panels` when it was packed once for the whole
// GEMM (K x NR floats per panel); else a row-major B's whole panels are read in place when its
// rows are at most B_ROWS_IN_PLACE floats apart (B is then small, fp32_prepacks_b: the K block's
// rows spread over L1's sets; rows 1,536 floats apart fall in 4 of its 64 sets, where a packed
// panel is faster), and the other panels of the block are packed into Bp.
static constexpr std::int64_t B_ROWS_IN_PLACE = 256;
static void gemm_task(const GemmKernel& g, const float* A, const float* B, float* C, const float* panels, std::int64_t m0, int ml, std::int64_t n0, int nl, float* Ap, float* Bp) {
  const std::int64_t KB = fp32_kc(g.k), as_m = g.as[2], as_k = g.as[3];
  const int amode = a_mode(as_m, as_k);
  const bool b_rows = !panels && g.bs[3] == 1 && g.bs[2] <= B_ROWS_IN_PLACE;  // whole panels of B read in place
  for (std::int64_t k0 = 0; k0 < g.k; k0 += KB) {
    const int kc = static_cast<int>(std::min<std::int64_t>(KB, g.k - k0));
    const float* bp = panels ? panels + (n0 / NR) * g.k * NR + k0 * NR : Bp;
    const std::int64_t pstride = panels ? g.k * NR : std::int64_t(kc) * NR;  // floats from one panel to the next
    if (!panels)
      for (int jp = 0; jp < nl; jp += NR)
        if (!b_rows || nl - jp < NR) pack_b_panel(Bp + (jp / NR) * pstride, B, g.bs[2], g.bs[3], k0, kc, n0 + jp, std::min(NR, nl - jp));
    for (int ip = 0; ip < ml; ip += MR) {
      const int h = std::min(MR, ml - ip);
      const int mode = h == MR ? amode : 0;
      const float* ap = A + (m0 + ip) * as_m + k0 * as_k;
      if (mode == 0) {
        pack_a_panel(Ap, A, as_m, as_k, m0 + ip, h, k0, kc);
        ap = Ap;
      }
      for (int jp = 0; jp < nl; jp += NR) {
        vf acc[MR][2];
        const int w = std::min(NR, nl - jp);
        const bool in_place = b_rows && w == NR;
        const float* b = in_place ? B + k0 * g.bs[2] + n0 + jp : bp + (jp / NR) * pstride;
        const std::int64_t bs = in_place ? g.bs[2] : NR;
        ukernel_mode(mode, w, kc, ap, as_m, as_k, b, bs, acc);
        store_tile(g, C, acc, h, w, m0 + ip, n0 + jp, k0 == 0);
      }
    }
  }
}

// A matrix-vector product (n == 1: a one-channel output conv, its weight gradient), which the
// 8x32 micro-kernel would run on one of its 32 columns: blocks of up to 256 outputs per task, each
// output one sum over all of K in a fixed order (the same bits for any thread count). A k-major A
// (a weight gradient's x^T) adds whole rows of A scaled by B[k]; otherwise one dot product per row.
static void gemv(const GemmKernel& g) {
  constexpr std::int64_t MB = 256;
  const std::int64_t nb2 = g.batch[1], nbatch = g.batch[0] * nb2, blocks = (g.m + MB - 1) / MB;
  const std::int64_t sm = g.as[2], sk = g.as[3], bk = g.bs[2];
  const float bias = g.bias ? g.bias[0] : 0.0f;
  const std::int64_t tasks = nbatch * blocks;
  parallel_for(tasks, 2.0 * g.m * g.k * nbatch < 5e5 ? tasks : 1, [&](std::int64_t lo, std::int64_t hi, int) {
    float acc[MB];
    for (std::int64_t t = lo; t < hi; t++) {
      const std::int64_t bi = t / blocks, m0 = t % blocks * MB, ml = std::min(MB, g.m - m0);
      const float* A = g.a + bi / nb2 * g.as[0] + bi % nb2 * g.as[1] + m0 * sm;
      const float* B = g.b + bi / nb2 * g.bs[0] + bi % nb2 * g.bs[1];
      float* C = g.c + bi / nb2 * g.cs[0] + bi % nb2 * g.cs[1] + m0 * g.cs[2];
      if (sm == 1 && sk != 1) {
        std::fill(acc, acc + ml, 0.0f);
        for (std::int64_t k = 0; k < g.k; k++) {
          const float* __restrict a = A + k * sk;
          const float bv = B[k * bk];
#pragma omp simd
          for (std::int64_t i = 0; i < ml; i++) acc[i] += a[i] * bv;
        }
      } else {
        for (std::int64_t i = 0; i < ml; i++) {
          const float* a = A + i * sm;
          float s = 0.0f;
          if (sk == 1 && bk == 1) {
#pragma omp simd reduction(+ : s)
            for (std::int64_t k = 0; k < g.k; k++) s += a[k] * B[k];
          } else {
            for (std::int64_t k = 0; k < g.k; k++) s += a[k * sk] * B[k * bk];
          }
          acc[i] = s;
        }
      }
      for (std::int64_t i = 0; i < ml; i++) C[i * g.cs[2]] = acc[i] * g.alpha + bias;
    }
  });
}

// B packed once for a whole GEMM, in parts: (batch, panel, K chunk of B_PART k), each its own range
// of its panel, in parallel. By panels alone, a weight gradient's long K over few panels (the
// README job's 96 x 96 x 4,096: 3 panels) was packed on one thread while the other waited.
static constexpr std::int64_t B_PART = 512;  // even: a part starts on a pair
template <class F>
static void pack_b_parts(const GemmKernel& g, std::int64_t nbatch, std::int64_t npanels, double flops, F&& pack) {
  const std::int64_t nch = (g.k + B_PART - 1) / B_PART, parts = nbatch * npanels * nch;
  parallel_for(parts, flops < 5e5 ? parts : std::max<std::int64_t>(1, 4 / nch), [&](std::int64_t b, std::int64_t e, int) {
    for (std::int64_t q = b; q < e; q++) {
      const std::int64_t panel = q / nch, k0 = q % nch * B_PART;
      pack(panel / npanels, panel % npanels, k0, static_cast<int>(std::min(B_PART, g.k - k0)));
    }
  });
}

// The skinny GEMM as its transpose (fp32_skinny): tasks of rows of C^T (columns of C), each
// K block by K block into a local block of C^T (at most MC rows of SKINNY_M), then stored
// transposed into C. Every element sums the same products in the same order as gemm_task's (the
// same K blocks, k order, alpha and bias), so the results are the same bits.
namespace {
struct SkinnyBuffer {
  float* c = nullptr;  // MC x SKINNY_M: a task's block of C^T
  SkinnyBuffer() { c = static_cast<float*>(std::aligned_alloc(64, sizeof(float) * MC * SKINNY_M)); }
  ~SkinnyBuffer() { std::free(c); }
};
}  // namespace
static thread_local SkinnyBuffer t_skinny;

static void run_gemm_skinny(const GemmKernel& g) {
  // the transposed problem: m' = n rows (A' = B^T), n' = m columns (B' = A^T), C' = C^T
  GemmKernel t = g;
  t.m = g.n;
  t.n = g.m;
  t.as[2] = g.bs[3];  // A'(i, k) = B(k, i)
  t.as[3] = g.bs[2];
  const double flops = 2.0 * g.m * g.n * g.k;
  const GemmTasks part = gemm_tasks(t, 1, flops);
  const std::int64_t npanels = (g.m + NR - 1) / NR, K = g.k, KB = fp32_kc(K);
  float* panels = g.scratch;
  pack_b_parts(g, 1, npanels, flops, [&](std::int64_t, std::int64_t jp, std::int64_t k0, int kc) {
    // B'(k, j) = A(j, k): K x NR per panel
    pack_b_panel(panels + jp * K * NR + k0 * NR, g.a, g.as[3], g.as[2], k0, kc, jp * NR, static_cast<int>(std::min<std::int64_t>(NR, g.m - jp * NR)));
  });
  const std::int64_t as_m = t.as[2], as_k = t.as[3];
  const int amode = a_mode(as_m, as_k);
  parallel_tasks(part.tasks, part.serial, [&](std::int64_t tb, std::int64_t te, int) {
    float* L = t_skinny.c;  // L[r * SKINNY_M + j] = C(j, m0 + r)
    float* Ap = t_pack.a;
    for (std::int64_t task = tb; task < te; task++) {
      const std::int64_t m0 = task * part.mc;  // nblocks == 1: a task is a block of rows of C^T
      const int ml = static_cast<int>(std::min<std::int64_t>(part.mc, t.m - m0));
      for (std::int64_t k0 = 0; k0 < K; k0 += KB) {
        const int kc = static_cast<int>(std::min<std::int64_t>(KB, K - k0));
        const bool first = k0 == 0;
        for (int ip = 0; ip < ml; ip += MR) {
          const int h = std::min(MR, ml - ip);
          const int mode = h == MR ? amode : 0;
          const float* ap = g.b + (m0 + ip) * as_m + k0 * as_k;
          if (mode == 0) {
            pack_a_panel(Ap, g.b, as_m, as_k, m0 + ip, h, k0, kc);
            ap = Ap;
          }
          for (int jp = 0; jp < t.n; jp += NR) {
            vf acc[MR][2];
            const int w = static_cast<int>(std::min<std::int64_t>(NR, t.n - jp));
            const float* b = panels + (jp / NR) * K * NR + k0 * NR;
            ukernel_mode(mode, w, kc, ap, as_m, as_k, b, NR, acc);
            for (int i = 0; i < h; i++) {  // as store_tile: alpha * acc, plus the bias (C's column m0 + ip + i) on the first K block
              float* l = L + (ip + i) * SKINNY_M + jp;
              const float bias = first && g.bias ? g.bias[m0 + ip + i] : 0.0f;
              if (w == NR) {
                store_row(l, acc[i], g.alpha, vf{} + bias, vf{} + bias, first);
                continue;
              }
              for (int j = 0; j < w; j++) {
                const float x = acc[i][j / VL][j % VL] * g.alpha;
                l[j] = first ? x + bias : l[j] + x;
              }
            }
          }
        }
      }
      for (std::int64_t j = 0; j < g.m; j++) {  // C(j, m0 .. m0 + ml) from column j of the block
        float* c = g.c + j * g.cs[2] + m0 * g.cs[3];
        for (int r = 0; r < ml; r++) c[r * g.cs[3]] = L[r * SKINNY_M + j];
      }
    }
  });
}

// B is packed once for the whole GEMM, in parallel over panels (fp32_prepacks_b), or per task and
// K block (a small row-major B: a cheap copy from L2); A is read in place where it can be. Work is
// split into tasks (batch, row block, column block), each output element computed by one thread
// in a fixed K order: the same bits for any thread count.
void run_gemm(const GemmKernel& g) {
  if (g.n == 1) return gemv(g);
  if (fp32_skinny(g)) return run_gemm_skinny(g);
  const std::int64_t nb1 = g.batch[0], nb2 = g.batch[1];
  const std::int64_t nbatch = nb1 * nb2;
  const double flops = 2.0 * g.m * g.n * g.k * nbatch;
  const GemmTasks part = gemm_tasks(g, nbatch, flops);
  const std::int64_t npanels = (g.n + NR - 1) / NR;
  const std::int64_t panel_floats = g.k * NR;
  float* packed_b = fp32_prepacks_b(g) ? g.scratch : nullptr;
  if (packed_b) {
    pack_b_parts(g, nbatch, npanels, flops, [&](std::int64_t bi, std::int64_t jp, std::int64_t k0, int kc) {
      const float* B = g.b + (bi / nb2) * g.bs[0] + (bi % nb2) * g.bs[1];
      const int w = static_cast<int>(std::min<std::int64_t>(NR, g.n - jp * NR));
      pack_b_panel(packed_b + (bi * npanels + jp) * panel_floats + k0 * NR, B, g.bs[2], g.bs[3], k0, kc, jp * NR, w);
    });
  }
  parallel_tasks(part.tasks, part.serial, [&](std::int64_t tb, std::int64_t te, int) {
    for (std::int64_t t = tb; t < te; t++) {
      const TaskBlock q = task_block(g, part, t);
      const float* panels = packed_b ? packed_b + q.bi * npanels * panel_floats : nullptr;
      gemm_task(g, g.a + q.b1 * g.as[0] + q.b2 * g.as[1], g.b + q.b1 * g.bs[0] + q.b2 * g.bs[1], g.c + q.b1 * g.cs[0] + q.b2 * g.cs[1], panels, q.m0, q.ml, q.n0, q.nl, t_pack.a, t_pack.b);
    }
  });
}

// ---------------------------------------------------------------------------------------------
// bf16 GEMM (mixed precision): A and B rounded to bf16 (nearest even, NaN kept) while packed,
// products accumulated in fp32. Every K block of a task packs its rows of A (all MR panels) and
// then one NR panel of B at a time; store_tile as the fp32 GEMM. A policy P gives the packed
// formats and the micro-kernel: RoundedF32 (every level: rounded values as floats, the fp32
// micro-kernel; products of bf16 values are exact in fp32, so this is the fp32 GEMM of the
// rounded operands) and, at the avx512bf16 level, Dpbf16 (bf16 pairs, vdpbf16ps). B is packed
// once per GEMM (all of K per panel of NR columns, in parallel over panels) into the program's
// scratch; P::b_block gives a panel's K block at k0 (k0 a multiple of bf16_kc, which is even).

namespace {
// The bf16 GEMM's K block: all of K up to KC_BF16 (C written once), else K in equal even blocks of
// at most KC_BF16 (K = 512: 2 x 256; 1,024: 3 x 342 and 340; 1,536: 4 x 384). A packed B panel's
// block is then at most 24 KiB of bf16 pairs, beside an A panel in L1. Depends on K alone (the same
// bits for any thread count). Against 256-deep blocks: the sd3-seed batch-64 bf16 step 0.967x
// (40 pairs, bench/step.ts --against, Zen 5); blocks of up to 512: 1.016x this.
static constexpr std::int64_t KC_BF16 = KC_MAX;
static inline int bf16_kc(std::int64_t k) {
  if (k <= KC_BF16) return static_cast<int>(k);
  const std::int64_t blocks = (k + KC_BF16 - 1) / KC_BF16;
  return static_cast<int>(((k + blocks - 1) / blocks + 1) / 2 * 2);
}
struct Bf16Buffers {
  float* a = nullptr;  // MC / MR panels of MR * KC_MAX floats (bf16 pairs: MR * KC_BF16 / 2 words)
  Bf16Buffers() { a = static_cast<float*>(std::aligned_alloc(64, sizeof(float) * MC * KC_MAX)); }
  ~Bf16Buffers() { std::free(a); }
};
struct RoundedF32 {
  static void pack_a(float* d, const float* A, std::int64_t sm, std::int64_t sk, std::int64_t m0, int h, std::int64_t k0, int kc) { pack_a_panel<true>(d, A, sm, sk, m0, h, k0, kc); }
  static void pack_b(float* d, const float* B, std::int64_t sk, std::int64_t sn, std::int64_t k0, int kc, std::int64_t n0, int w) { pack_b_panel<true>(d, B, sk, sn, k0, kc, n0, w); }
  static const float* b_block(const float* panel, std::int64_t k0) { return panel + k0 * NR; }
  static void kernel(int w, int kc, const float* a, const float* b, vf acc[MR][2]) { ukernel_w<0>(w, kc, a, 0, b, NR, acc); }
};
}  // namespace
static thread_local Bf16Buffers t_bf16;

// Rows k0 .. k0+kc of panel jp of batch bi's B packed (rounded) into the panel at `panel` (all of K).
template <class P>
static void bf16_pack_b(const GemmKernel& g, std::int64_t bi, std::int64_t jp, std::int64_t k0, int kc, float* panel) {
  const float* B = g.b + (bi / g.batch[1]) * g.bs[0] + (bi % g.batch[1]) * g.bs[1];
  const int w = static_cast<int>(std::min<std::int64_t>(NR, g.n - jp * NR));
  P::pack_b(const_cast<float*>(P::b_block(panel, k0)), B, g.bs[2], g.bs[3], k0, kc, jp * NR, w);
}

// One task of the bf16 GEMM: rows m0 .. m0+ml and columns n0 .. n0+nl of batch bi, B read from
// that batch's packed panels.
template <class P>
static void bf16_task(const GemmKernel& g, std::int64_t bi, const float* batch_panels, std::int64_t panel_floats, std::int64_t m0, int ml, std::int64_t n0, int nl, float* Ap) {
  const std::int64_t b1 = bi / g.batch[1], b2 = bi % g.batch[1];
  const float* A = g.a + b1 * g.as[0] + b2 * g.as[1];
  float* C = g.c + b1 * g.cs[0] + b2 * g.cs[1];
  const int kb = bf16_kc(g.k);
  for (std::int64_t k0 = 0; k0 < g.k; k0 += kb) {
    const int kc = static_cast<int>(std::min<std::int64_t>(kb, g.k - k0));
    for (int ip = 0; ip < ml; ip += MR) P::pack_a(Ap + (ip / MR) * (MR * KC_MAX), A, g.as[2], g.as[3], m0 + ip, std::min(MR, ml - ip), k0, kc);
    for (int jp = 0; jp < nl; jp += NR) {
      const int w = std::min(NR, nl - jp);
      const float* bp = P::b_block(batch_panels + ((n0 + jp) / NR) * panel_floats, k0);
      for (int ip = 0; ip < ml; ip += MR) {
        vf acc[MR][2];
        P::kernel(w, kc, Ap + (ip / MR) * (MR * KC_MAX), bp, acc);
        store_tile(g, C, acc, std::min(MR, ml - ip), w, m0 + ip, n0 + jp, k0 == 0);
      }
    }
  }
}

static inline std::int64_t bf16_panel_floats(const GemmKernel& g) { return (g.k + 1) / 2 * 2 * NR; }

template <class P>
static void gemm_bf16_with(const GemmKernel& g) {
  const std::int64_t nbatch = g.batch[0] * g.batch[1];
  const double flops = 2.0 * g.m * g.n * g.k * nbatch;
  const GemmTasks part = gemm_tasks(g, nbatch, flops);
  const std::int64_t npanels = (g.n + NR - 1) / NR;
  const std::int64_t panel_floats = bf16_panel_floats(g);
  float* const packed_b = g.scratch;
  pack_b_parts(g, nbatch, npanels, flops, [&](std::int64_t bi, std::int64_t jp, std::int64_t k0, int kc) { bf16_pack_b<P>(g, bi, jp, k0, kc, packed_b + (bi * npanels + jp) * panel_floats); });
  parallel_tasks(part.tasks, part.serial, [&](std::int64_t tb, std::int64_t te, int) {
    for (std::int64_t t = tb; t < te; t++) {
      const TaskBlock q = task_block(g, part, t);
      bf16_task<P>(g, q.bi, packed_b + q.bi * npanels * panel_floats, panel_floats, q.m0, q.ml, q.n0, q.nl, t_bf16.a);
    }
  });
}

static void run_gemm_bf16(const GemmKernel& g) { gemm_bf16_with<RoundedF32>(g); }

// ---------------------------------------------------------------------------------------------
// chains: batched GEMMs, softmaxes and softmax gradients that touch, for each batch, only what the
// chain's earlier kernels wrote for that batch (attention: S = q k^T, P = softmax(S), O = P v; and
// its gradient). Each thread takes whole batches and runs every kernel of the chain on one batch
// before the next, so a batch's S and P are read back from L1 and L2 instead of memory, with one
// fork and join for the chain. runtime/executors/native/chains.ts finds them and proves that
// batch-locality. Each kernel computes every element as its own instruction does (the same tasks,
// packing and K order): the same bits as the kernels one by one.

static void softmax_rows(float* out, const float* x, std::int64_t b, std::int64_t e, std::int64_t d);
static void softmax_grad_rows(float* out, const float* y, const float* dy, std::int64_t b, std::int64_t e, std::int64_t d);

namespace {
// one batch's B of a bf16 GEMM step, packed (at most CHAIN_B_FLOATS), and of each chain-local
// tensor (at most CHAIN_LOCAL_FLOATS in all): the decoder checks both
struct ChainBuffers {
  float* b = nullptr;
  float* local = nullptr;  // one batch of each chain-local tensor
  ChainBuffers() {
    b = static_cast<float*>(std::aligned_alloc(64, sizeof(float) * CHAIN_B_FLOATS));
    local = static_cast<float*>(std::aligned_alloc(64, sizeof(float) * CHAIN_LOCAL_FLOATS));
  }
  ~ChainBuffers() {
    std::free(b);
    std::free(local);
  }
};
}  // namespace
static thread_local ChainBuffers t_chain;

// Row blocks of at most MC rows (a multiple of MR), column blocks of NB: the unfused GEMM's
// tasks, whose split does not change any element's sum.
template <class F>
static void batch_blocks(const GemmKernel& g, F&& f) {
  for (std::int64_t m0 = 0; m0 < g.m; m0 += MC)
    for (std::int64_t n0 = 0; n0 < g.n; n0 += NB) f(m0, static_cast<int>(std::min<std::int64_t>(MC, g.m - m0)), n0, static_cast<int>(std::min<std::int64_t>(NB, g.n - n0)));
}

template <class P>
static void chain_batch(const ChainKernel& k, std::int64_t bi) {
  float* const local = t_chain.local;
  for (const ChainStep& s : k.steps) {
    if (s.kind == ChainStep::GEMM) {
      // this batch of the GEMM, as a GEMM of one batch: its operands in the arena or the local buffer
      GemmKernel g = s.g;
      const std::int64_t b1 = bi / g.batch[1], b2 = bi % g.batch[1];
      g.a = s.local[0] >= 0 ? local + s.local[0] : g.a + b1 * g.as[0] + b2 * g.as[1];
      g.b = s.local[1] >= 0 ? local + s.local[1] : g.b + b1 * g.bs[0] + b2 * g.bs[1];
      g.c = s.local[2] >= 0 ? local + s.local[2] : g.c + b1 * g.cs[0] + b2 * g.cs[1];
      g.batch[0] = g.batch[1] = 1;
      if (g.bf16) {
        // B of this batch packed into the thread's buffer (the unfused GEMM packs all batches into
        // its scratch first: written to memory and read back), where it stays in L1 and L2
        const std::int64_t npanels = (g.n + NR - 1) / NR, panel_floats = bf16_panel_floats(g);
        float* panels = t_chain.b;
        for (std::int64_t jp = 0; jp < npanels; jp++) bf16_pack_b<P>(g, 0, jp, 0, static_cast<int>(g.k), panels + jp * panel_floats);
        batch_blocks(g, [&](std::int64_t m0, int ml, std::int64_t n0, int nl) { bf16_task<P>(g, 0, panels, panel_floats, m0, ml, n0, nl, t_bf16.a); });
      } else {
        batch_blocks(g, [&](std::int64_t m0, int ml, std::int64_t n0, int nl) { gemm_task(g, g.a, g.b, g.c, nullptr, m0, ml, n0, nl, t_pack.a, t_pack.b); });
      }
    } else {
      const std::int64_t per = s.rows / k.nbatch, at = bi * per * s.d;
      const float* x = s.local[0] >= 0 ? local + s.local[0] : s.x + at;
      float* out = s.local[2] >= 0 ? local + s.local[2] : s.out + at;
      if (s.kind == ChainStep::SOFTMAX) softmax_rows(out, x, 0, per, s.d);
      else softmax_grad_rows(out, x, s.local[1] >= 0 ? local + s.local[1] : s.dy + at, 0, per, s.d);
    }
  }
}

// Batches split between the threads (one batch a task); all on the caller below ~0.5 MFLOP.
template <class P>
static void run_chain_with(const ChainKernel& k) {
  double flops = 0;
  for (const ChainStep& s : k.steps)
    if (s.kind == ChainStep::GEMM) flops += 2.0 * s.g.m * s.g.n * s.g.k * k.nbatch;
  parallel_for(k.nbatch, flops < 5e5 ? k.nbatch : 1, [&](std::int64_t b, std::int64_t e, int) {
    for (std::int64_t bi = b; bi < e; bi++) chain_batch<P>(k, bi);
  });
}
static void run_chain(const ChainKernel& k) { run_chain_with<RoundedF32>(k); }

#if SDC_ISA_LEVEL >= 2
// AVX512-BF16: A packed as bf16 pairs (k, k+1) of each row, one 32-bit word per row and pair
// (a[p * MR + i]: k in the low half); B as NR such words per k pair (b[p * NR + j]);
// an odd K ends with a zero. vdpbf16ps adds both products of a pair to an fp32 lane; it treats
// bf16 subnormals as zero and flushes subnormal results (its fixed DAZ / FTZ), the one place
// this path differs from the portable one.
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl,avx512bf16,avx2,fma,f16c,bmi,bmi2")
namespace {
static_assert(MR <= 16 && NR == 32, "the vdpbf16ps packing assumes at most 16 rows and two vectors of columns");
// The avx512bf16 path rounds with the instructions (vcvtne2ps2bf16, vcvtneps2bf16): nearest
// even, a NaN kept quiet (as to_bf16), and an fp32 subnormal to a signed zero (their fixed DAZ,
// where to_bf16 keeps a bf16 subnormal or rounds the largest ones up to the smallest normal).
// vdpbf16ps treats bf16 subnormals as zero anyway, so this path treats every operand below the
// smallest normal as zero; its scalar tails round the same way (to_bf16_daz).
static inline std::uint32_t to_bf16_daz(float x) {
  std::uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  return (u & 0x7f800000u) == 0 ? (u >> 16) & 0x8000u : to_bf16(x);
}
// pair words lo[j] | hi[j] << 16 of 16 lanes of two vectors, rounded
static inline __m512i pairs16(__m512 lo, __m512 hi) {
  const __m512i both = (__m512i)_mm512_cvtne2ps_pbh(hi, lo);  // 16-bit elements: lo's 16, then hi's 16
  const __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  return _mm512_permutexvar_epi16(idx, both);
}

// An 8 x 8 transpose of 32-bit words in registers: r[i]'s word j becomes r[j]'s word i.
static inline void transpose8x8(__m256 r[8]) {
  __m256 t[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {
    r[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
    r[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xee);
    r[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
    r[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xee);
  }
  // r[0..3]: words 0-3 of columns 0-3 (column q in r[q]'s low lane) and 4-7 in the high lane; r[4..7] rows 4-7
  for (int q = 0; q < 4; q++) {
    t[q] = _mm256_permute2f128_ps(r[q], r[q + 4], 0x20);
    t[q + 4] = _mm256_permute2f128_ps(r[q], r[q + 4], 0x31);
  }
  for (int q = 0; q < 8; q++) r[q] = t[q];
}

// The pair words of `rows` (at most 8) rows of fp32 values, kc of each (s: row i at s + i * sm,
// contiguous), stored transposed: word p of row i at d[p * ds + i] for i < 8, rows past `rows`
// as zeros, (kc + 1) / 2 words (an odd kc's last word has a zero high half). 16 values of each row
// at a time: rounded by vcvtneps2bf16 (masked loads past the end), then an 8 x 8 transpose of the
// words in registers.
static void pair_words8(std::uint32_t* d, std::int64_t ds, const float* s, std::int64_t sm, int rows, int kc) {
  const int kp = (kc + 1) / 2;
  for (int p = 0; p < kp; p += 8) {
    const int np = std::min(8, kp - p);  // words of this block
    const __mmask16 fl = static_cast<__mmask16>((1u << std::min(16, kc - 2 * p)) - 1);
    __m256 r[8];
    for (int i = 0; i < 8; i++) r[i] = i < rows ? _mm256_castsi256_ps((__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(fl, s + i * sm + 2 * p))) : _mm256_setzero_ps();
    transpose8x8(r);
    for (int q = 0; q < np; q++) _mm256_storeu_ps(reinterpret_cast<float*>(d + (p + q) * ds), r[q]);
  }
}

struct Dpbf16 {
  // A panel: row i's pair words at d[i * AP + p] (rows past the panel's height zero), so a
  // row-major A is rounded in place order, 32 values to 16 words by one vcvtne2ps2bf16, and never
  // transposed; the micro-kernel broadcasts word p of each of the MR rows. AP: the words of the
  // deepest K block (bf16_kc).
  static constexpr int AP = KC_MAX / 2;
  static_assert(KC_BF16 <= 2 * AP, "a packed A row holds a whole K block");
  static void pack_a(float* dst, const float* A, std::int64_t sm, std::int64_t sk, std::int64_t m0, int h, std::int64_t k0, int kc) {
    std::uint32_t* d = reinterpret_cast<std::uint32_t*>(dst);
    const float* s = A + m0 * sm + k0 * sk;
    const int kp = (kc + 1) / 2;
    if (sk == 1) {
      // row-major: 32 values (16 words) of a row at a time, masked past kc (an odd kc's last word
      // gets a zero high half); the same row of the next panel (MR rows on) prefetched, which the
      // masked loads alone do not get from the hardware: the README job's bf16 step 0.953x
      // [0.919, 0.988] (200 pairs), sd3-seed's 0.945x [0.915, 0.982] (30; bench/step.ts --against,
      // Zen 5). Prefetching the k-major A's or a row-major B's next rows made them slower (1.02x,
      // 1.04x). A prefetch never faults: past the end of A it is dropped.
      for (int i = 0; i < h; i++) {
        const float* row = s + i * sm;
        for (int p = 0; p < kp; p += VL) {
          _mm_prefetch(reinterpret_cast<const char*>(row + MR * sm + 2 * p), _MM_HINT_T0);
          _mm_prefetch(reinterpret_cast<const char*>(row + MR * sm + 2 * p + VL), _MM_HINT_T0);
          const int left = kc - 2 * p;
          const __mmask16 lo = static_cast<__mmask16>(left >= VL ? 0xffff : (1u << left) - 1);
          const __mmask16 hi = static_cast<__mmask16>(left >= 2 * VL ? 0xffff : left <= VL ? 0 : (1u << (left - VL)) - 1);
          const __m512i w = (__m512i)_mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(hi, row + 2 * p + VL), _mm512_maskz_loadu_ps(lo, row + 2 * p));
          _mm512_mask_storeu_epi32(d + i * AP + p, static_cast<__mmask16>(kp - p >= VL ? 0xffff : (1u << (kp - p)) - 1), w);
        }
      }
    } else if (sm == 1) {
      // k-major: the h rows of two k at once (one pair word a row), 8 pairs transposed 8 x 8 in
      // registers into 8 words of each row
      const __mmask16 rows = static_cast<__mmask16>((1u << h) - 1);
      for (int p0 = 0; p0 < kp; p0 += 8) {
        const int np = std::min(8, kp - p0);
        __m256 r[8];
        for (int q = 0; q < 8; q++) {
          const int k = 2 * (p0 + q);
          const __m512 lo = q < np ? _mm512_maskz_loadu_ps(rows, s + k * sk) : _mm512_setzero_ps();
          const __m512 hi = q < np && k + 1 < kc ? _mm512_maskz_loadu_ps(rows, s + (k + 1) * sk) : _mm512_setzero_ps();
          r[q] = _mm256_castsi256_ps(_mm512_castsi512_si256(pairs16(lo, hi)));  // word i: row i's pair
        }
        transpose8x8(r);  // r[i]: row i's 8 words
        const __mmask8 words = static_cast<__mmask8>((1u << np) - 1);
        for (int i = 0; i < h; i++) _mm256_mask_storeu_epi32(d + i * AP + p0, words, _mm256_castps_si256(r[i]));
      }
    } else {
      for (int i = 0; i < h; i++) {
        const float* row = s + i * sm;
        for (int p = 0; p < kp; p++) {
          const std::uint32_t lo = to_bf16_daz(row[2 * p * sk]);
          const std::uint32_t hi = 2 * p + 1 < kc ? to_bf16_daz(row[(2 * p + 1) * sk]) : 0u;
          d[i * AP + p] = lo | (hi << 16);
        }
      }
    }
    for (int i = h; i < MR; i++)
      for (int p = 0; p < kp; p++) d[i * AP + p] = 0u;
  }
  static void pack_b(float* dst, const float* B, std::int64_t sk, std::int64_t sn, std::int64_t k0, int kc, std::int64_t n0, int w) {
    std::uint32_t* d = reinterpret_cast<std::uint32_t*>(dst);
    const float* s = B + k0 * sk + n0 * sn;
    if (sk == 1 && sn != 1) {  // a transposed B (x W^T, k^T): its columns are rows of the source, 8 at a time
      for (int j = 0; j < NR; j += 8) pair_words8(d + j, NR, s + j * sn, sn, std::max(0, std::min(8, w - j)), kc);
      return;
    }
    const int kp = (kc + 1) / 2;
    for (int p = 0; p < kp; p++) {
      std::uint32_t* __restrict dr = d + p * NR;
      const float* r0 = s + 2 * p * sk;
      const float* r1 = r0 + sk;
      int j = 0;
      if (2 * p + 1 < kc) {
        if (sn == 1) {
          // rows of B in place: 16 columns of the pair at once (masked at the panel's edge)
          for (; j < NR; j += VL) {
            const int left = w - j;
            const __mmask16 cols = left >= VL ? static_cast<__mmask16>(0xffff) : left <= 0 ? static_cast<__mmask16>(0) : static_cast<__mmask16>((1u << left) - 1);
            _mm512_storeu_si512(dr + j, _mm512_maskz_mov_epi32(cols, pairs16(_mm512_maskz_loadu_ps(cols, r0 + j), _mm512_maskz_loadu_ps(cols, r1 + j))));
          }
          continue;
        }
        for (; j < w; j++) dr[j] = to_bf16_daz(r0[j * sn]) | static_cast<std::uint32_t>(to_bf16_daz(r1[j * sn])) << 16;
      } else {
        for (; j < w; j++) dr[j] = to_bf16_daz(r0[j * sn]);
      }
      for (; j < NR; j++) dr[j] = 0u;
    }
  }
  static const float* b_block(const float* panel, std::int64_t k0) { return panel + k0 / 2 * NR; }
  // NV 1: the panel's first VL columns alone (w <= VL), acc[i][1] zero (as ukernel)
  template <int NV>
  static void kernel_nv(int kc, const float* a, const float* b, vf acc[MR][2]) {
    const std::uint32_t* A = reinterpret_cast<const std::uint32_t*>(a);
    const std::uint32_t* B = reinterpret_cast<const std::uint32_t*>(b);
    const int kp = (kc + 1) / 2;
    __m512 c[MR][NV];
#pragma GCC unroll 16
    for (int i = 0; i < MR; i++)
      for (int v = 0; v < NV; v++) c[i][v] = _mm512_setzero_ps();
    for (int p = 0; p < kp; p++) {
      const __m512bh b0 = (__m512bh)_mm512_loadu_si512(B + p * NR);
      const __m512bh b1 = (__m512bh)(NV == 2 ? _mm512_loadu_si512(B + p * NR + VL) : _mm512_setzero_si512());
#pragma GCC unroll 16
      for (int i = 0; i < MR; i++) {
        const __m512bh ai = (__m512bh)_mm512_set1_epi32(static_cast<int>(A[i * AP + p]));
        c[i][0] = _mm512_dpbf16_ps(c[i][0], ai, b0);
        if (NV == 2) c[i][NV - 1] = _mm512_dpbf16_ps(c[i][NV - 1], ai, b1);
      }
    }
#pragma GCC unroll 16
    for (int i = 0; i < MR; i++) {
      acc[i][0] = (vf)c[i][0];
      acc[i][1] = NV == 2 ? (vf)c[i][NV - 1] : vf{};
    }
  }
  static void kernel(int w, int kc, const float* a, const float* b, vf acc[MR][2]) {
    if (w <= VL) kernel_nv<1>(kc, a, b, acc);
    else kernel_nv<2>(kc, a, b, acc);
  }
};
}  // namespace
static void run_gemm_bf16_dp(const GemmKernel& g) { gemm_bf16_with<Dpbf16>(g); }
static void run_chain_dp(const ChainKernel& k) { run_chain_with<Dpbf16>(k); }
#pragma GCC pop_options
#endif

// ---------------------------------------------------------------------------------------------
// sum_to: sum of src over the axes where the output stride is 0

#if SDC_ISA_LEVEL >= 2
// a[0 .. inner) += rows r0 .. r1 of src (rows inner floats apart), each column's additions in row
// order as the loops below make them: 64 columns at a time, their double sums in 8 registers
// over the rows (loaded from a first, stored once) instead of loaded and stored every row.
static void add_rows(double* a, const float* src, std::int64_t inner, std::int64_t r0, std::int64_t r1) {
  for (std::int64_t j0 = 0; j0 < inner; j0 += 64) {
    const int w = static_cast<int>(std::min<std::int64_t>(64, inner - j0)), nv = (w + 7) / 8;
    const __mmask8 last = static_cast<__mmask8>(w % 8 ? (1u << (w % 8)) - 1 : 0xff);
    __m512d sum[8];
#pragma GCC unroll 8
    for (int v = 0; v < 8; v++) sum[v] = v < nv ? _mm512_maskz_loadu_pd(v == nv - 1 ? last : __mmask8(0xff), a + j0 + 8 * v) : _mm512_setzero_pd();
    for (std::int64_t r = r0; r < r1; r++) {
      const float* row = src + r * inner + j0;
#pragma GCC unroll 8
      for (int v = 0; v < 8; v++)
        if (v < nv) sum[v] = _mm512_add_pd(sum[v], _mm512_cvtps_pd(_mm256_maskz_loadu_ps(v == nv - 1 ? last : __mmask8(0xff), row + 8 * v)));
    }
#pragma GCC unroll 8
    for (int v = 0; v < 8; v++)
      if (v < nv) _mm512_mask_storeu_pd(a + j0 + 8 * v, v == nv - 1 ? last : __mmask8(0xff), sum[v]);
  }
}
#endif

// The sums over rows lo .. hi of src (rows: every index of the axes before the last, in order)
// into acc (float64, at the output's offsets), each output element's terms in row order.
static void sum_to_rows(const SumToKernel& k, double* acc, std::int64_t lo, std::int64_t hi) {
  const int nd = static_cast<int>(k.shape.size());
  const std::int64_t inner = k.shape[nd - 1], ist = k.ost[nd - 1];
  std::vector<std::int64_t> idx(nd, 0);
  std::int64_t rem = lo;
  for (int d = nd - 2; d >= 0; d--) {
    idx[d] = rem % k.shape[d];
    rem /= k.shape[d];
  }
  const auto offset = [&]() {
    std::int64_t off = 0;
    for (int d = 0; d < nd - 1; d++) off += idx[d] * k.ost[d];
    return off;
  };
  const auto next = [&]() {
    for (int d = nd - 2; d >= 0; d--) {
      if (++idx[d] < k.shape[d]) break;
      idx[d] = 0;
    }
  };
  for (std::int64_t r = lo; r < hi; r++) {
    const std::int64_t off = offset();
    const float* row = k.src + r * inner;
#if SDC_ISA_LEVEL >= 2
    if (ist == 1) {
      // the rows that follow into the same output row (per-sample sums: a sample's tokens) at once
      std::int64_t r2 = r + 1;
      for (next(); r2 < hi && offset() == off; next()) r2++;
      add_rows(acc + off, k.src, inner, r, r2);
      r = r2 - 1;
      continue;
    }
#endif
    if (ist != 0) {
      double* a = acc + off;
      if (ist == 1) {
#pragma omp simd
        for (std::int64_t j = 0; j < inner; j++) a[j] += row[j];
      } else {
        for (std::int64_t j = 0; j < inner; j++) a[j * ist] += row[j];
      }
    } else {
      double s = 0.0;
#pragma omp simd reduction(+ : s)
      for (std::int64_t j = 0; j < inner; j++) s += row[j];
      acc[off] += s;
    }
    next();
  }
}

// Column sums (every axis but a contiguous last one summed: bias gradients [R, D] to [D]) in
// fixed blocks of SUM_ROWS rows, each block's sums in row order, then the blocks' sums added in
// block order: the same bits for any thread count (the blocks do not depend on it).
static constexpr std::int64_t SUM_ROWS = 256;
static void sum_to_columns(const SumToKernel& k, double* acc, std::int64_t rows) {
  const std::int64_t inner = k.shape[k.shape.size() - 1], blocks = (rows + SUM_ROWS - 1) / SUM_ROWS;
  std::vector<double> part(static_cast<size_t>(blocks * inner), 0.0);
  parallel_for(blocks, std::max<std::int64_t>(1, 16384 / (SUM_ROWS * inner)), [&](std::int64_t b, std::int64_t e, int) {
    for (std::int64_t q = b; q < e; q++) {
      double* __restrict a = part.data() + q * inner;
      const std::int64_t r0 = q * SUM_ROWS, r1 = std::min(rows, (q + 1) * SUM_ROWS);
#if SDC_ISA_LEVEL >= 2
      add_rows(a, k.src, inner, r0, r1);
#else
      for (std::int64_t r = r0; r < r1; r++) {
        const float* __restrict row = k.src + r * inner;
#pragma omp simd
        for (std::int64_t j = 0; j < inner; j++) a[j] += row[j];
      }
#endif
    }
  });
  for (std::int64_t q = 0; q < blocks; q++)
    for (std::int64_t j = 0; j < inner; j++) acc[j] += part[q * inner + j];
}

// Column sums in row blocks; sums per slice of a kept leading axis (per-sample sums: [B, N, D] to
// [B, 1, D]) in parallel by slices; one pass otherwise (the loss). Accumulates in double, as the
// reference interpreter does.
void run_sum_to(const SumToKernel& k) {
  const int nd = static_cast<int>(k.shape.size());
  const std::int64_t inner = k.shape[nd - 1];
  std::int64_t rows = 1;
  bool columns = nd >= 2 && k.ost[nd - 1] == 1;
  for (int d = 0; d < nd - 1; d++) {
    rows *= k.shape[d];
    columns = columns && k.ost[d] == 0;
  }
  std::vector<double> acc(static_cast<size_t>(k.out_size), 0.0);
  if (rows == 0 || inner == 0) {
    // nothing to add (an axis of 0): the output is zeros (rows / shape[0] divided by zero)
  } else if (columns) {
    sum_to_columns(k, acc.data(), rows);
  } else if (nd >= 2 && k.ost[0] != 0) {
    const std::int64_t lead = k.shape[0], per = rows / lead;
    parallel_for(lead, std::max<std::int64_t>(1, 16384 / std::max<std::int64_t>(1, per * inner)), [&](std::int64_t b, std::int64_t e, int) { sum_to_rows(k, acc.data(), b * per, e * per); });
  } else {
    sum_to_rows(k, acc.data(), 0, rows);
  }
  const double sc = k.scale;
  for (std::int64_t i = 0; i < k.out_size; i++) k.out[i] = static_cast<float>(acc[i] * sc);
}

// ---------------------------------------------------------------------------------------------
// layer norm (no affine) and softmax over the last axis, and their gradients

// Rows of a layer norm split between the threads: f(r, mean, rstd) for each row r of x.
template <class F>
static void normalized_rows(const float* x, std::int64_t rows, std::int64_t d, float eps, F&& f);

#if SDC_ISA_LEVEL >= 2
// Layer norm's rows in AVX-512 registers: every sum lane-wise over the row's vectors (the tail
// masked: its missing lanes add zero) and then across the lanes (_mm512_reduce_add_ps), where the
// compiled `omp simd` loops below end each of their three sums a row by adding the 16 lanes one
// after another from memory. Other bits than those loops.
static inline __mmask16 row_tail(std::int64_t d) { return static_cast<__mmask16>((1u << (d % VL)) - 1); }
// mean and 1 / sqrt(variance + eps) of one row (two passes, as the interpreter)
static inline void row_stats(const float* xr, std::int64_t d, float eps, float& mean, float& rstd) {
  const __mmask16 tail = row_tail(d);
  const std::int64_t whole = d - d % VL;
  __m512 s = _mm512_setzero_ps();
  for (std::int64_t j = 0; j < whole; j += VL) s = _mm512_add_ps(s, _mm512_loadu_ps(xr + j));
  if (tail) s = _mm512_add_ps(s, _mm512_maskz_loadu_ps(tail, xr + whole));
  mean = _mm512_reduce_add_ps(s) / d;
  const __m512 m = _mm512_set1_ps(mean);
  __m512 v = _mm512_setzero_ps();
  for (std::int64_t j = 0; j < whole; j += VL) {
    const __m512 t = _mm512_sub_ps(_mm512_loadu_ps(xr + j), m);
    v = _mm512_fmadd_ps(t, t, v);
  }
  if (tail) {
    const __m512 t = _mm512_maskz_sub_ps(tail, _mm512_maskz_loadu_ps(tail, xr + whole), m);
    v = _mm512_fmadd_ps(t, t, v);
  }
  rstd = 1.0f / std::sqrt(_mm512_reduce_add_ps(v) / d + eps);
}

void run_layer_norm(float* out, const float* x, std::int64_t rows, std::int64_t d, float eps) {
  const __mmask16 tail = row_tail(d);
  const std::int64_t whole = d - d % VL;
  normalized_rows(x, rows, d, eps, [&](std::int64_t r, float mean, float rstd) {
    const float* xr = x + r * d;
    float* o = out + r * d;
    const __m512 m = _mm512_set1_ps(mean), rs = _mm512_set1_ps(rstd);
    for (std::int64_t j = 0; j < whole; j += VL) _mm512_storeu_ps(o + j, _mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(xr + j), m), rs));
    if (tail) _mm512_mask_storeu_ps(o + whole, tail, _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, xr + whole), m), rs));
  });
}

void run_layer_norm_grad(float* out, const float* x, const float* dy, std::int64_t rows, std::int64_t d, float eps) {
  const __mmask16 tail = row_tail(d);
  const std::int64_t whole = d - d % VL;
  normalized_rows(x, rows, d, eps, [&](std::int64_t r, float mean, float rstd) {
    const float* xr = x + r * d;
    const float* g = dy + r * d;
    float* o = out + r * d;
    const __m512 m = _mm512_set1_ps(mean), rs = _mm512_set1_ps(rstd);
    __m512 sdy = _mm512_setzero_ps(), sdyx = _mm512_setzero_ps();
    for (std::int64_t j = 0; j < whole; j += VL) {
      const __m512 gj = _mm512_loadu_ps(g + j);
      sdy = _mm512_add_ps(sdy, gj);
      sdyx = _mm512_fmadd_ps(_mm512_mul_ps(gj, _mm512_sub_ps(_mm512_loadu_ps(xr + j), m)), rs, sdyx);
    }
    if (tail) {
      const __m512 gj = _mm512_maskz_loadu_ps(tail, g + whole);
      sdy = _mm512_add_ps(sdy, gj);
      sdyx = _mm512_fmadd_ps(_mm512_mul_ps(gj, _mm512_maskz_sub_ps(tail, _mm512_maskz_loadu_ps(tail, xr + whole), m)), rs, sdyx);
    }
    const __m512 mdy = _mm512_set1_ps(_mm512_reduce_add_ps(sdy) / d), mdyx = _mm512_set1_ps(_mm512_reduce_add_ps(sdyx) / d);
    // rstd (g - mdy - (x - mean) rstd mdyx)
    const auto at = [&](__m512 gj, __m512 xj) { return _mm512_mul_ps(rs, _mm512_sub_ps(_mm512_sub_ps(gj, mdy), _mm512_mul_ps(_mm512_mul_ps(_mm512_sub_ps(xj, m), rs), mdyx))); };
    for (std::int64_t j = 0; j < whole; j += VL) _mm512_storeu_ps(o + j, at(_mm512_loadu_ps(g + j), _mm512_loadu_ps(xr + j)));
    if (tail) _mm512_mask_storeu_ps(o + whole, tail, at(_mm512_maskz_loadu_ps(tail, g + whole), _mm512_maskz_loadu_ps(tail, xr + whole)));
  });
}
#else
// mean and 1 / sqrt(variance + eps) of one row (two passes, as the interpreter)
static inline void row_stats(const float* xr, std::int64_t d, float eps, float& mean, float& rstd) {
  float s = 0.0f;
#pragma omp simd reduction(+ : s)
  for (std::int64_t j = 0; j < d; j++) s += xr[j];
  mean = s / d;
  const float m = mean;
  float v = 0.0f;
#pragma omp simd reduction(+ : v)
  for (std::int64_t j = 0; j < d; j++) v += (xr[j] - m) * (xr[j] - m);
  rstd = 1.0f / std::sqrt(v / d + eps);
}

void run_layer_norm(float* out, const float* x, std::int64_t rows, std::int64_t d, float eps) {
  normalized_rows(x, rows, d, eps, [&](std::int64_t r, float mean, float rstd) {
    const float* xr = x + r * d;
    float* o = out + r * d;
#pragma omp simd
    for (std::int64_t j = 0; j < d; j++) o[j] = (xr[j] - mean) * rstd;
  });
}

void run_layer_norm_grad(float* out, const float* x, const float* dy, std::int64_t rows, std::int64_t d, float eps) {
  normalized_rows(x, rows, d, eps, [&](std::int64_t r, float mean, float rstd) {
    const float* xr = x + r * d;
    const float* g = dy + r * d;
    float* o = out + r * d;
    float mdy = 0.0f, mdyx = 0.0f;
#pragma omp simd reduction(+ : mdy, mdyx)
    for (std::int64_t j = 0; j < d; j++) {
      mdy += g[j];
      mdyx += g[j] * (xr[j] - mean) * rstd;
    }
    mdy /= d;
    mdyx /= d;
#pragma omp simd
    for (std::int64_t j = 0; j < d; j++) o[j] = rstd * (g[j] - mdy - (xr[j] - mean) * rstd * mdyx);
  });
}
#endif

template <class F>
static void normalized_rows(const float* x, std::int64_t rows, std::int64_t d, float eps, F&& f) {
  if (rows <= 0 || d <= 0) return;  // nothing to normalize (and no division by d)
  parallel_for(rows, std::max<std::int64_t>(1, 16384 / d), [&](std::int64_t b, std::int64_t e, int) {
    for (std::int64_t r = b; r < e; r++) {
      float mean, rstd;
      row_stats(x + r * d, d, eps, mean, rstd);
      f(r, mean, rstd);
    }
  });
}

// The largest value of a row, NaNs passed over (the exp of a NaN then makes the row NaN): lane-wise
// maxima over whole vectors (one running maximum does not vectorize), the tail as the row's last
// whole vector (overlapping: a value counted twice does not change a maximum), then the lanes in
// a tree. A maximum is exact, so this is the value one running maximum gave.
static inline float row_max(const float* xr, std::int64_t d) {
  float mx = -INFINITY;
  if (d < VL) {
    for (std::int64_t j = 0; j < d; j++) mx = xr[j] > mx ? xr[j] : mx;
    return mx;
  }
  vf lane = vf{} - INFINITY;
  std::int64_t j = 0;
  for (; j + VL <= d; j += VL) {
    const vf x = vload(xr + j);
    lane = x > lane ? x : lane;
  }
  if (j < d) {
    const vf x = vload(xr + d - VL);
    lane = x > lane ? x : lane;
  }
  float m[VL];
  vstore(m, lane);
  for (int w = VL / 2; w > 0; w /= 2)
    for (int l = 0; l < w; l++) m[l] = m[l + w] > m[l] ? m[l + w] : m[l];
  return m[0];
}

// Rows b .. e of a softmax (each row normalized on its own: any split of the rows gives the same bits).
static void softmax_rows(float* out, const float* x, std::int64_t b, std::int64_t e, std::int64_t d) {
#if SDC_ISA_LEVEL >= 2
  // in registers: the maximum lane-wise and then across the lanes (row_max stores its lanes and
  // reduces them in memory), each exp as sdc_exp computes it (v_exp), summed lane-wise over the
  // row's vectors (the tail masked) and then across the lanes. Not the bits of the compiled loop
  // below (its sum adds the lanes in order, then a scalar tail); 0.46-0.48x its time on rows of
  // 72 and 0.32x on rows of 24 (bench/native-attention.ts, Zen 5)
  const __mmask16 tail = row_tail(d);
  const std::int64_t whole = d - d % VL;
  for (std::int64_t r = b; r < e; r++) {
    const float* xr = x + r * d;
    float* o = out + r * d;
    // the row's maximum, NaNs passed over (max(x, m) returns m where x is NaN), as row_max
    __m512 m = _mm512_set1_ps(-INFINITY);
    for (std::int64_t j = 0; j < whole; j += VL) m = _mm512_max_ps(_mm512_loadu_ps(xr + j), m);
    if (tail) m = _mm512_mask_max_ps(m, tail, _mm512_maskz_loadu_ps(tail, xr + whole), m);
    const __m512 mx = _mm512_set1_ps(_mm512_reduce_max_ps(m));
    __m512 acc = _mm512_setzero_ps();
    for (std::int64_t j = 0; j < whole; j += VL) {
      const __m512 ex = v_exp(_mm512_sub_ps(_mm512_loadu_ps(xr + j), mx));
      _mm512_storeu_ps(o + j, ex);
      acc = _mm512_add_ps(acc, ex);
    }
    if (tail) {
      const __m512 ex = v_exp(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, xr + whole), mx));
      _mm512_mask_storeu_ps(o + whole, tail, ex);
      acc = _mm512_mask_add_ps(acc, tail, acc, ex);
    }
    const __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(acc));
    for (std::int64_t j = 0; j < whole; j += VL) _mm512_storeu_ps(o + j, _mm512_mul_ps(_mm512_loadu_ps(o + j), inv));
    if (tail) _mm512_mask_storeu_ps(o + whole, tail, _mm512_mul_ps(_mm512_maskz_loadu_ps(tail, o + whole), inv));
  }
#else
  for (std::int64_t r = b; r < e; r++) {
    const float* xr = x + r * d;
    float* o = out + r * d;
    const float mx = row_max(xr, d);
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (std::int64_t j = 0; j < d; j++) {
      const float ex = sdc_exp(xr[j] - mx);
      o[j] = ex;
      s += ex;
    }
    const float inv = 1.0f / s;
#pragma omp simd
    for (std::int64_t j = 0; j < d; j++) o[j] *= inv;
  }
#endif
}

void run_softmax(float* out, const float* x, std::int64_t rows, std::int64_t d) {
  if (rows <= 0 || d <= 0) return;  // nothing to normalize (and no division by d)
  parallel_for(rows, std::max<std::int64_t>(1, 16384 / d), [&](std::int64_t b, std::int64_t e, int) { softmax_rows(out, x, b, e, d); });
}

// Rows b .. e of softmax's gradient.
static void softmax_grad_rows(float* out, const float* y, const float* dy, std::int64_t b, std::int64_t e, std::int64_t d) {
#if SDC_ISA_LEVEL >= 2
  // in registers, as softmax_rows: the row's sum of y dy lane-wise (the tail masked) and then
  // across the lanes (new bits)
  const __mmask16 tail = row_tail(d);
  const std::int64_t whole = d - d % VL;
  for (std::int64_t r = b; r < e; r++) {
    const float* yr = y + r * d;
    const float* g = dy + r * d;
    float* o = out + r * d;
    __m512 acc = _mm512_setzero_ps();
    for (std::int64_t j = 0; j < whole; j += VL) acc = _mm512_fmadd_ps(_mm512_loadu_ps(yr + j), _mm512_loadu_ps(g + j), acc);
    if (tail) acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, yr + whole), _mm512_maskz_loadu_ps(tail, g + whole), acc);
    const __m512 s = _mm512_set1_ps(_mm512_reduce_add_ps(acc));
    for (std::int64_t j = 0; j < whole; j += VL) _mm512_storeu_ps(o + j, _mm512_mul_ps(_mm512_loadu_ps(yr + j), _mm512_sub_ps(_mm512_loadu_ps(g + j), s)));
    if (tail) _mm512_mask_storeu_ps(o + whole, tail, _mm512_mul_ps(_mm512_maskz_loadu_ps(tail, yr + whole), _mm512_sub_ps(_mm512_maskz_loadu_ps(tail, g + whole), s)));
  }
#else
  for (std::int64_t r = b; r < e; r++) {
    const float* yr = y + r * d;
    const float* g = dy + r * d;
    float* o = out + r * d;
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (std::int64_t j = 0; j < d; j++) s += yr[j] * g[j];
#pragma omp simd
    for (std::int64_t j = 0; j < d; j++) o[j] = yr[j] * (g[j] - s);
  }
#endif
}

void run_softmax_grad(float* out, const float* y, const float* dy, std::int64_t rows, std::int64_t d) {
  if (rows <= 0 || d <= 0) return;  // nothing to normalize (and no division by d)
  parallel_for(rows, std::max<std::int64_t>(1, 16384 / d), [&](std::int64_t b, std::int64_t e, int) { softmax_grad_rows(out, y, dy, b, e, d); });
}

// ---------------------------------------------------------------------------------------------
// data movement

// Rows of at least 16384 floats (64 KB) a thread: a step's concats, slices and permutes (256 KB on
// sd3-tiny, from L3: as long as an elementwise pass) are split between two threads.
void run_copy(const CopyKernel& k) {
  const int nd = static_cast<int>(k.shape.size());
  const std::int64_t inner = k.shape[nd - 1];
  std::int64_t rows = 1;
  for (int d = 0; d < nd - 1; d++) rows *= k.shape[d];
  const std::int64_t ds = k.dst_st[nd - 1], ss = k.src_st[nd - 1];
  parallel_for(rows, std::max<std::int64_t>(1, 16384 / std::max<std::int64_t>(1, inner)), [&](std::int64_t b, std::int64_t e, int) {
    std::vector<std::int64_t> idx(nd, 0);
    std::int64_t rem = b;
    for (int d = nd - 2; d >= 0; d--) {
      idx[d] = rem % k.shape[d];
      rem /= k.shape[d];
    }
    for (std::int64_t r = b; r < e; r++) {
      std::int64_t od = 0, os = 0;
      for (int d = 0; d < nd - 1; d++) {
        od += idx[d] * k.dst_st[d];
        os += idx[d] * k.src_st[d];
      }
      float* dst = k.dst + od;
      const float* src = k.src + os;
      if (ds == 1 && ss == 1) std::memcpy(dst, src, sizeof(float) * inner);
      else
        for (std::int64_t j = 0; j < inner; j++) dst[j * ds] = src[j * ss];
      for (int d = nd - 2; d >= 0; d--) {
        if (++idx[d] < k.shape[d]) break;
        idx[d] = 0;
      }
    }
  });
}

void run_fill(float* dst, std::int64_t n, float v) {
  parallel_for(n, 1 << 16, [&](std::int64_t b, std::int64_t e, int) { std::fill(dst + b, dst + e, v); });
}

// ---------------------------------------------------------------------------------------------
// convolution windows: im2col copies each window row's in-image part (contiguous in both: the
// window's columns j are adjacent pixels) and zero-fills the rest; col2im adds, for each image
// row, the window rows that cover it (in (oh, ow) order: each pixel's terms are summed in that
// order), so each output is written by one thread in a fixed order. The work is bounded by the
// columns' and the image's sizes.

void run_im2col(const WindowKernel& q) {
  if (q.b == 0 || q.c == 0 || q.ho == 0 || q.wo == 0) return;
  const std::int64_t kc = q.k * q.c, row = q.wo * q.k * kc;  // floats of a window row, of an output row
  parallel_for(q.b * q.ho, std::max<std::int64_t>(1, 65536 / row), [&](std::int64_t lo, std::int64_t hi, int) {
    for (std::int64_t r = lo; r < hi; r++) {
      const std::int64_t b = r / q.ho, oh = r % q.ho;
      float* out = q.dst + r * row;
      for (std::int64_t ow = 0; ow < q.wo; ow++) {
        const std::int64_t x0 = ow * q.stride - q.pad;
        const std::int64_t j0 = std::clamp<std::int64_t>(-x0, 0, q.k), j1 = std::clamp<std::int64_t>(q.w - x0, j0, q.k);
        for (std::int64_t i = 0; i < q.k; i++, out += kc) {
          const std::int64_t y = oh * q.stride - q.pad + i;
          if (y < 0 || y >= q.h || j0 == j1) {
            std::fill(out, out + kc, 0.0f);
            continue;
          }
          std::fill(out, out + j0 * q.c, 0.0f);
          std::memcpy(out + j0 * q.c, q.src + ((b * q.h + y) * q.w + x0 + j0) * q.c, sizeof(float) * static_cast<std::size_t>((j1 - j0) * q.c));
          std::fill(out + j1 * q.c, out + kc, 0.0f);
        }
      }
    }
  });
}

// The window positions o in [lo, hi] whose window covers image coordinate t - pad: o*stride <= t < o*stride + k.
static inline void covering(std::int64_t t, std::int64_t k, std::int64_t stride, std::int64_t n, std::int64_t& lo, std::int64_t& hi) {
  lo = t < k ? 0 : (t - k) / stride + 1;
  hi = std::min(n - 1, t / stride);
}

void run_col2im(const WindowKernel& q) {
  if (q.b == 0 || q.h == 0 || q.w == 0 || q.c == 0) return;
  const std::int64_t c = q.c, kc = q.k * c, kkc = q.k * kc, row = q.w * c;
  parallel_for(q.b * q.h, std::max<std::int64_t>(1, 65536 / row), [&](std::int64_t lo, std::int64_t hi, int) {
    for (std::int64_t r = lo; r < hi; r++) {
      const std::int64_t b = r / q.h, t = r % q.h + q.pad;
      float* __restrict out = q.dst + r * row;
      std::fill(out, out + row, 0.0f);
      std::int64_t oh0, oh1;
      covering(t, q.k, q.stride, q.ho, oh0, oh1);
      for (std::int64_t oh = oh0; oh <= oh1; oh++) {
        const float* wrow = q.src + (b * q.ho + oh) * q.wo * kkc + (t - oh * q.stride) * kc;  // window row i of column (oh, 0)
        for (std::int64_t ow = 0; ow < q.wo; ow++) {
          // the window row's in-image pixels j0 .. j1 - 1 are adjacent: one run of (j1 - j0) C floats
          const std::int64_t x0 = ow * q.stride - q.pad;
          const std::int64_t j0 = std::clamp<std::int64_t>(-x0, 0, q.k), j1 = std::clamp<std::int64_t>(q.w - x0, j0, q.k);
          const float* __restrict s = wrow + ow * kkc + j0 * c;
          float* __restrict o = out + (x0 + j0) * c;
          const std::int64_t n = (j1 - j0) * c;
#pragma omp simd
          for (std::int64_t e = 0; e < n; e++) o[e] += s[e];
        }
      }
    }
  });
}

// ---------------------------------------------------------------------------------------------
// optimizer

namespace {
struct AdamScalars {
  float factor, lr, bc1, bc2s, decay, b1, b2, eps, wd;
};
}  // namespace

// a * b + c rounded once where the level has FMA, as -ffp-contract=fast contracts it (at the
// baseline level nothing is contracted: two roundings)
#if SDC_ISA_LEVEL >= 1
#define SDC_FMA(a, b, c) __builtin_fmaf(a, b, c)
#else
#define SDC_FMA(a, b, c) ((a) * (b) + (c))
#endif

// Adam (WD: 0 no weight decay, 1 L2 added to the gradient, 2 decoupled) and, with EMA, the EMA
// update of elements [b, e), in one pass over each array. Every scalar is a local and every array
// restrict, so the loop vectorizes. Contraction is off here and every fused multiply-add is
// written out: the same roundings as the scalar loop this replaced (bit-identical results), and
// the same for every element whichever range and thread computes it.
template <bool EMA, int WD>
__attribute__((optimize("fp-contract=off"))) static void adam_update(const AdamKernel& k, const AdamScalars& s, std::int64_t b, std::int64_t e) {
#if defined(__clang__)
#pragma clang fp contract(off)
#endif
  const float* __restrict g = k.g;
  float* __restrict p = k.p;
  float* __restrict m = k.m;
  float* __restrict v = k.v;
  float* __restrict em = k.ema;
  const float factor = s.factor, b1 = s.b1, b2 = s.b2, bc2s = s.bc2s, eps = s.eps, wd = s.wd, decay = s.decay;
  const float step = s.lr / s.bc1;
  const float shrink = SDC_FMA(-s.lr, wd, 1.0f);  // decoupled weight decay: p * (1 - lr * wd)
#pragma omp simd
  for (std::int64_t i = b; i < e; i++) {
    float gi = g[i] * factor;
    float pi = p[i];
    if (WD == 2) pi = pi * shrink;
    if (WD == 1) gi = SDC_FMA(wd, pi, gi);
    const float mi = SDC_FMA(b1, m[i], (1.0f - b1) * gi);
    const float vi = SDC_FMA(b2, v[i], (1.0f - b2) * (gi * gi));
    m[i] = mi;
    v[i] = vi;
    pi = SDC_FMA(-(mi / (std::sqrt(vi) / bc2s + eps)), step, pi);
    p[i] = pi;
    if (EMA) em[i] = SDC_FMA(decay, em[i], (1.0f - decay) * pi);
  }
}
#undef SDC_FMA

void run_adam(const AdamKernel& k) {
  // gradient norm: partial sums over fixed blocks, added in block order (the same bits for any
  // thread count)
  constexpr std::int64_t BLK = 1 << 16;
  const std::int64_t nblk = (k.n + BLK - 1) / BLK;
  std::vector<double> part(static_cast<size_t>(nblk), 0.0);
  parallel_for(nblk, 1, [&](std::int64_t b, std::int64_t e, int) {
    for (std::int64_t i = b; i < e; i++) {
      const float* g = k.g + i * BLK;
      const std::int64_t n = std::min(BLK, k.n - i * BLK);
      double s = 0.0;
      for (std::int64_t j = 0; j < n; j += 1024) {
        float f = 0.0f;
        const std::int64_t m = std::min<std::int64_t>(1024, n - j);
#pragma omp simd reduction(+ : f)
        for (std::int64_t q = 0; q < m; q++) f += g[j + q] * g[j + q];
        s += f;
      }
      part[i] = s;
    }
  });
  double ss = 0.0;
  for (double p : part) ss += p;
  const float norm = static_cast<float>(std::sqrt(ss));
  const float factor = k.clip > 0.0f ? std::min(1.0f, k.clip / (norm + 1e-6f)) : 1.0f;
  k.stats[0] = norm;
  k.stats[1] = factor;
  const AdamScalars s{factor, k.hyper[0], k.hyper[1], k.hyper[2], k.hyper[3], k.beta1, k.beta2, k.eps, k.wd};
  // the variant for this configuration: weight decay none / coupled (L2) / decoupled, EMA or not
  const int wd = k.wd == 0.0f ? 0 : k.decoupled ? 2 : 1;
  using Update = void (*)(const AdamKernel&, const AdamScalars&, std::int64_t, std::int64_t);
  static constexpr Update updates[2][3] = {{adam_update<false, 0>, adam_update<false, 1>, adam_update<false, 2>}, {adam_update<true, 0>, adam_update<true, 1>, adam_update<true, 2>}};
  const Update update = updates[k.ema ? 1 : 0][wd];
  parallel_for(k.n, 1 << 15, [&](std::int64_t b, std::int64_t e, int) { update(k, s, b, e); });
}

const Kernels kernels = {run_ew, run_gemm, run_gemm_bf16, run_sum_to, run_layer_norm, run_layer_norm_grad, run_softmax, run_softmax_grad, run_copy, run_fill, run_adam, run_im2col, run_col2im, ew_arity, gemm_scratch_floats, run_chain};
#if SDC_ISA_LEVEL >= 2
// the avx512bf16 level: these kernels with the bf16 GEMM on vdpbf16ps
const Kernels kernels_bf16 = {run_ew, run_gemm, run_gemm_bf16_dp, run_sum_to, run_layer_norm, run_layer_norm_grad, run_softmax, run_softmax_grad, run_copy, run_fill, run_adam, run_im2col, run_col2im, ew_arity, gemm_scratch_floats, run_chain_dp};
#endif

#ifdef SDC_ISA_TARGET
#pragma GCC pop_options
#endif
}  // namespace SDC_ISA_NS
}  // namespace sdc
