/** Operations: captured requests paired with their replies, the replay layer's input. */
export * from './operation.js';
export { OperationExtractor, type OperationExtractorOptions } from './extractor.js';
export { zeroOperationCounters, type OperationCounters } from './session.js';
