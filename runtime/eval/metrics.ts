/**
 * Evaluation metrics that need no network: how often a generated image is classified as the
 * digit its prompt asked for.
 */

export interface PromptAccuracy {
  /** Fraction of all samples whose predicted class equals the requested one (NaN when there are none). */
  overall: number;
  /** Per requested class: correct / requested (NaN for a class never requested). */
  perClass: number[];
  /** Per requested class: how many samples requested it, and how many of those were correct. */
  counts: { requested: number[]; correct: number[] };
}

/** Accuracy of `predicted` against `requested` labels in [0, classes). */
export function promptAccuracy(requested: Int32Array, predicted: Int32Array, classes = 10): PromptAccuracy {
  if (!Number.isInteger(classes) || classes < 1) throw new RangeError(`promptAccuracy: classes must be a positive integer, got ${classes}`);
  if (requested.length !== predicted.length) {
    throw new RangeError(`promptAccuracy: requested has length ${requested.length} but predicted has length ${predicted.length}`);
  }
  const req = new Array<number>(classes).fill(0);
  const cor = new Array<number>(classes).fill(0);
  let correct = 0;
  for (let i = 0; i < requested.length; i++) {
    const r = requested[i];
    const p = predicted[i];
    if (r < 0 || r >= classes) throw new RangeError(`promptAccuracy: requested[${i}] must be in [0, ${classes}), got ${r}`);
    if (p < 0 || p >= classes) throw new RangeError(`promptAccuracy: predicted[${i}] must be in [0, ${classes}), got ${p}`);
    req[r]++;
    if (r === p) {
      cor[r]++;
      correct++;
    }
  }
  return {
    overall: requested.length === 0 ? NaN : correct / requested.length,
    perClass: req.map((n, c) => (n === 0 ? NaN : cor[c] / n)),
    counts: { requested: req, correct: cor },
  };
}
