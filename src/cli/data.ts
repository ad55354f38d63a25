import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import cliProgress from 'cli-progress';
import { resolveDataDir, sampleDir } from '../data/paths.ts';
import { downloadWikitext103, wikitextCacheDir } from '../data/wikitext.ts';
import { loadCharDataset, type DatasetSpec } from '../data/charlm.ts';
import type { PreparedMeta } from '../data/prepare.ts';
import { ReproError } from '../errors.ts';

interface DataArgs {
  'data-dir'?: string;
}

const withDataDir = <T>(y: Argv<T>) =>
  y.option('data-dir', { type: 'string', describe: 'dataset cache (default: $REPRO_DATA_DIR or <repo>/data)' });

function describePrepared(dir: string): string | null {
  const metaPath = join(dir, 'meta.json');
  if (!existsSync(metaPath)) return null;
  const meta = JSON.parse(readFileSync(metaPath, 'utf8')) as PreparedMeta;
  const t = meta.tokens;
  return `vocab ${meta.vocabSize}, characters train ${t.train.toLocaleString('en')} / valid ${t.valid.toLocaleString('en')} / test ${t.test.toLocaleString('en')}`;
}

const list: CommandModule<DataArgs, DataArgs> = {
  command: 'list',
  describe: 'show which datasets are cached, and where',
  builder: (y) => withDataDir(y),
  handler: (argv) => {
    const dataDir = resolveDataDir(argv['data-dir']);
    console.log(`data dir: ${dataDir}`);
    const wiki = describePrepared(wikitextCacheDir(dataDir));
    console.log(`wikitext103  ${wiki ?? 'not downloaded (repro data download wikitext103)'}`);
    const cacheRoot = join(dataDir, 'cache');
    const sample = describePrepared(join(cacheRoot, 'sample'));
    console.log(`sample       ${sampleDir()}: ${sample ?? 'not prepared yet (prepared on first use)'}`);
    if (existsSync(cacheRoot)) {
      for (const entry of readdirSync(cacheRoot).filter((e) => e.startsWith('text-'))) {
        const info = describePrepared(join(cacheRoot, entry));
        if (info) console.log(`text         ${entry}: ${info}`);
      }
    }
  },
};

const download: CommandModule<DataArgs, DataArgs & { dataset: string }> = {
  command: 'download <dataset>',
  describe: 'download and prepare a dataset (wikitext103)',
  builder: (y) => withDataDir(y).positional('dataset', { type: 'string', choices: ['wikitext103'], demandOption: true }),
  handler: async (argv) => {
    const dataDir = resolveDataDir(argv['data-dir']);
    const bar = process.stderr.isTTY ? new cliProgress.SingleBar({ format: 'wikitext-103 {bar} {percentage}% {value}/{total} MB' }, cliProgress.Presets.shades_classic) : null;
    let started = false;
    const meta = await downloadWikitext103(dataDir, {
      onProgress: (received, total) => {
        if (!bar) return;
        const mb = (n: number) => Math.round(n / 1e6);
        if (!started) {
          bar.start(mb(total ?? 0), 0);
          started = true;
        }
        bar.update(mb(received));
      },
    }).finally(() => bar?.stop());
    console.log(`wikitext103 ready in ${wikitextCacheDir(dataDir)}: vocab ${meta.vocabSize}, ${meta.tokens.train.toLocaleString('en')} training characters`);
  },
};

const prepare: CommandModule<DataArgs, DataArgs & { dataset: string }> = {
  command: 'prepare <dataset>',
  describe: 'prepare character ids for wikitext103, sample or a directory with train/valid/test.txt',
  builder: (y) => withDataDir(y).positional('dataset', { type: 'string', demandOption: true }),
  handler: (argv) => {
    const name = argv.dataset;
    const spec: DatasetSpec = name === 'wikitext103' || name === 'sample' ? { kind: name } : { kind: 'text', path: name };
    if (spec.kind === 'text' && !existsSync(name)) throw new ReproError(`${name}: no such dataset or directory (wikitext103, sample, or a directory)`);
    const data = loadCharDataset(spec, argv['data-dir']);
    console.log(`${name}: vocab ${data.vocab.length}, characters train ${data.splits.train.length} / valid ${data.splits.valid.length} / test ${data.splits.test.length}`);
  },
};

export const dataCommand: CommandModule<object, DataArgs> = {
  command: 'data <command>',
  describe: 'download, prepare and list datasets',
  builder: (y) => y.command(list).command(download).command(prepare).demandCommand(1),
  handler: () => {},
};
