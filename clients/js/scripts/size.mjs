// Prints the library's size as a page loads it: dist/index.js bundled, minified and gzipped.
// Fails when it is over the budget (6 KB = 6144 bytes).
import { build } from "esbuild";
import { gzipSync } from "node:zlib";

const BUDGET = 6 * 1024;
const out = await build({
  entryPoints: ["dist/index.js"],
  bundle: true,
  minify: true,
  format: "esm",
  target: "es2020",
  write: false,
});
const code = out.outputFiles[0].contents;
const gzipped = gzipSync(code, { level: 9 }).length;
console.log(`switchboard-client: ${code.length} bytes minified, ${gzipped} bytes minified+gzipped (budget ${BUDGET})`);
if (gzipped > BUDGET) {
  console.error(`over budget by ${gzipped - BUDGET} bytes`);
  process.exit(1);
}
