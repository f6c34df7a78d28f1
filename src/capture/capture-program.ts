/**
 * Which program captures live traffic: memshift-capture (native/, built by
 * `npm run build` when a C compiler and libpcap-dev are present) or tcpdump.
 * Both take the same command line and speak the same pcap stream and stderr.
 * memshift-capture keeps libpcap's packed ring but asks the kernel for ring
 * blocks every few milliseconds (tcpdump asks every second), so packets come
 * at once without tcpdump --immediate-mode's slot per packet.
 */
import { accessSync, constants } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { MemshiftError } from '../protocol/errors.js';

export type CaptureProgram = 'tcpdump' | 'helper';

/** Where `npm run build` puts the helper: dist/bin beside dist/src. */
export const CAPTURE_HELPER_PATH = fileURLToPath(new URL('../../bin/memshift-capture', import.meta.url));
/** How long the kernel may hold a ring block before handing it over (memshift-capture -t). */
export const DEFAULT_CAPTURE_TIMEOUT_MS = 5;
export const HELPER_NAME = 'memshift-capture';

export function captureHelperBuilt(path: string = CAPTURE_HELPER_PATH): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * The program asked for, or the helper when built and tcpdump otherwise. A
 * helper asked for but not built is a user error saying how to get it.
 */
export function chooseCaptureProgram(
  wanted: CaptureProgram | undefined,
  helperPath?: string,
): CaptureProgram {
  const built = captureHelperBuilt(helperPath);
  if (wanted === 'helper' && !built) {
    throw new MemshiftError(
      'MEMSHIFT_ERR_CAPTURE_HELPER_MISSING',
      `${HELPER_NAME} is not built (${helperPath ?? CAPTURE_HELPER_PATH}): apt-get install gcc libc6-dev libpcap-dev ` +
        'and run `npm run build`, or use --capture-program tcpdump',
    );
  }
  return wanted ?? (built ? 'helper' : 'tcpdump');
}

export function parseCaptureProgram(text: string): CaptureProgram | undefined {
  return text === 'tcpdump' || text === 'helper' ? text : undefined;
}
