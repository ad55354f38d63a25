/**
 * Philox-4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011; the
 * Random123 reference), and the ONE random-stream layout every backend reproduces bit for bit.
 * Stochastic rounding, dropout and initialisation all draw from it (design note 6).
 *
 * Stream layout (the CUDA kernels implement exactly this):
 * - key     = (seed mod 2^32, floor(seed / 2^32)) for an integer seed in [0, 2^53).
 * - element i of the stream (i in [0, 2^53)) lives in block b = floor(i / 4):
 *     counter = (b mod 2^32, floor(b / 2^32), stream, epoch)
 *   and takes output word i % 4 of philox4x32(counter, key). `stream` (uint32) separates
 *   tensors/uses; `epoch` (uint32, default 0) is the per-step counter a captured CUDA graph
 *   increments on the device. A kernel writing out[j] uses stream element offset + j, so any
 *   sub-range regenerates identically.
 * - random bits: the word itself.
 * - uniform: ((word >>> 9) + 0.5) * 2^-23, i.e. (2k+1)·2^-24 for k in [0, 2^23): strictly inside
 *   (0, 1), symmetric about 1/2, and exact in float32 (24 significant bits at most). The recipe
 *   (word >>> 8)·2^-24 + 2^-25 needs 25 bits: its top value 1 − 2^-25 rounds to 1.0 in float32,
 *   so it cannot promise u < 1.
 * - normal: Box–Muller on the uniforms of the element pair (2j, 2j+1): r = sqrt(−2 ln u₁),
 *   element 2j = mean + std·r·cos(2π u₂), element 2j+1 = mean + std·r·sin(2π u₂), computed in
 *   float64 and rounded once to float32. (A float32-math GPU kernel may differ in the last ulps;
 *   use double math there to match exactly.)
 */

const M0 = 0xd2511f53;
const M1 = 0xcd9e8d57;
const W0 = 0x9e3779b9;
const W1 = 0xbb67ae85;
const M0_HI16 = M0 >>> 16;
const M0_LO16 = M0 & 0xffff;
const M1_HI16 = M1 >>> 16;
const M1_LO16 = M1 & 0xffff;
const TWO_16 = 65536;
const TWO_32 = 4294967296;
const UNIFORM_STEP = 2 ** -23;
const TWO_PI = 2 * Math.PI;

/** Scratch block shared by the fill loops, so generating numbers allocates nothing per block. */
const block = new Uint32Array(4);

/**
 * Ten Philox rounds on counter (c0..c3) with key (k0, k1); writes the four output words to `out`.
 * The high half of each 32x32 product is exact: with 16-bit halves M = mh·2^16 + ml and
 * c = ch·2^16 + cl, hi = mh·ch + floor(mid / 2^16) + floor(cross / 2^16), where
 * mid = floor(ml·cl / 2^16) + mh·cl and cross = ml·ch + (mid mod 2^16); every term is < 2^33.
 */
function philoxRounds(c0: number, c1: number, c2: number, c3: number, k0: number, k1: number, out: Uint32Array): void {
  for (let round = 0; round < 10; round++) {
    const c0Lo = c0 & 0xffff;
    const c0Hi = c0 >>> 16;
    const mid0 = ((M0_LO16 * c0Lo) >>> 16) + M0_HI16 * c0Lo;
    const cross0 = M0_LO16 * c0Hi + (mid0 & 0xffff);
    const hi0 = M0_HI16 * c0Hi + Math.floor(mid0 / TWO_16) + Math.floor(cross0 / TWO_16);
    const c2Lo = c2 & 0xffff;
    const c2Hi = c2 >>> 16;
    const mid1 = ((M1_LO16 * c2Lo) >>> 16) + M1_HI16 * c2Lo;
    const cross1 = M1_LO16 * c2Hi + (mid1 & 0xffff);
    const hi1 = M1_HI16 * c2Hi + Math.floor(mid1 / TWO_16) + Math.floor(cross1 / TWO_16);
    const lo0 = Math.imul(M0, c0);
    const lo1 = Math.imul(M1, c2);
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
    k0 = (k0 + W0) | 0;
    k1 = (k1 + W1) | 0;
  }
  // Uint32Array stores reinterpret the int32 words as uint32.
  out[0] = c0;
  out[1] = c1;
  out[2] = c2;
  out[3] = c3;
}

