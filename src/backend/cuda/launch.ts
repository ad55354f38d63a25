/**
 * Kernel launches with the parameter block built once per kernel: a native buffer holds one 8-byte
 * slot per parameter (larger for structs passed by value) followed by the array of slot addresses
 * that cuLaunchKernel reads. A launch writes the values into the slots through typed-array views
 * and makes one FFI call; the driver copies the values at launch, so the slots are reused at once.
 */
import koffi from 'koffi';
import { CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, checkDriver, type DriverApi, type Handle } from './driver-api.ts';

/**
 * Parameter kinds: 'p' device pointer (u64), 'l' int64, 'i' int32, 'u' uint32, 'f' float, 'd' double, and
 * 'sN' a struct of N 32-bit words passed by value (an Int32Array of length N).
 */
export type ParamKind = 'p' | 'l' | 'i' | 'u' | 'f' | 'd' | `s${number}`;
export type KernelArg = number | Int32Array;

const KIND_POINTER = 0;
const KIND_INT = 1;
const KIND_UINT = 2;
const KIND_FLOAT = 3;
const KIND_DOUBLE = 4;
const KIND_STRUCT = 5;
const TWO_32 = 4294967296;
// A 64-bit integer ('l') is written like a pointer: low and high words, two's complement.
const SCALAR_KINDS: Record<string, number> = { p: KIND_POINTER, l: KIND_POINTER, i: KIND_INT, u: KIND_UINT, f: KIND_FLOAT, d: KIND_DOUBLE };

/**
 * Writes non-negative integers below 2^53 (device addresses, element strides) into `words` as
 * (low, high) 32-bit pairs from word `first` on: how a 64-bit field of a by-value struct argument
 * ('sN') is laid out.
 */
export function writeWideWords(words: Int32Array, values: readonly number[], first = 0): void {
  values.forEach((v, i) => {
    words[first + 2 * i] = v % TWO_32 | 0;
    words[first + 2 * i + 1] = Math.floor(v / TWO_32);
  });
}

export class Kernel {
  private readonly kinds: Uint8Array;
  /** Offset of each slot in 32-bit words. */
  private readonly slots: Int32Array;
  private readonly structWords: Int32Array;
  private readonly u32: Uint32Array;
  private readonly i32: Int32Array;
  private readonly f32: Float32Array;
  private readonly f64: Float64Array;
  private readonly paramsAddress: bigint;

  constructor(
    private readonly api: DriverApi,
    private readonly fn: Handle,
    readonly name: string,
    kinds: readonly ParamKind[],
  ) {
    this.kinds = new Uint8Array(kinds.length);
    this.slots = new Int32Array(kinds.length);
    this.structWords = new Int32Array(kinds.length);
    let words = 0;
    kinds.forEach((kind, index) => {
      this.slots[index] = words;
      if (kind.startsWith('s')) {
        const n = Number(kind.slice(1));
        this.kinds[index] = KIND_STRUCT;
        this.structWords[index] = n;
        words += 2 * Math.ceil(n / 2);
      } else {
        const scalar = SCALAR_KINDS[kind];
        if (scalar === undefined) throw new Error(`kernel ${name}: unknown parameter kind ${kind}`);
        this.kinds[index] = scalar;
        words += 2;
      }
    });
    const valueBytes = words * 4;
    const totalBytes = valueBytes + 8 * kinds.length;
    // Kept for the life of the process: kernels are created once and cached by the backend.
    const base = koffi.alloc('uint8_t', Math.max(totalBytes, 8)) as bigint;
    const buffer = koffi.view(base, Math.max(totalBytes, 8));
    this.u32 = new Uint32Array(buffer);
    this.i32 = new Int32Array(buffer);
    this.f32 = new Float32Array(buffer);
    this.f64 = new Float64Array(buffer);
    const addresses = new BigUint64Array(buffer, valueBytes, kinds.length);
    for (let index = 0; index < kinds.length; index++) addresses[index] = base + BigInt(this.slots[index]! * 4);
    this.paramsAddress = base + BigInt(valueBytes);
  }

  private dynamicSharedLimit = 48 * 1024;

  /** Lets launches ask for up to `bytes` of dynamic shared memory (beyond 48 KB needs opting in). */
  allowDynamicShared(bytes: number): void {
    if (bytes <= this.dynamicSharedLimit) return;
    checkDriver(this.api, `cuFuncSetAttribute(${this.name})`, this.api.cuFuncSetAttribute(this.fn, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, bytes));
    this.dynamicSharedLimit = bytes;
  }

  /** Queues the kernel on `stream` with a (gridX, gridY, gridZ) grid of `block`-thread blocks. */
  launch(stream: Handle, gridX: number, gridY: number, block: number, sharedBytes: number, args: readonly KernelArg[], gridZ = 1): void {
    const kinds = this.kinds;
    if (args.length !== kinds.length) throw new Error(`kernel ${this.name}: ${args.length} arguments for ${kinds.length} parameters`);
    for (let index = 0; index < kinds.length; index++) {
      const slot = this.slots[index]!;
      const value = args[index]!;
      switch (kinds[index]) {
        case KIND_POINTER: {
          const word = value as number;
          this.u32[slot] = word >>> 0;
          this.u32[slot + 1] = Math.floor(word / TWO_32);
          break;
        }
        case KIND_INT:
          this.i32[slot] = value as number;
          break;
        case KIND_UINT:
          this.u32[slot] = value as number;
          break;
        case KIND_FLOAT:
          this.f32[slot] = value as number;
          break;
        case KIND_DOUBLE:
          this.f64[slot >> 1] = value as number;
          break;
        default: {
          const words = value as Int32Array;
          if (words.length !== this.structWords[index]) throw new Error(`kernel ${this.name}: struct argument ${index} needs ${this.structWords[index]} words`);
          this.i32.set(words, slot);
        }
      }
    }
    const code = this.api.cuLaunchKernel(this.fn, gridX, gridY, gridZ, block, 1, 1, sharedBytes, stream, this.paramsAddress, null);
    if (code !== 0) checkDriver(this.api, `cuLaunchKernel(${this.name})`, code);
  }
}
