import { isFormat16, type LayerNormGradParams, type LayerNormParams, type Storage } from './backend.ts';

/** A storage that may be 16-bit only in the format it is read as (as stored: rounding changes nothing). */
function readAs(op: string, name: string, storage: Storage, format: string | undefined): void {
  if (storage.dtype === 'f32') return;
  if (!isFormat16(storage.dtype) || storage.dtype !== format) {
    throw new TypeError(`${op}: ${name} is ${storage.dtype} storage, which needs its read format ${storage.dtype}, got ${format ?? 'none'}`);
  }
}

/** The storage types layerNorm takes, the same checks on every backend (see LayerNormParams). */
export function checkLayerNormStorage(p: LayerNormParams): void {
  if (p.sumOf) readAs('layerNorm', 'sumOf.a', p.sumOf.a, p.sumOf.readFormatA);
  if (p.out.dtype !== 'f32' && !isFormat16(p.out.dtype)) throw new TypeError(`layerNorm: out must be float32 or 16-bit storage, got ${p.out.dtype}`);
}

/** The storage types layerNormGrad takes, the same checks on every backend (see LayerNormGradParams). */
export function checkLayerNormGradStorage(p: LayerNormGradParams): void {
  readAs('layerNormGrad', 'gradOut', p.gradOut, p.gradOutReadFormat);
  if (p.gradXCopy16 && !isFormat16(p.gradXCopy16.target.dtype)) throw new TypeError(`layerNormGrad: gradXCopy16 must be 16-bit storage, got ${p.gradXCopy16.target.dtype}`);
}
