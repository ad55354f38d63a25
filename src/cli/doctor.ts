import type { CommandModule } from 'yargs';
import { doctorReport, renderDoctorReport } from '../backend/cuda/doctor-report.ts';

interface DoctorArgs {
  smoke: boolean;
  json: boolean;
}

/** `repro doctor`: what the CUDA backend finds on this machine. Exits 0 without a GPU too. */
export const doctorCommand: CommandModule<object, DoctorArgs> = {
  command: 'doctor',
  describe: 'Report the GPU, driver, CUDA libraries (and where they were found), FP8 support and kernel cache',
  builder: (yargs) =>
    yargs
      .option('smoke', { type: 'boolean', default: true, describe: 'with a GPU, compile a kernel and run a small GEMM against host arithmetic' })
      .option('json', { type: 'boolean', default: false, describe: 'print the report as JSON' }),
  handler: (args) => {
    const report = doctorReport({ smoke: args.smoke });
    process.stdout.write(args.json ? `${JSON.stringify(report, null, 2)}\n` : `${renderDoctorReport(report)}\n`);
  },
};
