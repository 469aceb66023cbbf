// The download cache, kept as the bundled host keeps it (host/src/image_cache.rs), on the
// same directory and with the same locks, so the provider and `openstack-image` can share
// one cache. The component downloads a URL source into the cache directory it is given (here
// the spec's `image_cache_path` itself) as `<md5(url + "true"|"false")>.img` with a JSON
// record `<entry>.img.json` beside it; it can neither lock files nor see other processes, so:
//
// - each entry has a lock file, `<cache>/.locks/<area>/<entry>.lock` (`_` for the entries
//   directly in `<cache>/`, as this adapter keeps them; `component-<id>` for the bundled
//   host's per-component areas), locked with flock(2);
// - a call holds a shared lock on the entry it may use from before the component starts
//   until it returns (and marks the entry used: an entry's last use is its data file's
//   modification time); an entry is removed only under an exclusive lock taken without
//   waiting, so an entry another process is using is never removed;
// - before the call, what killed runs left (partial downloads, records without data) is
//   removed, when no process holds its entry; after it, the cache is trimmed to the limit
//   (`cacheMaxSize`), least recently used entries first.
//
// Node has no flock(2) API (and no native addon is wanted), so the locks are taken with
// util-linux's flock(1) on a descriptor this process opened: `flock --shared 3` (or
// `--exclusive --nonblock 3`) is spawned with the lock file's descriptor as its fd 3. A
// flock(2) lock belongs to the open file description, which the child shares with this
// process, so the lock stays when flock(1) exits and lasts until this process closes its
// descriptor (or exits: a killed provider never leaves a lock behind). The descriptor is
// opened with O_CLOEXEC (libuv's default), so no other child keeps it. This keeps the lock
// in this process, like the host's `File::lock`, with no helper process to manage, and lets
// the inode check below use the very descriptor that holds the lock.
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { closeSync, constants, fstatSync, mkdirSync, openSync, readdirSync, statSync, unlinkSync, utimesSync } from "node:fs";
import { dirname, isAbsolute, join, resolve } from "node:path";

import { leavesUrlToGlance } from "./component.js";

/** The limit when neither `cacheMaxSize` nor the variable says. */
export const DEFAULT_CACHE_MAX_SIZE = "10G";

/** The variable the limit is read from (the bundled host's `--cache-max-size` reads it too). */
export const CACHE_MAX_SIZE_VARIABLE = "OPENSTACK_IMAGE_CACHE_MAX_SIZE";

/** Where the entries' locks are kept, below the cache directory (as the host keeps them). */
const LOCKS = ".locks";

/**
 * A size: a number, then an optional binary multiple (K, M, G, T, P, E; `1G` is 1 GiB)
 * written with or without `B`/`iB`, or a plain `B`.
 */
const SIZE = /^(\d+(?:\.\d*)?|\.\d+)\s*(?:([kmgtpe])(?:i?b)?|b)?$/i;
const EXPONENTS = { k: 1, m: 2, g: 3, t: 4, p: 5, e: 6 };

/**
 * The download cache's limit in bytes from `value`: bytes as a number, or a size text
 * (`512M`, `20G`, `1.5GiB`, `0`: binary multiples, so `1G` is 1 GiB; `B`/`iB` optional), or
 * `none` for no limit (null). Throws an error naming `name` and the value.
 * @param {string | number} value
 * @param {string} [name] what the value is (for the error)
 * @returns {number | null}
 */
export function parseCacheSize(value, name = "cacheMaxSize") {
  if (typeof value === "number") {
    if (Number.isSafeInteger(value) && value >= 0) return value;
    throw new Error(`${name}: ${value} is not a size: bytes are a whole number, 0 or more`);
  }
  if (typeof value !== "string") {
    throw new Error(`${name}: ${JSON.stringify(value)} is not a size: write e.g. 512M, 20G, 1.5GiB, or none for no limit`);
  }
  const text = value.trim();
  if (text.toLowerCase() === "none") return null;
  const match = SIZE.exec(text);
  if (!match) {
    throw new Error(
      `${name}: '${value}' is not a size: write e.g. 512M, 20G, 1.5GiB, 0, or none for no limit (binary multiples: 1G = 1 GiB)`,
    );
  }
  const exponent = match[2] ? EXPONENTS[match[2].toLowerCase()] : 0;
  return Math.floor(Number(match[1]) * 1024 ** exponent);
}

