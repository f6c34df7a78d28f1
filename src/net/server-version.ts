/**
 * What a server's `version` says about the commands memshift may send it.
 * memcached has answered `version` in every release, in text and binary.
 *
 * Meta commands: none before 1.5.19 (an `mn` or `mg` gets ERROR); 1.5.19
 * brought mg, ms, md, mn and me, 1.6.0 added ma, and 1.6.10 settled the
 * syntax memshift speaks (`ms <key> <datalen>`, HD replies, base64 keys with
 * `b`). A server before 1.6.10 therefore gets no meta command from memshift:
 * text or binary only. So does one whose version cannot be read (a fork that
 * answers in its own words): both protocols older than meta work everywhere.
 */
import type { MemcachedClient } from './client.js';

/** The first release whose meta commands read as memshift writes them. */
export const META_SINCE = [1, 6, 10] as const;

/** `1.6.18`, `1.4.25-dev`, `1.5.10 (some build)` → [1, 6, 18]; anything else: undefined. */
export function parseVersion(text: string): [number, number, number] | undefined {
  const m = /^(\d+)\.(\d+)\.(\d+)/.exec(text.trim());
  if (m === null) return undefined;
  return [Number(m[1]), Number(m[2]), Number(m[3])];
}

/** Whether a server reporting `version` understands memshift's meta commands. */
export function speaksMeta(version: string | undefined): boolean {
  const v = version === undefined ? undefined : parseVersion(version);
  if (v === undefined) return false;
  for (let i = 0; i < 3; i++) {
    if (v[i]! !== META_SINCE[i]) return v[i]! > META_SINCE[i]!;
  }
  return true;
}

/** Asks a server its version; undefined when it cannot be asked now. */
export async function readVersion(client: MemcachedClient): Promise<string | undefined> {
  try {
    return await client.version();
  } catch {
    return undefined;
  }
}
