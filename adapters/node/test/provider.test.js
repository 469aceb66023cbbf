// The Pulumi dynamic provider against a real OpenStack (Keystone + Glance): every lifecycle
// method, each result checked with the observer CLI (`openstack image show`).
//
// Needs: `npm run build -- <component.wasm>` done, the OS_* variables of the cloud, and
// DEV_CLOUD_VENV (or OPENSTACK_CLI) for the `openstack` command. Run: node --test test/
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFile, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";

import { callComponent, ComponentError } from "../src/component.js";
import { cloudOf } from "../src/impl.js";
import { ImageProvider } from "../src/provider.js";
import { heldSession } from "../src/session.js";

const run = promisify(execFile);
const OPENSTACK =
  process.env.OPENSTACK_CLI ||
  (process.env.DEV_CLOUD_VENV ? join(process.env.DEV_CLOUD_VENV, "bin", "openstack") : "openstack");
const IMAGE_BYTES = 4 * 1024 * 1024;

/** `openstack image show -f json ID`, or null when the CLI says the image does not exist. */
async function observe(id) {
  try {
    const { stdout } = await run(OPENSTACK, ["image", "show", "-f", "json", id], { maxBuffer: 1 << 24 });
    return JSON.parse(stdout);
  } catch (e) {
    if (/No Image found|Could not find|not found/i.test(`${e.stderr}${e.stdout}`)) return null;
    throw new Error(`openstack image show ${id} failed: ${e.stderr || e.message}`);
  }
}

