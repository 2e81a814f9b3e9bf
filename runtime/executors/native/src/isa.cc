// ISA detection and the kernel entry points of kernels.h, which call the chosen level's kernels.
// Compiled for baseline x86-64: nothing here may use an instruction a CPU could lack.
#include "isa.h"

#include <algorithm>
#include <atomic>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace sdc {

namespace {

#if defined(__x86_64__) || defined(__i386__)
std::uint64_t xcr0() {
  std::uint32_t a, d;
  __asm__ volatile("xgetbv" : "=a"(a), "=d"(d) : "c"(0));
  return (std::uint64_t(d) << 32) | a;
}

int detect() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return ISA_X86_64;
  const bool osxsave = c & (1u << 27), avx = c & (1u << 28), fma = c & (1u << 12), f16c = c & (1u << 29);
  if (!osxsave || !avx) return ISA_X86_64;
  const std::uint64_t x = xcr0();
  if ((x & 0x6) != 0x6) return ISA_X86_64;  // the OS saves SSE and AVX state
  if (__get_cpuid_max(0, nullptr) < 7) return ISA_X86_64;
  __cpuid_count(7, 0, a, b, c, d);
  const bool avx2 = b & (1u << 5), bmi1 = b & (1u << 3), bmi2 = b & (1u << 8);
  if (!(avx2 && fma && f16c && bmi1 && bmi2)) return ISA_X86_64;
  const bool f = b & (1u << 16), dq = b & (1u << 17), bw = b & (1u << 30), vl = b & (1u << 31);
  if (!(f && dq && bw && vl) || (x & 0xe6) != 0xe6) return ISA_AVX2;  // + opmask, ZMM0-15 high, ZMM16-31
  if (a < 1) return ISA_AVX512;  // no subleaf 1
  __cpuid_count(7, 1, a, b, c, d);
  if (!(a & (1u << 5))) return ISA_AVX512;  // AVX512_BF16
  return ISA_AVX512BF16;
}
#else
int detect() { return ISA_X86_64; }
#endif

const Kernels* const TABLES[ISA_LEVELS] = {&x86_64::kernels, &avx2::kernels, &avx512::kernels, &avx512::kernels_bf16};
const char* const NAMES[ISA_LEVELS] = {"x86-64", "avx2", "avx512", "avx512bf16"};
std::atomic<int> g_level{-1};

inline const Kernels& K() { return *TABLES[isa_level()]; }

}  // namespace

const char* isa_name(int level) { return level >= 0 && level < ISA_LEVELS ? NAMES[level] : "?"; }
int isa_parse(const std::string& name) {
  for (int i = 0; i < ISA_LEVELS; i++)
    if (name == NAMES[i]) return i;
  return -1;
}
int isa_best() {
  static const int best = detect();
  return best;
}
int isa_level() {
  int l = g_level.load(std::memory_order_relaxed);
  if (l < 0) g_level.store(l = isa_best(), std::memory_order_relaxed);
  return l;
}
std::string set_isa(int level) {
  if (level < 0 || level >= ISA_LEVELS) return "unknown ISA level";
  if (level > isa_best()) return std::string("this CPU does not support ") + NAMES[level] + " (the highest level it supports is " + NAMES[isa_best()] + ")";
  g_level.store(level, std::memory_order_relaxed);
  return "";
}

void run_ew(const EwKernel& k) { K().ew(k); }
int ew_arity(int op) { return x86_64::kernels.ew_arity(op); }
void run_gemm(const GemmKernel& g) { g.bf16 ? K().gemm_bf16(g) : K().gemm(g); }
// the most any level needs: a program decoded at one level may run at another (SDC_ISA, tests)
std::int64_t gemm_scratch_floats(const GemmKernel& g) {
  std::int64_t most = 0;
  for (const Kernels* k : TABLES) {
    const std::int64_t f = k->gemm_scratch_floats(g);
    if (f < 0) return -1;
    most = std::max(most, f);
  }
  return most;
}
void run_sum_to(const SumToKernel& k) { K().sum_to(k); }
void run_layer_norm(float* out, const float* x, std::int64_t rows, std::int64_t d, float eps) { K().layer_norm(out, x, rows, d, eps); }
void run_layer_norm_grad(float* out, const float* x, const float* dy, std::int64_t rows, std::int64_t d, float eps) { K().layer_norm_grad(out, x, dy, rows, d, eps); }
void run_softmax(float* out, const float* x, std::int64_t rows, std::int64_t d) { K().softmax(out, x, rows, d); }
void run_softmax_grad(float* out, const float* y, const float* dy, std::int64_t rows, std::int64_t d) { K().softmax_grad(out, y, dy, rows, d); }
void run_copy(const CopyKernel& k) { K().copy(k); }
void run_fill(float* dst, std::int64_t n, float v) { K().fill(dst, n, v); }
void run_adam(const AdamKernel& k) { K().adam(k); }
void run_im2col(const WindowKernel& k) { K().im2col(k); }
void run_col2im(const WindowKernel& k) { K().col2im(k); }
void run_chain(const ChainKernel& k) { K().chain(k); }

}  // namespace sdc
