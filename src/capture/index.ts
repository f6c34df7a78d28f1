/** The capture layer: capture bytes (pcap, pcapng, tcpdump) in, reassembled TCP flows out. */
export * from './address.js';
export * from './decode.js';
export * from './filter.js';
export * from './ip.js';
export * from './link.js';
export * from './pcap.js';
export * from './pcapng.js';
export * from './pipeline.js';
export * from './tcp-reassembly.js';
export * from './tcp-stream.js';
export * from './tcp.js';
export * from './tcpdump.js';
export * from './writer.js';
