/** Compiles (or fetches from the disk cache) and loads kernel modules on first use. */
import type { KernelCompiler } from './compiler.ts';
import { checkDriver, type DriverApi, type Handle } from './driver-api.ts';
import { Kernel, type ParamKind } from './launch.ts';

/** One NVRTC program: CUDA C source whose kernels are declared extern "C". */
export interface KernelModuleSource {
  readonly name: string;
  readonly source: string;
  readonly options: readonly string[];
}

export class KernelRegistry {
  private readonly modules = new Map<string, Handle>();
  private readonly kernels = new Map<string, Kernel>();

  constructor(
    private readonly api: DriverApi,
    readonly compiler: KernelCompiler,
  ) {}

  kernel(module: KernelModuleSource, name: string, kinds: readonly ParamKind[]): Kernel {
    const key = `${module.name}:${name}`;
    const cached = this.kernels.get(key);
    if (cached) return cached;
    const fnOut = new BigUint64Array(1);
    checkDriver(this.api, `cuModuleGetFunction(${name})`, this.api.cuModuleGetFunction(fnOut, this.load(module), name));
    const kernel = new Kernel(this.api, fnOut[0]!, name, kinds);
    this.kernels.set(key, kernel);
    return kernel;
  }

  private load(module: KernelModuleSource): Handle {
    const loaded = this.modules.get(module.name);
    if (loaded !== undefined) return loaded;
    const { image } = this.compiler.compile(module.name, module.source, module.options);
    const moduleOut = new BigUint64Array(1);
    checkDriver(this.api, `cuModuleLoadData(${module.name})`, this.api.cuModuleLoadData(moduleOut, image));
    this.modules.set(module.name, moduleOut[0]!);
    return moduleOut[0]!;
  }
}