/**
 * The limit a `cacheMaxSize` option means: the option, else OPENSTACK_IMAGE_CACHE_MAX_SIZE,
 * else 10G.
 * @param {string | number | null | undefined} option
 * @param {Record<string, string | undefined>} [env]
 */
export function cacheLimit(option, env = process.env) {
  if (option !== undefined && option !== null) return parseCacheSize(option);
  const variable = env[CACHE_MAX_SIZE_VARIABLE]?.trim();
  if (variable) return parseCacheSize(variable, CACHE_MAX_SIZE_VARIABLE);
  return parseCacheSize(DEFAULT_CACHE_MAX_SIZE);
}

/**
 * The cache's file for a URL and decompress flag (the component's and the host's name).
 * @param {string} url
 * @param {boolean} decompress
 */
export function cacheEntryName(url, decompress) {
  return createHash("md5").update(url + (decompress ? "true" : "false"), "utf8").digest("hex") + ".img";
}

/**
 * @typedef {{cache: string, url: string, decompress: boolean}} Download a URL the component
 *   downloads into a cache directory
 * @typedef {{data: string, area: string, name: string, size: number, lastUse: bigint}} Entry
 *   one cached download: its data file, the directory below the cache that holds it ("" or
 *   `component-<id>`), its bytes on disk (data and record) and last use (mtime, ns)
 */

/**
 * The download `doc` (a spec) has the component make into its cache directory: a URL source
 * the component fetches itself, with an absolute `image_cache_path` (so not `none`).
 * @param {Record<string, any> | null | undefined} doc
 * @returns {Download | null}
 */
export function cachedDownloadOf(doc) {
  if (!doc || typeof doc !== "object") return null;
  const cache = doc.image_cache_path;
  const url = doc.image_source_url;
  if (typeof cache !== "string" || !isAbsolute(cache) || typeof url !== "string" || !url || leavesUrlToGlance(doc)) {
    return null;
  }
  return { cache: resolve(cache), url, decompress: doc.decompress === true };
}

/** @param {string} dir @returns {string[]} */
function listDir(dir) {
  try {
    return readdirSync(dir);
  } catch (e) {
    if (e?.code === "ENOENT") return [];
    throw e;
  }
}

/** @param {string} path */
function isDir(path) {
  return statSync(path, { throwIfNoEntry: false })?.isDirectory() ?? false;
}

/**
 * The directories entries live in: the cache itself (this adapter's) and every component's
 * area (`component-<id>`, the bundled host's).
 * @param {string} cache
 */
function areas(cache) {
  const found = listDir(cache).filter((n) => n.startsWith("component-") && isDir(join(cache, n)));
  return ["", ...found.sort()];
}

/** @param {string} cache @param {string} area @param {string} name */
function lockPath(cache, area, name) {
  return join(cache, LOCKS, area || "_", `${name}.lock`);
}

let flockChecked = false;
let flockMissing = false;

/** Whether flock(1) can be run; warns once when it cannot. */
function flockAvailable() {
  if (!flockChecked) {
    flockChecked = true;
    const probe = spawnSync("flock", ["--version"], { stdio: "ignore" });
    flockMissing = probe.error !== undefined;
    if (flockMissing) {
      process.emitWarning(
        `flock(1) (util-linux) cannot be run (${probe.error.message}): the download cache is neither ` +
          "locked nor trimmed to cacheMaxSize",
        "OpenStackImageCacheWarning",
      );
    }
  }
  return !flockMissing;
}

/**
 * Locks the open file `fd` with flock(1) (see the top of this file).
 * @param {number} fd
 * @param {boolean} shared true: shared, waiting; false: exclusive if free
 * @param {string} path the lock file (for errors)
 * @returns {Promise<boolean>} false when `shared` is false and another process holds it
 */
