/**
 * The learned encoder's tokenizer: one token per word over the prompt vocabulary.
 * Id 0 pads, id 1 is the unknown word; unknown words never crash. The empty prompt is all
 * padding: the unconditional input for classifier-free guidance.
 */

export const PAD = 0;
export const UNK = 1;

export class WordTokenizer {
  private readonly ids = new Map<string, number>();

  constructor(
    readonly words: readonly string[],
    readonly vocab: number,
    readonly length: number,
  ) {
    if (words.length + 2 > vocab) throw new RangeError(`WordTokenizer: ${words.length} words need a vocabulary of at least ${words.length + 2}, got ${vocab}`);
    if (!Number.isInteger(length) || length < 1) throw new RangeError(`WordTokenizer: length must be a positive integer, got ${length}`);
    words.forEach((w, i) => this.ids.set(w.toLowerCase(), i + 2));
  }

  /** Build the vocabulary from captions: the most frequent words (ties by first appearance). */
  static fromCaptions(captions: Iterable<string>, vocab: number, length: number): WordTokenizer {
    const counts = new Map<string, number>();
    for (const c of captions) for (const w of splitWords(c)) counts.set(w, (counts.get(w) ?? 0) + 1);
    const words = [...counts.entries()].sort((a, b) => b[1] - a[1]).slice(0, vocab - 2).map(([w]) => w);
    return new WordTokenizer(words, vocab, length);
  }

  /** Ids padded (or truncated) to `length`. */
  encode(text: string): Int32Array {
    const out = new Int32Array(this.length); // PAD = 0
    splitWords(text)
      .slice(0, this.length)
      .forEach((w, i) => (out[i] = this.ids.get(w) ?? UNK));
    return out;
  }

  /** [B, length] ids for a batch of prompts, row-major. */
  encodeBatch(texts: readonly string[]): Int32Array {
    const out = new Int32Array(texts.length * this.length);
    texts.forEach((t, i) => out.set(this.encode(t), i * this.length));
    return out;
  }
}

export function splitWords(text: string): string[] {
  return text
    .normalize("NFKC")
    .toLowerCase()
    .split(/[^\p{L}\p{N}]+/u)
    .filter(Boolean);
}
