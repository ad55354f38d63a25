import type { CommandModule } from 'yargs';
import { describeExperimentOrSweep } from '../config/describe.ts';
import { experimentOverrides, withExperimentFlags, type ExperimentFlagArgs } from '../config/flags.ts';

interface ShowArgs extends ExperimentFlagArgs {
  experiment: string;
}

export const showCommand: CommandModule<object, ShowArgs> = {
  command: 'show <experiment>',
  describe: 'Print an experiment fully resolved (extends, --set, flags) as YAML; for a sweep, its configurations',
  builder: (yargs) =>
    withExperimentFlags(
      yargs.positional('experiment', {
        type: 'string',
        demandOption: true,
        describe: 'a name from repro list, or a path to a .yaml file',
      }),
    )
      .example('$0 show charlm-quick --scaling unit --set model.depth=4', '')
      .example('$0 show sweep-reduced', ''),
  handler: (args) => {
    const { overrides, flags } = experimentOverrides(args);
    process.stdout.write(describeExperimentOrSweep(args.experiment, overrides, flags));
  },
};
