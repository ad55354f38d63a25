/** Host wrappers of the fused Recurrent Highway Network kernels: one step, or a whole FP32 sequence. */
import { HIGHWAY_SEQUENCE_MAX_WIDTH, type HighwayRounding, type HighwaySequenceGradParams, type HighwaySequenceParams, type HighwayStepGradParams, type HighwayStepParams, type RoundingStreams, type SequenceRounding, type SequenceStreams, type Storage } from '../backend.ts';
import { HIGHWAY_MODULE, HIGHWAY_POINTS, HIGHWAY_STREAMS_WORDS, SEQUENCE_STREAMS_WORDS } from './kernels/highway.ts';
import { QUANT_GRID_WORDS } from './kernels/random.ts';
import { FP16_ENCODING, quantGridWords } from './quantise-grid.ts';
import type { ParamKind } from './launch.ts';
import { asCuda, type CudaRuntime } from './runtime.ts';
import { checkCount } from './strided.ts';

const GRID = `s${QUANT_GRID_WORDS}` as const;
const STREAMS = `s${HIGHWAY_STREAMS_WORDS}` as const;
const NO_GRID = new Int32Array(QUANT_GRID_WORDS);
const NO_STREAMS = new Int32Array(HIGHWAY_STREAMS_WORDS);
const TWO_32 = 4294967296;

/** rounding (0 none, 1 nearest, 2 stochastic), viaFp16 flag, target grid, fp16 grid (the kernels' arguments after the dimensions). */
function roundingArgs(round: HighwayRounding | SequenceRounding | null): [number, number, Int32Array, Int32Array] {
  if (!round) return [0, 0, NO_GRID, NO_GRID];
  const fp16 = round.viaFp16 ? quantGridWords(FP16_ENCODING, round.overflow) : NO_GRID;
  return [round.stochastic ? 2 : 1, round.viaFp16 ? 1 : 0, quantGridWords(round.format, round.overflow), fp16];
}

/** The HighwayStreams struct (Philox key, one stream per point) and the epoch pointer; zeros unless stochastic. */
function streamArgs(op: string, streams: RoundingStreams | null): [Int32Array, number] {
  if (!streams) return [NO_STREAMS, 0];
  const { seed } = streams;
  if (!Number.isInteger(seed) || seed < 0 || seed >= 2 ** 53) throw new RangeError(`${op}: Philox seed must be an integer in [0, 2^53) (got ${seed})`);
  if (streams.streams.length !== HIGHWAY_POINTS) throw new RangeError(`${op}: ${HIGHWAY_POINTS} streams needed, got ${streams.streams.length}`);
  const words = new Int32Array(HIGHWAY_STREAMS_WORDS);
  words[0] = seed % TWO_32;
  words[1] = Math.floor(seed / TWO_32);
  streams.streams.forEach((stream, k) => {
    if (!Number.isInteger(stream) || stream < 0 || stream >= TWO_32) throw new RangeError(`${op}: Philox stream must be an integer in [0, 2^32) (got ${stream})`);
    words[2 + k] = stream;
  });
  const { epoch } = streams;
  if (!epoch) return [words, 0];
  if (epoch.dtype !== 'i32' || epoch.size < 1) throw new TypeError(`${op}: epoch must be a 1-element int32 storage`);
  return [words, asCuda(epoch, op).address];
}

/** The backward's own streams, which stochastic rounding cannot do without. */
function gradStreams(op: string, round: HighwayRounding | null, streams: RoundingStreams | null): RoundingStreams | null {
  if (!round?.stochastic) return null;
  if (!streams) throw new Error(`${op}: stochastic rounding needs the rounding points' streams`);
  return streams;
}

