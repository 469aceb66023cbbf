// What ImageProvider's methods do. Kept in a module of its own that the provider imports
// lazily by absolute URL, so Pulumi's closure serialization of the provider object captures
// only plain data (see provider.js).
import { homedir } from "node:os";
import { isAbsolute, join, resolve } from "node:path";

import { useCaches } from "./cache.js";
import { applicableCloud, cloudEnvironment, resolveCloud } from "./cloud.js";
import { callComponent, ComponentError, grantsFor, leavesUrlToGlance } from "./component.js";
import { fieldToProperty, fromDocument, toDocument } from "./mapping.js";
import { callWithSession } from "./session.js";

/**
 * @typedef {object} ProviderOptions
 * @property {Record<string, any>} [cloud] cloud settings (a clouds.yaml cloud entry) over the
 *   OS_* variables and clouds.yaml of the process running the provider
 * @property {string} [componentDir] directory of the transpiled component (default: generated/component)
 * @property {(line: string) => void} [onStderr] receives the component's stderr lines (progress JSON)
 * @property {string | number} [cacheMaxSize] how large each download cache (`imageCachePath`)
 *   may grow, as the bundled host's `--cache-max-size`: bytes, or a size such as "512M", "20G",
 *   "1.5GiB" (binary multiples), or "none" for no limit (default: $OPENSTACK_IMAGE_CACHE_MAX_SIZE
 *   of the process running the provider, else "10G"); see src/cache.js
 */

/** Outputs that an in-place update (one Glance PATCH) never changes. */
const STABLE_ON_UPDATE = ["createdAt", "file", "schema", "checksum", "osHashAlgo", "osHashValue", "sizeBytes", "sourceFingerprint"];

/**
 * The cloud document (credentials included) by the component's one rule: the `cloud`
 * option over the OS_* variables over clouds.yaml.
 * @param {ProviderOptions} options
 */
export async function cloudOf(options) {
  const request = { environment: cloudEnvironment(), ...(options.cloud ? { settings: options.cloud } : {}) };
  const resolution = await resolveCloud(request, (r) => call(options, "resolveCloudJson", r));
  return applicableCloud(resolution);
}

/**
 * Calls the component with the grants `grantDocs` need. A download the call may make is held
 * in its cache while the component runs; then the cache is trimmed to `cacheMaxSize`.
 * @param {ProviderOptions} options
 * @param {import("./component.js").FaceFunction} fn
 * @param {any} request
 * @param {any[]} [grantDocs]
 */
async function call(options, fn, request, grantDocs = []) {
  const grants = grantsFor(grantDocs);
  const caches = await useCaches(grantDocs, options.cacheMaxSize);
  try {
    return await callComponent({
      fn,
      request,
      grants,
      componentDir: options.componentDir,
      onStderr: options.onStderr,
    });
  } finally {
    await caches.finish();
  }
}

/**
 * Calls a function that acts on the cloud: with this process's session for the cloud, as
 * `callWithSession` says.
 * @param {ProviderOptions} options
 * @param {import("./component.js").FaceFunction} fn
 * @param {Record<string, any>} request the request without its `cloud`
 * @param {any[]} [grantDocs]
 */
async function callOnCloud(options, fn, request, grantDocs = []) {
  const cloud = await cloudOf(options);
  return callWithSession(cloud, (f, r) => call(options, f, r, f === fn ? grantDocs : []), fn, request);
}

/**
 * Where downloads are cached when a spec does not say (as the bundled host does):
 * $OPENSTACK_IMAGE_CACHE_DIR/images, else $XDG_CACHE_HOME or ~/.cache, /openstack-image/images.
 */
export function defaultCacheDir(env = process.env) {
  if (env.OPENSTACK_IMAGE_CACHE_DIR) return join(resolve(env.OPENSTACK_IMAGE_CACHE_DIR), "images");
  const base = env.XDG_CACHE_HOME && isAbsolute(env.XDG_CACHE_HOME) ? env.XDG_CACHE_HOME : join(homedir(), ".cache");
  return join(base, "openstack-image", "images");
}

/**
 * Pulumi inputs -> spec document. Relative local paths are made absolute against the
 * working directory (the Pulumi program's), as the component wants absolute paths; a
 * download that names no cache gets the default one (the component needs a directory or
 * "none").
 * @param {Record<string, any>} inputs
 */
function specOf(inputs) {
  const spec = toDocument(inputs);
  if (typeof spec.image_source_url === "string" && spec.image_cache_path == null && !leavesUrlToGlance(spec)) {
    spec.image_cache_path = defaultCacheDir();
  }
  for (const key of ["local_file_path", "image_cache_path"]) {
    if (typeof spec[key] === "string" && spec[key] !== "" && spec[key] !== "none" && !isAbsolute(spec[key])) {
      spec[key] = resolve(spec[key]);
    }
  }
  return spec;
}

