import { SEQUENCE_BACKWARD_POINTS, SEQUENCE_FORWARD_POINTS, type HighwayRounding, type RoundingStreams, type SequenceRounding, type SequenceStreams } from '../../backend/backend.ts';
import { record, SUNK } from '../autograd.ts';
import { randomContext } from '../random.ts';
import { formatShape, type Tensor } from '../tensor.ts';
import { empty } from './creation.ts';
import type { CastSpec } from './quantise.ts';

/** The widest cell highwaySequence takes on CUDA (see the backend interface); the char-LM runs wider RHNs step by step. */
export { HIGHWAY_SEQUENCE_MAX_WIDTH } from '../../backend/backend.ts';

/**
 * One step of a Recurrent Highway Network cell as a single op (one kernel forward, one backward):
 *   pre = R(projected[:, t, :] + recurrent), c = R(tanh(pre_c)), u = R(σ(pre_u)),
 *   d = R(c − state), s = R(u·d), h = R(state + s)
 * where R is `round` (the precision policy's activation cast; null: the identity). Values and
 * gradients are bit for bit those of the unfused graph
 *   pre = out(add(reshape(slice(permute(projected), t)), recurrent))
 *   c = out(tanh(slice(pre, c half))), u = out(sigmoid(slice(pre, u half)))
 *   h = out(add(state, out(mul(u, out(sub(c, state))))))
 * with out = quantise(·, round, round), on the CPU backend. (The state's gradient gets two
 * contributions there, added one at a time; they round the same here when the state's gradient
 * is empty when this backward runs or autograd offers it as a sink, as it always is in
 * RecurrentHighwayLayer.) Only slot t of projected is read, and its gradient goes straight into
 * that slot of the gradient sink when autograd offers one.
 *
 * projected [B, L, 2H] (columns c then u), recurrent [B, 2H] (state·W), state [B, H] → h [B, H].
 *
 * Stochastic rounding draws the unfused graph's streams in its order: each quantise takes one
 * stream when it casts, so the forward pass takes six here (pre, c, u, d, s, h) and the backward
 * pass, run where the unfused graph's tape would run its six quantise backwards (nothing else
 * between them casts), takes those of h, s, d, u, c, pre in that reverse tape order; with
 * neither projected nor recurrent needing a gradient the unfused graph records no quantise on
 * pre, c or u, and the backward takes only the first three. The rest of the model's streams
 * therefore line up with the unfused loop's too. The backward recomputes c, u and d on the
 * forward streams: the step's epoch must not advance between the two (beginStep starts a step).
 */
