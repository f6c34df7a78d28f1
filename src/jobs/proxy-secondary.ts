/**
 * The proxy's bookkeeping for the secondary pool in warm and dual modes:
 * which secondary servers are failing (skipped for a while rather than
 * waited on), which keys they missed (deleted there once they answer again,
 * so they never serve a value older than the primary's), and warm mode's
 * miss lookups on the old pool, which never bring back a deleted key.
 */
import { PoolClient } from '../net/pool-client.js';
import { keyNeedsBase64, metaFlagNumber } from '../protocol/meta.js';
import type { Pool } from '../topology/pool.js';
import type { ProxyCounters, ProxyMode, WarmItem } from './proxy-session.js';

export interface SecondaryKeeperOptions {
  readonly mode: ProxyMode;
  readonly primary: Pool;
  readonly secondary: Pool;
  readonly timeoutMs: number;
  readonly secondaryTimeoutMs: number;
  /** A failing secondary server is skipped this long. */
  readonly backoffMs: number;
  readonly maxRememberedKeys: number;
  readonly counters: ProxyCounters;
  readonly onWarning?: ((message: string) => void) | undefined;
  /** Whether a secondary server speaks meta commands (its `version`, read at start). */
  readonly secondaryMeta?: (index: number) => boolean;
}

/** Deletes remembered per key in warm mode, oldest forgotten first. */
const DELETED_MEMORY = 65536;
/**
 * A remembered key is deleted twice, this far apart: a write sent before the
 * server stalled may still sit in its socket buffer and land when it resumes,
 * racing the first delete (sent on another connection).
 */
const SETTLE_MS = 1000;
/** Remembered keys deleted per server per pass. */
const INVALIDATE_BATCH = 1000;

export class SecondaryKeeper {
  private readonly options: SecondaryKeeperOptions;
  private readonly downUntil: number[];
  /**
   * Keys each secondary server missed, as latin1 strings (only on the failure
   * path), with when the first delete of the key succeeded (0: not yet).
   */
  private readonly keys: Map<string, number>[];
  private count = 0;
  private overflow = 0;
  private invalidatedKeys = 0;
  private invalidating = false;
  /** Warm mode: the sequence number of the last delete seen per key. */
  private readonly deletedAt = new Map<string, number>();
  private deleteSeq = 0;
  private readonly secondaryClient: PoolClient | undefined;
  private readonly primaryClient: PoolClient | undefined;

  constructor(options: SecondaryKeeperOptions) {
    this.options = options;
    const servers = options.secondary.servers.length;
    this.downUntil = new Array<number>(servers).fill(0);
    this.keys = Array.from({ length: servers }, () => new Map<string, number>());
    if (options.mode !== 'shadow') {
      const clientOptions = {
        connections: 1,
        requestTimeoutMs: options.secondaryTimeoutMs,
        connectTimeoutMs: options.secondaryTimeoutMs,
        backoffInitialMs: 100,
        backoffMaxMs: options.backoffMs,
      };
      this.secondaryClient = new PoolClient(options.secondary, clientOptions);
      this.primaryClient =
        options.mode === 'warm'
          ? new PoolClient(options.primary, { ...clientOptions, requestTimeoutMs: options.timeoutMs })
          : undefined;
    }
  }

  /** Keys waiting to be deleted on the secondary. */
  get remembered(): number {
    return this.count;
  }

  /** Keys that could not be remembered for lack of room. */
  get rememberOverflow(): number {
    return this.overflow;
  }

  get invalidated(): number {
    return this.invalidatedKeys;
  }

  /** Whether synchronous writes go to this secondary server now. */
  usable(index: number): boolean {
    return Date.now() >= (this.downUntil[index] ?? 0);
  }

  /** Called by the proxy's sweep: deletes remembered keys where the server is back. */
  tick(): void {
    if (this.count > 0 && !this.invalidating) void this.invalidate();
  }

  async close(): Promise<void> {
    if (this.count > 0) await this.invalidate();
    this.secondaryClient?.destroy();
    this.primaryClient?.destroy();
  }

  /**
   * A synchronous secondary write did not land: a failure (not an error
   * reply) takes the server out for the backoff, and the key is remembered
   * so the server loses it once it answers again.
   */
  missed(index: number, key: Buffer, reason: string | undefined): void {
    if (reason !== undefined && reason !== 'error reply' && reason !== 'error status') {
      const backoff = this.options.backoffMs;
      if (Date.now() >= (this.downUntil[index] ?? 0)) {
        this.options.onWarning?.(
          `secondary ${this.options.secondary.servers[index]?.address}: ${reason}; skipped for ${backoff} ms`,
        );
      }
      this.downUntil[index] = Date.now() + backoff;
    }
    if (key.length === 0) return;
    const set = this.keys[index];
    if (set === undefined) return;
    const k = key.toString('latin1');
    if (set.has(k)) {
      set.set(k, 0);
      return;
    }
    if (this.count >= this.options.maxRememberedKeys) {
      this.overflow++;
      return;
    }
    set.set(k, 0);
    this.count++;
  }

