// Validates an AsyncAPI document with the AsyncAPI project's own parser (@asyncapi/parser).
// Usage: node validate.mjs FILE   (or the document on standard input)
// Prints every diagnostic; exits 1 when any is an error (severity 0), 0 otherwise.
import { readFileSync } from "node:fs";
import { Parser } from "@asyncapi/parser";

const source = readFileSync(process.argv[2] ?? 0, "utf8");
const { document, diagnostics } = await new Parser().parse(source);
const levels = ["error", "warning", "info", "hint"];
for (const d of diagnostics) {
  const where = (d.path ?? []).join("/");
  console.log(`${levels[d.severity] ?? d.severity}: ${d.code}: ${d.message} at /${where}`);
}
const errors = diagnostics.filter((d) => d.severity === 0).length;
if (document === undefined || errors > 0) {
  console.log(`asyncapi: invalid (${errors} error(s))`);
  process.exit(1);
}
console.log(`asyncapi: valid ${document.version()}, ${document.channels().length} channel(s)`);
