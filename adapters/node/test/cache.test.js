// The download cache kept as the bundled host keeps it (same files, same flock(2) locks),
// with another process's locks taken by flock(1). No component and no cloud needed.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterEach, beforeEach, describe, it } from "node:test";

import {
  CACHE_MAX_SIZE_VARIABLE,
  cacheEntries,
  cacheEntryName,
  cacheLimit,
  parseCacheSize,
  pruneCache,
  removeCacheLeftovers,
  useCaches,
} from "../src/cache.js";
import { DEFAULT_COMPONENT_DIR } from "../src/component.js";
import { ImageProvider } from "../src/provider.js";

const HOUR = 3600 * 1000;
const hasFlock = spawnSync("flock", ["--version"], { stdio: "ignore" }).error === undefined;
const hasComponent = existsSync(join(DEFAULT_COMPONENT_DIR, "openstack-image.js"));

describe("download cache", { skip: hasFlock ? false : "needs flock(1) (util-linux)" }, () => {
  /** @type {string} */
  let cache;
  /** @type {(() => void)[]} */
  let cleanups;

  beforeEach(async () => {
    cache = await mkdtemp(join(tmpdir(), "openstack-image-cache-"));
    cleanups = [];
  });

  afterEach(async () => {
    for (const cleanup of cleanups.reverse()) cleanup();
    await rm(cache, { recursive: true, force: true });
  });

  /** A cache entry (data + record) last used `hoursAgo`; its data path. */
  function entry(url, { size = 1000, hoursAgo = 1, area = "" } = {}) {
    const dir = join(cache, area);
    mkdirSync(dir, { recursive: true });
    const data = join(dir, cacheEntryName(url, false));
    writeFileSync(data, Buffer.alloc(size));
    writeFileSync(data + ".json", JSON.stringify({ url, decompress: false }));
    const when = new Date(Date.now() - hoursAgo * HOUR);
    utimesSync(data, when, when);
    return data;
  }

  const lockOf = (data, area = "_") => join(cache, ".locks", area, `${data.split("/").pop()}.lock`);

  /**
   * Holds `lock` shared from another process (flock(1)) until `release()` or the test's end.
   * (`--close`: only flock(1) itself, the process waited for, holds the lock, not its command.)
   */
  async function heldElsewhere(lock) {
    mkdirSync(dirname(lock), { recursive: true });
    const child = spawn("flock", ["--shared", "--close", lock, "sh", "-c", "echo held; exec sleep 30"], {
      stdio: ["ignore", "pipe", "inherit"],
      detached: true,
    });
    const exited = new Promise((resolve) => child.once("exit", resolve));
    await new Promise((resolve, reject) => {
      child.stdout.once("data", (chunk) => (String(chunk) === "held\n" ? resolve(undefined) : reject(chunk)));
      child.once("error", reject);
    });
    let released = false;
    const release = async () => {
      if (released) return;
      released = true;
      process.kill(-child.pid, "SIGKILL"); // flock(1) and its sh/sleep: the group started here
      await exited;
    };
    cleanups.push(() => {
      if (!released) process.kill(-child.pid, "SIGKILL");
    });
    return release;
  }

  /** Whether another process could take `lock` exclusively now (as a prune would). */
  const freeElsewhere = (lock) => spawnSync("flock", ["--exclusive", "--nonblock", lock, "true"]).status === 0;

  const spec = (url, more = {}) => ({
    container_format: "bare",
    disk_format: "raw",
    image_source_url: url,
    image_cache_path: cache,
    ...more,
  });

  it("parses sizes in binary units, or none", () => {
    assert.equal(parseCacheSize("512M"), 512 * 2 ** 20);
    assert.equal(parseCacheSize("20G"), 20 * 2 ** 30);
    assert.equal(parseCacheSize("1.5GiB"), 3 * 2 ** 29);
    assert.equal(parseCacheSize("10 MB"), 10 * 2 ** 20);
    assert.equal(parseCacheSize("2k"), 2048);
    assert.equal(parseCacheSize("0"), 0);
    assert.equal(parseCacheSize("123B"), 123);
    assert.equal(parseCacheSize(4096), 4096);
    assert.equal(parseCacheSize("none"), null);
    assert.equal(parseCacheSize(" None "), null);
    for (const bad of ["lots", "-1", "1.5X", "G", "", "1iB"]) {
      assert.throws(() => parseCacheSize(bad), (e) => {
        assert.ok(e instanceof Error);
        assert.match(e.message, new RegExp(`^cacheMaxSize: '${bad}' is not a size: .*20G`));
        return true;
      });
    }
    assert.throws(() => parseCacheSize(-5), /cacheMaxSize: -5 is not a size/);
  });

  it("takes the option, else OPENSTACK_IMAGE_CACHE_MAX_SIZE, else 10G", () => {
    assert.equal(cacheLimit(undefined, {}), 10 * 2 ** 30);
    assert.equal(cacheLimit(undefined, { [CACHE_MAX_SIZE_VARIABLE]: "none" }), null);
    assert.equal(cacheLimit("1M", { [CACHE_MAX_SIZE_VARIABLE]: "none" }), 2 ** 20);
    assert.throws(() => cacheLimit(undefined, { [CACHE_MAX_SIZE_VARIABLE]: "big" }), /^Error: OPENSTACK_IMAGE_CACHE_MAX_SIZE: 'big'/);
  });

  it("names entries as the host does", () => {
    // md5 of the URL and "true"/"false", as documents::spec::cache_entry_name.
    assert.equal(cacheEntryName("http://h/x", false), "cae0cdf7a338e3e15a34a479e13eaf5d.img");
    assert.equal(cacheEntryName("http://h/x", true), "ac23090939691c4838365695847855ea.img");
  });

  it("removes what killed runs left unless their entry is held", async () => {
    const name = (url) => cacheEntryName(url, false);
    const killed = join(cache, `.${name("http://h/killed")}.0123.part`);
    const killedRecord = join(cache, `.${name("http://h/killed")}.json.4567.part`);
    const orphanRecord = join(cache, `${name("http://h/orphan")}.json`);
    const running = join(cache, `.${name("http://h/running")}.89ab.part`);
    const kept = entry("http://h/kept", { size: 10 });
    for (const file of [killed, killedRecord, orphanRecord, running]) writeFileSync(file, "partial");
    await heldElsewhere(join(cache, ".locks", "_", `${name("http://h/running")}.lock`));

    const removed = await removeCacheLeftovers(cache);
    assert.deepEqual(removed.sort(), [killed, killedRecord, orphanRecord].sort());
    assert.ok(existsSync(running), "a download in progress elsewhere is left alone");
    assert.ok(existsSync(kept) && existsSync(kept + ".json"));
  });

  it("prunes the least recently used entries beyond the limit", async () => {
    const old = entry("http://h/old", { hoursAgo: 4, area: "component-abc" });
    const mid = entry("http://h/mid", { hoursAgo: 3 });
    const recent = entry("http://h/new", { hoursAgo: 2 });
    const entries = cacheEntries(cache);
    assert.deepEqual(entries.map((e) => e.data), [old, mid, recent]);
    const each = entries[0].size;
    assert.equal(each, 1000 + statSync(old + ".json").size);

    let pruned = await pruneCache(cache, 2 * each);
    assert.deepEqual(pruned.removed.map((e) => e.data), [old]);
    assert.equal(pruned.remaining, 2 * each);
    assert.ok(!existsSync(old) && !existsSync(old + ".json"));
    assert.ok(!existsSync(lockOf(old, "component-abc")), "its lock file goes too");
    assert.ok(existsSync(mid) && existsSync(recent));

    pruned = await pruneCache(cache, each + 1);
    assert.deepEqual([pruned.removed.map((e) => e.data), pruned.remaining], [[mid], each]);
    pruned = await pruneCache(cache, each);
    assert.deepEqual([pruned.removed, pruned.keptInUse, pruned.remaining], [[], [], each]);
  });

  it("keeps an entry another process holds", async () => {
    const held = entry("http://h/held", { hoursAgo: 5 });
    const free = entry("http://h/free", { hoursAgo: 1 });
    const release = await heldElsewhere(lockOf(held));
    let pruned = await pruneCache(cache, 0);
    assert.deepEqual([pruned.removed.map((e) => e.data), pruned.keptInUse.map((e) => e.data)], [[free], [held]]);
    assert.ok(existsSync(held) && existsSync(held + ".json"));

    await release();
    pruned = await pruneCache(cache, 0);
    assert.deepEqual([pruned.removed.map((e) => e.data), pruned.remaining], [[held], 0]);
    assert.deepEqual(readdirSync(cache), [".locks"]);
  });

  it("holds a call's entry while it runs, then trims the cache", async () => {
    const used = entry("http://h/used", { hoursAgo: 5 });
    const other = entry("http://h/other", { hoursAgo: 1 });
    const leftover = join(cache, `.${cacheEntryName("http://h/gone", false)}.1.part`);
    writeFileSync(leftover, "partial");
    const started = Date.now();

    const limit = statSync(used).size + statSync(used + ".json").size;
    const caches = await useCaches([spec("http://h/used"), null, { id: "state" }], limit);
    assert.ok(!existsSync(leftover), "leftovers go before the call");
    assert.ok(!freeElsewhere(lockOf(used)), "the entry is held while the call runs");
    assert.ok(statSync(used).mtimeMs >= started - 1000, "holding it marked it used");
    await caches.finish();
    assert.ok(freeElsewhere(lockOf(used)), "released after the call");
    assert.ok(existsSync(used), "the entry just used is the most recent");
    assert.ok(!existsSync(other), "the least recently used one went to fit the limit");

    // Downloads that Glance makes, or that skip the cache, hold and trim nothing.
    const none = await useCaches([spec("http://h/used", { import_method: "web-download" }), spec("http://h/used", { image_cache_path: "none" })], 0);
    await none.finish();
    assert.ok(existsSync(used));
    // "none": held and cleaned, never trimmed.
    const unbounded = await useCaches([spec("http://h/used")], "none");
    await unbounded.finish();
    assert.ok(existsSync(used));
  });

  it("the provider trims the cache to cacheMaxSize after a call", { skip: !hasComponent && "run `npm run build` first" }, async () => {
    const old = entry("http://h/old", { hoursAgo: 2 });
    const inputs = { containerFormat: "bare", diskFormat: "raw", imageSourceUrl: "https://example.invalid/x.img", imageCachePath: cache };
    const bad = new ImageProvider({ onStderr: () => {}, cacheMaxSize: "lots" });
    await assert.rejects(bad.check({}, inputs), /^Error: cacheMaxSize: 'lots' is not a size/);
    assert.ok(existsSync(old));

    const provider = new ImageProvider({ onStderr: () => {}, cacheMaxSize: 0 });
    const checked = await provider.check({}, inputs);
    assert.deepEqual(checked.failures, []);
    assert.ok(!existsSync(old), "trimmed after check-json");
  });
});