export function highwayStep(projected: Tensor, t: number, recurrent: Tensor, state: Tensor, round: CastSpec | null): Tensor {
  if (projected.rank !== 3 || state.rank !== 2 || recurrent.rank !== 2) {
    throw new Error(`highwayStep: expected projected [B, L, 2H], recurrent [B, 2H] and state [B, H], got ${projected.describe()}, ${recurrent.describe()}, ${state.describe()}`);
  }
  const [B, L, twoH] = projected.shape;
  const H = state.shape[1];
  if (twoH !== 2 * H || state.shape[0] !== B || recurrent.shape[0] !== B || recurrent.shape[1] !== twoH) {
    throw new Error(`highwayStep: shapes ${formatShape(projected.shape)}, ${formatShape(recurrent.shape)}, ${formatShape(state.shape)} do not fit [B, L, 2H], [B, 2H], [B, H]`);
  }
  if (!Number.isInteger(t) || t < 0 || t >= L) throw new Error(`highwayStep: step ${t} outside [0, ${L})`);
  const backend = projected.backend;
  if (recurrent.backend !== backend || state.backend !== backend) throw new Error('highwayStep: operands live on different backends');
  if (projected.dtype !== 'f32' || recurrent.dtype !== 'f32' || state.dtype !== 'f32') throw new Error('highwayStep: operands must be float32');
  const stochastic = round?.rounding === 'stochastic';
  const rounding: HighwayRounding | null = round
    ? { format: round.format, overflow: round.overflow ?? 'saturate', viaFp16: round.viaFp16 ?? false, stochastic: stochastic ? drawStreams(POINTS) : null }
    : null;
  const preNeedsGrad = projected.requiresGrad || recurrent.requiresGrad;
  const dims = { batch: B, width: H, length: L, step: t, round: rounding };
  const out = empty([B, H], 'f32', backend);
  const pre = empty([B, twoH], 'f32', backend);
  backend.highwayStep({ projected: projected.storage, recurrent: recurrent.storage, state: state.storage, out: out.storage, pre: pre.storage, ...dims });
  return record(out, [projected, recurrent, state], (g, [projectedSink, , stateSink]) => {
    const gradStreams = stochastic ? drawStreams(preNeedsGrad ? POINTS : POINTS_WITHOUT_PRE) : null;
    // The unfused graph writes slot t into a zeroed gradient, or adds it into one that already
    // holds other steps' slots: the same here, with one fill when the target starts out stale.
    let gradProjected: Tensor | null = null;
    const accumulateProjected = projectedSink?.accumulate ?? false;
    if (projected.requiresGrad) {
      gradProjected = projectedSink?.target ?? empty(projected.shape, 'f32', backend);
      if (!accumulateProjected) backend.fill(gradProjected.storage, 0, gradProjected.size, 0);
    }
    const gradRecurrent = recurrent.requiresGrad ? empty(recurrent.shape, 'f32', backend) : null;
    // The state's two contributions (add, then sub) land one after the other in a gradient that
    // already holds others: only through its sink do they round as the unfused graph's do.
    const gradState = state.requiresGrad ? (stateSink?.target ?? empty(state.shape, 'f32', backend)) : null;
    backend.highwayStepGrad({
      pre: pre.storage,
      state: state.storage,
      gradOut: g.storage,
      gradProjected: gradProjected?.storage ?? null,
      accumulateProjected,
      gradRecurrent: gradRecurrent?.storage ?? null,
      gradState: gradState?.storage ?? null,
      accumulateState: stateSink?.accumulate ?? false,
      ...dims,
      gradStreams,
    });
    return [gradProjected && projectedSink ? SUNK : gradProjected, gradRecurrent, gradState && stateSink ? SUNK : gradState];
  });
}

/** Rounding points each way (HighwayStepParams, HighwayStepGradParams). */
const POINTS = 6;
/** Only the gradients at h, s and d are cast when nothing upstream of pre needs a gradient. */
const POINTS_WITHOUT_PRE = 3;

/**
 * `count` consecutive streams of the current random context, taken now (as that many quantise
 * calls would), padded with stream 0 to the backend's fixed number of points.
 */
function drawStreams(count: number): RoundingStreams {
  const ctx = randomContext();
  const streams = Array.from({ length: POINTS }, (_, k) => (k < count ? ctx.nextStream() : 0));
  return { seed: ctx.seed, streams, epoch: ctx.epoch() };
}

export interface HighwaySequenceOptions {
  /** The recurrent product's forward multiplier (matmul's `scale`). */
  readonly scale: number;
  /** Multipliers of the state's and the weight's gradients through that product (matmul's gradScaleA/B). */
  readonly gradScaleState: number;
  readonly gradScaleWeight: number;
  /** The activation cast (fp16/bf16 runs): applied to the product, to every cell value and to the gradients arriving there; null: FP32. */
  readonly round: CastSpec | null;
}

/**
 * A whole Recurrent Highway Network recurrence as one op (one kernel each way on CUDA, instead of
 * a matmul, a rounding and a highwayStep per timestep): for t = 0 … L−1,
 *   h_t = highwayStep(projected, t, R(matmul(h_{t−1}, weight, {scale, gradScaleA, gradScaleB})), h_{t−1}, R)
 * with h_{−1} = initial and R = round (HighwaySequenceParams). Values and gradients are that
 * loop's up to the order of the recurrent product's sums, and, with stochastic rounding, up to
 * which random numbers are drawn: the op takes SEQUENCE_FORWARD_POINTS consecutive streams per
 * timestep forward and SEQUENCE_BACKWARD_POINTS backward, where the loop takes 7 and 7.
 *
 * projected [B, L, 2H] (columns c then u), weight [H, 2H], initial [B, H] → states [B, L, H].
 */
