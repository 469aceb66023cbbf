// Preloaded (node --import) into the `jco types` process by scripts/build.js: preview2-shim
// 0.26 gives a component no preopened directory by default, so jco's own WIT parser
// (a wasm component) could not read the WIT directory without this.
import * as filesystem from "@bytecodealliance/preview2-shim/filesystem";

const dir = process.env.JCO_PREOPEN_DIR;
// (The package's declarations are its browser ones; node's _setPreopens takes host paths.)
if (dir) /** @type {any} */ (filesystem)._setPreopens({ [dir]: dir });
