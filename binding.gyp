{
  "targets": [
    {
      "target_name": "sdc_cpu",
      "sources": ["runtime/executors/native/src/addon.cc", "runtime/executors/native/src/isa.cc", "runtime/executors/native/src/threads.cc", "runtime/executors/native/src/kernels_x86_64.cc", "runtime/executors/native/src/kernels_avx2.cc", "runtime/executors/native/src/kernels_avx512.cc"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17", "-std=gnu++20"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-O3", "-march=x86-64", "-mtune=generic", "-ffp-contract=fast", "-fno-math-errno", "-fno-trapping-math", "-fopenmp-simd", "-pthread"],
      "cflags!": ["-O2"],
      "ldflags": ["-pthread"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