function flockFd(fd, shared, path) {
  const args = shared ? ["--shared", "3"] : ["--exclusive", "--nonblock", "3"];
  return new Promise((resolvePromise, reject) => {
    const child = spawn("flock", args, { stdio: ["ignore", "ignore", "pipe", fd] });
    let stderr = "";
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (chunk) => (stderr += chunk));
    child.once("error", (e) => reject(new Error(`cannot lock ${path} with flock(1): ${e.message}`)));
    child.once("close", (code, signal) => {
      if (code === 0) resolvePromise(true);
      // flock(1) exits 1 when --nonblock finds the lock taken; its own errors are 64 and up.
      else if (code === 1 && !shared) resolvePromise(false);
      else reject(new Error(`cannot lock ${path}: flock(1) ended with ${signal ?? code}: ${stderr.trim()}`));
    });
  });
}

/**
 * A descriptor of the lock file at `path` (created, with its directory, if missing), locked:
 * shared, waiting while another process holds it exclusively; or exclusive if free (null when
 * another process holds it). A lock file removed between opening and locking it is opened
 * again, so the lock taken is always on the file the path names. Closing the descriptor
 * releases the lock.
 * @param {string} path
 * @param {boolean} shared
 * @returns {Promise<number | null>}
 */
async function lock(path, shared) {
  for (;;) {
    mkdirSync(dirname(path), { recursive: true });
    const fd = openSync(path, constants.O_WRONLY | constants.O_CREAT, 0o666);
    let same = false;
    try {
      if (!(await flockFd(fd, shared, path))) {
        closeSync(fd);
        return null;
      }
      const held = fstatSync(fd, { bigint: true });
      const now = statSync(path, { bigint: true, throwIfNoEntry: false });
      same = now !== undefined && now.ino === held.ino && now.dev === held.dev;
    } catch (e) {
      closeSync(fd);
      throw e;
    }
    if (same) return fd;
    closeSync(fd);
  }
}

/**
 * Takes a shared lock on the entry of `download` (waiting while a prune removes it) and marks
 * the entry used now; returns the descriptor holding the lock.
 * @param {Download} download
 */
async function hold({ cache, url, decompress }) {
  const name = cacheEntryName(url, decompress);
  const fd = await lock(lockPath(cache, "", name), true);
  const data = join(cache, name);
  try {
    utimesSync(data, statSync(data).atime, new Date());
  } catch {
    // not downloaded yet
  }
  return fd;
}

/** Removes a file; false when it was already gone. @param {string} path */
function removeFile(path) {
  try {
    unlinkSync(path);
    return true;
  } catch (e) {
    if (e?.code === "ENOENT") return false;
    throw e;
  }
}

/**
 * Removes what killed runs left in `cache`: partial downloads (`.<entry>.<id>.part`,
 * `.<entry>.json.<id>.part`) and records (`<entry>.json`) without their data, of entries no
 * process holds. Returns the files removed.
 * @param {string} cache
 * @returns {Promise<string[]>}
 */
export async function removeCacheLeftovers(cache) {
  const removed = [];
  for (const area of areas(cache)) {
    const dir = join(cache, area);
    const names = listDir(dir);
    const present = new Set(names);
    for (const name of names) {
      let entry;
      if (name.startsWith(".") && name.endsWith(".part")) {
        const end = name.indexOf(".img", 1);
        if (end < 0) continue;
        entry = name.slice(1, end + 4);
      } else if (name.endsWith(".img.json")) {
        entry = name.slice(0, -".json".length);
        if (present.has(entry)) continue;
      } else {
        continue;
      }
      const fd = await lock(lockPath(cache, area, entry), false);
      if (fd === null) continue;
      try {
        if (removeFile(join(dir, name))) removed.push(join(dir, name));
      } finally {
        closeSync(fd);
      }
    }
  }
  return removed;
}

/**
 * Every entry of `cache`, least recently used first.
 * @param {string} cache
 * @returns {Entry[]}
 */
