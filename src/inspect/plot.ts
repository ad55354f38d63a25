import type { FloatFormat } from '../formats/format.ts';
import type { TensorRole } from '../nn/probe.ts';
import type { InspectResult } from './run.ts';
import type { TensorReport } from './stats.ts';
import { describeRun, unitBandCount } from './table.ts';

/**
 * The paper's central picture as an SVG: log2(std) of every tensor at initialisation, the forward
 * value (circle) and the backward gradient (diamond) of each activation and weight, against the
 * ranges FP16, E5M2 and E4M3 can represent. Tensors that repeat in every layer share one row (one
 * mark per layer, joined by a line from the smallest to the largest).
 */

interface PlotRow {
  readonly label: string;
  readonly section: 'activations' | 'weights';
  readonly forward: number[];
  readonly backward: number[];
  /** the forward tensors are constants (std 0: LayerNorm gains, zero-initialised vectors) */
  readonly constant: boolean;
  readonly layers: number;
}

const FORWARD: Record<'activations' | 'weights', TensorRole> = { activations: 'activation', weights: 'weight' };

/** Groups tensors by name with the layer index replaced by `*`, in first-seen order. */
export function plotRows(tensors: readonly TensorReport[]): PlotRow[] {
  const groups = new Map<string, { section: 'activations' | 'weights'; forward: TensorReport[]; backward: TensorReport[] }>();
  for (const t of tensors) {
    const section = t.role === 'activation' || t.role === 'gradient' ? 'activations' : 'weights';
    const key = `${section}:${t.name.replace(/^layers\.\d+\./, 'layers.*.')}`;
    const group = groups.get(key) ?? { section, forward: [], backward: [] };
    (t.role === FORWARD[section] ? group.forward : group.backward).push(t);
    groups.set(key, group);
  }
  const log2 = (list: TensorReport[]) => list.filter((t) => t.std > 0 && Number.isFinite(t.std)).map((t) => Math.log2(t.std));
  return [...groups.entries()].map(([key, g]) => ({
    label: key.slice(key.indexOf(':') + 1),
    section: g.section,
    forward: log2(g.forward),
    backward: log2(g.backward),
    constant: g.forward.length > 0 && g.forward.every((t) => t.std === 0),
    layers: Math.max(g.forward.length, g.backward.length),
  }));
}

const COLOURS = {
  forward: '#1f4e9c',
  backward: '#d1462f',
  fp16: '#4c9a2a',
  e5m2: '#7b4ab8',
  e4m3: '#e08a00',
  unit: '#000000',
  grid: '#e4e4e4',
  text: '#222222',
  muted: '#666666',
};

function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function formatColour(format: FloatFormat): string {
  if (format.exponentBits === 4) return COLOURS.e4m3;
  if (format.exponentBits === 5 && format.mantissaBits === 2) return COLOURS.e5m2;
  return COLOURS.fp16;
}

function formatLabel(format: FloatFormat): string {
  const names: Record<string, string> = {
    fp16: 'FP16',
    e4m3: 'E4M3 (OCP)',
    e5m2: 'E5M2 (OCP)',
    'e4m3-paper': 'E4M3 (paper)',
    'e5m2-paper': 'E5M2 (paper)',
  };
  return names[format.name] ?? format.name;
}