export function highwaySequence(projected: Tensor, weight: Tensor, initial: Tensor, options: HighwaySequenceOptions): Tensor {
  if (projected.rank !== 3 || weight.rank !== 2 || initial.rank !== 2) {
    throw new Error(`highwaySequence: expected projected [B, L, 2H], weight [H, 2H] and initial [B, H], got ${projected.describe()}, ${weight.describe()}, ${initial.describe()}`);
  }
  const [B, L, twoH] = projected.shape;
  const H = initial.shape[1];
  if (twoH !== 2 * H || initial.shape[0] !== B || weight.shape[0] !== H || weight.shape[1] !== twoH) {
    throw new Error(`highwaySequence: shapes ${formatShape(projected.shape)}, ${formatShape(weight.shape)}, ${formatShape(initial.shape)} do not fit [B, L, 2H], [H, 2H], [B, H]`);
  }
  const backend = projected.backend;
  if (weight.backend !== backend || initial.backend !== backend) throw new Error('highwaySequence: operands live on different backends');
  if (projected.dtype !== 'f32' || weight.dtype !== 'f32' || initial.dtype !== 'f32') throw new Error('highwaySequence: operands must be float32');
  const { round } = options;
  const stochastic = round?.rounding === 'stochastic';
  const rounding: SequenceRounding | null = round
    ? { format: round.format, overflow: round.overflow ?? 'saturate', viaFp16: round.viaFp16 ?? false, stochastic: stochastic ? drawSequenceStreams(SEQUENCE_FORWARD_POINTS * L) : null }
    : null;
  const dims = { batch: B, width: H, length: L, round: rounding };
  const states = empty([B, L, H], 'f32', backend);
  const previous = empty([B, L, H], 'f32', backend);
  const pre = empty([B, L, twoH], 'f32', backend);
  backend.highwaySequence({ projected: projected.storage, weight: weight.storage, initial: initial.storage, states: states.storage, previous: previous.storage, pre: pre.storage, ...dims, scale: options.scale });
  return record(states, [projected, weight, initial], (g) => {
    const gradStreams = stochastic ? drawSequenceStreams(SEQUENCE_BACKWARD_POINTS * L) : null;
    // gPre is both the projected input's gradient and the recurrent product's output gradient.
    const gradPre = empty([B, L, twoH], 'f32', backend);
    const gradInitial = initial.requiresGrad ? empty([B, H], 'f32', backend) : null;
    backend.highwaySequenceGrad({
      pre: pre.storage,
      previous: previous.storage,
      weight: weight.storage,
      gradStates: g.storage,
      gradProjected: gradPre.storage,
      gradInitial: gradInitial?.storage ?? null,
      ...dims,
      gradScale: options.gradScaleState,
      gradStreams,
    });
    let gradWeight: Tensor | null = null;
    if (weight.requiresGrad) {
      // Σ_{b,t} h_{t−1}ᵀ·gPre_t: previous [B·L, H] transposed times gPre [B·L, 2H]
      gradWeight = empty([H, twoH], 'f32', backend);
      backend.gemm({
        transA: true, transB: false, m: H, n: twoH, k: B * L, alpha: options.gradScaleWeight,
        a: previous.storage, aOffset: 0, lda: H, b: gradPre.storage, bOffset: 0, ldb: twoH,
        beta: 0, c: gradWeight.storage, cOffset: 0, ldc: twoH, batch: 1, strideA: 0, strideB: 0, strideC: 0,
      });
    }
    return [projected.requiresGrad ? gradPre : null, gradWeight, gradInitial];
  });
}

/** `count` consecutive streams of the current random context, taken now. */
function drawSequenceStreams(count: number): SequenceStreams {
  const ctx = randomContext();
  const first = ctx.nextStream();
  for (let k = 1; k < count; k++) ctx.nextStream();
  return { seed: ctx.seed, first, epoch: ctx.epoch() };
}
