/** Client-compatible key distribution: servers, pools and the rings and hashes of real clients. */
export * from './config-error.js';
export * from './continuum.js';
export * from './dalli.js';
export * from './distribution.js';
export * from './hashes.js';
export * from './hashring.js';
export * from './ketama.js';
export * from './map.js';
export * from './modula.js';
export * from './perl.js';
export * from './php-memcache.js';
export * from './pool.js';
export * from './rendezvous.js';
export { CeilRing, FloorRing, ONLY_SERVER } from './ring.js';
export * from './server.js';
export * from './twemproxy.js';