/** The SVG document for an inspection result. */
export function renderInspectPlot(result: InspectResult): string {
  const rows = plotRows(result.tensors);
  const values = rows.flatMap((r) => [...r.forward, ...r.backward]);
  const formats = result.formats;
  const formatEdges = formats.flatMap((f) => [Math.log2(f.minSubnormal), Math.log2(f.maxAbs)]);
  const lo = Math.floor(Math.min(...formatEdges, ...values) - 1);
  const hi = Math.ceil(Math.max(...formatEdges, ...values) + 1);

  const width = 1280;
  const left = 360;
  const right = 120;
  const rowHeight = 22;
  const strip = 24;
  const top = 134 + formats.length * strip + 16;
  const sectionGap = 34;
  const sections = (['activations', 'weights'] as const).filter((s) => rows.some((r) => r.section === s));
  const bodyHeight = rows.length * rowHeight + sections.length * sectionGap;
  const height = top + bodyHeight + 110;
  const x = (v: number) => left + ((v - lo) / (hi - lo)) * (width - left - right);
  const out: string[] = [];
  const text = (tx: number, ty: number, s: string, attrs = '') => out.push(`<text x="${tx.toFixed(1)}" y="${ty.toFixed(1)}" ${attrs}>${escapeXml(s)}</text>`);

  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" fill="${COLOURS.text}">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
  );
  const { config } = result;
  const scaling = config.scaling.mode === 'unit' ? `unit scaling (${config.scaling.rules}, ${config.scaling.constraint})` : 'regular (not unit-scaled)';
  text(16, 34, `${result.experiment} · ${scaling} · ${config.precision.mode.toUpperCase()}`, 'font-size="22" font-weight="bold"');
  text(16, 58, 'log₂(std) of every tensor at initialisation, one batch forward and backward, against the ranges of FP16 and FP8', 'font-size="15"');
  const band = unitBandCount(result);
  text(16, 80, describeRun(result), `font-size="12" fill="${COLOURS.muted}"`);
  text(
    16,
    97,
    `loss ${result.loss.toFixed(3)} nats/char · activations and activation gradients with std in [1/4, 4]: ${band.inside} of ${band.total}`,
    `font-size="12" fill="${COLOURS.muted}"`,
  );

  // Format ranges: subnormal part light, normal part solid, with the limits written at the ends.
  const plotTop = top;
  const plotBottom = top + bodyHeight;
  formats.forEach((f, i) => {
    const y = 126 + i * strip;
    const colour = formatColour(f);
    const sub = x(Math.log2(f.minSubnormal));
    const normal = x(Math.log2(f.minNormal));
    const max = x(Math.log2(f.maxAbs));
    text(left - 12, y + 12, formatLabel(f), `font-size="14" font-weight="bold" text-anchor="end" fill="${colour}"`);
    out.push(`<rect x="${sub.toFixed(1)}" y="${y}" width="${(normal - sub).toFixed(1)}" height="16" fill="${colour}" fill-opacity="0.3"/>`);
    out.push(`<rect x="${normal.toFixed(1)}" y="${y}" width="${(max - normal).toFixed(1)}" height="16" fill="${colour}" fill-opacity="0.85"/>`);
    text(sub - 4, y + 12, `${Math.log2(f.minSubnormal)}`, `font-size="11" text-anchor="end" fill="${colour}"`);
    text(max + 4, y + 12, `max ${f.maxAbs}`, `font-size="11" fill="${colour}"`);
    // The range's edges carried down behind the tensors: dashed where values underflow to 0.
    out.push(`<line x1="${sub.toFixed(1)}" y1="${plotTop}" x2="${sub.toFixed(1)}" y2="${plotBottom}" stroke="${colour}" stroke-width="1.2" stroke-dasharray="5,4"/>`);
    out.push(`<line x1="${max.toFixed(1)}" y1="${plotTop}" x2="${max.toFixed(1)}" y2="${plotBottom}" stroke="${colour}" stroke-width="1.2"/>`);
  });
  // The unit band [1/4, 4].
  out.push(
    `<rect x="${x(-2).toFixed(1)}" y="${plotTop}" width="${(x(2) - x(-2)).toFixed(1)}" height="${bodyHeight}" fill="#000000" fill-opacity="0.07"/>`,
    `<line x1="${x(0).toFixed(1)}" y1="${plotTop}" x2="${x(0).toFixed(1)}" y2="${plotBottom}" stroke="${COLOURS.unit}" stroke-width="1" stroke-opacity="0.5"/>`,
  );

  let y = top;
  for (const section of sections) {
    y += sectionGap;
    const heading = section === 'activations' ? 'Activations (forward) and their gradients (backward)' : 'Weights (forward) and weight gradients (backward)';
    text(16, y - 10, heading, 'font-size="15" font-weight="bold"');
    out.push(`<line x1="16" y1="${y - 4}" x2="${width - right}" y2="${y - 4}" stroke="#999999" stroke-width="1"/>`);
    for (const row of rows.filter((r) => r.section === section)) {
      const cy = y + rowHeight / 2;
      out.push(`<line x1="${left}" y1="${cy}" x2="${width - right}" y2="${cy}" stroke="${COLOURS.grid}" stroke-width="1"/>`);
      const suffix = [row.layers > 1 ? `×${row.layers}` : '', row.constant ? 'constant' : ''].filter(Boolean).join(', ');
      text(left - 12, cy + 4.5, row.label + (suffix ? ` (${suffix})` : ''), 'font-size="13" text-anchor="end"');
      drawMarks(out, row.forward, cy - 3, x, COLOURS.forward, 'circle');
      drawMarks(out, row.backward, cy + 3, x, COLOURS.backward, 'diamond');
      y += rowHeight;
    }
  }

  // x axis
  const axisY = plotBottom + 8;
  out.push(`<line x1="${left}" y1="${axisY}" x2="${width - right}" y2="${axisY}" stroke="${COLOURS.text}" stroke-width="1"/>`);
  for (let v = Math.ceil(lo / 2) * 2; v <= hi; v += 2) {
    const tx = x(v);
    out.push(`<line x1="${tx.toFixed(1)}" y1="${axisY}" x2="${tx.toFixed(1)}" y2="${axisY + (v % 4 === 0 ? 7 : 4)}" stroke="${COLOURS.text}"/>`);
    if (v % 4 === 0) text(tx, axisY + 22, `${v}`, 'font-size="13" text-anchor="middle"');
  }
  text((left + width - right) / 2, axisY + 44, 'log₂(std)   (0 = unit scale; grey band = [1/4, 4])', 'font-size="14" text-anchor="middle"');

  // legend
  const ly = axisY + 74;
  let lx = left;
  const legend = (draw: () => void, label: string) => {
    draw();
    text(lx + 14, ly + 5, label, 'font-size="13"');
    lx += 22 + label.length * 7.4;
  };
  legend(() => out.push(circle(lx, ly, COLOURS.forward)), 'forward: activation / weight');
  legend(() => out.push(diamond(lx, ly, COLOURS.backward)), 'backward: gradient / weight gradient');
  legend(() => out.push(`<rect x="${lx - 6}" y="${ly - 6}" width="12" height="12" fill="#777777" fill-opacity="0.85"/>`), 'normal range');
  legend(() => out.push(`<rect x="${lx - 6}" y="${ly - 6}" width="12" height="12" fill="#777777" fill-opacity="0.3"/>`), 'subnormals (dashed line: below, values round to 0)');
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

