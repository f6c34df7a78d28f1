/** memshift as a library: the codecs, the client and the jobs, for programs of their own. */
export * from './protocol/index.js';
export * from './net/index.js';
export * from './topology/index.js';
export * from './capture/index.js';
export * from './replay/index.js';
export * from './ops/index.js';
