import type { Argv, CommandModule } from 'yargs';
import cliProgress from 'cli-progress';
import { prepareDataset, type DatasetSpec } from '../data/charlm.ts';
import type { DownloadProgress } from '../data/download.ts';
import { listDatasets, type DatasetEntry } from '../data/inventory.ts';
import { resolveDataDir } from '../data/paths.ts';
import type { PreparedMeta } from '../data/prepared.ts';
import { WIKITEXT103_BYTES, downloadWikitext103, wikitextCacheDir } from '../data/wikitext.ts';

interface DataArgs {
  'data-dir'?: string;
}

const withDataDir = <T>(y: Argv<T>) =>
  y.option('data-dir', { type: 'string', describe: 'dataset directory (default: $REPRO_DATA_DIR, else <repo>/data)' });

const megabytes = (bytes: number) => `${(bytes / 1e6).toFixed(bytes < 1e7 ? 2 : 0)} MB`;

function describeMeta(meta: PreparedMeta): string {
  const t = meta.tokens;
  const n = (x: number) => x.toLocaleString('en');
  return `vocab ${n(meta.vocabSize)}, characters train ${n(t.train)} / valid ${n(t.valid)} / test ${n(t.test)}`;
}

function describeEntry(entry: DatasetEntry): string[] {
  const head = `${entry.name}: ${entry.state}`;
  if (entry.state === 'not downloaded') return [`${head} (repro data download wikitext103)`];
  if (entry.state === 'partial download') {
    return [`${head}: ${megabytes(entry.partialBytes ?? 0)} of ${megabytes(entry.expectedBytes ?? 0)} (repro data download wikitext103 resumes it)`];
  }
  const lines = [head, `  text   ${entry.sourceDir} (${megabytes(entry.sourceBytes)})`];
  if (entry.meta) lines.push(`  cache  ${entry.cacheDir} (${megabytes(entry.cacheBytes)}): ${describeMeta(entry.meta)}`);
  if (entry.state === 'stale') lines.push('  the text changed since it was prepared; it is prepared again on next use');
  if (entry.state === 'not prepared') lines.push('  prepared on first use (or: repro data prepare)');
  return lines;
}

const list: CommandModule<DataArgs, DataArgs> = {
  command: 'list',
  describe: 'show the data directory and which datasets are downloaded and prepared',
  builder: (y) => withDataDir(y),
  handler: (argv) => {
    const dataDir = resolveDataDir(argv['data-dir']);
    console.log(`data dir: ${dataDir}`);
    for (const entry of listDatasets(dataDir)) for (const line of describeEntry(entry)) console.log(line);
  },
};

/** A cli-progress bar on a terminal; elsewhere a line every 10 %. */
function progressReporter(label: string): { onProgress: DownloadProgress; stop: () => void } {
  if (process.stderr.isTTY) {
    const bar = new cliProgress.SingleBar({ format: `${label} {bar} {percentage}% {value}/{total} MB`, stream: process.stderr }, cliProgress.Presets.shades_classic);
    let started = false;
    return {
      onProgress: (received, total) => {
        if (!started) bar.start(Math.round((total ?? WIKITEXT103_BYTES) / 1e6), 0);
        started = true;
        bar.update(Math.round(received / 1e6));
      },
      stop: () => started && bar.stop(),
    };
  }
  let lastTenth = -1;
  return {
    onProgress: (received, total) => {
      const tenth = Math.floor((10 * received) / (total ?? WIKITEXT103_BYTES));
      if (tenth > lastTenth) process.stderr.write(`${label}: ${megabytes(received)}\n`);
      lastTenth = tenth;
    },
    stop: () => {},
  };
}

const download: CommandModule<DataArgs, DataArgs & { dataset: string }> = {
  command: 'download <dataset>',
  describe: 'download, extract and prepare a dataset (resumes an interrupted download)',
  builder: (y) => withDataDir(y).positional('dataset', { type: 'string', choices: ['wikitext103'], demandOption: true }),
  handler: async (argv) => {
    const dataDir = resolveDataDir(argv['data-dir']);
    const progress = progressReporter('wikitext-103-raw-v1.zip');
    const meta = await downloadWikitext103(dataDir, { onProgress: progress.onProgress }).finally(progress.stop);
    console.log(`wikitext103 ready in ${wikitextCacheDir(dataDir)}: ${describeMeta(meta)}`);
  },
};

const prepare: CommandModule<DataArgs, DataArgs & { dataset: string; force?: boolean }> = {
  command: 'prepare <dataset>',
  describe: 'prepare character ids of wikitext103, sample, or a directory holding train.txt, valid.txt and test.txt',
  builder: (y) =>
    withDataDir(y)
      .positional('dataset', { type: 'string', demandOption: true, describe: 'wikitext103, sample or a directory' })
      .option('force', { type: 'boolean', default: false, describe: 'prepare again even when the cache is up to date' }),
  handler: async (argv) => {
    const name = argv.dataset;
    const spec: DatasetSpec = name === 'wikitext103' || name === 'sample' ? { kind: name } : { kind: 'text', path: name };
    const { meta, location, rebuilt } = await prepareDataset(spec, argv['data-dir'], { force: argv.force });
    console.log(`${name}: ${rebuilt ? 'prepared' : 'up to date'} in ${location.cacheDir}: ${describeMeta(meta)}`);
  },
};

export const dataCommand: CommandModule<object, DataArgs> = {
  command: 'data <command>',
  describe: 'download, prepare and list datasets',
  builder: (y) => y.command(list).command(download).command(prepare).demandCommand(1),
  handler: () => {},
};
