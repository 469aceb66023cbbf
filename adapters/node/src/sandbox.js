// The guest's filesystem: exactly the granted directories, mapped at their own absolute
// paths, the read-only ones made read-only. (Also one compatibility fix, see openAt.)
//
// preview2-shim maps a preopen without permissions (a guest could open files below it for
// writing), so read-only grants are enforced here: on descriptors that come from a read-only
// preopen (and everything opened through them) every operation that writes or changes the
// directory tree is refused with the WASI error `read-only`. This patches the shim's
// Descriptor class of the current thread once; descriptors not marked read-only behave as
// before. The provider runs each call in a fresh worker thread (see worker.js), so the patch
// lives only there.
import * as filesystemModule from "@bytecodealliance/preview2-shim/filesystem";

// The package's type declarations are its browser ones; the node module has more (the
// `_createPreopenDescriptor` used here). Typed loosely.
/** @type {any} */
const filesystem = filesystemModule;

/** Descriptors (preopens and everything opened below them) the guest may only read. */
const readOnly = new WeakSet();
let patched = false;

/** Operations refused outright on a read-only descriptor. */
const WRITES = [
  "writeViaStream",
  "appendViaStream",
  "setSize",
  "setTimes",
  "write",
  "createDirectoryAt",
  "setTimesAt",
  "removeDirectoryAt",
  "symlinkAt",
  "unlinkFileAt",
];

function patchDescriptor() {
  if (patched) return;
  patched = true;
  const proto = filesystem.types.Descriptor.prototype;
  for (const name of WRITES) {
    const original = proto[name];
    if (typeof original !== "function") continue;
    proto[name] = function (...args) {
      if (readOnly.has(this)) throw "read-only";
      return original.apply(this, args);
    };
  }
  // link-at(old-path-flags, old-path, new-descriptor, new-path) and
  // rename-at(old-path, new-descriptor, new-path): refused when either side is read-only.
  for (const [name, target] of [["linkAt", 2], ["renameAt", 1]]) {
    const original = proto[name];
    proto[name] = function (...args) {
      if (readOnly.has(this) || readOnly.has(args[target])) throw "read-only";
      return original.apply(this, args);
    };
  }
  const openAt = proto.openAt;
  proto.openAt = function (pathFlags, path, openFlags, descriptorFlags) {
    const fromReadOnly = readOnly.has(this);
    if (
      fromReadOnly &&
      (openFlags?.create || openFlags?.truncate || descriptorFlags?.write || descriptorFlags?.mutateDirectory)
    ) {
      throw "read-only";
    }
    // Rust's std asks for `mutate-directory` on every open for writing (File::create). The
    // shim refuses that flag outright ("unsupported"), which would make every write fail;
    // Wasmtime accepts it. The shim keeps no per-descriptor permissions anyway, so drop it.
    if (descriptorFlags?.mutateDirectory) descriptorFlags = { ...descriptorFlags, mutateDirectory: false };
    const opened = openAt.call(this, pathFlags, path, openFlags, descriptorFlags);
    if (fromReadOnly) readOnly.add(opened);
    return opened;
  };
  const getFlags = proto.getFlags;
  proto.getFlags = function () {
    if (readOnly.has(this)) return { read: true };
    // The shim keeps no flags for preopens; report what a read-write preopen allows.
    return getFlags.call(this) ?? { read: true, write: true, mutateDirectory: true };
  };
}

/**
 * The `wasi:filesystem/preopens` entries for one call.
 * @param {{readOnlyDirs?: string[], readWriteDirs?: string[]}} grants absolute host paths
 * @returns {[any, string][]} (descriptor, guest path) pairs
 */
export function sandboxPreopens({ readOnlyDirs = [], readWriteDirs = [] }) {
  patchDescriptor();
  /** @type {[any, string][]} */
  const entries = [];
  for (const dir of readOnlyDirs) {
    const descriptor = filesystem._createPreopenDescriptor(dir);
    readOnly.add(descriptor);
    entries.push([descriptor, dir]);
  }
  for (const dir of readWriteDirs) {
    entries.push([filesystem._createPreopenDescriptor(dir), dir]);
  }
  return entries;
}
