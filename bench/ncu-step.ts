// One training step bracketed by cuProfilerStart/Stop, for Nsight Compute:
// `ncu --profile-from-start off --metrics gpu__time_duration.sum --csv tsx bench/ncu-step.ts --only "<case>"`
// gives every kernel's own GPU time (the per-kernel view a CUDA-graph replay hides).
// --matmul simulated|native (default native) picks how 16-bit and FP8 products run.
import { parseArgs } from 'node:util';
import * as T from '../src/tensor/index.ts';
import { createBackend } from '../src/backend/select.ts';
import type { CudaBackend } from '../src/backend/cuda/backend.ts';
import { benchCharLmCases, trainingStep } from './charlm-cases.ts';
import { referenceCases } from './reference-cases.ts';

const { values } = parseArgs({
  options: { only: { type: 'string', default: 'paper reference regular fp32' }, matmul: { type: 'string', default: 'native' } },
});
if (values.matmul !== 'native' && values.matmul !== 'simulated') {
  console.error(`ncu-step: --matmul must be native or simulated (got ${values.matmul})`);
  process.exit(2);
}
const backend = (await createBackend('cuda')) as unknown as CudaBackend;
T.setDefaultBackend(backend);
T.setRandomContext(new T.RandomContext(1));
const lib = backend.runtime.device.library.handle;
const start = lib.func('int cuProfilerStart()');
const stop = lib.func('int cuProfilerStop()');
// --matmul simulated profiles the char-LMs as the experiments' YAML runs them (FP32 products of rounded values).
const native = values.matmul === 'native';
const all = [...referenceCases(native), ...(await benchCharLmCases(native))];
const c = all.find((x) => x.key === values.only);
if (!c) throw new Error(`no case ${values.only}`);
const built = c.build();
const { step } = trainingStep(built);
step();
step();
backend.synchronize();
start();
step();
backend.synchronize();
stop();
console.log(`profiled one step of ${c.key}`);
