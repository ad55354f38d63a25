import type { Split } from '../data/charlm.ts';

/** What the trainer reports while it runs; the JSONL log and the console both consume these. */
export type TrainEvent =
  | {
      readonly type: 'train';
      readonly step: number;
      readonly steps: number;
      /** mean training loss (nats per scored character) over the steps since the last report */
      readonly loss: number;
      readonly bpc: number;
      /** scored characters per second since the last report */
      readonly tokensPerSecond: number;
      readonly lr: number;
      readonly lossScale: number;
    }
  | { readonly type: 'eval'; readonly step: number; readonly split: Split; readonly loss: number; readonly bpc: number }
  | { readonly type: 'checkpoint'; readonly step: number; readonly file: string }
  | { readonly type: 'diverged'; readonly step: number; readonly where: 'train' | Split };

export type EventSink = (event: TrainEvent) => void;
