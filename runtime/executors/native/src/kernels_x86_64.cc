// The kernels of kernels.cc compiled for the ISA level x86-64 (see isa.h).
#define SDC_ISA_NS x86_64
#define SDC_ISA_LEVEL 0
#include "kernels.cc"