/** Pulumi outputs (+ id) -> state document. */
function stateOf(id, props) {
  const state = toDocument(props);
  state.id = id ?? state.id;
  return state;
}

/** State document -> Pulumi outputs (without `id`, which Pulumi carries itself). */
function outsOf(state) {
  const { id: _id, ...rest } = fromDocument(state);
  return rest;
}

/**
 * Rethrows, with field names in Pulumi's camelCase added to component errors.
 * @param {unknown} e
 * @returns {never}
 */
function rethrow(e) {
  if (e instanceof ComponentError && e.fields.length) {
    e.fields = e.fields.map((f) => ({ ...f, property: fieldToProperty(f.field) }));
    e.message = `${e.kind}: ${e.fields.map((f) => `${f.property}: ${f.message}`).join("; ")}`;
  }
  throw e;
}

/** Drops unset (null) fields, at the top and in nested objects other than maps. */
function withoutNulls(bag) {
  const out = {};
  for (const [k, v] of Object.entries(bag)) {
    if (v === null || v === undefined) continue;
    out[k] =
      v && typeof v === "object" && !Array.isArray(v) && k !== "properties" && k !== "metadata" ? withoutNulls(v) : v;
  }
  return out;
}

/**
 * Pulumi's check result from a check function of the JSON face: the inputs with defaults
 * filled in, or per-property failures for a spec the component refuses.
 * @param {ProviderOptions} options
 * @param {import("./component.js").FaceFunction} fn
 * @param {Record<string, any>} spec
 * @param {Record<string, any> | undefined} news the inputs as Pulumi gave them
 * @param {any[]} [grantDocs]
 */
async function checked(options, fn, spec, news, grantDocs = []) {
  try {
    const answer = await call(options, fn, { spec }, grantDocs);
    return { inputs: withoutNulls(fromDocument(answer.spec)), failures: [] };
  } catch (e) {
    if (e instanceof ComponentError && (e.kind === "invalid-spec" || e.kind === "invalid-request") && e.fields.length) {
      const { __provider: _p, ...inputs } = news ?? {};
      return {
        inputs,
        failures: e.fields.map((f) => ({ property: fieldToProperty(f.field), reason: f.message })),
      };
    }
    return rethrow(e);
  }
}

/**
 * Pulumi's diff result from a plan of the JSON face.
 * @param {any} answer the plan
 * @param {string[]} stablesOnUpdate outputs an in-place update leaves alone
 */
function diffResult(answer, stablesOnUpdate) {
  const replaces = (answer.replaces ?? []).map(fieldToProperty);
  return {
    changes: answer.action !== "no-op",
    replaces,
    deleteBeforeReplace: answer.delete_before_replace === true,
    stables: answer.action === "update" ? stablesOnUpdate : [],
    // Not part of Pulumi's dynamic protocol; kept for callers that want the detail.
    action: answer.action,
    detail: (answer.changes ?? []).map((c) => ({
      property: fieldToProperty(c.field),
      old: c.old,
      new: c.new,
      forcesReplacement: c.forces_replacement,
    })),
  };
}

/** @param {ProviderOptions} options */
export async function check(options, _olds, news) {
  const spec = specOf(news);
  return checked(options, "checkJson", spec, news, [spec]);
}

/** @param {ProviderOptions} options */
export async function diff(options, id, olds, news) {
  const spec = specOf(news);
  const state = stateOf(id, olds);
  const answer = await call(options, "diffJson", { spec, state }, [spec]).catch(rethrow);
  return diffResult(answer, STABLE_ON_UPDATE);
}

/**
 * The properties about to be sent, against the cloud's own metadata definitions
 * (`check-with-cloud-json`): refused before anything changes. `before`: the properties the
 * image has, whose unchanged values are not checked again.
 * @param {ProviderOptions} options
 */
async function checkWithCloud(options, spec, before = {}) {
  const sent = Object.fromEntries(
    Object.entries(spec.properties ?? {}).filter(([key, value]) => before[key] !== value),
  );
  if (Object.keys(sent).length === 0) return;
  await callOnCloud(options, "checkWithCloudJson", { spec: { ...spec, properties: sent } }).catch(rethrow);
}

/** @param {ProviderOptions} options */
export async function create(options, inputs) {
  const spec = specOf(inputs);
  await checkWithCloud(options, spec);
  const state = await callOnCloud(options, "createJson", { spec }, [spec]).catch(rethrow);
  return { id: state.id, outs: outsOf(state) };
}

