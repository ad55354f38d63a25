import type { CommandModule } from 'yargs';
import { formatsCommand } from './formats.ts';
import { listCommand } from './list.ts';
import { showCommand } from './show.ts';
import { compareCommand } from './compare.ts';
import { doctorCommand } from './doctor.ts';
import { dataCommand } from './data.ts';
import { inspectCommand } from './inspect.ts';
import { runCommand } from './run.ts';
import { sweepCommand } from './sweep.ts';

/** Every `repro` sub-command; each lives in its own file under src/cli/. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const commands: CommandModule<any, any>[] = [formatsCommand, listCommand, showCommand, compareCommand, doctorCommand, dataCommand, inspectCommand, runCommand, sweepCommand];
