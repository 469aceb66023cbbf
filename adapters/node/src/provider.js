// The OpenStack Glance image as a Pulumi dynamic resource, backed by the openstack-image
// WebAssembly component (transpiled by jco, see scripts/build.js).
//
//   import { Image } from "openstack-image-node-adapter/src/provider.js";
//   new Image("rancheros", { containerFormat: "bare", diskFormat: "qcow2",
//     imageSourceUrl: "https://…", properties: { key: "value" } });
//
// Inputs and outputs are the JSON face's spec/state fields in camelCase (containerFormat,
// diskFormat, localFilePath, minDiskGb, ...); keys inside `properties` and `metadata` are
// passed through unchanged.
import * as pulumi from "@pulumi/pulumi";

/** Absolute URL of the implementation module; methods import it lazily (see below). */
const IMPL_URL = new URL("./impl.js", import.meta.url).href;

/**
 * @typedef {import("./impl.js").ProviderOptions} ProviderOptions
 */

/**
 * Pulumi dynamic resource provider for OpenStack images.
 *
 * Pulumi serializes a dynamic provider object (its class and fields) into the stack and runs
 * it in a separate process. The methods therefore capture no module bindings: each one
 * imports the implementation by the absolute URL kept in a plain field. The cloud comes from
 * the OS_* variables and clouds.yaml of the process that runs the provider (settings given
 * here win over them), so no credentials need to end up in the serialized provider.
 *
 * @implements {pulumi.dynamic.ResourceProvider}
 */
export class ImageProvider {
  /** @param {ProviderOptions} [options] */
  constructor(options = {}) {
    /** @type {ProviderOptions} */
    this.options = { ...options };
    this.implUrl = IMPL_URL;
  }

  /** @returns {Promise<typeof import("./impl.js")>} */
  impl() {
    return import(this.implUrl);
  }

  /** @param {any} olds @param {any} news @returns {Promise<pulumi.dynamic.CheckResult>} */
  async check(olds, news) {
    return (await this.impl()).check(this.options, olds, news);
  }

  /** @param {string} id @param {any} olds @param {any} news @returns {Promise<pulumi.dynamic.DiffResult>} */
  async diff(id, olds, news) {
    return (await this.impl()).diff(this.options, id, olds, news);
  }

  /** @param {any} inputs @returns {Promise<pulumi.dynamic.CreateResult>} */
  async create(inputs) {
    return (await this.impl()).create(this.options, inputs);
  }

  /** @param {string} id @param {any} props @returns {Promise<pulumi.dynamic.ReadResult>} */
  async read(id, props) {
    return (await this.impl()).read(this.options, id, props);
  }

  /** @param {string} id @param {any} olds @param {any} news @returns {Promise<pulumi.dynamic.UpdateResult>} */
  async update(id, olds, news) {
    return (await this.impl()).update(this.options, id, olds, news);
  }

  /** @param {string} id @param {any} props @returns {Promise<void>} */
  async delete(id, props) {
    return (await this.impl()).remove(this.options, id, props);
  }

  /** The component's JSON Schema of the spec, state and cloud documents. */
  async schema() {
    return (await this.impl()).schema(this.options);
  }
}

/** Outputs the component computes; declared so Pulumi registers them on the resource. */
const OUTPUTS = [
  "status",
  "checksum",
  "sizeBytes",
  "virtualSize",
  "owner",
  "createdAt",
  "updatedAt",
  "updateAt",
  "file",
  "schema",
  "metadata",
  "osHashAlgo",
  "osHashValue",
  "stores",
  "directUrl",
  "sourceFingerprint",
];

/**
 * An OpenStack Glance image.
 *
 * @example
 * new Image("rancheros", {
 *   containerFormat: "bare",
 *   diskFormat: "qcow2",
 *   imageSourceUrl: "https://releases.rancher.com/os/latest/rancheros-openstack.img",
 *   properties: { key: "value" },
 * });
 */
export class Image extends pulumi.dynamic.Resource {
  /**
   * @param {string} name Pulumi resource name (also the Glance image name unless `name` is given)
   * @param {Record<string, any>} args camelCase inputs (containerFormat, diskFormat, ...)
   * @param {pulumi.CustomResourceOptions} [opts]
   * @param {ProviderOptions} [providerOptions] cloud settings and component location
   */
  constructor(name, args, opts, providerOptions) {
    const props = Object.fromEntries(OUTPUTS.map((k) => [k, undefined]));
    Object.assign(props, { name }, args);
    super(new ImageProvider(providerOptions), name, props, opts, "openstack", "Image");
  }
}