/** @param {ProviderOptions} options */
export async function read(options, id, props) {
  const prior = props && Object.keys(toDocument(props)).length ? stateOf(id, props) : undefined;
  const request = prior ? { id, state: prior } : { id };
  const state = await callOnCloud(options, "readJson", request).catch(rethrow);
  if (state === null) return { id: "", props: {} }; // gone: an empty id tells Pulumi so
  return { id: state.id, props: outsOf(state) };
}

/** @param {ProviderOptions} options */
export async function update(options, id, olds, news) {
  const spec = specOf(news);
  const state = stateOf(id, olds);
  await checkWithCloud(options, spec, state.properties ?? {});
  const after = await callOnCloud(options, "updateJson", { state, spec }, [spec]).catch(rethrow);
  return { outs: outsOf(after) };
}

/** @param {ProviderOptions} options */
export async function remove(options, id, props) {
  /** @type {Record<string, any>} */
  const request = { id };
  if (typeof props?.region === "string" && props.region) request.region = props.region;
  const timeout = props?.timeouts?.delete;
  if (typeof timeout === "number") request.timeout_seconds = timeout;
  await callOnCloud(options, "deleteJson", request).catch(rethrow);
}

/** The JSON Schema of the spec, state and cloud documents (parsed). */
export async function schema(options) {
  return call(options, "schema", undefined);
}

// The membership resource: one project's membership of a shared image, from the side that
// acts on it ("owner": the image's owner offers it; "member": the member project answers).
// Its documents are flat (`$defs.membership_state`); nothing of it touches local files.

/** Outputs an answer (an in-place update of the membership) leaves alone. */
const MEMBERSHIP_STABLE_ON_UPDATE = ["createdAt", "schema"];

/**
 * Pulumi inputs -> membership spec document, acting from `side`.
 * @param {"owner" | "member"} side
 * @param {Record<string, any> | undefined} inputs
 */
function membershipSpecOf(side, inputs) {
  const { image_id, member_id, status, region } = toDocument(inputs);
  return withoutNulls({ image_id, member_id, status, region, side });
}

/**
 * Pulumi outputs (+ id) -> membership state document, acting from `side`.
 * @param {"owner" | "member"} side
 */
function membershipStateOf(side, id, props) {
  return { ...stateOf(id, props), side };
}

/** @param {ProviderOptions} options @param {"owner" | "member"} side */
export async function checkMembership(options, side, _olds, news) {
  return checked(options, "checkMembershipJson", membershipSpecOf(side, news), news);
}

/** @param {ProviderOptions} options @param {"owner" | "member"} side */
export async function diffMembership(options, side, id, olds, news) {
  const request = { spec: membershipSpecOf(side, news), state: membershipStateOf(side, id, olds) };
  const answer = await call(options, "diffMembershipJson", request).catch(rethrow);
  return diffResult(answer, MEMBERSHIP_STABLE_ON_UPDATE);
}

/** @param {ProviderOptions} options @param {"owner" | "member"} side */
export async function createMembership(options, side, inputs) {
  const spec = membershipSpecOf(side, inputs);
  const state = await callOnCloud(options, "createMembershipJson", { spec }).catch(rethrow);
  return { id: state.id, outs: outsOf(state) };
}

/**
 * Reads the membership `id` (`IMAGE_ID/MEMBER_ID`; an import may give `IMAGE_ID` alone for
 * the caller's own project).
 * @param {ProviderOptions} options @param {"owner" | "member"} side
 */
export async function readMembership(options, side, id, props) {
  const known = toDocument(props);
  const spec = membershipSpecOf(side, known.image_id ? props : { region: known.region });
  const request = known.image_id ? { spec } : { id, spec };
  const state = await callOnCloud(options, "readMembershipJson", request).catch(rethrow);
  if (state === null) return { id: "", props: {} }; // gone: an empty id tells Pulumi so
  return { id: state.id, props: outsOf(state) };
}

/** @param {ProviderOptions} options @param {"owner" | "member"} side */
export async function updateMembership(options, side, id, olds, news) {
  const request = { state: membershipStateOf(side, id, olds), spec: membershipSpecOf(side, news) };
  const after = await callOnCloud(options, "updateMembershipJson", request).catch(rethrow);
  return { outs: outsOf(after) };
}

/**
 * Withdraws the offer (owner side) or rejects it (member side).
 * @param {ProviderOptions} options @param {"owner" | "member"} side
 */
export async function removeMembership(options, side, id, props) {
  const request = { state: membershipStateOf(side, id, props) };
  await callOnCloud(options, "deleteMembershipJson", request).catch(rethrow);
}
