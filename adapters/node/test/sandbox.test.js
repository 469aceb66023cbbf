// The sandbox the provider gives the component: only the granted directories, read-only
// where granted so, and no environment. No cloud needed (check-json makes no network calls).
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

import { callComponent, ComponentError, grantsFor } from "../src/component.js";
import { ImageProvider } from "../src/provider.js";
import { sandboxPreopens } from "../src/sandbox.js";

describe("sandbox", () => {
  let root;
  let imageDir;
  let otherDir;
  let cacheDir;
  let imagePath;

  before(async () => {
    root = await mkdtemp(join(tmpdir(), "openstack-image-sandbox-"));
    imageDir = join(root, "images");
    otherDir = join(root, "other");
    cacheDir = join(root, "cache");
    await mkdir(imageDir);
    await mkdir(otherDir);
    imagePath = join(imageDir, "disk.raw");
    await writeFile(imagePath, randomBytes(4096));
  });

  after(async () => {
    if (root) await rm(root, { recursive: true, force: true });
  });

  const spec = () => ({ container_format: "bare", disk_format: "raw", local_file_path: imagePath });

  it("grants the image file's directory read-only and a download cache read-write", () => {
    assert.deepEqual(grantsFor([spec()]), { readOnlyDirs: [imageDir], readWriteDirs: [] });
    const download = { image_source_url: "https://example.invalid/x.img", image_cache_path: cacheDir };
    assert.deepEqual(grantsFor([download]), { readOnlyDirs: [], readWriteDirs: [cacheDir] });
    assert.ok(existsSync(cacheDir), "the cache directory is created");
    assert.deepEqual(grantsFor([{ ...download, web_download: true }]), { readOnlyDirs: [], readWriteDirs: [] });
  });

  it("the component sees the granted directory and nothing else", async () => {
    const provider = new ImageProvider({ onStderr: () => {} });
    const ok = await provider.check({}, { containerFormat: "bare", diskFormat: "raw", localFilePath: imagePath });
    assert.deepEqual(ok.failures, [], "visible through the provider's own grants");

    for (const grants of [
      { readOnlyDirs: [], readWriteDirs: [] },
      { readOnlyDirs: [otherDir], readWriteDirs: [] },
    ]) {
      await assert.rejects(
        callComponent({ fn: "checkJson", request: { spec: spec() }, grants, onStderr: () => {} }),
        (e) => {
          assert.ok(e instanceof ComponentError, String(e));
          assert.equal(e.kind, "invalid-spec");
          assert.equal(e.fields[0]?.field, "local_file_path");
          return true;
        },
        `invisible with grants ${JSON.stringify(grants)}`,
      );
    }
  });

  it("read-only preopens refuse writes; read-write ones allow them", async () => {
    const writable = join(root, "rw");
    await mkdir(writable);
    const [[ro], [rw]] = sandboxPreopens({ readOnlyDirs: [imageDir], readWriteDirs: [writable] });
    const follow = { symlinkFollow: true };

    const file = ro.openAt(follow, "disk.raw", {}, { read: true });
    assert.equal(file.stat().size, 4096n, "reading works");
    assert.deepEqual(ro.getFlags(), { read: true });
    assert.throws(() => file.writeViaStream(0n), (e) => e === "read-only");
    assert.throws(() => ro.openAt(follow, "disk.raw", {}, { write: true }), (e) => e === "read-only");
    assert.throws(() => ro.openAt(follow, "new.raw", { create: true }, { read: true }), (e) => e === "read-only");
    assert.throws(() => ro.openAt(follow, "disk.raw", { truncate: true }, { read: true }), (e) => e === "read-only");
    assert.throws(() => ro.unlinkFileAt("disk.raw"), (e) => e === "read-only");
    assert.throws(() => ro.createDirectoryAt("sub"), (e) => e === "read-only");
    assert.throws(() => ro.renameAt("disk.raw", rw, "moved.raw"), (e) => e === "read-only");
    assert.throws(() => rw.renameAt("x", ro, "y"), (e) => e === "read-only");
    assert.throws(() => ro.openAt(follow, "../other", {}, { read: true }), (e) => e === "not-permitted");
    assert.equal((await readFile(imagePath)).length, 4096, "the file is untouched");

    // Rust's File::create asks for mutate-directory too; the shim alone would refuse it.
    const created = rw.openAt(follow, "new.bin", { create: true }, { read: true, write: true, mutateDirectory: true });
    assert.equal(created.stat().size, 0n);
    rw.createDirectoryAt("sub");
    assert.ok(existsSync(join(writable, "new.bin")) && existsSync(join(writable, "sub")));
  });
});
