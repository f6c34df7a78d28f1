/**
 * The whole capture path in one object: capture bytes in (a file read in
 * chunks or tcpdump's stdout), flow events out. Idle flows are swept by
 * capture time, so a file replayed at any speed closes the same flows as the
 * live capture would have.
 */
import { PacketDecoder, type DecodeCounters } from './decode.js';
import { PcapReader, type PcapReaderOptions, type PcapRecord } from './pcap.js';
import { FlowTable, type FlowCounters, type FlowListener, type FlowTableOptions } from './tcp-reassembly.js';

export interface CapturePipelineOptions extends FlowTableOptions, PcapReaderOptions {
  /** How often, in capture time, idle flows are looked for (default 1 second). */
  readonly sweepEveryMicros?: number;
}

export interface CaptureCounters {
  readonly records: number;
  readonly interfaceDrops: number;
  readonly decode: Readonly<DecodeCounters>;
  readonly flows: Readonly<FlowCounters>;
}

export class CapturePipeline {
  readonly reader: PcapReader;
  readonly decoder = new PacketDecoder();
  readonly flows: FlowTable;
  private readonly sweepEvery: number;
  private nextSweep = 0;
  private readonly onRecord: (record: PcapRecord) => void;

  constructor(listener: FlowListener, options: CapturePipelineOptions) {
    this.reader = new PcapReader(options);
    this.flows = new FlowTable(listener, options);
    this.sweepEvery = options.sweepEveryMicros ?? 1e6;
    this.onRecord = (record) => {
      const segment = this.decoder.decode(record);
      if (segment === undefined) return;
      this.flows.onPacket(segment);
      const now = segment.timestampMicros;
      if (now >= this.nextSweep) {
        this.nextSweep = now + this.sweepEvery;
        this.flows.sweep(now);
      }
    };
  }

  /** Throws PcapError when the capture bytes are malformed (the flows seen so far stay open). */
  push(chunk: Buffer): void {
    this.reader.push(chunk, this.onRecord);
  }

  /** End of the capture: closes every flow ('end'), then throws PcapError if the capture was truncated. */
  end(): void {
    this.flows.closeAll('end');
    this.reader.end();
  }

  get counters(): CaptureCounters {
    return {
      records: this.reader.records,
      interfaceDrops: this.reader.interfaceDrops,
      decode: { ...this.decoder.counters },
      flows: { ...this.flows.counters },
    };
  }
}
