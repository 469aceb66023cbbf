// The cloud of the process running the provider, by the component's one rule
// (`resolve-cloud-json`): explicit settings over the OS_* variables over clouds.yaml (with
// secure.yaml). The rule reads no files itself; it names them, and they are read here.
import { readFile } from "node:fs/promises";
import { resolve } from "node:path";

/** Variables the rule reads besides OS_*: where clouds.yaml is looked for, the token cache. */
const RULE_VARIABLES = ["HOME", "XDG_CONFIG_HOME", "OPENSTACK_IMAGE_TOKEN_CACHE"];

/**
 * The variables of `env` the cloud rule reads (OS_*, HOME, XDG_CONFIG_HOME,
 * OPENSTACK_IMAGE_TOKEN_CACHE): the component is given these, not the whole environment.
 * @param {NodeJS.ProcessEnv} [env]
 * @returns {Record<string, string>}
 */
export function cloudEnvironment(env = process.env) {
  return Object.fromEntries(
    Object.entries(env).filter(
      ([name, value]) => value !== undefined && (name.startsWith("OS_") || RULE_VARIABLES.includes(name)),
    ),
  );
}

/**
 * What `resolve-cloud-json` answers: the cloud document (a clouds.yaml cloud entry, secrets
 * included) and the TLS and token-cache settings that are the runtime's to apply.
 * @typedef {{cloud: Record<string, any>, cacert: string | null, verify: boolean, token_cache: boolean}} Resolution
 */

/** Answers of `resolve-cloud-json` by request: the rule is a pure function. */
const answers = new Map();

/**
 * Resolves `request` (`{environment, settings?}`) by the component's rule, reading the
 * clouds.yaml/secure.yaml files it names (relative paths: against the working directory).
 * @param {{environment: Record<string, string>, settings?: Record<string, any>}} request
 * @param {(request: object) => Promise<any>} resolveJson calls the component's resolveCloudJson
 * @returns {Promise<Resolution>}
 */
export async function resolveCloud(request, resolveJson) {
  const first = await answer(request, resolveJson);
  if (!("read" in first)) return first;
  return answer({ ...request, files: await readExisting(first.read) }, resolveJson);
}

/** @param {object} request @param {(request: object) => Promise<any>} resolveJson */
function answer(request, resolveJson) {
  const key = JSON.stringify(request);
  let answered = answers.get(key);
  if (!answered) {
    answered = resolveJson(request);
    answers.set(key, answered);
    answered.catch(() => answers.delete(key));
  }
  return answered;
}

/**
 * The texts of those of `paths` that exist.
 * @param {string[]} paths
 */
async function readExisting(paths) {
  /** @type {Record<string, string>} */
  const files = {};
  for (const path of paths) {
    try {
      files[path] = await readFile(path, "utf8");
    } catch (e) {
      if (e?.code !== "ENOENT" && e?.code !== "ENOTDIR") {
        throw new Error(`cannot read ${path} (named by the cloud settings): ${e?.message ?? e}`);
      }
    }
  }
  return files;
}

/**
 * The resolved cloud document, once its TLS settings are known to hold here: the component's
 * HTTPS runs on Node's own certificate checks, so a CA file must be the one this process was
 * started with (NODE_EXTRA_CA_CERTS, which Node reads at start-up) and verification cannot
 * be turned off. (A token cache is not kept: each provider process logs in once.)
 * @param {Resolution} resolution
 * @param {NodeJS.ProcessEnv} [env]
 */
export function applicableCloud(resolution, env = process.env) {
  if (resolution.verify === false) {
    throw new Error(
      "the cloud settings turn TLS verification off (OS_INSECURE or clouds.yaml `verify: false`), which the Node.js adapter cannot do: the component's HTTPS uses Node's certificate checks; trust the cloud's CA instead (NODE_EXTRA_CA_CERTS=<ca.pem> for the provider process)",
    );
  }
  const { cacert } = resolution;
  if (cacert && (!env.NODE_EXTRA_CA_CERTS || resolve(env.NODE_EXTRA_CA_CERTS) !== resolve(cacert))) {
    throw new Error(
      `the cloud settings name the CA file ${cacert} (OS_CACERT or clouds.yaml \`cacert\`), which this Node.js process does not trust: start it with NODE_EXTRA_CA_CERTS=${cacert}`,
    );
  }
  return resolution.cloud;
}

/** The `auth` keys a cloud without credentials keeps: where Keystone is, the project scope. */
const SCOPE_KEYS = ["auth_url", "project_id", "project_name", "project_domain_id", "project_domain_name"];

/** The other keys it keeps: which image endpoint, how often to retry. */
const ENDPOINT_KEYS = ["region_name", "interface", "retries"];

/**
 * The cloud document a lifecycle call gets: `cloud` without its credentials (user,
 * password, application credential, token, auth_type) and with `session`, so the component
 * works session-only: only the resolution and the login (`authenticateJson`) are given the
 * secrets.
 * @param {Record<string, any>} cloud a resolved cloud document
 * @param {Record<string, any>} session what `authenticateJson` answered
 */
export function sessionOnlyCloud(cloud, session) {
  const auth = cloud.auth ?? {};
  /** @type {Record<string, any>} */
  const doc = { auth: Object.fromEntries(SCOPE_KEYS.filter((k) => k in auth).map((k) => [k, auth[k]])) };
  for (const key of ENDPOINT_KEYS) if (key in cloud) doc[key] = cloud[key];
  doc.session = session;
  return doc;
}
