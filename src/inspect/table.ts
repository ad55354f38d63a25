import { formatTextTable } from '../results/text-table.ts';
import { formatFraction, formatValue } from './format-number.ts';
import type { InspectResult } from './run.ts';

/** Activation and activation-gradient std inside [1/4, 4] (the paper's "unit scale" band). */
export function unitBandCount(result: InspectResult): { inside: number; total: number } {
  const rows = result.tensors.filter((t) => t.role === 'activation' || t.role === 'gradient');
  return { inside: rows.filter((t) => t.std >= 0.25 && t.std <= 4).length, total: rows.length };
}

/** One-line description of the configuration the tensors come from. */
export function describeRun(result: InspectResult): string {
  const { config } = result;
  const scaling = config.scaling.mode === 'unit' ? `unit (${config.scaling.rules}, ${config.scaling.constraint})` : 'regular';
  return [
    `${result.experiment}: ${config.model.mixer} char-LM, depth ${config.model.depth}, hidden ${config.model.hidden}`,
    `scaling ${scaling}`,
    `precision ${config.precision.mode}`,
    `batch ${config.data.sequences}x${config.data.sequence_length} from ${result.dataset} (vocab ${result.vocabSize})`,
    `loss scale ${result.lossScale}`,
  ].join('; ');
}

/** The aligned text table `repro inspect` prints. */
export function renderInspectTable(result: InspectResult): string {
  const formatNames = result.formats.map((f) => f.name);
  const headers = [
    'tensor',
    'role',
    'shape',
    'std',
    'log2 std',
    'mean|x|',
    'max|x|',
    'zeros',
    ...formatNames.flatMap((name) => [`${name} under`, `${name} over`]),
  ];
  const rows = result.tensors.map((t) => [
    t.name,
    t.role,
    `[${t.shape.join(',')}]`,
    formatValue(t.std),
    t.std > 0 ? Math.log2(t.std).toFixed(1) : '-inf',
    formatValue(t.meanAbs),
    formatValue(t.maxAbs),
    formatFraction(t.zeros),
    ...formatNames.flatMap((name) => [formatFraction(t.formats[name].underflow), formatFraction(t.formats[name].overflow)]),
  ]);
  const band = unitBandCount(result);
  return [
    describeRun(result),
    `loss ${result.loss.toFixed(4)} nats/char; activations and gradients with std in [1/4, 4]: ${band.inside} of ${band.total}`,
    `under: nonzero values that round to 0 in the format; over: values beyond its largest finite value`,
    '',
    formatTextTable(headers, rows),
  ].join('\n');
}
