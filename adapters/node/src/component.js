// The transpiled component (generated/component/, made by `npm run build`), called through
// its JSON face (openstack:image/resource@0.1.0) one call per worker thread (see worker.js).
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { Worker } from "node:worker_threads";

/** @typedef {typeof import("../generated/types/interfaces/openstack-image-resource.js")} ResourceFace */
/** @typedef {Exclude<keyof ResourceFace, "schema"> | "schema"} FaceFunction */

const here = dirname(fileURLToPath(import.meta.url));
export const DEFAULT_COMPONENT_DIR = resolve(here, "../generated/component");

/** An error document returned by the component (`err` of a `-json` function). */
export class ComponentError extends Error {
  /**
   * @param {{kind: string, message: string, fields?: {field: string, message: string}[], image_id?: string | null}} doc
   * @param {string} fn the JSON-face function that failed
   */
  constructor(doc, fn) {
    super(`${doc.kind}: ${doc.message}`);
    this.name = "OpenStackImageError";
    /** The typed `error` case name (invalid-spec, not-found, auth-failed, ...). */
    this.kind = doc.kind;
    /** The component's own message. */
    this.componentMessage = doc.message;
    /**
     * Per-field problems: `field` as the component reports it (snake_case), `property` the
     * Pulumi property path (set by the provider).
     * @type {{field: string, message: string, property?: string}[]}
     */
    this.fields = doc.fields ?? [];
    /** With `unauthorized` from a create: the image it had made before the refusal. */
    this.imageId = doc.image_id ?? undefined;
    this.function = fn;
  }
}

/** Compiled core modules, per component directory (compiled once per process). */
const compiled = new Map();

function compileModules(componentDir) {
  let modules = compiled.get(componentDir);
  if (!modules) {
    const names = readdirSync(componentDir).filter((n) => n.endsWith(".wasm"));
    if (names.length === 0) {
      throw new Error(`no transpiled component in ${componentDir}: run \`npm run build -- <component.wasm>\``);
    }
    modules = Promise.all(
      names.map(async (n) => [n, await WebAssembly.compile(readFileSync(join(componentDir, n)))]),
    ).then(Object.fromEntries);
    compiled.set(componentDir, modules);
    modules.catch(() => compiled.delete(componentDir));
  }
  return modules;
}

/**
 * The directories one call may see, like the bundled host's grants: the directory of a local
 * image file read-only, a download cache read-write (created if missing). Paths are mapped at
 * the same absolute path inside the guest.
 * @param {Record<string, any>[]} docs spec/state documents (snake_case) the call carries
 */
export function grantsFor(docs) {
  const readOnlyDirs = new Set();
  const readWriteDirs = new Set();
  for (const doc of docs) {
    if (!doc || typeof doc !== "object") continue;
    const file = doc.local_file_path;
    if (typeof file === "string" && isAbsolute(file)) {
      const dir = dirname(file);
      if (isDir(dir)) readOnlyDirs.add(dir);
    }
    const cache = doc.image_cache_path;
    if (
      typeof cache === "string" &&
      isAbsolute(cache) &&
      typeof doc.image_source_url === "string" &&
      !leavesUrlToGlance(doc)
    ) {
      mkdirSync(cache, { recursive: true });
      readWriteDirs.add(cache);
    }
  }
  // A directory granted read-write is not granted again read-only.
  for (const dir of readWriteDirs) readOnlyDirs.delete(dir);
  return { readOnlyDirs: [...readOnlyDirs], readWriteDirs: [...readWriteDirs] };
}

/**
 * Whether the component never fetches the spec's URL: Glance fetches it (web-download,
 * glance-download) and no `import_fallback: upload` has the component fetch it when Glance's
 * import fails (the component's own rule, `ImportMethod::leaves_url_to_glance`).
 * @param {Record<string, any>} spec
 */
export function leavesUrlToGlance(spec) {
  const glanceFetches =
    spec.web_download === true || spec.import_method === "web-download" || spec.import_method === "glance-download";
  return glanceFetches && spec.import_fallback !== "upload";
}

