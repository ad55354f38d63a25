import type { CommandModule } from 'yargs';
import { ReproError } from '../errors.ts';
import { quantise, type OverflowPolicy, type Rounding } from '../formats/quantise.ts';
import { parseFormat } from '../formats/registry.ts';
import { formatTable, renderFormatTable } from '../formats/table.ts';
import { formatValueText, parseValueText, valuesToJson } from '../formats/values.ts';

interface CastArgs {
  values?: (string | number)[];
  '--'?: (string | number)[];
  format: string;
  rounding: Rounding;
  overflow: OverflowPolicy;
  seed: number;
  'via-fp16': boolean;
  json: boolean;
}

const castCommand: CommandModule<object, CastArgs> = {
  command: 'cast [values..]',
  describe: 'Round values to a number format (inputs are float32 first) and print the results',
  builder: (yargs) =>
    yargs
      // Values such as -inf or -1e-3 look like flags to the parser; let them through as values.
      .parserConfiguration({ 'unknown-options-as-args': true, 'populate--': true })
      .positional('values', { type: 'string', array: true, describe: 'numbers, nan, inf or -inf' })
      .option('format', { type: 'string', demandOption: true, describe: 'format name (see repro formats)' })
      .option('rounding', {
        choices: ['nearest', 'stochastic'] as const,
        default: 'nearest' as const,
        describe: 'nearest: ties to even; stochastic: unbiased, Philox-seeded',
      })
      .option('overflow', {
        choices: ['saturate', 'inf'] as const,
        default: 'saturate' as const,
        describe: "beyond max: clamp to ±max, or the format's own overflow (inf; NaN for e4m3)",
      })
      .option('seed', { type: 'number', default: 0, describe: 'Philox seed for stochastic rounding (value i uses stream element i)' })
      .option('via-fp16', { type: 'boolean', default: false, describe: 'round to fp16 first (the IPU double rounding)' })
      .option('json', { type: 'boolean', default: false, describe: 'print one JSON array; nan/inf/-inf as strings' })
      .example('$0 formats cast --format e4m3 -1.35 1000 nan', '')
      .example('$0 formats cast --format e2m1 --rounding stochastic --seed 7 --json -1.35 -1.35', ''),
  handler: (args) => {
    const texts = [...(args.values ?? []), ...(args['--'] ?? [])].map(String);
    if (texts.length === 0) throw new ReproError('formats cast: give at least one value to cast');
    const format = parseFormat(args.format);
    if (!Number.isSafeInteger(args.seed) || args.seed < 0) throw new ReproError(`--seed must be a non-negative integer (got ${args.seed})`);
    const values = new Float32Array(texts.map(parseValueText));
    quantise(values, values, format, {
      rounding: args.rounding,
      overflow: args.overflow,
      seed: args.seed,
      viaFp16: args['via-fp16'],
    });
    const text = args.json ? valuesToJson(values) : Array.from(values, formatValueText).join('\n');
    process.stdout.write(`${text}\n`);
  },
};

export const formatsCommand: CommandModule<object, object> = {
  command: 'formats',
  describe: 'List the number formats (bits, exponent/mantissa bits, bias, range); `formats cast` rounds values',
  builder: (yargs) => yargs.command(castCommand),
  handler: () => {
    process.stdout.write(`${renderFormatTable(formatTable())}\n`);
  },
};
