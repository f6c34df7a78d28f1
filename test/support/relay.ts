/**
 * An in-process TCP relay in front of a real server that can hold one
 * client's bytes in flight: the first chunk a client sends that contains a
 * pattern, and everything that client sends after it, wait at the relay
 * until `release()`. It makes "a write still on its way while something
 * else happens" a case a test can produce every time.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';

interface Link {
  readonly client: Socket;
  readonly upstream: Socket;
  held: Buffer[] | undefined;
}

export class HoldingRelay {
  private readonly links = new Set<Link>();
  private pattern: Buffer | undefined;
  private onHeld: ((chunk: Buffer) => void) | undefined;

  private readonly server: Server;
  address = '';

  private constructor(host: string, port: number) {
    this.server = createServer((client) => this.accept(client, host, port));
  }

  static async start(host: string, port: number): Promise<HoldingRelay> {
    const relay = new HoldingRelay(host, port);
    await new Promise<void>((resolve) => relay.server.listen(0, '127.0.0.1', resolve));
    const addr = relay.server.address();
    if (typeof addr !== 'object' || !addr) throw new Error('relay did not get a port');
    relay.address = `127.0.0.1:${addr.port}`;
    return relay;
  }

  /** Resolves with the held chunk once a client sent one containing `pattern`. */
  holdWhen(pattern: Buffer): Promise<Buffer> {
    this.pattern = pattern;
    return new Promise((resolve) => (this.onHeld = resolve));
  }

  /** Lets everything held go on, in order. */
  release(): void {
    for (const link of this.links) {
      const held = link.held;
      link.held = undefined;
      for (const chunk of held ?? []) link.upstream.write(chunk);
    }
  }

  async close(): Promise<void> {
    this.release();
    for (const link of this.links) {
      link.client.destroy();
      link.upstream.destroy();
    }
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: Socket, host: string, port: number): void {
    const upstream = connect({ host, port });
    const link: Link = { client, upstream, held: undefined };
    this.links.add(link);
    upstream.on('data', (chunk: Buffer) => client.write(chunk));
    client.on('data', (chunk: Buffer) => {
      if (link.held) {
        link.held.push(chunk);
        return;
      }
      if (this.pattern && chunk.includes(this.pattern)) {
        this.pattern = undefined;
        link.held = [chunk];
        const done = this.onHeld;
        this.onHeld = undefined;
        done?.(chunk);
        return;
      }
      upstream.write(chunk);
    });
    const end = (): void => {
      this.links.delete(link);
      client.destroy();
      upstream.destroy();
    };
    client.on('close', end);
    upstream.on('close', end);
    client.on('error', () => undefined);
    upstream.on('error', () => undefined);
  }
}
