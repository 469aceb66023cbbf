// Names between Pulumi's camelCase property bags and the JSON face's snake_case documents.
// Keys inside free-form maps (`properties`, `metadata`) are data, never converted.

/** Top-level fields whose value is a map with user-chosen keys. */
const MAP_FIELDS = new Set(["properties", "metadata"]);

/** @param {string} s */
export const toSnake = (s) => s.replace(/[A-Z]/g, (c) => "_" + c.toLowerCase());
/** @param {string} s */
export const toCamel = (s) => s.replace(/_([a-z0-9])/g, (_, c) => c.toUpperCase());

/**
 * Converts the keys of a document, recursively, except inside `properties`/`metadata`.
 * @param {any} value
 * @param {(key: string) => string} convert
 * @param {boolean} [top]
 */
function convertKeys(value, convert, top = true) {
  if (Array.isArray(value)) return value.map((v) => convertKeys(v, convert, false));
  if (value === null || typeof value !== "object") return value;
  const out = {};
  for (const [key, v] of Object.entries(value)) {
    if (v === undefined) continue;
    const name = convert(key);
    out[name] = top && MAP_FIELDS.has(name) && v && typeof v === "object" && !Array.isArray(v)
      ? { ...v }
      : convertKeys(v, convert, false);
  }
  return out;
}

/** Pulumi's reserved key for the serialized dynamic provider. */
export const PROVIDER_KEY = "__provider";

/**
 * camelCase Pulumi inputs/outputs -> snake_case JSON-face document (drops `__provider`).
 * @param {Record<string, any> | undefined} bag
 */
export function toDocument(bag) {
  const { [PROVIDER_KEY]: _provider, ...rest } = bag ?? {};
  return convertKeys(rest, toSnake);
}

/**
 * snake_case JSON-face document -> camelCase Pulumi bag.
 * @param {Record<string, any>} doc
 */
export function fromDocument(doc) {
  return convertKeys(doc, toCamel);
}

/**
 * A field path the component reports (`disk_format`, `timeouts.create`,
 * `properties.os_distro`) as a Pulumi property path (`diskFormat`, `timeouts.create`,
 * `properties.os_distro`): the property key after `properties.`/`metadata.` is kept as is.
 * @param {string} field
 */
export function fieldToProperty(field) {
  const dot = field.indexOf(".");
  const head = dot < 0 ? field : field.slice(0, dot);
  const rest = dot < 0 ? "" : field.slice(dot + 1);
  if (MAP_FIELDS.has(head)) return rest ? `${head}.${rest}` : head;
  const converted = head.replace(/^([a-z0-9_]+)(\[\d+\])?$/, (_, name, index) => toCamel(name) + (index ?? ""));
  return rest ? `${converted}.${rest.split(".").map(toCamel).join(".")}` : converted;
}
