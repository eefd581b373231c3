// Validate an AsyncAPI document with the official parser; print every diagnostic, exit 1 on an error.
// Usage: node validate-asyncapi.mjs ../docs/asyncapi.yaml
import { readFileSync } from "node:fs";
import { Parser, DiagnosticSeverity } from "@asyncapi/parser";

const path = process.argv[2];
if (!path) {
  console.error("usage: node validate-asyncapi.mjs <asyncapi document>");
  process.exit(2);
}
const parser = new Parser();
const { document, diagnostics } = await parser.parse(readFileSync(path, "utf8"));
const severities = ["error", "warning", "information", "hint"];
for (const diagnostic of diagnostics) {
  console.log(
    `${severities[diagnostic.severity]} ${diagnostic.code} at /${diagnostic.path.join("/")}: ${diagnostic.message}`,
  );
}
const errors = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error);
if (!document || errors.length) {
  console.log(`invalid: ${errors.length} error(s)`);
  process.exit(1);
}
console.log(`valid: AsyncAPI ${document.version()}, ${document.allMessages().length} message(s)`);
