import { describe, expect, it } from 'vitest';
import { compareResults, formatComparison } from '../../src/results/compare.ts';
import type { ResultsTable } from '../../src/results/csv.ts';
import { reproErrorOf } from '../config/helpers.ts';

function table(rows: Record<string, string | number>[]): ResultsTable {
  const columns = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  return { columns, rows: rows.map((r) => Object.fromEntries(columns.map((c) => [c, r[c] === undefined ? '' : String(r[c])]))) };
}

const ATTN_PRE_FP32 = { mixer: 'attention', depth: 8, norm: 'pre', precision: 'fp32', scaling: 'regular', loss_scale: 1, steps: 16384 };

describe('compareResults with the paper char-LM table', () => {
  // Two lrs × three reps: lr 2^-10 has the lower median valid BPC (1.60), so its median test BPC (1.59) is ours.
  const ours = table([
    { ...ATTN_PRE_FP32, lr: 2 ** -11, valid_bpc: 1.62, test_bpc: 1.55 },
    { ...ATTN_PRE_FP32, lr: 2 ** -11, valid_bpc: 1.64, test_bpc: 1.55 },
    { ...ATTN_PRE_FP32, lr: 2 ** -11, valid_bpc: 1.63, test_bpc: 1.55 },
    { ...ATTN_PRE_FP32, lr: 2 ** -10, valid_bpc: 1.6, test_bpc: 1.59 },
    { ...ATTN_PRE_FP32, lr: 2 ** -10, valid_bpc: 1.9, test_bpc: 1.8 },
    { ...ATTN_PRE_FP32, lr: 2 ** -10, valid_bpc: 1.5, test_bpc: 1.58 },
    { ...ATTN_PRE_FP32, lr: 2 ** -9, valid_bpc: 'NaN', test_bpc: 'NaN' },
    { ...ATTN_PRE_FP32, lr: 2 ** -9, valid_bpc: 1.0, test_bpc: 1.0 },
    { ...ATTN_PRE_FP32, lr: 2 ** -8, valid_bpc: '', test_bpc: '' }, // unfinished
    { ...ATTN_PRE_FP32, precision: 'fp8', lr: 2 ** -10, valid_bpc: 1.7, test_bpc: 1.71 },
  ]);

  it('picks the lr by median valid BPC, joins on the paper columns and diffs test BPC', () => {
    const comparison = compareResults(ours, 'paper-charlm', ['ours', 'paper']);
    const row = comparison.rows.find((r) => r.key['mixer'] === 'attention' && r.key['norm'] === 'pre' && r.key['precision'] === 'fp32' && r.key['scaling'] === 'regular');
    expect(row?.a).toEqual({ lr: 2 ** -10, valid_bpc: 1.6, test_bpc: 1.59 });
    expect(row?.b).toEqual({ test_bpc: 1.582 });
    // 20 paper rows (19 without runs) plus our fp8 configuration, which the paper lacks
    expect(comparison.rows).toHaveLength(21);
    expect(comparison.rows.at(-1)?.key['precision']).toBe('fp8');
    expect(comparison.rows.at(-1)?.b).toEqual({});
    expect(comparison.common).toEqual({ depth: '8', steps: '16384' });
    expect(comparison.keyColumns).toEqual(['mixer', 'norm', 'scaling', 'precision', 'loss_scale']);
  });

  it('formats a table with both values and the difference', () => {
    const text = formatComparison(compareResults(ours, 'paper-charlm', ['ours', 'paper']));
    const lines = text.split('\n');
    expect(lines[0]).toBe('common: depth=8 steps=16384');
    expect(lines[1]).toMatch(/^mixer\s+norm\s+scaling\s+precision\s+loss_scale\s+lr ours\s+valid_bpc ours\s+test_bpc ours\s+test_bpc paper\s+diff$/);
    const attentionPre = lines.find((l) => /^attention\s+pre\s+regular\s+fp32\s+1\s/.test(l));
    expect(attentionPre?.split(/\s+/)).toEqual(['attention', 'pre', 'regular', 'fp32', '1', '2^-10', '1.600', '1.590', '1.582', '+0.008']);
    const missing = lines.find((l) => /^rnn\s+pre\s+unit\s+fp16\s+1\s/.test(l));
    expect(missing?.split(/\s+/)).toEqual(['rnn', 'pre', 'unit', 'fp16', '1', '—', '—', '—', '1.673', '—']);
    expect(text).toMatch(/diff = ours − paper/);
  });

  it('needs the columns that identify a paper row', () => {
    const message = reproErrorOf(() => compareResults(table([{ mixer: 'conv', valid_bpc: 1.7 }]), 'paper-charlm', ['mine.csv', 'paper']));
    expect(message).toMatch(/^mine\.csv: no column norm, precision, scaling, loss_scale/);
  });
});

