#!/usr/bin/env node
// Build step: transpiles the component with jco into generated/component/ and generates
// TypeScript declarations from the WIT (world image-provider) into generated/types/.
//
//   npm run build -- [path/to/openstack-image.wasm]
//
// The component path comes from the first argument, else $OPENSTACK_IMAGE_COMPONENT, else
// ../../target/openstack-image.wasm (the repository's JSON-face build).
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "..");
const repo = resolve(root, "../..");
const generated = join(root, "generated");

const component = resolve(
  process.argv[2] ||
    process.env.OPENSTACK_IMAGE_COMPONENT ||
    join(repo, "target/openstack-image.wasm"),
);
const witDir = resolve(process.env.OPENSTACK_IMAGE_WIT || join(repo, "wit"));

if (!existsSync(component)) {
  console.error(`build: component not found: ${component}`);
  console.error("usage: npm run build -- <openstack-image.wasm>  (or set OPENSTACK_IMAGE_COMPONENT)");
  process.exit(2);
}

// The jco CLI of the pinned package (its package.json is not exported: resolve the API entry,
// dist/api.js, and take the CLI next to it).
const require = createRequire(import.meta.url);
const jcoBin = join(dirname(require.resolve("@bytecodealliance/jco")), "jco.js");

function run(args, extraNodeArgs = [], env = {}) {
  const result = spawnSync(process.execPath, [...extraNodeArgs, jcoBin, ...args], {
    stdio: "inherit",
    env: { ...process.env, ...env },
  });
  if (result.status !== 0) {
    console.error(`build: jco ${args[0]} failed (exit ${result.status ?? result.signal})`);
    process.exit(1);
  }
}

rmSync(generated, { recursive: true, force: true });
mkdirSync(generated, { recursive: true });

// 1. The component as JS + core wasm. `--instantiation async` makes the output export
//    instantiate(getCoreModule, imports): the adapter passes its own WASI imports per call
//    (sandboxed preopens, empty environment) instead of the shim's process-wide defaults.
//    wasi:http/outgoing-handler needs no flag: the imports object supplies preview2-shim's.
run([
  "transpile",
  component,
  "--name", "openstack-image",
  "--instantiation", "async",
  "--quiet",
  "-o", join(generated, "component"),
]);

// 2. Types from the WIT itself (world image-provider). jco runs its WIT parser as a wasm
//    component on preview2-shim, which (since 0.26) preopens nothing by default, so the WIT
//    directory is preopened for that process through a preload module.
run(
  [
    "types",
    witDir,
    "--world-name", "image-provider",
    "--name", "openstack-image",
    "--instantiation", "async",
    "--quiet",
    "-o", join(generated, "types"),
  ],
  ["--import", join(here, "jco-preopen.js")],
  { JCO_PREOPEN_DIR: witDir },
);

const bytes = readFileSync(component);
writeFileSync(
  join(generated, "build.json"),
  JSON.stringify(
    {
      component,
      sha256: createHash("sha256").update(bytes).digest("hex"),
      size: bytes.length,
      wit: witDir,
      builtAt: new Date().toISOString(),
    },
    null,
    2,
  ) + "\n",
);
console.log(`build: ${component} -> ${join(generated, "component")} (+ types in generated/types)`);