function checkDims(op: string, p: { batch: number; width: number; length: number; step: number }): void {
  for (const [name, v] of Object.entries({ batch: p.batch, width: p.width, length: p.length, step: p.step })) {
    if (!Number.isInteger(v) || v < 0) throw new RangeError(`${op}: ${name} must be a non-negative integer, got ${v}`);
  }
  if (p.step >= p.length) throw new RangeError(`${op}: step ${p.step} is outside a sequence of length ${p.length}`);
}

function f32Address(op: string, name: string, storage: Storage, n: number): number {
  checkCount(op, name, storage, n);
  if (storage.dtype !== 'f32') throw new TypeError(`${op}: ${name} must be float32 storage`);
  return asCuda(storage, op).address;
}

const STEP_KINDS: readonly ParamKind[] = ['p', 'p', 'p', 'p', 'p', 'i', 'i', 'i', 'i', 'i', 'i', GRID, GRID, STREAMS, 'p'];
const GRAD_KINDS: readonly ParamKind[] = ['p', 'p', 'p', 'p', 'i', 'p', 'p', 'i', 'i', 'i', 'i', 'i', 'i', 'i', GRID, GRID, STREAMS, 'p', STREAMS, 'p'];

export function highwayStep(rt: CudaRuntime, p: HighwayStepParams): void {
  const op = 'highwayStep';
  checkDims(op, p);
  const n = p.batch * p.width;
  const args = [
    f32Address(op, 'projected', p.projected, p.batch * p.length * 2 * p.width),
    f32Address(op, 'recurrent', p.recurrent, 2 * n),
    f32Address(op, 'state', p.state, n),
    f32Address(op, 'out', p.out, n),
    f32Address(op, 'pre', p.pre, 2 * n),
    p.batch,
    p.width,
    p.length,
    p.step,
    ...roundingArgs(p.round),
    ...streamArgs(op, p.round?.stochastic ?? null),
  ];
  rt.launchLinear(rt.kernel(HIGHWAY_MODULE, 'highway_step', STEP_KINDS), n, args);
}

export function highwayStepGrad(rt: CudaRuntime, p: HighwayStepGradParams): void {
  const op = 'highwayStepGrad';
  checkDims(op, p);
  const n = p.batch * p.width;
  const optional = (name: string, s: Storage | null, count: number) => (s ? f32Address(op, name, s, count) : 0);
  const args = [
    f32Address(op, 'pre', p.pre, 2 * n),
    f32Address(op, 'state', p.state, n),
    f32Address(op, 'gradOut', p.gradOut, n),
    optional('gradProjected', p.gradProjected, p.batch * p.length * 2 * p.width),
    p.accumulateProjected ? 1 : 0,
    optional('gradRecurrent', p.gradRecurrent, 2 * n),
    optional('gradState', p.gradState, n),
    p.accumulateState ? 1 : 0,
    p.batch,
    p.width,
    p.length,
    p.step,
    ...roundingArgs(p.round),
    ...streamArgs(op, p.round?.stochastic ?? null),
    ...streamArgs(op, gradStreams(op, p.round, p.gradStreams)),
  ];
  rt.launchLinear(rt.kernel(HIGHWAY_MODULE, 'highway_step_grad', GRAD_KINDS), n, args);
}

function checkSequence(op: string, p: { batch: number; width: number; length: number }): void {
  for (const [name, v] of Object.entries({ batch: p.batch, width: p.width, length: p.length })) {
    if (!Number.isInteger(v) || v < 1) throw new RangeError(`${op}: ${name} must be a positive integer, got ${v}`);
  }
  if (p.width > HIGHWAY_SEQUENCE_MAX_WIDTH) throw new RangeError(`${op}: width ${p.width} exceeds ${HIGHWAY_SEQUENCE_MAX_WIDTH} (one thread per gate column)`);
}

