/*
 * The paper's published results as data (shared/spec/experiments.md §A9 and §B5), so runs can be
 * compared with them by `repro compare <results.csv> paper`.
 */

export interface PaperCharLmRow {
  mixer: 'attention' | 'conv' | 'rnn';
  norm: 'pre' | 'post';
  precision: 'fp16' | 'fp32';
  scaling: 'regular' | 'unit';
  loss_scale: number;
  /** median test BPC at the lr with the lowest median valid BPC */
  test_bpc: number;
}

/** 95% confidence interval of the char-LM test BPC entries, as stated with the table. */
export const PAPER_CHARLM_CI95 = 0.01;

type Variant = Pick<PaperCharLmRow, 'precision' | 'scaling' | 'loss_scale'>;

/** The table's columns, left to right. */
const VARIANTS: readonly Variant[] = [
  { precision: 'fp16', scaling: 'regular', loss_scale: 1 },
  { precision: 'fp16', scaling: 'unit', loss_scale: 1 },
  { precision: 'fp16', scaling: 'regular', loss_scale: 2048 },
  { precision: 'fp32', scaling: 'regular', loss_scale: 1 },
  { precision: 'fp32', scaling: 'unit', loss_scale: 1 },
];

/** The table's rows as printed in §A9. */
const CHARLM_TABLE: readonly [PaperCharLmRow['mixer'], PaperCharLmRow['norm'], readonly number[]][] = [
  ['attention', 'post', [1.66, 1.54, 1.555, 1.548, 1.54]],
  ['attention', 'pre', [1.661, 1.567, 1.587, 1.582, 1.562]],
  ['conv', 'pre', [1.654, 1.622, 1.627, 1.625, 1.62]],
  ['rnn', 'pre', [1.697, 1.673, 1.682, 1.674, 1.677]],
];

/** Test BPC of the paper's character language models, one entry per (mixer, norm, variant). */
export const PAPER_CHARLM_TEST_BPC: readonly PaperCharLmRow[] = CHARLM_TABLE.flatMap(([mixer, norm, values]) =>
  VARIANTS.map((variant, i) => ({ mixer, norm, ...variant, test_bpc: values[i] as number })),
);

export type BertMethod = 'no scaling' | 'loss scaling' | 'unit scaling';

export interface PaperBertRow {
  model_size: 'base' | 'large';
  method: BertMethod;
  precision: 'fp32' | 'fp16' | 'fp8';
  squad_version: '1.1' | '2.0';
  em: number;
  f1: number;
  /** standard deviation across pre-training checkpoints; null where the paper gives none */
  em_std: number | null;
  f1_std: number | null;
}

type BertScore = readonly [em: number, emStd: number | null, f1: number, f1Std: number | null] | null;

/** §B5 (the paper's Table 3): SQuAD v1.1 and v2.0 dev EM/F1; null where the paper has "—". */
const BERT_TABLE: readonly [PaperBertRow['model_size'], BertMethod, PaperBertRow['precision'], BertScore, BertScore][] = [
  ['base', 'no scaling', 'fp32', [80.8, null, 88.5, null], null],
  ['base', 'loss scaling', 'fp16', [80.55, 0.16, 88.19, 0.16], [73.36, 0.27, 76.47, 0.23]],
  ['base', 'unit scaling', 'fp16', [79.96, 0.31, 87.86, 0.44], [72.31, 0.6, 75.7, 0.53]],
  ['base', 'unit scaling', 'fp8', [80.15, 0.18, 88.04, 0.12], [72.28, 0.02, 75.67, 0.01]],
  ['large', 'no scaling', 'fp32', [84.1, null, 90.9, null], [78.7, null, 81.9, null]],
  ['large', 'loss scaling', 'fp16', [84.23, 0.2, 90.93, 0.14], [77.52, 0.63, 80.54, 0.61]],
  ['large', 'loss scaling', 'fp8', [83.4, 0.23, 90.69, 0.16], null],
  ['large', 'unit scaling', 'fp16', [85.67, 0.1, 92.14, 0.08], [79.94, 0.1, 82.97, 0.09]],
  ['large', 'unit scaling', 'fp8', [85.22, 0.03, 91.77, 0.1], [79.29, 0.31, 82.29, 0.29]],
];

/** The paper's BERT SQuAD results, one entry per (model, method, precision, SQuAD version) it reports. */
export const PAPER_BERT_SQUAD: readonly PaperBertRow[] = BERT_TABLE.flatMap(([model_size, method, precision, v11, v20]) =>
  (
    [
      ['1.1', v11],
      ['2.0', v20],
    ] as const
  ).flatMap(([squad_version, score]) =>
    score
      ? [{ model_size, method, precision, squad_version, em: score[0], em_std: score[1], f1: score[2], f1_std: score[3] }]
      : [],
  ),
);
