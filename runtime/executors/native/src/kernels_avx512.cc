// The kernels of kernels.cc compiled for the ISA level avx512 (see isa.h).
#define SDC_ISA_NS avx512
#define SDC_ISA_LEVEL 2
#define SDC_ISA_TARGET "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,f16c,bmi,bmi2"
#include "kernels.cc"
