// The cloud document (a clouds.yaml cloud entry) from the standard OS_* variables.

/** clouds.yaml `auth` key <- environment variable(s), first one set wins. */
const AUTH_VARS = {
  auth_url: ["OS_AUTH_URL"],
  username: ["OS_USERNAME"],
  user_id: ["OS_USER_ID"],
  password: ["OS_PASSWORD"],
  project_name: ["OS_PROJECT_NAME", "OS_TENANT_NAME"],
  project_id: ["OS_PROJECT_ID", "OS_TENANT_ID"],
  user_domain_name: ["OS_USER_DOMAIN_NAME"],
  user_domain_id: ["OS_USER_DOMAIN_ID"],
  project_domain_name: ["OS_PROJECT_DOMAIN_NAME"],
  project_domain_id: ["OS_PROJECT_DOMAIN_ID"],
  application_credential_id: ["OS_APPLICATION_CREDENTIAL_ID"],
  application_credential_name: ["OS_APPLICATION_CREDENTIAL_NAME"],
  application_credential_secret: ["OS_APPLICATION_CREDENTIAL_SECRET"],
  token: ["OS_TOKEN"],
};

/** Top-level clouds.yaml key <- environment variable. */
const TOP_VARS = {
  auth_type: "OS_AUTH_TYPE",
  region_name: "OS_REGION_NAME",
  interface: "OS_INTERFACE",
};

/**
 * @param {NodeJS.ProcessEnv} [env]
 * @returns {{auth: Record<string, string>, auth_type?: string, region_name?: string, interface?: string}}
 */
export function cloudFromEnv(env = process.env) {
  const auth = {};
  for (const [key, names] of Object.entries(AUTH_VARS)) {
    const name = names.find((n) => env[n]);
    if (name) auth[key] = env[name];
  }
  if (!auth.auth_url) {
    throw new Error(
      "no cloud configured: pass {cloud: <clouds.yaml cloud entry>} to the provider, or set OS_AUTH_URL and the other OS_* variables",
    );
  }
  /** @type {any} */
  const cloud = { auth };
  for (const [key, name] of Object.entries(TOP_VARS)) {
    if (env[name]) cloud[key] = env[name];
  }
  return cloud;
}