function isDir(path) {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/**
 * Calls one function of the JSON face.
 * @param {object} options
 * @param {FaceFunction} options.fn
 * @param {object} [options.request] the request document (serialized here)
 * @param {{readOnlyDirs: string[], readWriteDirs: string[]}} [options.grants]
 * @param {string} [options.componentDir]
 * @param {(line: string) => void} [options.onStderr] each line the component prints on stderr
 *   (its progress JSON lines); default: copied to this process's stderr
 * @returns {Promise<any>} the parsed answer document
 */
export async function callComponent({
  fn,
  request,
  grants = { readOnlyDirs: [], readWriteDirs: [] },
  componentDir = DEFAULT_COMPONENT_DIR,
  onStderr,
}) {
  const componentJs = join(componentDir, "openstack-image.js");
  if (!existsSync(componentJs)) {
    throw new Error(`no transpiled component at ${componentJs}: run \`npm run build -- <component.wasm>\``);
  }
  const modules = await compileModules(componentDir);
  const worker = new Worker(new URL("./worker.js", import.meta.url), {
    workerData: {
      componentUrl: pathToFileURL(componentJs).href,
      modules,
      fn,
      request: request === undefined ? undefined : stringifyDocument(request),
      readOnlyDirs: grants.readOnlyDirs,
      readWriteDirs: grants.readWriteDirs,
    },
    // The worker sees no environment variables either (the guest's are set separately).
    env: {},
    stdout: true,
    stderr: true,
  });
  const forward = onStderr ?? ((line) => process.stderr.write(line + "\n"));
  const guestOutput = lineSplitter(forward);
  const stdioDone = Promise.all([worker.stderr, worker.stdout].map((stream) => pipeLines(stream, forward)));

  let answer;
  try {
    answer = await new Promise((resolvePromise, reject) => {
      worker.on("message", (message) => {
        if (message.stderr || message.stdout) guestOutput.push(message.stderr ?? message.stdout);
        else resolvePromise(message);
      });
      worker.once("error", reject);
      worker.once("exit", (code) =>
        reject(new Error(`the component's worker exited (code ${code}) before answering ${fn}`)),
      );
    });
  } finally {
    guestOutput.end();
    await worker.terminate();
    await stdioDone;
  }

  if ("ok" in answer) return parseDocument(answer.ok);
  if ("err" in answer) {
    let doc;
    try {
      doc = JSON.parse(answer.err);
    } catch {
      doc = { kind: "unknown", message: answer.err };
    }
    throw new ComponentError(doc, fn);
  }
  throw new Error(`the component failed in ${fn}: ${answer.trap}`);
}

// The JSON face carries `source_fingerprint.mtime_ns` as a decimal string (nanoseconds
// exceed 2^53), so its documents are plain JSON on this side.

/** @param {string} text */
export function parseDocument(text) {
  return JSON.parse(text);
}

/** @param {any} doc */
export function stringifyDocument(doc) {
  return JSON.stringify(doc);
}

/** Splits UTF-8 chunks into lines. */
function lineSplitter(onLine) {
  const decoder = new TextDecoder();
  let buffer = "";
  const flushLines = () => {
    let nl;
    while ((nl = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      if (line) onLine(line);
    }
  };
  return {
    push(bytes) {
      buffer += decoder.decode(bytes, { stream: true });
      flushLines();
    },
    end() {
      buffer += decoder.decode();
      flushLines();
      if (buffer) onLine(buffer);
      buffer = "";
    },
  };
}

/** Forwards a worker's own stdio (anything not written by the guest), line by line. */
function pipeLines(stream, onLine) {
  return new Promise((resolvePromise) => {
    let buffer = "";
    stream.setEncoding("utf8");
    stream.on("data", (chunk) => {
      buffer += chunk;
      let nl;
      while ((nl = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        if (line) onLine(line);
      }
    });
    const finish = () => {
      if (buffer) onLine(buffer);
      buffer = "";
      resolvePromise();
    };
    stream.on("end", finish);
    stream.on("close", finish);
    stream.on("error", finish);
  });
}
