/** Byte constants of the memcached protocols, in one place. */
export const B = {
  TAB: 0x09, // \t
  LF: 0x0a, // \n
  CR: 0x0d, // \r
  SPACE: 0x20, // ' '
  PLUS: 0x2b, // +
  MINUS: 0x2d, // -
  ZERO: 0x30, // 0
  NINE: 0x39, // 9
  EQUALS: 0x3d, // =
  UPPER_A: 0x41, // A
  UPPER_Z: 0x5a, // Z
  LOWER_A: 0x61, // a
  LOWER_Z: 0x7a, // z
  BINARY_REQUEST: 0x80, // binary protocol request magic
  BINARY_RESPONSE: 0x81, // binary protocol response magic
} as const;

export const CRLF = Buffer.from('\r\n', 'latin1');
