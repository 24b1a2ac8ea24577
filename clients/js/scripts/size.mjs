// Prints the library's size as a page loads it: dist/index.js bundled, minified and gzipped.
// Fails when it is over the budget (6 KB = 6144 bytes). Beside it, measured the same way in the
// same run: the browser clients of two peers (centrifuge-js and pusher-js, pinned devDependencies),
// as a page bundling them would load them. `--json` prints one JSON object (make bench reads it).
import { build } from "esbuild";
import { gzipSync } from "node:zlib";

const BUDGET = 6 * 1024;
const common = { bundle: true, minify: true, format: "esm", target: "es2020", platform: "browser", write: false, logLevel: "silent" };

async function measure(options) {
  const out = await build({ ...common, ...options });
  const code = out.outputFiles[0].contents;
  return { minified: code.length, gzipped: gzipSync(code, { level: 9 }).length };
}

const peer = (name, contents) => measure({ stdin: { contents, resolveDir: process.cwd(), loader: "js" } }).then((size) => ({ name, ...size }));
const own = { name: "switchboard-client", ...(await measure({ entryPoints: ["dist/index.js"] })) };
const peers = await Promise.all([
  peer("centrifuge " + (await version("centrifuge")), 'export { Centrifuge } from "centrifuge";'),
  peer("pusher-js " + (await version("pusher-js")), 'export { default } from "pusher-js";'),
]);

async function version(name) {
  const { readFile } = await import("node:fs/promises");
  return JSON.parse(await readFile(`node_modules/${name}/package.json`, "utf8")).version;
}

if (process.argv.includes("--json")) console.log(JSON.stringify({ budget: BUDGET, own, peers }));
else {
  console.log(`${own.name}: ${own.minified} bytes minified, ${own.gzipped} bytes minified+gzipped (budget ${BUDGET})`);
  for (const p of peers) console.log(`${p.name}: ${p.minified} bytes minified, ${p.gzipped} bytes minified+gzipped (${(p.gzipped / own.gzipped).toFixed(1)}x switchboard-client)`);
}
if (own.gzipped > BUDGET) {
  console.error(`over budget by ${own.gzipped - BUDGET} bytes`);
  process.exit(1);
}