describe('compareResults of two results files', () => {
  it('joins char-LM results per configuration and diffs valid and test BPC', () => {
    const a = table([
      { ...ATTN_PRE_FP32, lr: 2 ** -10, valid_bpc: 1.6, test_bpc: 1.59 },
      { ...ATTN_PRE_FP32, scaling: 'unit', lr: 2 ** -6, valid_bpc: 1.58, test_bpc: 1.57 },
    ]);
    const b = table([
      { ...ATTN_PRE_FP32, scaling: 'unit', lr: 2 ** -7, valid_bpc: 1.55, test_bpc: 1.56 },
      { ...ATTN_PRE_FP32, mixer: 'conv', lr: 2 ** -10, valid_bpc: 1.65, test_bpc: 1.64 },
    ]);
    const comparison = compareResults(a, b, ['a.csv', 'b.csv']);
    expect(comparison.keyColumns).toEqual(['mixer', 'scaling']);
    expect(comparison.rows.map((r) => [r.key['mixer'], r.key['scaling']])).toEqual([
      ['attention', 'regular'],
      ['attention', 'unit'],
      ['conv', 'regular'],
    ]);
    const text = formatComparison(comparison);
    const unit = text.split('\n').find((l) => /^attention\s+unit/.test(l));
    expect(unit?.split(/\s+/)).toEqual(['attention', 'unit', '2^-6', '2^-7', '1.580', '1.550', '+0.030', '1.570', '1.560', '+0.010']);
    expect(text).toMatch(/^attention\s+regular\s+2\^-10\s+—\s+1\.600\s+—\s+—/m);
  });

  it('refuses to compare char-LM with BERT results', () => {
    const charlm = table([{ ...ATTN_PRE_FP32, lr: 1, valid_bpc: 1.6 }]);
    const bert = table([{ model_size: 'base', scaling: 'unit', precision: 'fp16', squad_version: '1.1', em: 80, f1: 88 }]);
    expect(reproErrorOf(() => compareResults(charlm, bert, ['c.csv', 'b.csv']))).toBe('c.csv holds charlm results but b.csv holds bert results');
  });
});

describe('compareResults with the paper BERT table', () => {
  it('averages runs per (size, method, precision, version) and diffs EM and F1', () => {
    const ours = table([
      { model_size: 'base', scaling: 'unit', precision: 'fp8', loss_scale: 1, squad_version: '1.1', em: 80.0, f1: 88.0 },
      { model_size: 'base', scaling: 'unit', precision: 'fp8', loss_scale: 1, squad_version: '1.1', em: 81.0, f1: 87.0 },
      { model_size: 'base', scaling: 'regular', precision: 'fp16', loss_scale: 512, squad_version: '2.0', em: 73.0, f1: 76.0 },
    ]);
    const comparison = compareResults(ours, 'paper-bert', ['ours', 'paper']);
    const unitFp8 = comparison.rows.find(
      (r) => r.key['method'] === 'unit scaling' && r.key['precision'] === 'fp8' && r.key['model_size'] === 'base' && r.key['squad_version'] === '1.1',
    );
    expect(unitFp8?.a).toEqual({ em: 80.5, f1: 87.5 });
    expect(unitFp8?.b).toEqual({ em: 80.15, f1: 88.04 });
    const lossScaled = comparison.rows.find((r) => r.key['method'] === 'loss scaling' && r.key['squad_version'] === '2' && r.key['model_size'] === 'base');
    expect(lossScaled?.a).toEqual({ em: 73, f1: 76 });
    expect(comparison.rows).toHaveLength(16);
    const line = formatComparison(comparison)
      .split('\n')
      .find((l) => /^base\s+unit scaling\s+fp8\s+1\.1\s/.test(l));
    expect(line?.replace('unit scaling', 'unit_scaling').split(/\s+/)).toEqual(['base', 'unit_scaling', 'fp8', '1.1', '80.50', '80.15', '+0.35', '87.50', '88.04', '-0.54']);
  });
});