/** One Philox-4x32-10 block: four uint32 outputs for a 4-word counter and a 2-word key. */
export function philox4x32(counter: Uint32Array | readonly number[], key: Uint32Array | readonly number[]): Uint32Array {
  if (counter.length !== 4 || key.length !== 2) {
    throw new RangeError(`philox4x32 needs a 4-word counter and a 2-word key (got ${counter.length} and ${key.length})`);
  }
  const out = new Uint32Array(4);
  philoxRounds(
    counter[0]! >>> 0,
    counter[1]! >>> 0,
    counter[2]! >>> 0,
    counter[3]! >>> 0,
    key[0]! >>> 0,
    key[1]! >>> 0,
    out,
  );
  return out;
}

function checkInteger(name: string, value: number, limit: number): void {
  if (!Number.isInteger(value) || value < 0 || value >= limit) {
    throw new RangeError(`Philox ${name} must be an integer in [0, ${limit === TWO_32 ? '2^32' : '2^53'}) (got ${value})`);
  }
}

/** Checks the arguments and returns the key words; out.length elements start at `offset`. */
function streamKey(seed: number, stream: number, offset: number, length: number, epoch: number): [number, number] {
  checkInteger('seed', seed, 2 ** 53);
  checkInteger('stream', stream, TWO_32);
  checkInteger('epoch', epoch, TWO_32);
  checkInteger('offset', offset, 2 ** 53);
  if (offset + length > 2 ** 53) throw new RangeError(`Philox stream ends at 2^53 elements (offset ${offset} + length ${length})`);
  return [seed % TWO_32, Math.floor(seed / TWO_32)];
}

/** out[j] = stream element offset + j, as raw uint32 words. */
export function fillRandomBits(out: Uint32Array, seed: number, stream: number, offset = 0, epoch = 0): void {
  const [k0, k1] = streamKey(seed, stream, offset, out.length, epoch);
  const length = out.length;
  let j = 0;
  while (j < length) {
    const index = offset + j;
    const blockIndex = Math.floor(index / 4);
    philoxRounds(blockIndex % TWO_32, Math.floor(blockIndex / TWO_32), stream, epoch, k0, k1, block);
    for (let w = index % 4; w < 4 && j < length; w++, j++) out[j] = block[w]!;
  }
}

/** The uniform in (0, 1) that a random word maps to (exact in float32). */
export function wordToUniform(word: number): number {
  return ((word >>> 9) + 0.5) * UNIFORM_STEP;
}

/** Words are generated in chunks of this many, so long fills need no buffer of their own size. */
const CHUNK = 4096;
const chunkWords = new Uint32Array(CHUNK);

/** out[j] = uniform(stream element offset + j), in (0, 1), never 0 or 1. */
export function fillUniform(out: Float32Array, seed: number, stream: number, offset = 0, epoch = 0): void {
  streamKey(seed, stream, offset, out.length, epoch);
  for (let start = 0; start < out.length; start += CHUNK) {
    const count = Math.min(CHUNK, out.length - start);
    const words = chunkWords.subarray(0, count);
    fillRandomBits(words, seed, stream, offset + start, epoch);
    for (let j = 0; j < count; j++) out[start + j] = ((words[j]! >>> 9) + 0.5) * UNIFORM_STEP;
  }
}

/**
 * out[j] = mean + std·z(offset + j), with z from Box–Muller on the stream's element pairs
 * (2k, 2k+1); an odd offset or length still draws whole pairs, so sub-ranges agree.
 */
export function fillNormal(out: Float32Array, seed: number, stream: number, offset = 0, mean = 0, std = 1, epoch = 0): void {
  streamKey(seed, stream, offset, out.length, epoch);
  const end = offset + out.length;
  // Chunks start on even stream elements so every Box–Muller pair is generated whole.
  for (let first = offset - (offset % 2); first < end; first += CHUNK) {
    const count = Math.min(CHUNK, end + (end % 2) - first);
    const words = chunkWords.subarray(0, count);
    fillRandomBits(words, seed, stream, first, epoch);
    for (let p = 0; p < count; p += 2) {
      const r = Math.sqrt(-2 * Math.log(((words[p]! >>> 9) + 0.5) * UNIFORM_STEP));
      const angle = TWO_PI * (((words[p + 1]! >>> 9) + 0.5) * UNIFORM_STEP);
      const even = first + p - offset;
      if (even >= 0) out[even] = mean + std * r * Math.cos(angle);
      if (even + 1 < out.length) out[even + 1] = mean + std * r * Math.sin(angle);
    }
  }
}
