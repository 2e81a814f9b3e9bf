/**
 * tfjs-backend-wasm 4.22 has no Conv2DBackpropFilter kernel, so the gradient of a conv2d with
 * respect to its filter cannot be taken on wasm ("Kernel 'Conv2DBackpropFilter' not registered").
 * `sdc train-judge` trains a CNN on wasm, so this registers one built from kernels wasm does have:
 *
 *   dW[kh, kw, ci, co] = sum_{b, i, j} xpad[b, i*s + kh, j*s + kw, ci] * dy[b, i, j, co]
 *
 * which is a stride-1 convolution of x transposed to [ci, H, W, b] (same padding as the forward
 * conv) with dy transposed to [Ho, Wo, b, co] as the filter, dilated by the forward stride; the
 * result [ci, kh', kw', co] is cropped to the kernel and transposed to [kh, kw, ci, co].
 * NHWC and forward dilation 1 only (what the Conv2d layer uses). Registering is idempotent and
 * a no-op when the backend already has the kernel.
 *
 * `registerWasmTrainingKernels` also replaces two slow wasm gradient kernels for the cases a
 * small CNN uses, keeping the original for every other case:
 *   Conv2DBackpropInput, stride 1: a forward conv of dy with the flipped, transposed filter
 *     (XNNPACK; about 10x faster than wasm's direct loop at 16x16x32 -> 64, batch 128);
 *   MaxPoolGrad, window = stride, no padding: dy upsampled (nearest) times the mask x == max.
 *     Unlike tfjs's kernel, a tie inside a window passes the gradient to every tied position;
 *     after a ReLU the only common tie is at 0, where the ReLU's gradient is 0 anyway.
 * Both are exact otherwise (checked against the cpu backend in test/eval/judge.test.ts).
 */
import * as tf from "@tensorflow/tfjs";

type Info = tf.TensorInfo;
type KernelFn = (args: { inputs: Record<string, Info>; attrs: Record<string, unknown>; backend: unknown }) => Info | Info[];

function kernel(name: string): KernelFn {
  const k = tf.getKernel(name, "wasm");
  if (!k) throw new Error(`wasm backend lacks the ${name} kernel`);
  return k.kernelFunc as unknown as KernelFn;
}

export function registerWasmConvFilterGrad(): boolean {
  // wasm not loaded (its kernels are registered when the package is imported), or already there
  if (!tf.getKernel("Conv2D", "wasm") || tf.getKernel("Conv2DBackpropFilter", "wasm")) return false;
  const transpose = kernel("Transpose");
  const conv = kernel("Conv2D");
  const slice = kernel("Slice");
  tf.registerKernel({
    kernelName: "Conv2DBackpropFilter",
    backendName: "wasm",
    kernelFunc: ({ inputs, attrs, backend }) => {
      const { x, dy } = inputs as { x: Info; dy: Info };
      const a = attrs as unknown as { strides: number | [number, number]; pad: tf.backend_util.PadInfo["type"] | number | tf.backend_util.ExplicitPadding; dataFormat?: string; dimRoundingMode?: "floor" | "round" | "ceil"; filterShape: [number, number, number, number] };
      if (a.dataFormat && a.dataFormat !== "NHWC") throw new Error(`Conv2DBackpropFilter (sdc wasm shim): only NHWC is supported, got ${a.dataFormat}`);
      const info = tf.backend_util.computeConv2DInfo(x.shape as [number, number, number, number], a.filterShape, a.strides, 1, a.pad as never, a.dimRoundingMode, false, "channelsLast");
      const { top, bottom, left, right } = info.padInfo;
      const [kh, kw, ci, co] = a.filterShape;
      const be = backend as { disposeData(id: unknown): void };
      const xT = transpose({ inputs: { x }, attrs: { perm: [3, 1, 2, 0] }, backend }) as Info; // [ci, H, W, b]
      const dyT = transpose({ inputs: { x: dy }, attrs: { perm: [1, 2, 0, 3] }, backend }) as Info; // [Ho, Wo, b, co]
      const r = conv({
        inputs: { x: xT, filter: dyT },
        attrs: { strides: [1, 1], pad: [[0, 0], [top, bottom], [left, right], [0, 0]], dilations: [info.strideHeight, info.strideWidth], dataFormat: "NHWC", dimRoundingMode: undefined },
        backend,
      }) as Info; // [ci, >=kh, >=kw, co]
      be.disposeData(xT.dataId);
      be.disposeData(dyT.dataId);
      let cropped = r;
      if (r.shape[1] !== kh || r.shape[2] !== kw) {
        cropped = slice({ inputs: { x: r }, attrs: { begin: [0, 0, 0, 0], size: [ci, kh, kw, co] }, backend }) as Info;
        be.disposeData(r.dataId);
      }
      const out = transpose({ inputs: { x: cropped }, attrs: { perm: [1, 2, 0, 3] }, backend }) as Info; // [kh, kw, ci, co]
      be.disposeData(cropped.dataId);
      return out;
    },
  });
  return true;
}

