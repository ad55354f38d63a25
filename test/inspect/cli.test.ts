import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const repro = new URL('../../bin/repro.js', import.meta.url).pathname;
const run = (args: string[], env: NodeJS.ProcessEnv = process.env) => spawnSync(repro, args, { encoding: 'utf8', env });

/** charlm-quick made smaller still: an attention char-LM on the sample text. */
const SMALL = ['--set', 'model.hidden=32', '--set', 'model.attention.head_size=16', '--set', 'data.sequence_length=32', '--set', 'data.overlap=4'];

describe('repro inspect', () => {
  it('--json: one object per tensor with name, role, std, meanAbs, maxAbs and per-format fractions', () => {
    const r = run(['inspect', 'charlm-quick', '--scaling', 'unit', '--json', ...SMALL]);
    expect(r.status, r.stderr).toBe(0);
    const tensors = JSON.parse(r.stdout) as Record<string, unknown>[];
    const roles = new Set(tensors.map((t) => t.role));
    expect([...roles].sort()).toEqual(['activation', 'gradient', 'weight', 'weight-gradient']);
    const logits = tensors.find((t) => t.name === 'logits' && t.role === 'gradient')!;
    expect(Object.keys(logits).sort()).toEqual(['formats', 'maxAbs', 'meanAbs', 'name', 'role', 'shape', 'std', 'zeros']);
    expect(Object.keys(logits.formats as object)).toEqual(['fp16', 'e4m3-paper', 'e5m2-paper']);
    expect((logits.formats as Record<string, object>).fp16).toEqual({ underflow: expect.any(Number), overflow: expect.any(Number) });
    expect(tensors.some((t) => t.name === 'layers.1.ffn.up.weight' && t.role === 'weight-gradient')).toBe(true);
  });

  it('prints an aligned table and draws an SVG plot; --precision and --set reach the model', () => {
    const dir = mkdtempSync(join(tmpdir(), 'repro-inspect-'));
    const plot = join(dir, 'scales.svg');
    const r = run(['inspect', 'charlm-quick', '--precision', 'fp8', '--set', 'precision.fp8_family=ocp', '--plot', plot, ...SMALL]);
    expect(r.status, r.stderr).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines[0]).toMatch(/^charlm-quick: attention char-LM, depth 2, hidden 32; scaling regular; precision fp8; batch 8x32 from sample/);
    const header = lines.find((l) => l.startsWith('tensor '))!;
    expect(header).toMatch(/std\s+log2 std\s+mean\|x\|\s+max\|x\|\s+zeros\s+fp16 under\s+fp16 over\s+e4m3 under\s+e4m3 over\s+e5m2 under\s+e5m2 over$/);
    const row = lines.find((l) => l.startsWith('embed_norm ') && l.includes('activation'))!;
    expect(row.indexOf('activation')).toBe(header.indexOf('role'));
    const svg = readFileSync(plot, 'utf8');
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg).toContain('E4M3 (OCP)');
    expect(svg).toContain('layers.*.ffn.up (×2)');
    expect(svg.trim().endsWith('</svg>')).toBe(true);
  });

  it('rejects a PNG plot in one line (exit 2) before doing any work', () => {
    const r = run(['inspect', 'charlm-quick', '--plot', 'out.png']);
    expect(r.status).toBe(2);
    expect(r.stderr).toBe('repro: --plot out.png: PNG output is not supported; write an .svg (rsvg-convert, ImageMagick or a browser turn it into a PNG)\n');
  });

  it('falls back to the sample text when WikiText-103 is not downloaded, with a note on stderr', () => {
    const dir = mkdtempSync(join(tmpdir(), 'repro-inspect-data-'));
    const r = run(
      ['inspect', 'charlm-conv', '--set', 'model.depth=1', '--set', 'model.hidden=16', '--set', 'data.sequence_length=16', '--set', 'data.overlap=2'],
      { ...process.env, REPRO_DATA_DIR: dir },
    );
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toBe('inspect: WikiText-103 is not downloaded; using the shipped sample text (statistics at initialisation do not depend on the text)\n');
    expect(r.stdout).toMatch(/from sample \(vocab \d+\)/);
  });
});
