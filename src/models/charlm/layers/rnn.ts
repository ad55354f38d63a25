import * as nn from '../../../nn/index.ts';
import * as T from '../../../tensor/index.ts';
import type { BuildContext, ForwardContext } from '../context.ts';

/**
 * Recurrent Highway Network cell, one micro-layer (experiments.md §A4): per step
 * [c, u] = [x_t, h_{t−1}]·W + b, u ← σ(u − rebias), h_t = (1−u)·h_{t−1} + u·tanh(c), from a learned
 * initial state. W [in+H, 2H] (columns: c then u), b [2, H]. The gates get the linear rule of
 * their fans (in+H → 2H) over N = B·L rows, which gives paper-charlm's (2·(in+H)·H)^-¼ and 1/N;
 * σ and tanh stay unscaled in every rule set: they are the cell's gates, and scaling them would
 * change the function (u must stay in [0, 1]).
 */
export class RecurrentHighwayLayer {
  private readonly weight: T.Tensor;
  private readonly bias: T.Tensor;
  private readonly initialState: T.Tensor;
  private readonly width: number;
  /** 0 on the c half, −rebias on the u half of the gate pre-activations. */
  private readonly rebias: T.Tensor;

  constructor(
    private readonly ctx: BuildContext,
    private readonly prefix: string,
    width: number,
  ) {
    this.width = width;
    this.weight = ctx.weight(`${prefix}.gates.weight`, [2 * width, 2 * width], 'rnn', { fanIn: 2 * width, fanOut: 2 * width, inTrunk: true });
    this.bias = ctx.vector(`${prefix}.gates.bias`, [2, width], 'bias', 0, true);
    this.initialState = ctx.vector(`${prefix}.initial_state`, [width], 'vector', 0, true);
    const rebias = ctx.config.model.rnn.rebias;
    this.rebias = ctx.constant(Float32Array.from({ length: 2 * width }, (_, i) => (i < width ? 0 : -rebias)), [2 * width]);
  }

  forward(x: T.Tensor, f: ForwardContext): T.Tensor {
    const { policy, scaling, plan } = this.ctx;
    const { batch: B, length: L } = f;
    const H = this.width;
    const s = nn.linearScales(scaling, 2 * H, 2 * H, B * L);
    const gemm = (a: T.Tensor, w: T.Tensor) =>
      policy.gemmOutput(
        T.matmul(policy.gemmInput(a), w, { scale: s.output, gradScaleA: s.gradInput, gradScaleB: s.gradWeight, ...policy.gemmFormats }),
      );
    const weight = policy.gemmInput(policy.parameter(this.weight));
    const inputWeight = T.slice(weight, 0, 0, H);
    const stateWeight = T.slice(weight, 0, H, 2 * H);
    // The bias and the constant −rebias on the u half are added once to all input projections.
    const bias = T.add(T.reshape(policy.parameter(this.bias), [2 * H]), this.rebias, { scaleA: s.biasForward, gradScaleA: s.gradBias });
    const projected = f.tap(
      `${this.prefix}.gates_input`,
      policy.output(T.add(gemm(T.reshape(x, [B * L, H]), inputWeight), bias)),
    );
    const initial = T.scaleBwd(policy.parameter(this.initialState), plan.sharedVectorGradScale(B));
    let state = T.broadcastTo(T.reshape(initial, [1, H]), [B, H]);
    const states: T.Tensor[] = [];
    // Nothing in the cell is scaled (the gemms carry every factor), and its rounding is the
    // policy's activation cast: one fused op per step computes the chain below bit for bit, with
    // nearest or stochastic rounding (it draws the chain's random streams in the chain's order).
    // REPRO_FUSED_RHN=0 runs the op-by-op chain instead, the reference the fused op is tested against.
    // Each state's reshape for the output is recorded after the next step has used the state, so
    // the backward pass meets it first: its gradient (a slice of the output's) then starts the
    // state's gradient, and the next step's kernels accumulate into it through gradient sinks
    // instead of a separate add per step.
    const round = policy.activation;
    // FP32/FP16/BF16 (the product's operands uncast, its output rounded like every activation):
    // the whole recurrence is one op, one kernel each way on CUDA. FP8 casts the product's
    // operands, which the op does not do. On the CPU the per-step ops are faster (BLAS products),
    // so the op is used there only with REPRO_RHN_SEQUENCE=1; REPRO_RHN_SEQUENCE=0 never uses it.
    const sequenceSetting = process.env.REPRO_RHN_SEQUENCE;
    const sequenceWanted = sequenceSetting === '1' || (sequenceSetting !== '0' && x.backend.name === 'cuda');
    const wholeSequence = sequenceWanted && policy.fp8 === null && H <= T.HIGHWAY_SEQUENCE_MAX_WIDTH && process.env.REPRO_FUSED_RHN !== '0';
    if (wholeSequence) {
      const states = T.highwaySequence(T.reshape(projected, [B, L, 2 * H]), stateWeight, state, { scale: s.output, gradScaleState: s.gradInput, gradScaleWeight: s.gradWeight, round });
      return f.tap(`${this.prefix}.states`, states);
    }
    if (process.env.REPRO_FUSED_RHN !== '0') {
      const steps = T.reshape(projected, [B, L, 2 * H]);
      for (let t = 0; t < L; t++) {
        const next = T.highwayStep(steps, t, gemm(state, stateWeight), state, round);
        if (t > 0) states.push(T.reshape(state, [B, 1, H]));
        state = next;
      }
      states.push(T.reshape(state, [B, 1, H]));
      return f.tap(`${this.prefix}.states`, T.concat(states, 1));
    }
    const byStep = T.permute(T.reshape(projected, [B, L, 2 * H]), [1, 0, 2]);
    for (let t = 0; t < L; t++) {
      const pre = policy.output(T.add(T.reshape(T.slice(byStep, 0, t, t + 1), [B, 2 * H]), gemm(state, stateWeight)));
      const candidate = policy.output(T.tanh(T.slice(pre, 1, 0, H)));
      const update = policy.output(T.sigmoid(T.slice(pre, 1, H, 2 * H)));
      const step = policy.output(T.mul(update, policy.output(T.sub(candidate, state))));
      const next = policy.output(T.add(state, step));
      if (t > 0) states.push(T.reshape(state, [B, 1, H]));
      state = next;
    }
    states.push(T.reshape(state, [B, 1, H]));
    return f.tap(`${this.prefix}.states`, T.concat(states, 1));
  }
}