function circle(cx: number, cy: number, colour: string): string {
  return `<circle cx="${cx.toFixed(1)}" cy="${cy.toFixed(1)}" r="5" fill="${colour}" fill-opacity="0.85"/>`;
}

function diamond(cx: number, cy: number, colour: string): string {
  const r = 5.5;
  return `<path d="M${cx.toFixed(1)},${(cy - r).toFixed(1)} L${(cx + r).toFixed(1)},${cy.toFixed(1)} L${cx.toFixed(1)},${(cy + r).toFixed(1)} L${(cx - r).toFixed(1)},${cy.toFixed(1)} Z" fill="${colour}" fill-opacity="0.85"/>`;
}

function drawMarks(out: string[], values: number[], cy: number, x: (v: number) => number, colour: string, shape: 'circle' | 'diamond'): void {
  if (values.length === 0) return;
  if (values.length > 1) {
    const a = x(Math.min(...values));
    const b = x(Math.max(...values));
    out.push(`<line x1="${a.toFixed(1)}" y1="${cy.toFixed(1)}" x2="${b.toFixed(1)}" y2="${cy.toFixed(1)}" stroke="${colour}" stroke-width="2" stroke-opacity="0.5"/>`);
  }
  for (const v of values) out.push(shape === 'circle' ? circle(x(v), cy, colour) : diamond(x(v), cy, colour));
}
