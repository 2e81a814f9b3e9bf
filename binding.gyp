{
  "targets": [
    {
      "target_name": "sdc_cpu",
      "sources": ["runtime/executors/native/src/addon.cc", "runtime/executors/native/src/kernels.cc"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17", "-std=gnu++20"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-O3", "-march=native", "-ffp-contract=fast", "-fno-math-errno", "-fno-trapping-math", "-fopenmp"],
      "cflags!": ["-O2"],
      "ldflags": ["-fopenmp"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
