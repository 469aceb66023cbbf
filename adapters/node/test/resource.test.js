// The Image resource class as a Pulumi program uses it (the seed example), with Pulumi's
// mocks instead of an engine, and the provider as Pulumi ships it to the provider process:
// serialized by Pulumi's closure serializer and loaded back from that text.
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

import * as pulumi from "@pulumi/pulumi";

// The loader Pulumi's dynamic-provider host uses, resolved from @pulumi/pulumi itself.
const pulumiRequire = createRequire(createRequire(import.meta.url).resolve("@pulumi/pulumi"));

/** Pulumi's mocks instead of an engine; returns the list each registered resource lands in. */
async function mockedResources() {
  const registered = [];
  await pulumi.runtime.setMocks(
    {
      newResource: (args) => {
        registered.push(args);
        return { id: "mock-id", state: args.inputs };
      },
      call: () => ({}),
    },
    "project",
    "stack",
    true,
  );
  return registered;
}

describe("Resource classes", () => {
  let cacheBase;
  before(async () => {
    // Downloads without image_cache_path get the default cache: keep it out of ~/.cache.
    cacheBase = await mkdtemp(join(tmpdir(), "openstack-image-cache-"));
    process.env.OPENSTACK_IMAGE_CACHE_DIR = cacheBase;
  });
  after(async () => {
    delete process.env.OPENSTACK_IMAGE_CACHE_DIR;
    if (cacheBase) await rm(cacheBase, { recursive: true, force: true });
  });

  it("registers the seed example as a dynamic resource whose serialized provider works", async () => {
    const registered = await mockedResources();
    // Imported after setMocks, as Pulumi's mock tests do.
    const { Image } = await import("../src/provider.js");

    const image = new Image("rancheros", {
      containerFormat: "bare",
      diskFormat: "qcow2",
      imageSourceUrl: "https://releases.example.org/os/latest/rancheros-openstack.img",
      properties: { key: "value" },
    });
    const id = await new Promise((resolve) => image.id.apply(resolve));
    assert.equal(id, "mock-id");

    const [resource] = registered;
    assert.equal(resource.type, "pulumi-nodejs:dynamic/openstack:Image");
    assert.equal(resource.name, "rancheros");
    const { __provider: serialized, ...inputs } = resource.inputs;
    assert.deepEqual(inputs, {
      name: "rancheros",
      containerFormat: "bare",
      diskFormat: "qcow2",
      imageSourceUrl: "https://releases.example.org/os/latest/rancheros-openstack.img",
      properties: { key: "value" },
    });

    // What Pulumi's dynamic-provider host does with the __provider string.
    assert.equal(typeof serialized, "string");
    const provider = pulumiRequire("require-from-string")(serialized).handler();
    const checked = await provider.check({}, resource.inputs);
    assert.deepEqual(checked.failures, []);
    assert.equal(checked.inputs.imageSourceUrl, inputs.imageSourceUrl);
    assert.equal(checked.inputs.visibility, "private");
    assert.equal(checked.inputs.imageCachePath, join(cacheBase, "images"), "default download cache");
    const bad = await provider.check({}, { ...resource.inputs, containerFormat: "crate" });
    assert.deepEqual(bad.failures.map((f) => f.property), ["containerFormat"]);
  });

  it("registers ImageAccessAccept with a serialized provider that keeps its side", async () => {
    const registered = await mockedResources();
    const { ImageAccessAccept } = await import("../src/provider.js");

    const imageId = "6ac31a7f-1e4e-4a3b-8d43-3a3b6fb6a9e1";
    const accept = new ImageAccessAccept("accept", { imageId });
    await new Promise((resolve) => accept.id.apply(resolve));

    const [resource] = registered;
    assert.equal(resource.type, "pulumi-nodejs:dynamic/openstack:ImageAccessAccept");
    const { __provider: serialized, ...inputs } = resource.inputs;
    assert.deepEqual(inputs, { imageId });
    const provider = pulumiRequire("require-from-string")(serialized).handler();
    const checked = await provider.check({}, resource.inputs);
    assert.deepEqual(checked.failures, []);
    assert.equal(checked.inputs.status, "accepted", "the member side's default answer");
    assert.equal(checked.inputs.side, "member");
  });
});