describe("ImageProvider against the dev cloud", { skip: !process.env.OS_AUTH_URL && "OS_AUTH_URL is not set" }, () => {
  const runId = `${Date.now().toString(36)}-${randomBytes(3).toString("hex")}`;
  const imageName = `node-adapter-test-${runId}`;
  const stderrLines = [];
  const provider = new ImageProvider({ onStderr: (line) => stderrLines.push(line) });
  /** ids this run created, deleted again in after() whatever happened */
  const created = new Set();
  let dir;
  let imagePath;
  let inputs;
  let id;
  let outs;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "openstack-image-node-"));
    imagePath = join(dir, "disk.raw");
    await writeFile(imagePath, randomBytes(IMAGE_BYTES));
  });

  after(async () => {
    for (const leftover of created) {
      if (await observe(leftover)) {
        await run(OPENSTACK, ["image", "delete", leftover]).catch((e) =>
          console.error(`could not delete leftover image ${leftover}: ${e.stderr || e.message}`),
        );
      }
    }
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const seed = () => ({
    name: imageName,
    containerFormat: "bare",
    diskFormat: "raw",
    localFilePath: imagePath,
    minDiskGb: 1,
    properties: { os_distro: "testos", "Mixed_Case.key": "kept as is", camelKey: "v" },
    tags: ["node-adapter", runId],
    __provider: "serialized-provider-is-ignored",
  });

  it("check accepts a good spec and fills defaults, in camelCase", async () => {
    const result = await provider.check({}, seed());
    assert.deepEqual(result.failures, []);
    inputs = result.inputs;
    assert.equal(inputs.containerFormat, "bare");
    assert.equal(inputs.diskFormat, "raw");
    assert.equal(inputs.localFilePath, imagePath);
    assert.equal(inputs.minDiskGb, 1);
    assert.equal(inputs.visibility, "private", "default visibility filled in");
    assert.equal(inputs.__provider, undefined);
    assert.deepEqual(inputs.properties, seed().properties, "property keys are not case-converted");
    for (const key of Object.keys(inputs)) assert.doesNotMatch(key, /_/, `input ${key} is camelCase`);
  });

  it("check reports a bad field by its camelCase name", async () => {
    const result = await provider.check({}, { ...seed(), diskFormat: "floppy" });
    assert.ok(result.failures.length >= 1, "a failure");
    const failure = result.failures.find((f) => f.property === "diskFormat");
    assert.ok(failure, `failure names diskFormat: ${JSON.stringify(result.failures)}`);
    assert.match(failure.reason, /\S/);
  });

  it("errors come back as Errors with the component's kind and message", async () => {
    // An invalid spec given straight to create (Pulumi always checks first): no image is made.
    await assert.rejects(provider.create({ ...inputs, diskFormat: "floppy" }), (e) => {
      assert.ok(e instanceof Error && e instanceof ComponentError, String(e));
      assert.equal(e.kind, "invalid-spec");
      assert.deepEqual(e.fields.map((f) => f.property), ["diskFormat"]);
      assert.match(e.message, /^invalid-spec: /);
      assert.match(e.message, /diskFormat/);
      return true;
    });
    // A wrong password (a setting over the OS_* variables): Keystone refuses the login.
    const wrong = new ImageProvider({ cloud: { auth: { password: "not-the-password" } }, onStderr: () => {} });
    await assert.rejects(wrong.read("00000000-0000-0000-0000-000000000000", {}), (e) => {
      assert.ok(e instanceof Error && e instanceof ComponentError, String(e));
      assert.equal(e.kind, "auth-failed", e.message);
      assert.ok(e.componentMessage.length > 0);
      assert.doesNotMatch(e.message, /not-the-password/, "the message does not echo the password");
      return true;
    });
  });

  it("lifecycle calls work on the session alone: a refused one costs one login and the call again", async () => {
    // A session Glance refuses, given as a setting: were the component given the password
    // as well, it would log in itself and the provider would keep the refused session.
    const real = await callComponent({ fn: "authenticateJson", request: { cloud: await cloudOf({}) } });
    const refused = { ...real, token: "gAAAAABnot-a-valid-token" };
    const options = { cloud: { session: refused }, onStderr: () => {} };
    const given = new ImageProvider(options);
    const gone = await given.read("00000000-0000-0000-0000-000000000000", {});
    assert.equal(gone.id, "", "the read went through");
    const renewed = heldSession(await cloudOf(options));
    assert.ok(renewed, "a session is held for that cloud");
    assert.notEqual(renewed.token, refused.token, "the provider logged in again");
    assert.notEqual(renewed.token, real.token);
    // The renewed session serves the next call as it is.
    await given.read("00000000-0000-0000-0000-000000000000", {});
    assert.equal(heldSession(await cloudOf(options)).token, renewed.token);
  });

  it("create uploads the file and the image is active in Glance", async () => {
    const result = await provider.create(inputs);
    id = result.id;
    created.add(id);
    outs = result.outs;
    assert.match(id, /^[0-9a-f-]{36}$/);
    assert.equal(outs.status, "active");
    assert.equal(outs.sizeBytes, IMAGE_BYTES);
    assert.equal(outs.name, imageName);
    assert.equal(outs.id, undefined, "the id is Pulumi's, not an output");
    assert.deepEqual(outs.properties, seed().properties);
    assert.deepEqual([...outs.tags].sort(), [...seed().tags].sort());
    for (const key of Object.keys(outs)) assert.doesNotMatch(key, /_/, `output ${key} is camelCase`);
    assert.ok(outs.metadata && typeof outs.metadata === "object", "metadata output");
    assert.equal(outs.metadata.os_distro, "testos", "metadata keys are Glance's, unconverted");

    const seen = await observe(id);
    assert.equal(seen.status, "active");
    assert.equal(seen.name, imageName);
    assert.equal(seen.size, IMAGE_BYTES);
    assert.equal(seen.disk_format, "raw");
    assert.equal(seen.min_disk, 1);
    assert.deepEqual([...seen.tags].sort(), [...seed().tags].sort());
    for (const [k, v] of Object.entries(seed().properties)) assert.equal(seen.properties[k], v, `property ${k}`);
    assert.equal(seen.checksum ?? null, outs.checksum ?? null);

    // The component's progress lines (stderr) reached the provider.
    assert.ok(
      stderrLines.some((l) => l.includes(id)),
      `progress lines mention the image: ${stderrLines.slice(-5).join(" | ")}`,
    );
  });

  it("read returns the same id and outputs", async () => {
    const result = await provider.read(id, { ...inputs, ...outs });
    assert.equal(result.id, id);
    assert.deepEqual(result.props, outs);
  });

  it("diff: a property change is an update, a containerFormat change a replacement", async () => {
    const olds = { ...inputs, ...outs };
    const same = await provider.diff(id, olds, inputs);
    assert.equal(same.changes, false, `no change: ${JSON.stringify(same)}`);
    assert.deepEqual(same.replaces, []);

    const propertyChange = await provider.diff(id, olds, {
      ...inputs,
      properties: { ...inputs.properties, os_distro: "otheros" },
    });
    assert.equal(propertyChange.changes, true);
    assert.deepEqual(propertyChange.replaces, []);

    // (diskFormat is checked against the file's bytes, which are raw: another container instead.)
    const formatChange = await provider.diff(id, olds, { ...inputs, containerFormat: "ovf" });
    assert.equal(formatChange.changes, true);
    assert.ok(formatChange.replaces.includes("containerFormat"), `replaces: ${JSON.stringify(formatChange.replaces)}`);
  });

  it("update changes properties and tags in place", async () => {
    const olds = { ...inputs, ...outs };
    const news = {
      ...inputs,
      properties: { os_distro: "otheros", "Mixed_Case.key": "kept as is", added_key: "new" },
      tags: ["node-adapter", runId, "updated"],
    };
    const checked = await provider.check(olds, news);
    assert.deepEqual(checked.failures, []);
    const result = await provider.update(id, olds, checked.inputs);
    outs = result.outs;
    assert.deepEqual(outs.properties, news.properties);
    assert.deepEqual([...outs.tags].sort(), [...news.tags].sort());

    const seen = await observe(id);
    assert.equal(seen.id, id, "same image");
    assert.equal(seen.properties.os_distro, "otheros");
    assert.equal(seen.properties.added_key, "new");
    assert.equal(seen.properties.camelKey, undefined, "removed property is gone");
    assert.deepEqual([...seen.tags].sort(), [...news.tags].sort());
    inputs = checked.inputs;
  });

  it("create from imageSourceUrl (the seed example's shape) downloads through the cache", async () => {
    // A source server in this process, on the loopback interface, closed at the end.
    const data = await readFile(imagePath);
    const server = createServer((req, res) => {
      res.writeHead(200, { "content-length": data.length, "last-modified": new Date(0).toUTCString() });
      res.end(req.method === "HEAD" ? undefined : data);
    });
    await new Promise((r) => server.listen(0, "127.0.0.1", () => r(undefined)));
    const address = server.address();
    const port = typeof address === "object" && address ? address.port : 0;
    try {
      const cacheDir = join(dir, "cache");
      const checked = await provider.check({}, {
        name: `${imageName}-url`,
        containerFormat: "bare",
        diskFormat: "raw",
        imageSourceUrl: `http://127.0.0.1:${port}/disk.raw`,
        imageCachePath: cacheDir,
        properties: { key: "value" },
      });
      assert.deepEqual(checked.failures, []);
      const result = await provider.create(checked.inputs);
      created.add(result.id);
      assert.equal(result.outs.status, "active");
      assert.equal(result.outs.sizeBytes, IMAGE_BYTES);
      assert.ok((await readdir(cacheDir)).length > 0, "the download was cached (read-write grant)");
      const seen = await observe(result.id);
      assert.equal(seen.status, "active");
      assert.equal(seen.size, IMAGE_BYTES);
      assert.equal(seen.properties.key, "value");
      await provider.delete(result.id, result.outs);
      assert.equal(await observe(result.id), null);
      created.delete(result.id);
    } finally {
      server.close();
    }
  });

  it("delete removes the image; read then reports it gone", async () => {
    await provider.delete(id, { ...inputs, ...outs });
    const seen = await observe(id);
    assert.ok(seen === null || seen.status === "deleted", `image gone: ${JSON.stringify(seen)}`);
    created.delete(id);

    const gone = await provider.read(id, { ...inputs, ...outs });
    assert.equal(gone.id, "", "an empty id tells Pulumi the resource is gone");
  });
});