  /** Deletes remembered keys on secondary servers that are usable again. */
  private async invalidate(): Promise<void> {
    const client = this.secondaryClient;
    if (client === undefined) return;
    this.invalidating = true;
    try {
      for (let index = 0; index < this.keys.length; index++) {
        const set = this.keys[index] as Map<string, number>;
        if (set.size === 0 || Date.now() < (this.downUntil[index] ?? 0)) continue;
        const server = client.clients[index];
        if (server === undefined) continue;
        for (const [k, first] of [...set].slice(0, INVALIDATE_BATCH)) {
          const now = Date.now();
          if (first > 0 && now - first < SETTLE_MS) continue;
          try {
            await server.delete(Buffer.from(k, 'latin1'));
          } catch {
            this.downUntil[index] = Date.now() + this.options.backoffMs;
            break;
          }
          if (first === 0) {
            set.set(k, now);
            continue;
          }
          set.delete(k);
          this.count--;
          this.invalidatedKeys++;
        }
      }
    } finally {
      this.invalidating = false;
    }
  }

  /** Warm mode: a delete passed through; lookups that began before it must not fill. */
  deleted(key: Buffer): void {
    const k = key.toString('latin1');
    this.deletedAt.delete(k);
    this.deletedAt.set(k, ++this.deleteSeq);
    if (this.deletedAt.size > DELETED_MEMORY) {
      const oldest = this.deletedAt.keys().next();
      if (!oldest.done) this.deletedAt.delete(oldest.value);
    }
  }

  /**
   * Warm mode against an old server before meta commands: `get` finds the
   * value and its flags, but no such server tells a key's remaining TTL, and
   * a copy without it could outlive the original (a wrong hit after the
   * switch). The client gets the value; the new pool gets nothing.
   */
  private async readThrough(
    key: Buffer,
    k: string,
    index: number,
    mark: number,
  ): Promise<WarmItem | undefined> {
    // A key a text line cannot carry (a binary client's) is not asked for: a miss.
    if (keyNeedsBase64(key)) return undefined;
    let item;
    try {
      item = await this.secondaryClient?.clientFor(key).get(key);
    } catch (err) {
      this.missed(index, Buffer.alloc(0), err instanceof Error ? err.message : String(err));
      return undefined;
    }
    if (item === undefined || (this.deletedAt.get(k) ?? 0) > mark) return undefined;
    this.options.counters.warmHits++;
    return { value: Buffer.from(item.value), flags: item.flags };
  }

  /**
   * Warm mode: the old pool's value of a key the new pool missed, written to
   * the new pool in add mode with the remaining TTL (so a write that raced
   * ahead wins). A key deleted while the lookup ran, or whose delete may not
   * have reached the old pool, is a miss: a deleted key never comes back.
   */
  async warm(key: Buffer): Promise<WarmItem | undefined> {
    const old = this.secondaryClient;
    const fresh = this.primaryClient;
    if (old === undefined || fresh === undefined) return undefined;
    const index = this.options.secondary.distribution.serverFor(key);
    const k = key.toString('latin1');
    if (this.keys[index]?.has(k) || Date.now() < (this.downUntil[index] ?? 0)) return undefined;
    this.options.counters.warmLookups++;
    const mark = this.deleteSeq;
    if (this.options.secondaryMeta?.(index) === false) return this.readThrough(key, k, index, mark);
    let reply;
    try {
      reply = await old.clientFor(key).mg(key, ['v', 'f', 't']);
    } catch (err) {
      this.missed(index, Buffer.alloc(0), err instanceof Error ? err.message : String(err));
      return undefined;
    }
    if (reply.code !== 'VA' || reply.value === undefined) return undefined;
    if ((this.deletedAt.get(k) ?? 0) > mark) return undefined;
    const ttl = metaFlagNumber(reply.flags, 't') ?? -1;
    const flags = metaFlagNumber(reply.flags, 'f') ?? 0;
    if (ttl === 0 || Number.isNaN(ttl)) return undefined;
    const item = { value: Buffer.from(reply.value), flags };
    try {
      await fresh.clientFor(key).add(key, item.value, { flags, exptime: ttl < 0 ? 0 : ttl });
    } catch {
      // The client still gets the value; the next miss tries the fill again.
    }
    if ((this.deletedAt.get(k) ?? 0) > mark) return undefined;
    this.options.counters.warmHits++;
    return item;
  }
}
