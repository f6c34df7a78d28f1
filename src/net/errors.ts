import type { ErrorResponse } from '../protocol/ascii-frames.js';
import { MemshiftError } from '../protocol/errors.js';

/** The connection to a server failed or broke; says which server and what was being done. */
export class ConnectionError extends MemshiftError {
  readonly address: string;
  constructor(address: string, doing: string, reason: string, options?: { cause?: unknown }) {
    super('MEMSHIFT_ERR_CONNECTION', `${address}: ${doing} failed: ${reason}`, options);
    this.address = address;
  }
}

/** A request got no answer within the request timeout; the connection is dropped and redialled. */
export class TimeoutError extends MemshiftError {
  readonly address: string;
  constructor(address: string, doing: string, ms: number) {
    super('MEMSHIFT_ERR_TIMEOUT', `${address}: ${doing} timed out after ${ms} ms`);
    this.address = address;
  }
}

/** The bounded request queue of a connection is full; the request was not sent. */
export class QueueFullError extends MemshiftError {
  readonly address: string;
  constructor(address: string, limit: number) {
    super('MEMSHIFT_ERR_QUEUE_FULL', `${address}: more than ${limit} requests waiting; request dropped`);
    this.address = address;
  }
}

/** The server answered ERROR, CLIENT_ERROR or SERVER_ERROR. The reply is kept as it came. */
export class ServerReplyError extends MemshiftError {
  readonly address: string;
  readonly reply: ErrorResponse;
  constructor(address: string, reply: ErrorResponse) {
    const text = reply.message ? `${reply.error} ${reply.message}` : reply.error;
    super('MEMSHIFT_ERR_SERVER_REPLY', `${address} replied: ${text}`);
    this.address = address;
    this.reply = reply;
  }
}
