/** Operations: requests paired with their replies, the replay layer's input, from capture or from the proxy. */
export * from './operation.js';
export { OperationExtractor, type OperationExtractorOptions } from './extractor.js';
export { PairedOperations } from './paired.js';
export { zeroOperationCounters, type OperationCounters } from './session.js';
