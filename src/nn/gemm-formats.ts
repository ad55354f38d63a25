import type { GemmParams } from '../backend/backend.ts';

/**
 * The precision a GEMM's operands already have (forward) and the precision of the gradient that
 * arrives at its output (backward), so a backend may use low-precision GEMMs. Set only by the
 * precision policy (precision.ts) after it has quantised the operands; absent means FP32.
 */
export interface GemmFormats {
  readonly inputFormat?: GemmParams['inputFormat'];
  readonly gradFormat?: GemmParams['inputFormat'];
  /** FP16/BF16 native products that round their own operands (GemmParams.roundInputs). */
  readonly roundInputs?: boolean;
}
