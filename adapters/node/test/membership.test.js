// Sharing an image through the Pulumi dynamic providers against a real OpenStack: the
// publisher project offers its image (ImageAccess, owner side), the consumer project
// accepts it (ImageAccessAccept, member side), each result checked with the observer CLI
// (`openstack image member list`, as the cloud's admin).
//
// Needs what provider.test.js needs, plus the dev cloud's DEV_CLOUD_PUBLISHER_* and
// DEV_CLOUD_CONSUMER_* users (scripts/dev-cloud env).
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";

import { ComponentError } from "../src/component.js";
import { ImageProvider, MembershipProvider } from "../src/provider.js";

const run = promisify(execFile);
const OPENSTACK =
  process.env.OPENSTACK_CLI ||
  (process.env.DEV_CLOUD_VENV ? join(process.env.DEV_CLOUD_VENV, "bin", "openstack") : "openstack");
const env = process.env;
const missing = !env.OS_AUTH_URL
  ? "OS_AUTH_URL is not set"
  : !env.DEV_CLOUD_PUBLISHER_USERNAME || !env.DEV_CLOUD_CONSUMER_USERNAME
    ? "the dev cloud's publisher and consumer users are not set"
    : false;

/** `openstack ARGS -f json`, parsed. */
async function openstack(...args) {
  const { stdout } = await run(OPENSTACK, [...args, "-f", "json"], { maxBuffer: 1 << 24 });
  return JSON.parse(stdout);
}

/** The image's members as Glance has them: member id -> status. */
async function members(imageId) {
  const rows = await openstack("image", "member", "list", imageId);
  return Object.fromEntries(rows.map((r) => [r["Member ID"], r.Status]));
}

/** The cloud settings of one of the dev cloud's users (over the OS_* variables). */
const settingsOf = (who) => ({
  auth: {
    username: env[`DEV_CLOUD_${who}_USERNAME`],
    password: env[`DEV_CLOUD_${who}_PASSWORD`],
    project_name: env[`DEV_CLOUD_${who}_PROJECT`],
  },
});

describe("ImageAccess and ImageAccessAccept against the dev cloud", { skip: missing }, () => {
  const quiet = { onStderr: () => {} };
  const images = new ImageProvider({ cloud: settingsOf("PUBLISHER"), ...quiet });
  const offers = new MembershipProvider("owner", { cloud: settingsOf("PUBLISHER"), ...quiet });
  const answers = new MembershipProvider("member", { cloud: settingsOf("CONSUMER"), ...quiet });
  let dir;
  let imageId;
  let consumer;
  let offer;
  let answer;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "openstack-image-node-share-"));
    const file = join(dir, "disk.raw");
    await writeFile(file, randomBytes(1024 * 1024));
    consumer = (await openstack("project", "show", env.DEV_CLOUD_CONSUMER_PROJECT)).id;
    const checked = await images.check({}, {
      name: `node-adapter-share-${Date.now().toString(36)}`,
      containerFormat: "bare",
      diskFormat: "raw",
      localFilePath: file,
      visibility: "shared",
    });
    assert.deepEqual(checked.failures, []);
    imageId = (await images.create(checked.inputs)).id;
  });

  after(async () => {
    if (imageId) await run(OPENSTACK, ["image", "delete", imageId]).catch(() => {});
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("check fills the member side's default answer and names a bad status by its property", async () => {
    const checked = await answers.check({}, { imageId });
    assert.deepEqual(checked.failures, []);
    assert.equal(checked.inputs.status, "accepted");
    const bad = await answers.check({}, { imageId, status: "maybe" });
    assert.deepEqual(bad.failures.map((f) => f.property), ["status"]);
  });

  it("the owner offers the image: the member is pending", async () => {
    const checked = await offers.check({}, { imageId, memberId: consumer });
    assert.deepEqual(checked.failures, []);
    offer = await offers.create(checked.inputs);
    assert.equal(offer.id, `${imageId}/${consumer}`);
    assert.equal(offer.outs.status, "pending");
    assert.equal(offer.outs.memberId, consumer);
    for (const key of Object.keys(offer.outs)) assert.doesNotMatch(key, /_/, `output ${key} is camelCase`);
    assert.deepEqual(await members(imageId), { [consumer]: "pending" });
  });

  it("the owner cannot answer for the member: the error says who must act", async () => {
    const olds = { imageId, memberId: consumer, ...offer.outs };
    await assert.rejects(offers.update(offer.id, olds, { imageId, memberId: consumer, status: "accepted" }), (e) => {
      assert.ok(e instanceof ComponentError, String(e));
      assert.match(e.message, /member/);
      return true;
    });
    assert.deepEqual(await members(imageId), { [consumer]: "pending" }, "nothing changed");
  });

  it("the member accepts it; its member id is its session's project", async () => {
    const checked = await answers.check({}, { imageId });
    answer = await answers.create(checked.inputs);
    assert.equal(answer.id, `${imageId}/${consumer}`);
    assert.equal(answer.outs.status, "accepted");
    assert.equal(answer.outs.memberId, consumer);
    assert.deepEqual(await members(imageId), { [consumer]: "accepted" });
  });

  it("read sees the answer given out of band as drift, and an update answers again", async () => {
    const asConsumer = {
      ...env,
      OS_USERNAME: env.DEV_CLOUD_CONSUMER_USERNAME,
      OS_PASSWORD: env.DEV_CLOUD_CONSUMER_PASSWORD,
      OS_PROJECT_NAME: env.DEV_CLOUD_CONSUMER_PROJECT,
    };
    await run(OPENSTACK, ["image", "set", "--reject", imageId], { env: asConsumer });
    assert.deepEqual(await members(imageId), { [consumer]: "rejected" });
    const olds = { imageId, status: "accepted", ...answer.outs };
    const read = await answers.read(answer.id, olds);
    assert.equal(read.id, answer.id);
    assert.equal(read.props.status, "rejected", "read reports what Glance has");
    const diff = await answers.diff(answer.id, read.props, { imageId, status: "accepted" });
    assert.equal(diff.changes, true);
    assert.deepEqual(diff.replaces, []);
    const updated = await answers.update(answer.id, read.props, { imageId, status: "accepted" });
    assert.equal(updated.outs.status, "accepted");
    assert.deepEqual(await members(imageId), { [consumer]: "accepted" });
    answer = { id: answer.id, outs: updated.outs };
  });

  it("an import reads the membership by IMAGE_ID/MEMBER_ID", async () => {
    const imported = await answers.read(`${imageId}/${consumer}`, {});
    assert.equal(imported.id, `${imageId}/${consumer}`);
    assert.equal(imported.props.imageId, imageId);
    assert.equal(imported.props.status, "accepted");
  });

  it("the member's delete rejects the offer; the owner's withdraws it", async () => {
    await answers.delete(answer.id, { imageId, ...answer.outs });
    assert.deepEqual(await members(imageId), { [consumer]: "rejected" });
    await offers.delete(offer.id, { imageId, memberId: consumer, ...offer.outs });
    assert.deepEqual(await members(imageId), {});
    const gone = await offers.read(offer.id, { imageId, memberId: consumer, ...offer.outs });
    assert.equal(gone.id, "", "an empty id tells Pulumi the membership is gone");
  });
});
