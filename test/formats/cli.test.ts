import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { main } from '../../src/cli/main.ts';

class ExitCalled extends Error {
  constructor(readonly code: number | undefined) {
    super(`process.exit(${code})`);
  }
}

/** Runs `repro ...args` in-process; returns what it wrote and the exit code (0 if none). */
async function repro(...args: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
  let stdout = '';
  let stderr = '';
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stdout += String(chunk);
    return true;
  });
  vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stderr += String(chunk);
    return true;
  });
  vi.spyOn(process, 'exit').mockImplementation((code?: string | number | null) => {
    throw new ExitCalled(typeof code === 'number' ? code : undefined);
  });
  try {
    await main(args);
    return { stdout, stderr, code: 0 };
  } catch (err) {
    if (err instanceof ExitCalled) return { stdout, stderr, code: err.code ?? 0 };
    throw err;
  } finally {
    vi.restoreAllMocks();
  }
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('repro formats', () => {
  it('prints the format table', async () => {
    const { stdout, code } = await repro('formats');
    expect(code).toBe(0);
    const lines = stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^format\s+bits\s+E\s+M\s+bias/);
    expect(lines.map((l) => l.split(/\s+/)[0])).toEqual(['format', 'fp32', 'fp16', 'bf16', 'e4m3', 'e5m2', 'e4m3-paper', 'e5m2-paper']);
    expect(lines.find((l) => l.startsWith('e4m3-paper'))).toMatch(/\s240\s+2\^-7\s+2\^-10\s+2\^-3$/);
  });

  it('casts values, negative and non-finite ones included, one per line', async () => {
    const { stdout, code } = await repro('formats', 'cast', '--format', 'e4m3-paper', '-1.35', '1000', '-inf', 'nan', '-1e-3', '1.0625', '-0');
    expect(code).toBe(0);
    expect(stdout).toBe(['-1.375', '240', '-240', 'nan', '-0.0009765625', '1', '-0', ''].join('\n'));
  });

  it('takes values after -- as well', async () => {
    const { stdout } = await repro('formats', 'cast', '--format', 'e2m1', '--', '-1.35', '-inf');
    expect(stdout).toBe('-1.5\n-3\n');
  });

  it('prints a JSON array with nan/inf as strings (overflow inf)', async () => {
    const { stdout, code } = await repro('formats', 'cast', '--format', 'e5m2', '--overflow', 'inf', '--json', '1e5', '-1e5', 'nan', '0.3', '-0');
    expect(code).toBe(0);
    const parsed = JSON.parse(stdout) as (number | string)[];
    expect(parsed).toEqual(['inf', '-inf', 'nan', 0.3125, -0]);
    expect(Object.is(parsed[4], -0)).toBe(true);
  });

  it('stochastic rounding is seeded and picks neighbours', async () => {
    const args = ['formats', 'cast', '--format', 'e2m1', '--rounding', 'stochastic', '--json', ...new Array(50).fill('-1.35')];
    const first = JSON.parse((await repro(...args, '--seed', '3')).stdout) as number[];
    const again = JSON.parse((await repro(...args, '--seed', '3')).stdout) as number[];
    const other = JSON.parse((await repro(...args, '--seed', '4')).stdout) as number[];
    expect(first).toEqual(again);
    expect(first).not.toEqual(other);
    expect(new Set(first)).toEqual(new Set([-1, -1.5]));
  });

  it('rejects an unknown format and a bad value with one line, exit code 2', async () => {
    const bad = await repro('formats', 'cast', '--format', 'fp7', '1');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^repro: unknown number format "fp7": expected fp32, fp16, bf16, e4m3, e5m2, e4m3-paper, e5m2-paper.*\n$/);
    expect(bad.stderr.trimEnd().split('\n')).toHaveLength(1);
    const value = await repro('formats', 'cast', '--format', 'e4m3', '1', 'abc');
    expect(value.code).toBe(2);
    expect(value.stderr).toBe('repro: invalid value "abc": expected a decimal number, nan, inf or -inf\n');
  });
});

describe('./bin/repro.js', () => {
  it('exits with code 2 and one stderr line for a bad format', async () => {
    const bin = fileURLToPath(new URL('../../bin/repro.js', import.meta.url));
    const error = await promisify(execFile)(process.execPath, [bin, 'formats', 'cast', '--format', 'e4m4x', '-1.5']).then(
      () => null,
      (err: { code: number; stderr: string; stdout: string }) => err,
    );
    expect(error).not.toBeNull();
    expect(error!.code).toBe(2);
    expect(error!.stdout).toBe('');
    expect(error!.stderr).toMatch(/^repro: unknown number format "e4m4x": [^\n]*\n$/);
  });
});
