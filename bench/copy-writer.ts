/**
 * A writer beside a copy, for bench/copy.ts: what an application writing
 * both pools does during a migration, at a bounded rate. Each step deletes
 * a few random keys and rewrites the ones the step before deleted, on the
 * source first and then on the target (the order a dual-writing client
 * keeps), so the source ends holding every key again.
 *
 * It stops when told, or by itself after `maxMs` or `maxOps`, whichever
 * comes first. Afterwards `stale` looks at every key it touched: a key on
 * the target whose value or flags differ from the source's is one the
 * copy's guard let through.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { parseEndpoint } from '../src/net/address.js';
import { BatchLink, CRLF, RequestBuilder } from '../src/jobs/meta-batch.js';

export interface WriterOptions {
  readonly source: string;
  readonly target: string;
  /** Keys are `key(i)` for i in [0, keys). */
  readonly keys: number;
  readonly key: (i: number) => string;
  readonly valueBytes: number;
  /** Deletes plus rewrites per second, each applied to both pools. */
  readonly opsPerSecond: number;
  readonly maxMs: number;
  readonly maxOps: number;
}

export interface WriterReport {
  /** Deletes and rewrites, each applied to the source then the target. */
  readonly ops: number;
  readonly opsPerSecond: number;
  /** Distinct keys deleted and rewritten. */
  readonly keysTouched: number;
}

/** Keys per step at most: a step is one pipelined batch per pool. */
const STEP_KEYS = 256;
/** Flags the writer's values carry, to tell them from the loaded ones. */
const WRITER_FLAGS = 7;

export class ConcurrentWriter {
  private readonly source: BatchLink;
  private readonly target: BatchLink;
  private readonly value: Buffer;
  private readonly touched = new Set<number>();
  private stopped = false;
  private ops = 0;
  private deletes = 0;
  private ms = 0;
  private loop: Promise<void> | undefined;

  constructor(private readonly options: WriterOptions) {
    this.source = new BatchLink(parseEndpoint(options.source), {});
    this.target = new BatchLink(parseEndpoint(options.target), {});
    this.value = Buffer.alloc(options.valueBytes, 0x77);
  }

  start(): void {
    this.loop = this.run();
  }

  /** Stops after the step under way, rewrites what is still deleted, and reports. */
  async stop(): Promise<WriterReport> {
    this.stopped = true;
    await this.loop;
    return {
      ops: this.ops,
      opsPerSecond: Math.round(this.ops / Math.max(0.001, this.ms / 1000)),
      keysTouched: this.touched.size,
    };
  }

  /** Keys the writer touched whose target value or flags differ from the source's. */
  async stale(): Promise<number> {
    const all = [...this.touched].map((i) => Buffer.from(this.options.key(i)));
    let stale = 0;
    for (let at = 0; at < all.length; at += 1000) {
      const keys = all.slice(at, at + 1000);
      const [src, dst] = await Promise.all([this.source.fetch(keys, true), this.target.fetch(keys, true)]);
      for (let j = 0; j < keys.length; j++) {
        if (dst.hit[j] === 0) continue;
        if (src.hit[j] === 0 || src.flags[j] !== dst.flags[j] || !src.values[j]!.equals(dst.values[j]!))
          stale++;
      }
    }
    return stale;
  }

  async close(): Promise<void> {
    await Promise.all([this.source.close(), this.target.close()]);
  }

  private async run(): Promise<void> {
    const { keys, opsPerSecond, maxMs, maxOps } = this.options;
    const started = performance.now();
    let deleted: number[] = [];
    try {
      while (!this.stopped && performance.now() - started < maxMs && this.ops < maxOps) {
        // Deletes due by the clock; each is rewritten one step later.
        const due = Math.floor(((performance.now() - started) / 1000) * (opsPerSecond / 2)) - this.deletes;
        const count = Math.max(0, Math.min(due, STEP_KEYS, Math.floor((maxOps - this.ops) / 2)));
        const fresh = Array.from({ length: count }, () => Math.floor(Math.random() * keys));
        await this.step(deleted, fresh);
        deleted = fresh;
        await sleep(5);
      }
    } finally {
      await this.step(deleted, []);
      this.ms = performance.now() - started;
    }
  }

  /** Rewrites `rewrite` and deletes `remove`, on the source and then on the target. */
  private async step(rewrite: number[], remove: number[]): Promise<void> {
    if (rewrite.length + remove.length === 0) return;
    for (const link of [this.source, this.target]) {
      const b = new RequestBuilder();
      for (const i of rewrite) {
        b.ascii(`ms ${this.options.key(i)} ${this.value.length} T0 F${WRITER_FLAGS} q\r\n`);
        b.bytes(this.value);
        b.bytes(CRLF);
      }
      for (const i of remove) b.ascii(`md ${this.options.key(i)} q\r\n`);
      // Quiet commands answer only when they fail; a delete of a key already gone (NF) is expected.
      await link.send(b.finish(), 'writer batch', (frame) => {
        if (frame.code !== 'NF') throw new Error(`writer: ${frame.code} from ${link.address}`);
      });
    }
    this.ops += rewrite.length + remove.length;
    this.deletes += remove.length;
    for (const i of remove) this.touched.add(i);
  }
}
