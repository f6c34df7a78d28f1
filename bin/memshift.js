#!/usr/bin/env node
import { main } from '../dist/src/ui/cli.js';

const code = await main(process.argv.slice(2));
// A finished command exits even if a connection or timer lingers; stdout is flushed first.
process.stdout.write('', () => process.exit(code));
