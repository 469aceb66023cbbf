// The Keystone sessions this process holds, one per resolved cloud document, kept as the
// bundled host keeps them: one login serves every call (concurrent calls share it), used as
// it is until two minutes before it expires; a session the cloud refused costs one new login,
// whichever call saw the refusal first. Lifecycle calls get the session, never the secrets
// (only the resolution and the login, `authenticateJson`, get those).
import { sessionOnlyCloud } from "./cloud.js";
import { ComponentError } from "./component.js";

/** A session is renewed this long before its `expires_at`. */
const EXPIRY_MARGIN_MS = 2 * 60 * 1000;

/**
 * @typedef {{token: string, expires_at?: string | null, image_endpoints: object[]}} Session
 * @typedef {{session?: Session, login?: Promise<Session>}} Held
 */

/**
 * Calls the component.
 * @typedef {(fn: import("./component.js").FaceFunction, request: Record<string, any>) => Promise<any>} Invoke
 */

/** @type {Map<string, Held>} by the cloud document's JSON text */
const held = new Map();

/**
 * Whether `session` may still be used at `now`: its token lives two more minutes. A token
 * without an expiry cannot be judged, so it is not reused.
 * @param {Session} session
 */
export function usable(session, now = Date.now()) {
  const expires = Date.parse(session.expires_at ?? "");
  return Number.isFinite(expires) && expires - now >= EXPIRY_MARGIN_MS;
}

/** @param {Record<string, any>} cloud */
function heldFor(cloud) {
  const key = JSON.stringify(cloud);
  let entry = held.get(key);
  if (!entry) {
    // A session given in the cloud document is where this cloud's sessions start.
    entry = cloud.session ? { session: cloud.session } : {};
    held.set(key, entry);
  }
  return entry;
}

/**
 * The session for `cloud`: the one held while usable, else one new login by `logIn`.
 * @param {Record<string, any>} cloud the resolved cloud document, credentials included
 * @param {() => Promise<Session>} logIn
 * @returns {Promise<Session>}
 */
export function sessionFor(cloud, logIn) {
  const entry = heldFor(cloud);
  if (entry.session && !entry.login && usable(entry.session)) return Promise.resolve(entry.session);
  return renew(entry, logIn);
}

/**
 * The cloud refused the session with `token`: a new session, from one new login unless
 * another call already replaced that one.
 * @param {Record<string, any>} cloud
 * @param {string} token
 * @param {() => Promise<Session>} logIn
 * @returns {Promise<Session>}
 */
export function afterRefusal(cloud, token, logIn) {
  const entry = heldFor(cloud);
  if (entry.session && !entry.login && entry.session.token !== token && usable(entry.session)) {
    return Promise.resolve(entry.session);
  }
  return renew(entry, logIn);
}

/**
 * The session held for `cloud` now, if any (what the next call would start from).
 * @param {Record<string, any>} cloud
 * @returns {Session | undefined}
 */
export function heldSession(cloud) {
  return held.get(JSON.stringify(cloud))?.session;
}

/** @param {Held} entry @param {() => Promise<Session>} logIn */
function renew(entry, logIn) {
  entry.login ??= logIn()
    .then((session) => {
      entry.session = session;
      return session;
    })
    .finally(() => {
      entry.login = undefined;
    });
  return entry.login;
}

/**
 * Calls `fn` (a JSON-face function that acts on the cloud) with `request` as the bundled host
 * does: the component gets `cloud` without credentials plus the session held for it, and when
 * the cloud refused that session (`unauthorized`), one new login and the call once more. A
 * create that the refusal cut short after making the image record names that image: it is
 * deleted with the new session, and the create repeated unless the spec named that id
 * (Glance never reuses one).
 * @param {Record<string, any>} cloud the resolved cloud document, credentials included
 * @param {Invoke} invoke
 * @param {import("./component.js").FaceFunction} fn
 * @param {Record<string, any>} request the request without its `cloud`
 */
export async function callWithSession(cloud, invoke, fn, request) {
  const logIn = () => invoke("authenticateJson", { cloud });
  let session = await sessionFor(cloud, logIn);
  for (let attempt = 0; ; attempt++) {
    try {
      return await invoke(fn, { ...request, cloud: sessionOnlyCloud(cloud, session) });
    } catch (e) {
      if (!(e instanceof ComponentError) || e.kind !== "unauthorized" || attempt > 0) throw e;
      session = await afterRefusal(cloud, session.token, logIn);
      if (e.imageId) await deleteHalfMade(invoke, sessionOnlyCloud(cloud, session), e, request.spec);
    }
  }
}

/**
 * Deletes the image a refused create left behind; throws the refusal, saying so, unless the
 * create may be repeated (the image is gone and the spec did not name its id).
 * @param {Invoke} invoke
 * @param {Record<string, any>} cloud the session-only cloud document
 * @param {ComponentError} refusal
 * @param {Record<string, any> | undefined} spec
 */
async function deleteHalfMade(invoke, cloud, refusal, spec) {
  const id = refusal.imageId;
  /** @type {Record<string, any>} */
  const request = { cloud, id };
  if (typeof spec?.region === "string") request.region = spec.region;
  if (typeof spec?.timeouts?.delete === "number") request.timeout_seconds = spec.timeouts.delete;
  let outcome;
  try {
    await invoke("deleteJson", request);
    if (spec?.image_id !== id) return;
    outcome = `the half-made image ${id} was deleted`;
  } catch (e) {
    outcome = `the half-made image ${id} could not be deleted: ${e?.message ?? e}`;
  }
  const message = `${refusal.componentMessage}; ${outcome}`;
  throw new ComponentError({ kind: refusal.kind, message, image_id: id }, refusal.function);
}
