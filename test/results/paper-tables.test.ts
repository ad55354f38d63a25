import { describe, expect, it } from 'vitest';
import { PAPER_BERT_SQUAD, PAPER_CHARLM_TEST_BPC } from '../../src/results/paper-tables.ts';

describe('paper tables', () => {
  it('char-LM: 20 distinct (mixer, norm, variant) entries as in §A9', () => {
    expect(PAPER_CHARLM_TEST_BPC).toHaveLength(20);
    const keys = PAPER_CHARLM_TEST_BPC.map((r) => [r.mixer, r.norm, r.precision, r.scaling, r.loss_scale].join('/'));
    expect(new Set(keys).size).toBe(20);
    const find = (mixer: string, norm: string, precision: string, scaling: string, lossScale: number) =>
      PAPER_CHARLM_TEST_BPC.find(
        (r) => r.mixer === mixer && r.norm === norm && r.precision === precision && r.scaling === scaling && r.loss_scale === lossScale,
      )?.test_bpc;
    expect(find('attention', 'post', 'fp16', 'regular', 1)).toBe(1.66);
    expect(find('attention', 'post', 'fp16', 'unit', 1)).toBe(1.54);
    expect(find('attention', 'pre', 'fp16', 'regular', 2048)).toBe(1.587);
    expect(find('conv', 'pre', 'fp32', 'regular', 1)).toBe(1.625);
    expect(find('rnn', 'pre', 'fp32', 'unit', 1)).toBe(1.677);
    expect(find('conv', 'post', 'fp32', 'unit', 1)).toBeUndefined();
  });

  it('BERT: Table 3 entries, v2.0 omitted where the paper has none', () => {
    expect(PAPER_BERT_SQUAD.filter((r) => r.squad_version === '1.1')).toHaveLength(9);
    expect(PAPER_BERT_SQUAD.filter((r) => r.squad_version === '2.0')).toHaveLength(7);
    expect(PAPER_BERT_SQUAD).toContainEqual({
      model_size: 'large',
      method: 'unit scaling',
      precision: 'fp8',
      squad_version: '2.0',
      em: 79.29,
      f1: 82.29,
      em_std: 0.31,
      f1_std: 0.29,
    });
    expect(PAPER_BERT_SQUAD).toContainEqual(
      expect.objectContaining({ model_size: 'base', method: 'no scaling', squad_version: '1.1', em: 80.8, em_std: null }),
    );
  });
});
