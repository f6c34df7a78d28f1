export * from './ascii-frames.js';
export * from './bytes.js';
export * from './decoder.js';
export * from './errors.js';
export * from './limits.js';
export * from './binary.js';
export * from './ascii.js';