/** Register the filter gradient and the faster input and max-pool gradients (see the module comment). */
export function registerWasmTrainingKernels(): boolean {
  if (!tf.getKernel("Conv2D", "wasm")) return false;
  registerWasmConvFilterGrad();
  if ((tf.getKernel("Conv2DBackpropInput", "wasm") as unknown as { sdcShim?: boolean })?.sdcShim) return false;
  const transpose = kernel("Transpose");
  const conv = kernel("Conv2D");
  const reverse = kernel("Reverse");
  const resize = kernel("ResizeNearestNeighbor");
  const equal = kernel("Equal");
  const cast = kernel("Cast");
  const multiply = kernel("Multiply");
  const origInput = kernel("Conv2DBackpropInput");
  const origPool = kernel("MaxPoolGrad");
  const free = (backend: unknown, ...xs: Info[]) => {
    for (const x of xs) (backend as { disposeData(id: unknown): void }).disposeData(x.dataId);
  };

  tf.unregisterKernel("Conv2DBackpropInput", "wasm");
  tf.registerKernel({
    kernelName: "Conv2DBackpropInput",
    backendName: "wasm",
    kernelFunc: (args) => {
      const { inputs, attrs, backend } = args as unknown as Parameters<KernelFn>[0];
      const { dy, filter } = inputs as { dy: Info; filter: Info };
      const a = attrs as unknown as { strides: number | [number, number]; pad: never; dataFormat?: string; dimRoundingMode?: "floor" | "round" | "ceil"; inputShape: [number, number, number, number] };
      const info = tf.backend_util.computeConv2DInfo(a.inputShape, filter.shape as [number, number, number, number], a.strides, 1, a.pad, a.dimRoundingMode, false, "channelsLast");
      const [kh, kw] = filter.shape;
      const { top, bottom, left, right } = info.padInfo;
      const ok = (!a.dataFormat || a.dataFormat === "NHWC") && info.strideHeight === 1 && info.strideWidth === 1 && top < kh && bottom < kh && left < kw && right < kw;
      if (!ok) return origInput(args as never);
      const flipped = reverse({ inputs: { x: filter }, attrs: { dims: [0, 1] }, backend }) as Info; // [kh, kw, ci, co] flipped
      const wT = transpose({ inputs: { x: flipped }, attrs: { perm: [0, 1, 3, 2] }, backend }) as Info; // [kh, kw, co, ci]
      free(backend, flipped);
      const out = conv({
        inputs: { x: dy, filter: wT },
        attrs: { strides: [1, 1], pad: [[0, 0], [kh - 1 - top, kh - 1 - bottom], [kw - 1 - left, kw - 1 - right], [0, 0]], dilations: [1, 1], dataFormat: "NHWC", dimRoundingMode: undefined },
        backend,
      }) as Info;
      free(backend, wT);
      return out;
    },
  });
  (tf.getKernel("Conv2DBackpropInput", "wasm") as unknown as { sdcShim?: boolean }).sdcShim = true;

  tf.unregisterKernel("MaxPoolGrad", "wasm");
  tf.registerKernel({
    kernelName: "MaxPoolGrad",
    backendName: "wasm",
    kernelFunc: (args) => {
      const { inputs, attrs, backend } = args as unknown as Parameters<KernelFn>[0];
      const { dy, input, output } = inputs as { dy: Info; input: Info; output: Info };
      const a = attrs as unknown as { filterSize: number | [number, number]; strides: number | [number, number]; pad: unknown; dimRoundingMode?: string };
      const [fh, fw] = typeof a.filterSize === "number" ? [a.filterSize, a.filterSize] : a.filterSize;
      const [sh, sw] = typeof a.strides === "number" ? [a.strides, a.strides] : a.strides;
      const [, h, w] = input.shape;
      const ok = fh === sh && fw === sw && (a.pad === "valid" || a.pad === 0) && h % fh === 0 && w % fw === 0;
      if (!ok) return origPool(args as never);
      const up = (x: Info) => resize({ inputs: { images: x }, attrs: { alignCorners: false, halfPixelCenters: false, size: [h, w] }, backend }) as Info;
      const maxUp = up(output);
      const mask = equal({ inputs: { a: input, b: maxUp }, attrs: {}, backend }) as Info;
      const maskF = cast({ inputs: { x: mask }, attrs: { dtype: "float32" }, backend }) as Info;
      const dyUp = up(dy);
      const out = multiply({ inputs: { a: dyUp, b: maskF }, attrs: {}, backend }) as Info;
      free(backend, maxUp, mask, maskF, dyUp);
      return out;
    },
  });
  return true;
}