/**
 * Pulumi dynamic resource provider for one project's membership of a shared image, acting
 * from one side: `owner` (the image's owner offers the image to the member project; delete
 * withdraws the offer) or `member` (the member project answers the offer; delete rejects
 * it). Serialized like ImageProvider: plain fields only.
 *
 * @implements {pulumi.dynamic.ResourceProvider}
 */
export class MembershipProvider {
  /** @param {"owner" | "member"} side @param {ProviderOptions} [options] */
  constructor(side, options = {}) {
    this.side = side;
    /** @type {ProviderOptions} */
    this.options = { ...options };
    this.implUrl = IMPL_URL;
  }

  /** @returns {Promise<typeof import("./impl.js")>} */
  impl() {
    return import(this.implUrl);
  }

  /** @param {any} olds @param {any} news @returns {Promise<pulumi.dynamic.CheckResult>} */
  async check(olds, news) {
    return (await this.impl()).checkMembership(this.options, this.side, olds, news);
  }

  /** @param {string} id @param {any} olds @param {any} news @returns {Promise<pulumi.dynamic.DiffResult>} */
  async diff(id, olds, news) {
    return (await this.impl()).diffMembership(this.options, this.side, id, olds, news);
  }

  /** @param {any} inputs @returns {Promise<pulumi.dynamic.CreateResult>} */
  async create(inputs) {
    return (await this.impl()).createMembership(this.options, this.side, inputs);
  }

  /** @param {string} id @param {any} props @returns {Promise<pulumi.dynamic.ReadResult>} */
  async read(id, props) {
    return (await this.impl()).readMembership(this.options, this.side, id, props);
  }

  /** @param {string} id @param {any} olds @param {any} news @returns {Promise<pulumi.dynamic.UpdateResult>} */
  async update(id, olds, news) {
    return (await this.impl()).updateMembership(this.options, this.side, id, olds, news);
  }

  /** @param {string} id @param {any} props @returns {Promise<void>} */
  async delete(id, props) {
    return (await this.impl()).removeMembership(this.options, this.side, id, props);
  }
}

/** Outputs of a membership the cloud sets; `memberId` too when the inputs leave it out. */
const MEMBERSHIP_OUTPUTS = ["memberId", "status", "createdAt", "updatedAt", "schema"];

/**
 * The image's owner offers it to another project (Pulumi's `openstack.images.ImageAccess`).
 *
 * @example
 * new ImageAccess("share", { imageId: image.id, memberId: "<project id>" });
 */
export class ImageAccess extends pulumi.dynamic.Resource {
  /**
   * @param {string} name Pulumi resource name
   * @param {{imageId: any, memberId: any, status?: any, region?: any}} args the image and
   *   the member project; `status` needs an admin (the member answers with ImageAccessAccept)
   * @param {pulumi.CustomResourceOptions} [opts]
   * @param {ProviderOptions} [providerOptions] the owner's cloud settings
   */
  constructor(name, args, opts, providerOptions) {
    const props = Object.fromEntries(MEMBERSHIP_OUTPUTS.map((k) => [k, undefined]));
    Object.assign(props, args);
    super(new MembershipProvider("owner", providerOptions), name, props, opts, "openstack", "ImageAccess");
  }
}

/**
 * The member project answers an image offered to it (Pulumi's
 * `openstack.images.ImageAccessAccept`): accepted by default; deleting rejects the offer.
 *
 * @example
 * new ImageAccessAccept("accept", { imageId: "<shared image id>", status: "accepted" });
 */
export class ImageAccessAccept extends pulumi.dynamic.Resource {
  /**
   * @param {string} name Pulumi resource name
   * @param {{imageId: any, memberId?: any, status?: any, region?: any}} args the offered
   *   image; `memberId` defaults to the project of the session
   * @param {pulumi.CustomResourceOptions} [opts]
   * @param {ProviderOptions} [providerOptions] the member project's cloud settings
   */
  constructor(name, args, opts, providerOptions) {
    const props = Object.fromEntries(MEMBERSHIP_OUTPUTS.map((k) => [k, undefined]));
    Object.assign(props, args);
    super(new MembershipProvider("member", providerOptions), name, props, opts, "openstack", "ImageAccessAccept");
  }
}
