import yargs, { type CommandModule } from 'yargs';
import { readFileSync } from 'node:fs';
import { ReproError } from '../errors.ts';
import { commands } from './commands.ts';

function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/** Entry point of the `repro` command. Bad input ends with one line on stderr and exit code 2. */
export async function main(argv: string[]): Promise<void> {
  // `repro … | head` closes the pipe early: that is the reader's choice, not an error.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    throw err;
  });
  const parser = yargs(argv)
    .scriptName('repro')
    .usage('$0 <command> [options]')
    .version(packageVersion())
    .strict()
    .demandCommand(1, 'name a command; see repro --help')
    .recommendCommands()
    .wrap(Math.min(110, process.stdout.columns ?? 110))
    .fail((msg, err) => {
      throw err ?? new ReproError(msg);
    });
  for (const command of commands) parser.command(command as CommandModule);
  try {
    await parser.parseAsync();
  } catch (err) {
    if (err instanceof ReproError) {
      process.stderr.write(`repro: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
}
