// The kernels are compiled once per x86-64 ISA level (kernels_<level>.cc include kernels.cc
// under `#pragma GCC target`, each in its own namespace), and one set is chosen at load from
// cpuid and the OS's support of the vector state (xgetbv): the addon runs on any x86-64 CPU.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "kernels.h"

namespace sdc {

// avx512bf16: the avx512 kernels with the bf16 GEMM on AVX512-BF16 (vdpbf16ps)
enum IsaLevel { ISA_X86_64 = 0, ISA_AVX2 = 1, ISA_AVX512 = 2, ISA_AVX512BF16 = 3, ISA_LEVELS = 4 };

// One ISA level's kernels (the entry points of kernels.h).
struct Kernels {
  void (*ew)(const EwKernel&);
  void (*gemm)(const GemmKernel&);
  void (*gemm_bf16)(const GemmKernel&);
  void (*sum_to)(const SumToKernel&);
  void (*layer_norm)(float*, const float*, std::int64_t, std::int64_t, float);
  void (*layer_norm_grad)(float*, const float*, const float*, std::int64_t, std::int64_t, float);
  void (*softmax)(float*, const float*, std::int64_t, std::int64_t);
  void (*softmax_grad)(float*, const float*, const float*, std::int64_t, std::int64_t);
  void (*copy)(const CopyKernel&);
  void (*fill)(float*, std::int64_t, float);
  void (*adam)(const AdamKernel&);
  void (*im2col)(const WindowKernel&);
  void (*col2im)(const WindowKernel&);
  int (*ew_arity)(int);
  std::int64_t (*gemm_scratch_floats)(const GemmKernel&);
  void (*chain)(const ChainKernel&);
};
namespace x86_64 {
extern const Kernels kernels;
}
namespace avx2 {
extern const Kernels kernels;
}
namespace avx512 {
extern const Kernels kernels;
extern const Kernels kernels_bf16;
}

const char* isa_name(int level);         // "x86-64", "avx2", "avx512", "avx512bf16"
int isa_parse(const std::string& name);  // the level, or -1
int isa_best();                          // the highest level this CPU and OS support
int isa_level();                         // the level in use (default: isa_best())
// Use `level`; an error message when this CPU lacks it ("" when done).
std::string set_isa(int level);

}  // namespace sdc