const SEQ_STREAMS = `s${SEQUENCE_STREAMS_WORDS}` as const;
const NO_SEQ_STREAMS = new Int32Array(SEQUENCE_STREAMS_WORDS);
const SEQUENCE_KINDS: readonly ParamKind[] = ['p', 'p', 'p', 'p', 'p', 'p', 'i', 'i', 'f', 'i', 'i', GRID, GRID, SEQ_STREAMS, 'p'];
const SEQUENCE_GRAD_KINDS: readonly ParamKind[] = ['p', 'p', 'p', 'p', 'p', 'p', 'i', 'i', 'f', 'i', 'i', GRID, GRID, SEQ_STREAMS, 'p', SEQ_STREAMS, 'p'];

/** The SeqStreams struct (Philox key, first stream) and the epoch pointer; zeros unless given. */
function sequenceStreamArgs(op: string, streams: SequenceStreams | null): [Int32Array, number] {
  if (!streams) return [NO_SEQ_STREAMS, 0];
  const { seed, first } = streams;
  if (!Number.isInteger(seed) || seed < 0 || seed >= 2 ** 53) throw new RangeError(`${op}: Philox seed must be an integer in [0, 2^53) (got ${seed})`);
  if (!Number.isInteger(first) || first < 0 || first >= TWO_32) throw new RangeError(`${op}: first stream must be an integer in [0, 2^32) (got ${first})`);
  const words = Int32Array.of(seed % TWO_32, Math.floor(seed / TWO_32), first);
  const { epoch } = streams;
  if (!epoch) return [words, 0];
  if (epoch.dtype !== 'i32' || epoch.size < 1) throw new TypeError(`${op}: epoch must be a 1-element int32 storage`);
  return [words, asCuda(epoch, op).address];
}

export function highwaySequence(rt: CudaRuntime, p: HighwaySequenceParams): void {
  const op = 'highwaySequence';
  checkSequence(op, p);
  const { batch: B, width: H, length: L } = p;
  const args = [
    f32Address(op, 'projected', p.projected, B * L * 2 * H),
    f32Address(op, 'weight', p.weight, H * 2 * H),
    f32Address(op, 'initial', p.initial, B * H),
    f32Address(op, 'states', p.states, B * L * H),
    f32Address(op, 'previous', p.previous, B * L * H),
    f32Address(op, 'pre', p.pre, B * L * 2 * H),
    L,
    H,
    p.scale,
    ...roundingArgs(p.round),
    ...sequenceStreamArgs(op, p.round?.stochastic ?? null),
  ];
  rt.kernel(HIGHWAY_MODULE, 'highway_sequence', SEQUENCE_KINDS).launch(rt.stream, B, 1, 2 * H, 2 * H * 4, args);
}

export function highwaySequenceGrad(rt: CudaRuntime, p: HighwaySequenceGradParams): void {
  const op = 'highwaySequenceGrad';
  checkSequence(op, p);
  const { batch: B, width: H, length: L } = p;
  const stochastic = p.round?.stochastic ?? null;
  if (stochastic && !p.gradStreams) throw new Error(`${op}: stochastic rounding needs the backward streams`);
  const args = [
    f32Address(op, 'pre', p.pre, B * L * 2 * H),
    f32Address(op, 'previous', p.previous, B * L * H),
    f32Address(op, 'weight', p.weight, H * 2 * H),
    f32Address(op, 'gradStates', p.gradStates, B * L * H),
    f32Address(op, 'gradProjected', p.gradProjected, B * L * 2 * H),
    p.gradInitial ? f32Address(op, 'gradInitial', p.gradInitial, B * H) : 0,
    L,
    H,
    p.gradScale,
    ...roundingArgs(p.round),
    ...sequenceStreamArgs(op, stochastic),
    ...sequenceStreamArgs(op, stochastic ? p.gradStreams : null),
  ];
  // whole warps: every lane takes part in the shuffles of the weight products
  const threads = Math.ceil((2 * H) / 32) * 32;
  rt.kernel(HIGHWAY_MODULE, 'highway_sequence_grad', SEQUENCE_GRAD_KINDS).launch(rt.stream, B, 1, threads, 3 * H * 4, args);
}
