// Runs ONE call of the component's JSON face in a worker thread, then the worker is ended.
//
// Why a worker: the transpiled component is synchronous; preview2-shim makes its blocking
// WASI calls (HTTP, file reads, sleeps) by parking the calling thread on Atomics.wait. In a
// worker that parks only the worker, so the provider's event loop (Pulumi's gRPC server)
// keeps running. A fresh worker per call also gives every call its own copy of the shim's
// module state, so the sandbox below cannot leak from one call into another.
//
// workerData: {
//   componentUrl: file URL of generated/component/openstack-image.js,
//   modules: { [coreWasmName]: WebAssembly.Module }  (compiled once by the parent),
//   fn: a JSON-face function by its transpiled name ("resolveCloudJson", "createJson", ...) or "schema",
//   request: string (the JSON document) | undefined for schema,
//   readOnlyDirs: string[], readWriteDirs: string[]  (absolute host paths, mapped 1:1),
// }
// Posts exactly one message: {ok: string} | {err: string} (the component's error document)
// | {trap: string} (anything else: a trap, a shim failure).
import { parentPort, workerData } from "node:worker_threads";

import * as cli from "@bytecodealliance/preview2-shim/cli";
import * as filesystem from "@bytecodealliance/preview2-shim/filesystem";
import { WASIShim } from "@bytecodealliance/preview2-shim/instantiation";

import { sandboxPreopens } from "./sandbox.js";

const { componentUrl, modules, fn, request, readOnlyDirs = [], readWriteDirs = [] } = workerData;

// The guest's stdout/stderr: preview2-shim writes them to this thread's process.stdout/stderr,
// which a worker only flushes to its parent when its event loop runs; during a (blocking)
// component call it does not, and output written before the answer could be lost when the
// worker is ended. Send every chunk to the parent at once instead, on the same port as the
// answer, so it arrives in order and before it.
for (const name of ["stdout", "stderr"]) {
  process[name].write = (chunk, encoding, callback) => {
    const bytes =
      typeof chunk === "string"
        ? Buffer.from(chunk, /** @type {BufferEncoding} */ (typeof encoding === "string" ? encoding : "utf8"))
        : chunk;
    parentPort.postMessage({ [name]: new Uint8Array(bytes) });
    const done = typeof encoding === "function" ? encoding : callback;
    if (typeof done === "function") queueMicrotask(done);
    return true;
  };
}

try {
  const entries = sandboxPreopens({ readOnlyDirs, readWriteDirs });
  // Process-wide shim state is this worker's own: clear it as well, in case anything reads it.
  filesystem._clearPreopens();
  cli._setEnv({});
  cli._setArgs(["openstack-image"]);
  cli._setCwd("/");

  const imports = new WASIShim().getImportObject();
  // Exactly the grants of this call: the preopens computed above, no environment variables,
  // one argument, no working directory. (The component imports no wasi:sockets.)
  imports["wasi:filesystem/preopens"] = { getDirectories: () => entries };
  imports["wasi:cli/environment"] = {
    getEnvironment: () => [],
    getArguments: () => ["openstack-image"],
    initialCwd: () => undefined,
  };

  const { instantiate } = await import(componentUrl);
  const root = await instantiate((name) => {
    const module = modules[name];
    if (!module) throw new Error(`no compiled core module ${name}`);
    return module;
  }, imports);
  const face = root.resource ?? root["openstack:image/resource@0.1.0"];
  if (!face || typeof face[fn] !== "function") {
    throw new Error(
      `the component does not export openstack:image/resource (${fn}); exports: ${Object.keys(root).join(", ")}`,
    );
  }
  let out;
  try {
    out = fn === "schema" ? face.schema() : face[fn](request);
  } catch (e) {
    // result<string, string>: jco throws a ComponentError whose payload is the err string.
    if (e && typeof e === "object" && "payload" in e && typeof e.payload === "string") {
      parentPort.postMessage({ err: e.payload });
    } else {
      parentPort.postMessage({ trap: String(e?.stack ?? e) });
    }
    out = undefined;
  }
  if (out !== undefined) parentPort.postMessage({ ok: out });
} catch (e) {
  parentPort.postMessage({ trap: String(e?.stack ?? e) });
}
// The parent terminates this worker (and with it the shim's I/O thread) once it has the answer.
