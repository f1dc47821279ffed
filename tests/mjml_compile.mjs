#!/usr/bin/env node
// Compile MJML read on stdin with the official mjml package (pinned in tests/package.json) and
// write the HTML on stdout. tests/test_mjml_parity.py compares this against MRML's output.
//
// Options are mjml's defaults (validationLevel "soft", no minify, no beautify), spelled out so
// a change of default in a later mjml does not silently change what we compare against.
// Validation messages go to stderr, one JSON object a line ({"line", "tagName", "message"}),
// and do not fail the compilation (that is what "soft" means); a thrown error exits 1.
//
// In mjml 5 `mjml2html` is async (it returns a Promise); awaiting also works for the sync v4 API.

import mjml2html from "mjml";

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return Buffer.concat(chunks).toString("utf8");
}

try {
  const source = await readStdin();
  if (!source.trim()) throw new Error("no MJML on stdin");
  const result = await mjml2html(source, {
    validationLevel: "soft",
    minify: false,
    beautify: false,
    keepComments: true,
    filePath: process.cwd(),
  });
  for (const error of result.errors ?? []) {
    process.stderr.write(
      JSON.stringify({ line: error.line, tagName: error.tagName, message: error.message }) + "\n",
    );
  }
  process.stdout.write(result.html);
} catch (error) {
  process.stderr.write(`mjml_compile: ${error?.stack ?? error}\n`);
  process.exitCode = 1;
}
