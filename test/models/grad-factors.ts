import type { ExperimentConfig } from '../../src/config/schema.ts';

/**
 * The factor between a unit-scaled model's parameter gradient and the true gradient of its
 * (masked mean) loss, derived by hand from the rule tables (experiments.md §A4 for paper-charlm,
 * unit-scaling-ops.md §3.1/§3.5 for the library rule sets), for pre- or post-norm char-LMs with
 * gmean-constrained trunk ops and alpha "mean". 1 for regular models.
 */
export function expectedGradientFactor(config: ExperimentConfig, name: string, dims: { vocab: number; count: number }): number {
  if (config.scaling.mode === 'regular') return 1;
  const rules = config.scaling.rules;
  const demo = rules === 'paper-charlm';
  const { hidden: H, depth, ffn_multiple: m, attention, conv } = config.model;
  const B = config.data.sequences;
  const L = config.data.sequence_length;
  const N = B * L;
  const V = dims.vocab;
  // Parameter gradient rule: DEMO 1/rows, library rows^-½ (and the library scales biases with
  // the output, so their true gradient carries the output scale s).
  const shared = (rows: number) => (demo ? 1 / rows : rows ** -0.5);
  const cL = (demo ? N : dims.count) * (V / Math.sqrt(V - 1));
  const readoutOut = rules === 'umup' ? 1 / H : H ** -0.5;
  const cX = (cL * V ** -0.5) / readoutOut;
  const branchWeight = (i: number) => {
    if (rules !== 'umup') return Math.sqrt(1 / (1 + i));
    const tau = 1 / Math.sqrt((2 * depth) / 2 + i);
    return tau / Math.sqrt(1 + tau * tau);
  };
  const dense = (c: number, fanIn: number, fanOut: number, part: 'weight' | 'bias') => {
    const s = (fanIn * fanOut) ** -0.25;
    if (demo) return part === 'weight' ? c / (N * s) : c / N;
    return (c * shared(N)) / s;
  };
  if (name === 'pad_shift.padding') return cL * shared(B);
  if (name === 'readout.weight' || name === 'readout.bias') return demo ? (name === 'readout.weight' ? cL / N / readoutOut : cL / N) : (cL * shared(N)) / readoutOut;
  if (name === 'embedding.weight') return cX * (demo ? V / N : (V / N) ** 0.5);
  if (name.startsWith('embed_norm.') || name.startsWith('final_norm.')) return cX * shared(N);
  const match = /^layers\.(\d+)\.(attention|conv|rnn|ffn)\.(.+)$/.exec(name);
  if (!match) throw new Error(`no rule for ${name}`);
  const layer = Number(match[1]);
  const branch = match[2];
  const rest = match[3];
  const index = 2 * layer + (branch === 'ffn' ? 1 : 0);
  const cB = cX / branchWeight(index);
  if (rest.startsWith('norm.')) return (config.model.norm === 'post' ? cX : cB) * shared(N);
  const inner = attention.heads * attention.head_size;
  switch (`${branch}.${rest}`) {
    case 'ffn.up.weight':
      return dense(cB, H, m * H, 'weight');
    case 'ffn.up.bias':
      return dense(cB, H, m * H, 'bias');
    case 'ffn.down.weight':
      return dense(cB, m * H, H, 'weight');
    case 'ffn.down.bias':
      return dense(cB, m * H, H, 'bias');
    case 'attention.qkv.weight':
      return dense(cB, H, 3 * inner, 'weight');
    case 'attention.out.weight':
      return dense(cB, inner, H, 'weight');
    case 'attention.out.bias':
      return dense(cB, inner, H, 'bias');
    case 'attention.query_bias':
      return cB * shared(N);
    case 'attention.positional':
      // a cut edge: output F^-½, weight gradient over the L rows of the sinusoid table
      return (cB * shared(L)) / attention.frequencies ** -0.5;
    case 'conv.kernel':
      return dense(cB, (conv.kernel * H) / conv.groups, (conv.kernel * H) / conv.groups, 'weight');
    case 'conv.bias':
      return dense(cB, (conv.kernel * H) / conv.groups, (conv.kernel * H) / conv.groups, 'bias');
    case 'rnn.gates.weight':
      return dense(cB, 2 * H, 2 * H, 'weight');
    case 'rnn.gates.bias':
      return dense(cB, 2 * H, 2 * H, 'bias');
    case 'rnn.initial_state':
      return cB * shared(B);
  }
  throw new Error(`no rule for ${name}`);
}
