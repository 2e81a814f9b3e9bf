// The kernels of kernels.cc compiled for the ISA level avx2 (see isa.h).
#define SDC_ISA_NS avx2
#define SDC_ISA_LEVEL 1
#define SDC_ISA_TARGET "avx2,fma,f16c,bmi,bmi2"
#include "kernels.cc"
