export * from './address.js';
export * from './client.js';
export * from './connection.js';
export * from './errors.js';
export * from './ring.js';
export * from './pool-client.js';
export * from './server-limits.js';
