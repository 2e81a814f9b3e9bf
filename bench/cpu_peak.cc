// bench/cpu_peak: the arithmetic peak of one core of this CPU, measured, not looked up: 512-bit
// FMAs (vfmadd) and AVX512-BF16 dot products (vdpbf16ps) in 8, 16 and 24 independent chains in
// registers, as instructions per ns and GFLOP/s (fp32 FMA: 32 FLOP; vdpbf16ps: 64), then an
// 8 x 32 tile of vdpbf16ps (the native bf16 micro-kernel's shape: 8 broadcast A words, 2 B
// vectors, 16 accumulators a k pair) on operands in L1. Run by bench/cpu-peak.sh (one thread; the
// core's clock under load decides the figures, so run it on an idle machine).
#include <immintrin.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

template <int MODE, int NACC>
__attribute__((noinline)) double chains(long n) {
  __m512 c[NACC];
  for (int i = 0; i < NACC; i++) c[i] = _mm512_set1_ps(i * 1e-9f);
  const __m512 a = _mm512_set1_ps(1.0000001f), b = _mm512_set1_ps(0.9999999f);
  const __m512bh ab = (__m512bh)_mm512_set1_epi32(0x3f803f80), bb = (__m512bh)_mm512_set1_epi32(0x3f803f80);
  const auto t0 = std::chrono::steady_clock::now();
  for (long it = 0; it < n; it++) {
#pragma GCC unroll 32
    for (int i = 0; i < NACC; i++) c[i] = MODE == 0 ? _mm512_fmadd_ps(c[i], a, b) : _mm512_dpbf16_ps(c[i], ab, bb);
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  float x = 0;
  for (int i = 0; i < NACC; i++) x += _mm512_reduce_add_ps(c[i]);
  if (x == 1.2345f) std::printf("!");  // keeps the chains
  return static_cast<double>(NACC) * n / s / 1e9;
}

constexpr int MR = 8, NR = 32;
__attribute__((noinline)) void tile(int kp, const std::uint32_t* A, const std::uint32_t* B, __m512* out) {
  __m512 c[MR][2];
  for (int i = 0; i < MR; i++) c[i][0] = c[i][1] = _mm512_setzero_ps();
  for (int p = 0; p < kp; p++) {
    const __m512bh b0 = (__m512bh)_mm512_loadu_si512(B + p * NR), b1 = (__m512bh)_mm512_loadu_si512(B + p * NR + 16);
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++) {
      const __m512bh ai = (__m512bh)_mm512_set1_epi32(static_cast<int>(A[i * kp + p]));
      c[i][0] = _mm512_dpbf16_ps(c[i][0], ai, b0);
      c[i][1] = _mm512_dpbf16_ps(c[i][1], ai, b1);
    }
  }
  for (int i = 0; i < MR; i++) out[2 * i] = c[i][0], out[2 * i + 1] = c[i][1];
}

int main() {
  const long n = 100000000;
  const double f8 = chains<0, 8>(n), f16 = chains<0, 16>(n), f24 = chains<0, 24>(n);
  const double d8 = chains<1, 8>(n), d16 = chains<1, 16>(n), d24 = chains<1, 24>(n);
  std::printf("fp32 FMA (zmm), instructions/ns with 8 / 16 / 24 chains: %.2f %.2f %.2f -> %.1f GFLOP/s a core\n", f8, f16, f24, 32 * (f16 > f24 ? f16 : f24));
  std::printf("vdpbf16ps (zmm), instructions/ns with 8 / 16 / 24 chains: %.2f %.2f %.2f -> %.1f GFLOP/s a core\n", d8, d16, d24, 64 * (d16 > d24 ? d16 : d24));
  const int kp = 192;  // K = 384
  auto* A = static_cast<std::uint32_t*>(std::aligned_alloc(64, 4 * kp * MR));
  auto* B = static_cast<std::uint32_t*>(std::aligned_alloc(64, 4 * kp * NR));
  for (int i = 0; i < kp * MR; i++) A[i] = 0x3f803f80;
  for (int i = 0; i < kp * NR; i++) B[i] = 0x3f803f80;
  __m512 out[2 * MR];
  const long reps = 4000000;
  const auto t0 = std::chrono::steady_clock::now();
  for (long r = 0; r < reps; r++) tile(kp, A, B, out);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("8 x 32 vdpbf16ps tile, K 384, operands in L1: %.1f GFLOP/s a core\n", static_cast<double>(reps) * kp * MR * 2 * 64 / s / 1e9);
  std::free(A);
  std::free(B);
}
