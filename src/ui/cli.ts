import { Command, CommanderError } from 'commander';
import { createRequire } from 'node:module';
import { MemshiftError } from '../protocol/errors.js';
import { registerCopy } from './commands/copy.js';
import { registerDemo } from './commands/demo.js';
import { registerDump } from './commands/dump.js';
import { registerMirror } from './commands/mirror.js';
import { registerPlan } from './commands/plan.js';
import { registerProxy } from './commands/proxy.js';
import { registerRepair } from './commands/repair.js';
import { registerStats } from './commands/stats.js';
import { registerTop } from './commands/top.js';
import { registerVerify } from './commands/verify.js';
import type { Output } from './options.js';

const { version } = createRequire(import.meta.url)('../../../package.json') as { version: string };

/**
 * Runs the command line and returns the exit status. User errors (bad input,
 * unreachable servers, missing tools) print one line; `--debug` adds the stack.
 */
export async function main(
  argv: string[],
  write: (text: string) => void = (t) => console.log(t),
): Promise<number> {
  const debug = argv.includes('--debug');
  const out: Output = { write, exitCode: 0 };
  const program = new Command('memshift')
    .description('Move a live memcached fleet to new servers without a cold cache.')
    .version(version)
    .option('--debug', 'show stack traces for errors')
    .exitOverride()
    .configureOutput({ writeErr: (text) => process.stderr.write(text) });
  registerStats(program, out);
  registerTop(program, out);
  registerDump(program, out);
  registerPlan(program, out);
  registerMirror(program, out);
  registerProxy(program, out);
  registerCopy(program, out);
  registerVerify(program, out);
  registerRepair(program, out);
  registerDemo(program, out);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return out.exitCode;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode;
    if (err instanceof MemshiftError) {
      process.stderr.write(`memshift: ${err.message}\n`);
      if (debug) process.stderr.write(`${err.stack ?? ''}\n`);
      return 2;
    }
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`memshift: internal error: ${message} (run with --debug for details)\n`);
    if (debug && err instanceof Error) process.stderr.write(`${err.stack ?? ''}\n`);
    return 70;
  }
}
