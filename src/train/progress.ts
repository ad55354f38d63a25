import cliProgress from 'cli-progress';
import type { TrainEvent } from './events.ts';

export type ProgressMode = 'bar' | 'lines' | 'silent';
export const PROGRESS_CHOICES = ['auto', 'bar', 'lines', 'silent'] as const;
export type ProgressChoice = (typeof PROGRESS_CHOICES)[number];

/** Shows a run's progress on the console: a bar on a terminal, plain lines otherwise. */
export interface ProgressReporter {
  event(e: TrainEvent): void;
  /** one free-form line (kept clear of the bar) */
  note(text: string): void;
  close(): void;
}

export function progressMode(requested: ProgressChoice, stream: NodeJS.WriteStream = process.stderr): ProgressMode {
  if (requested !== 'auto') return requested;
  return stream.isTTY ? 'bar' : 'lines';
}

const fixed = (x: number, digits: number) => (Number.isFinite(x) ? x.toFixed(digits) : String(x));

function duration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  const m = Math.floor(s / 60);
  return m > 0 ? `${m}m${String(s % 60).padStart(2, '0')}s` : `${s}s`;
}

function evalLine(e: Extract<TrainEvent, { type: 'eval' }>): string {
  return `step ${e.step}  ${e.split.padEnd(5)} loss ${fixed(e.loss, 4)}  BPC ${fixed(e.bpc, 4)}`;
}

function silentReporter(): ProgressReporter {
  return { event: () => {}, note: () => {}, close: () => {} };
}

/** Plain lines on stdout (logs, CI, pipes): one per report, evaluation and checkpoint. */
function lineReporter(): ProgressReporter {
  const write = (text: string) => process.stdout.write(`${text}\n`);
  // the rate is measured from the first report on, so a resumed run's ETA is right too
  let first: { step: number; time: number } | null = null;
  return {
    event(e) {
      if (e.type === 'train') {
        first ??= { step: e.step, time: Date.now() };
        const rate = (e.step - first.step) / Math.max((Date.now() - first.time) / 1000, 1e-9);
        const eta = e.step > first.step ? (e.steps - e.step) / rate : NaN;
        write(
          `step ${e.step}/${e.steps}  loss ${fixed(e.loss, 4)}  BPC ${fixed(e.bpc, 4)}  ${Math.round(e.tokensPerSecond)} tok/s  ETA ${duration(eta)}`,
        );
      } else if (e.type === 'eval') write(evalLine(e));
      else if (e.type === 'checkpoint') write(`step ${e.step}  checkpoint ${e.file}`);
    },
    note: write,
    close: () => {},
  };
}

/** A cli-progress bar on stderr with step, loss, BPC, tokens/s and ETA; other lines above it. */
function barReporter(steps: number): ProgressReporter {
  const bars = new cliProgress.MultiBar(
    {
      format: 'step {value}/{total} {bar} loss {loss}  BPC {bpc}  {tps} tok/s  ETA {eta_formatted}',
      hideCursor: true,
      clearOnComplete: false,
      etaBuffer: 50,
      stream: process.stderr,
    },
    cliProgress.Presets.shades_classic,
  );
  const bar = bars.create(steps, 0, { loss: '-', bpc: '-', tps: '-' });
  return {
    event(e) {
      if (e.type === 'train') bar.update(e.step, { loss: fixed(e.loss, 4), bpc: fixed(e.bpc, 4), tps: Math.round(e.tokensPerSecond) });
      else if (e.type === 'eval') bars.log(`${evalLine(e)}\n`);
      else if (e.type === 'checkpoint') bars.log(`step ${e.step}  checkpoint ${e.file}\n`);
    },
    note: (text) => bars.log(`${text}\n`),
    close: () => {
      bars.update(); // flushes lines logged since the last redraw (the final evaluation)
      bars.stop();
    },
  };
}

export function progressReporter(mode: ProgressMode, steps: number): ProgressReporter {
  if (mode === 'bar') return barReporter(steps);
  if (mode === 'lines') return lineReporter();
  return silentReporter();
}