export function cacheEntries(cache) {
  /** @type {Entry[]} */
  const entries = [];
  for (const area of areas(cache)) {
    const dir = join(cache, area);
    for (const name of listDir(dir)) {
      if (name.startsWith(".") || !name.endsWith(".img")) continue;
      const data = join(dir, name);
      const meta = statSync(data, { bigint: true, throwIfNoEntry: false });
      if (!meta?.isFile()) continue;
      const record = statSync(data + ".json", { throwIfNoEntry: false })?.size ?? 0;
      entries.push({ data, area, name, size: Number(meta.size) + record, lastUse: meta.mtimeNs });
    }
  }
  return entries.sort((a, b) => (a.lastUse < b.lastUse ? -1 : a.lastUse > b.lastUse ? 1 : 0));
}

/**
 * Removes an entry unless a process holds it; true when removed.
 * @param {string} cache
 * @param {Entry} entry
 */
async function removeEntry(cache, entry) {
  const path = lockPath(cache, entry.area, entry.name);
  const fd = await lock(path, false);
  if (fd === null) return false;
  try {
    removeFile(entry.data);
    removeFile(entry.data + ".json");
    // Unlinked while locked: a process that opened it meanwhile sees, once it has the lock,
    // that the path is no longer its file, and locks the new one.
    try {
      unlinkSync(path);
    } catch {
      // gone already
    }
  } finally {
    closeSync(fd);
  }
  return true;
}

/**
 * Removes the least recently used entries of `cache` until it holds at most `maxBytes`,
 * skipping those another process holds.
 * @param {string} cache
 * @param {number} maxBytes
 * @returns {Promise<{removed: Entry[], keptInUse: Entry[], remaining: number}>}
 */
export async function pruneCache(cache, maxBytes) {
  const entries = cacheEntries(cache);
  let remaining = entries.reduce((sum, e) => sum + e.size, 0);
  const removed = [];
  const keptInUse = [];
  for (const entry of entries) {
    if (remaining <= maxBytes) continue;
    if (await removeEntry(cache, entry)) {
      remaining -= entry.size;
      removed.push(entry);
    } else {
      keptInUse.push(entry);
    }
  }
  return { removed, keptInUse, remaining };
}

/**
 * The download caches one component call may use, as the bundled host keeps them: what
 * killed runs left is removed and the entry of each download the specs in `docs` may make is
 * held (shared lock, marked used). Call `finish()` when the call has ended (returned or
 * failed): it releases the holds and trims each cache to the limit, least recently used
 * entries first; a cache that cannot be trimmed is a warning.
 * @param {(Record<string, any> | null | undefined)[]} docs the documents the call carries
 * @param {string | number | null} [maxSize] the `cacheMaxSize` option (see `cacheLimit`)
 * @returns {Promise<{finish: () => Promise<void>}>}
 */
export async function useCaches(docs, maxSize) {
  const byKey = new Map();
  for (const download of docs.map(cachedDownloadOf)) {
    if (download) byKey.set(JSON.stringify(download), download);
  }
  /** @type {Download[]} */
  const downloads = [...byKey.values()];
  if (downloads.length === 0) return { finish: async () => {} };
  const limit = cacheLimit(maxSize);
  if (!flockAvailable()) return { finish: async () => {} };
  const caches = [...new Set(downloads.map((d) => d.cache))].sort();
  /** @type {number[]} */
  const holds = [];
  try {
    for (const cache of caches) await removeCacheLeftovers(cache);
    for (const download of downloads) holds.push(await hold(download));
  } catch (e) {
    holds.forEach((fd) => closeSync(fd));
    throw e;
  }
  return {
    async finish() {
      holds.splice(0).forEach((fd) => closeSync(fd));
      if (limit === null) return;
      for (const cache of caches) {
        try {
          await pruneCache(cache, limit);
        } catch (e) {
          process.emitWarning(`could not trim the download cache ${cache}: ${e?.message ?? e}`, "OpenStackImageCacheWarning");
        }
      }
    },
  };
}
