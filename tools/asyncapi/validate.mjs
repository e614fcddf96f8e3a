// Parse and validate an AsyncAPI document with the official parser; exit 1 on any error-level diagnostic.
// Usage: node validate.mjs FILE   (FILE = JSON or YAML; `reelforge asyncapi > FILE`)
import { readFileSync } from 'node:fs';
import { Parser, DiagnosticSeverity } from '@asyncapi/parser';

const file = process.argv[2];
if (!file) {
  console.error('usage: node validate.mjs FILE');
  process.exit(2);
}
const parser = new Parser();
const { document, diagnostics } = await parser.parse(readFileSync(file, 'utf8'));
const errors = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error);
for (const d of diagnostics) {
  const level = ['error', 'warning', 'info', 'hint'][d.severity] ?? d.severity;
  console.log(`${level}: ${d.code}: ${d.message} at /${d.path.join('/')}`);
}
if (!document || errors.length) {
  console.error(`invalid: ${errors.length} error(s)`);
  process.exit(1);
}
console.log(`valid AsyncAPI ${document.version()}: ${document.channels().length} channels, ${document.operations().length} operations, ${document.messages().length} messages`);
