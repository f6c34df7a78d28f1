/**
 * The migration scenario as a benchmark: every strategy side by side in one
 * run on local memcached (see src/jobs/scenario.ts), hit ratio after cut-over
 * against the level before it. Prints JSON. Needs root for capture on lo.
 */
import { DEFAULT_SCENARIO, runScenario } from '../src/jobs/scenario.js';

const report = await runScenario({
  ...DEFAULT_SCENARIO,
  afterSeconds: Number(process.env['SCENARIO_AFTER_SECONDS'] ?? DEFAULT_SCENARIO.afterSeconds),
});
console.log(
  JSON.stringify(
    {
      bench: 'scenario',
      node: process.version,
      oldServers: report.options.oldServers,
      newServers: report.options.newServers,
      hash: report.options.hash,
      keys: report.options.workload.keys,
      requestsPerSecond: report.options.workload.rate,
      windowSeconds: report.options.windowSeconds,
      strategies: report.results.map((r) => ({
        strategy: r.strategy,
        hitRatioBefore: round(r.before),
        hitRatioAtCutOver: round(r.start),
        hitRatioFirstSecond: round(r.firstSecond),
        firstSecondShareOfBefore: round(r.firstSecond / Math.max(r.before, 1e-9)),
        hitRatioAfterWindow: round(r.firstMinute),
        secondsBackWithin1Percent: r.recoverySeconds ?? null,
        databaseReadsAfterCutOver: r.databaseReads,
        bytesCopied: r.bytesCopied,
        verifyCoverageBeforeCutOver: r.verify ? round(r.verify.coverage) : null,
      })),
    },
    null,
    2,
  ),
);

function round(x: number): number {
  return Math.round(x * 10_000) / 10_000;
}
