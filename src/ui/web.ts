/**
 * `--web HOST:PORT` for long-running commands: the live dashboard and
 * Prometheus /metrics fed from one snapshot function, announced on stderr.
 */
import type { Command } from 'commander';
import { startDashboard, type Dashboard, type DashboardSnapshot } from './dashboard/server.js';
import { createMetricsRegistry, registerSnapshotMetrics } from './metrics.js';

export interface WebFlags {
  web?: string;
  webAllowRemote?: boolean;
}

export function addWebOptions(command: Command): Command {
  return command
    .option('--web <host:port>', 'serve a live dashboard and Prometheus /metrics on this loopback address')
    .option(
      '--web-allow-remote',
      'let --web listen on a non-loopback address (no authentication: firewall it)',
    );
}

/** Starts the dashboard when `--web` was given; its metrics are named memshift_<command>_*. */
export async function serveWeb(
  flags: WebFlags,
  command: string,
  snapshot: () => DashboardSnapshot,
): Promise<Dashboard | undefined> {
  if (flags.web === undefined) return undefined;
  const metrics = createMetricsRegistry();
  registerSnapshotMetrics(metrics, command, snapshot);
  const dashboard = await startDashboard({
    listen: flags.web,
    title: `memshift ${command}`,
    snapshot,
    metrics,
    allowRemote: flags.webAllowRemote === true,
  });
  process.stderr.write(
    `memshift ${command}: dashboard on ${dashboard.url} (metrics on ${dashboard.url}metrics)\n`,
  );
  return dashboard;
}
