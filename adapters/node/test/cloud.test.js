// The cloud settings and sessions of the provider process, without a cloud: the table of
// cloud settings every runtime resolves alike (tests/fixtures/cloud-resolution.json) through
// the component's resolveCloudJson, the cloud document lifecycle calls get, and the session
// rules. Needs `npm run build -- <component.wasm>` done.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";

import { cloudEnvironment, resolveCloud, sessionOnlyCloud } from "../src/cloud.js";
import { callComponent, ComponentError } from "../src/component.js";
import { afterRefusal, callWithSession, heldSession, sessionFor, usable } from "../src/session.js";

const TABLE = new URL("../../../tests/fixtures/cloud-resolution.json", import.meta.url);

/** The resolved document as the table shows it: secrets masked, no `retries`. */
function masked(resolution) {
  const doc = structuredClone(resolution);
  for (const path of [["auth", "password"], ["auth", "application_credential_secret"], ["auth", "token"], ["session", "token"]]) {
    const parent = doc.cloud?.[path[0]];
    if (parent && path[1] in parent) parent[path[1]] = "(sensitive)";
  }
  delete doc.cloud?.retries;
  return doc;
}

const resolveJson = (request) => callComponent({ fn: "resolveCloudJson", request });

describe("the cloud resolution table", () => {
  const { cases } = JSON.parse(readFileSync(TABLE, "utf8"));

  for (const tableCase of cases) {
    it(tableCase.name, async () => {
      const dir = await mkdtemp(join(tmpdir(), "openstack-image-cloud-table-"));
      try {
        const environment = { ...tableCase.environment, HOME: dir };
        if (tableCase.clouds_yaml !== undefined) {
          await writeFile(join(dir, "clouds.yaml"), tableCase.clouds_yaml);
          environment.OS_CLIENT_CONFIG_FILE = join(dir, "clouds.yaml");
        }
        if (tableCase.secure_yaml !== undefined) await writeFile(join(dir, "secure.yaml"), tableCase.secure_yaml);
        const outcome = resolveCloud({ environment: cloudEnvironment(environment) }, resolveJson);
        if ("expect" in tableCase) {
          assert.deepEqual(masked(await outcome), tableCase.expect);
        } else {
          await assert.rejects(outcome, (e) => {
            assert.ok(e instanceof Error, String(e));
            assert.ok(e.message.includes(tableCase.error), `${e.message} contains ${tableCase.error}`);
            return true;
          });
        }
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });
  }
});

describe("the cloud settings of the provider process", () => {
  it("give the component only the variables the rule reads", () => {
    const env = { OS_CLOUD: "dev", HOME: "/home/u", XDG_CONFIG_HOME: "/x", AWS_SECRET_ACCESS_KEY: "no", PATH: "/bin" };
    assert.deepEqual(cloudEnvironment(env), { OS_CLOUD: "dev", HOME: "/home/u", XDG_CONFIG_HOME: "/x" });
  });

  it("explicit settings win over the environment, setting by setting", async () => {
    const resolution = await resolveCloud(
      {
        environment: { OS_AUTH_URL: "https://keystone.example.org/v3", OS_USERNAME: "env-user", OS_PASSWORD: "p", HOME: "/nonexistent" },
        settings: { auth: { username: "set-user" }, region_name: "RegionTwo" },
      },
      resolveJson,
    );
    assert.equal(resolution.cloud.auth.username, "set-user");
    assert.equal(resolution.cloud.auth.password, "p");
    assert.equal(resolution.cloud.region_name, "RegionTwo");
  });

  it("lifecycle calls get the cloud without credentials, with the session", () => {
    const cloud = {
      auth: {
        auth_url: "https://keystone.example.org/v3",
        username: "demo",
        user_domain_name: "Default",
        password: "s3cret-password",
        application_credential_secret: "ac-s3cret",
        token: "gAAAA-token",
        project_name: "demo",
        project_domain_name: "Default",
      },
      auth_type: "password",
      region_name: "RegionOne",
      interface: "internal",
      retries: 2,
    };
    const session = { token: "gAAAA-session", expires_at: "2999-01-01T00:00:00Z", image_endpoints: [] };
    const doc = sessionOnlyCloud(cloud, session);
    assert.deepEqual(doc, {
      auth: { auth_url: "https://keystone.example.org/v3", project_name: "demo", project_domain_name: "Default" },
      region_name: "RegionOne",
      interface: "internal",
      retries: 2,
      session,
    });
    assert.doesNotMatch(JSON.stringify(doc), /s3cret|gAAAA-token/);
  });
});

describe("sessions", () => {
  const session = (token, minutes) => ({
    token,
    expires_at: new Date(Date.now() + minutes * 60_000).toISOString(),
    image_endpoints: [],
  });

  it("are used until two minutes before they expire; one without an expiry is not reused", () => {
    assert.equal(usable(session("t", 3)), true);
    assert.equal(usable(session("t", 1)), false);
    assert.equal(usable({ token: "t", image_endpoints: [] }), false);
  });

  it("cost one login however many calls need one at once, and one more when refused", async () => {
    const cloud = { auth: { auth_url: "https://keystone.example.org/v3", username: "sessions-test" } };
    let logins = 0;
    const logIn = async () => session(`t${++logins}`, 60);
    const first = await Promise.all([1, 2, 3].map(() => sessionFor(cloud, logIn)));
    assert.deepEqual(first.map((s) => s.token), ["t1", "t1", "t1"]);
    assert.equal((await sessionFor(cloud, logIn)).token, "t1", "held, not renewed");
    const renewed = await Promise.all([1, 2].map(() => afterRefusal(cloud, "t1", logIn)));
    assert.deepEqual(renewed.map((s) => s.token), ["t2", "t2"]);
    assert.equal((await afterRefusal(cloud, "t1", logIn)).token, "t2", "t1 was already replaced");
    assert.equal(heldSession(cloud).token, "t2");
    assert.equal(logins, 2);
  });

  it("start from a session the cloud document gives", async () => {
    const given = session("given", 60);
    const cloud = { auth: { auth_url: "https://keystone.example.org/v3" }, session: given };
    assert.equal(await sessionFor(cloud, () => assert.fail("no login")), given);
  });
});

describe("calls on the cloud", () => {
  const later = () => new Date(Date.now() + 3600_000).toISOString();
  /** A cloud of its own per test (sessions are held per cloud), with a password. */
  const cloudNamed = (user) => ({
    auth: { auth_url: "https://keystone.example.org/v3", username: user, password: "s3cret-password", project_name: "p" },
    auth_type: "password",
  });
  const refusal = (imageId = null) =>
    new ComponentError({ kind: "unauthorized", message: "Glance answered 401", image_id: imageId }, "createJson");

  /**
   * A component that answers from `script` (fn -> answers in turn; an Error is thrown) and
   * records every call.
   */
  function fakeComponent(script) {
    const calls = [];
    let logins = 0;
    const invoke = async (fn, request) => {
      calls.push({ fn, request });
      if (fn === "authenticateJson") return { token: `t${++logins}`, expires_at: later(), image_endpoints: [] };
      const answer = script[fn].shift();
      if (answer instanceof Error) throw answer;
      return answer;
    };
    return { invoke, calls };
  }

  it("never give the component the credentials, and repeat a refused call once after a new login", async () => {
    const { invoke, calls } = fakeComponent({ readJson: [refusal(), null] });
    assert.equal(await callWithSession(cloudNamed("read"), invoke, "readJson", { id: "x" }), null);
    assert.deepEqual(
      calls.map((c) => [c.fn, c.request.cloud.session?.token]),
      [["authenticateJson", undefined], ["readJson", "t1"], ["authenticateJson", undefined], ["readJson", "t2"]],
    );
    for (const { fn, request } of calls.filter((c) => c.fn !== "authenticateJson")) {
      assert.doesNotMatch(JSON.stringify(request), /s3cret|username|auth_type/, fn);
      assert.equal(request.id, "x");
    }
  });

  it("delete the image a refused create left and create again", async () => {
    const state = { id: "second", status: "active" };
    const { invoke, calls } = fakeComponent({ createJson: [refusal("half"), state], deleteJson: [{ id: "half", deleted: true }] });
    const spec = { name: "n", region: "RegionTwo", timeouts: { delete: 30 } };
    assert.deepEqual(await callWithSession(cloudNamed("create"), invoke, "createJson", { spec }), state);
    assert.deepEqual(calls.map((c) => c.fn), ["authenticateJson", "createJson", "authenticateJson", "deleteJson", "createJson"]);
    const deletion = calls[3].request;
    assert.deepEqual(
      [deletion.id, deletion.region, deletion.timeout_seconds, deletion.cloud.session.token],
      ["half", "RegionTwo", 30, "t2"],
    );
  });

  it("do not create again an image whose id the spec names, and say what became of it", async () => {
    const { invoke, calls } = fakeComponent({ createJson: [refusal("named")], deleteJson: [{ id: "named", deleted: true }] });
    const spec = { name: "n", image_id: "named" };
    await assert.rejects(callWithSession(cloudNamed("named"), invoke, "createJson", { spec }), (e) => {
      assert.ok(e instanceof ComponentError);
      assert.equal(e.kind, "unauthorized");
      assert.equal(e.imageId, "named");
      assert.match(e.message, /Glance answered 401; the half-made image named was deleted/);
      return true;
    });
    assert.deepEqual(calls.map((c) => c.fn), ["authenticateJson", "createJson", "authenticateJson", "deleteJson"]);
  });

  it("give up on a second refusal", async () => {
    const { invoke, calls } = fakeComponent({ updateJson: [refusal(), refusal()] });
    await assert.rejects(callWithSession(cloudNamed("update"), invoke, "updateJson", {}), /unauthorized/);
    assert.equal(calls.filter((c) => c.fn === "authenticateJson").length, 2);
  });
});
