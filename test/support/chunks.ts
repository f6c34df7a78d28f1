/**
 * Feeds a byte string to a decoder in every way that matters: whole, byte by
 * byte, split at every point, and at random split points. Every way must give
 * the same frames.
 */
import { FrameDecoder, type FrameParser } from '../../src/protocol/decoder.js';

export function decodeChunks<F>(parser: FrameParser<F>, chunks: Buffer[]): F[] {
  const decoder = new FrameDecoder(parser);
  const frames: F[] = [];
  for (const chunk of chunks) decoder.push(chunk, (frame) => frames.push(frame));
  return frames;
}

/** Deterministic pseudo-random numbers (mulberry32) so a failing case can be replayed from its seed. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface Chunking {
  readonly name: string;
  readonly chunks: Buffer[];
}

/** Whole, byte by byte, every two-way split, and `randomSplits` random multi-way splits. */
export function* chunkings(input: Buffer, randomSplits = 20, seed = 1): Generator<Chunking> {
  yield { name: 'whole', chunks: [input] };
  yield { name: 'byte by byte', chunks: Array.from(input, (_, i) => input.subarray(i, i + 1)) };
  for (let at = 1; at < input.length; at++) {
    yield { name: `split at ${at}`, chunks: [input.subarray(0, at), input.subarray(at)] };
  }
  const random = rng(seed);
  for (let n = 0; n < randomSplits; n++) {
    const chunks: Buffer[] = [];
    let pos = 0;
    while (pos < input.length) {
      const size = 1 + Math.floor(random() * Math.max(1, input.length / 3));
      chunks.push(input.subarray(pos, pos + size));
      pos += size;
    }
    yield { name: `random split #${n} (seed ${seed})`, chunks };
  }
}
