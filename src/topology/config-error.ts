import { MemshiftError } from '../protocol/errors.js';

/**
 * A pool definition memshift cannot use. The message is one line: where it
 * came from (file or command-line option), the field, and what is allowed.
 */
export class ConfigError extends MemshiftError {
  readonly where: string;
  readonly field: string;
  constructor(where: string, field: string, message: string) {
    super('MEMSHIFT_ERR_CONFIG', field ? `${where}: ${field}: ${message}` : `${where}: ${message}`);
    this.where = where;
    this.field = field;
  }
}
