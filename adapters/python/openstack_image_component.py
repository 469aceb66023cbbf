"""Run the openstack-image WebAssembly component from Python through its JSON face.

The component (world `openstack:image/image-provider`) exports the interface
`openstack:image/resource@0.1.0`, whose functions take one JSON document and return one
(`result<string, string>`). This module loads the component with wasmtime-py, links
WASI preview 2 and wasi:http (the component calls Keystone and Glance itself), and wraps
the JSON face in a small class that takes and returns Python dicts:

    from openstack_image_component import ImageComponent
    with ImageComponent("openstack-image.wasm") as images:     # cloud: OS_* / clouds.yaml
        state = images.create({"name": "demo", "container_format": "bare",
                               "disk_format": "raw", "local_file_path": "/images/demo.raw"})
        state = images.read(state["id"], state)
        state = images.update(state, {**spec, "tags": ["demo"]})
        images.delete(state["id"])

The cloud comes from the component's one rule (`resolve-cloud-json`), as in every other
runtime: settings given to the constructor over the OS_* variables over the clouds.yaml
cloud OS_CLOUD names (with secure.yaml). Each `ImageComponent` logs in once (through
`authenticate-json`) and gives the lifecycle calls the cloud without credentials plus that
session, as the bundled host does: only the resolution and the login see the secrets.

Sharing an image with another project is the component's membership resource: the owner
offers (`create_membership({"image_id": ..., "member_id": ..., "side": "owner"})`), the
member project answers (`side: member`, default status `accepted`); `for_cloud(settings)`
gives a second object for the other project on the same compiled component.

Errors the component returns come back as `ComponentError` (kind, message, fields);
a trap inside the component (a bug, the memory cap, the deadline) as `ComponentTrap`.

Sandbox: the component sees no environment variables (the OS_* ones, HOME and
XDG_CONFIG_HOME reach it only as the data of `resolve-cloud-json`), no arguments, no stdin
or stdout; stderr (progress JSON lines) goes to this process's stderr or to a `progress`
callback. It sees only the directories it needs, preopened under their own absolute paths: the
directory of a spec's `local_file_path` read-only, a spec's `image_cache_path` (only for
URL sources that the component downloads) read-write, plus any `dirs` given to the
constructor read-only. wasmtime-py offers no hook to filter outgoing HTTP: the component
may reach any host this process can reach.

Download cache: as the bundled host does, each call that may download holds its cache
entry (a shared flock on `<cache>/.locks/_/<entry>.lock`) while it runs and afterwards
trims the cache to `cache_max_size` (default: OPENSTACK_IMAGE_CACHE_MAX_SIZE, else 10G),
least recently used entries first, never one another process holds; so the adapter and
`openstack-image` can share one cache directory.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import hashlib
import json
import os
import re
import threading
import time
import warnings
from datetime import datetime, timedelta, timezone
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, NamedTuple, Optional

import wasmtime
from wasmtime import component as wc

__all__ = [
    "ImageComponent",
    "ComponentError",
    "ComponentTrap",
    "cloud_environment",
    "session_only_cloud",
    "parse_cache_size",
    "RESOURCE_INTERFACE",
    "DEFAULT_CACHE_MAX_SIZE",
    "CACHE_MAX_SIZE_VARIABLE",
]

RESOURCE_INTERFACE = "openstack:image/resource@0.1.0"

_FUNCTIONS = (
    "schema",
    "resolve-cloud-json",
    "authenticate-json",
    "check-json",
    "check-with-cloud-json",
    "diff-json",
    "create-json",
    "read-json",
    "update-json",
    "delete-json",
    "find-json",
    "check-membership-json",
    "diff-membership-json",
    "create-membership-json",
    "read-membership-json",
    "update-membership-json",
    "delete-membership-json",
)


# A session is renewed this long before its token expires (as the bundled host does).
_SESSION_MARGIN = timedelta(minutes=2)

# Variables the cloud rule reads besides OS_*: where clouds.yaml is looked for, the token cache.
_RULE_VARIABLES = ("HOME", "XDG_CONFIG_HOME", "OPENSTACK_IMAGE_TOKEN_CACHE")

# The `auth` keys of a cloud without credentials: where Keystone is, the project scope.
_SCOPE_KEYS = ("auth_url", "project_id", "project_name", "project_domain_id", "project_domain_name")

# The other keys it keeps: which image endpoint, how often to retry.
_ENDPOINT_KEYS = ("region_name", "interface", "retries")


def _usable(session: Dict[str, Any]) -> bool:
    """Whether the session's token lives two more minutes. A token without an expiry cannot
    be judged, so it is not reused."""
    text = session.get("expires_at")
    if not isinstance(text, str):
        return False
    try:
        expires = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return False
    if expires.tzinfo is None:
        expires = expires.replace(tzinfo=timezone.utc)
    return expires - datetime.now(timezone.utc) >= _SESSION_MARGIN


def cloud_environment(environ: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    """The variables of `environ` (default: `os.environ`) the cloud rule reads: OS_*, HOME,
    XDG_CONFIG_HOME, OPENSTACK_IMAGE_TOKEN_CACHE. The component is given these, not the
    whole environment."""
    env = os.environ if environ is None else environ
    return {name: value for name, value in env.items()
            if name.startswith("OS_") or name in _RULE_VARIABLES}


def session_only_cloud(cloud: Dict[str, Any], session: Dict[str, Any]) -> Dict[str, Any]:
    """The cloud document a lifecycle call gets: `cloud` without its credentials (user,
    password, application credential, token, auth_type) and with `session`, so the
    component works session-only: only the resolution and the login (`authenticate-json`)
    are given the secrets."""
    auth = cloud.get("auth") or {}
    doc: Dict[str, Any] = {"auth": {k: auth[k] for k in _SCOPE_KEYS if k in auth}}
    doc.update({k: cloud[k] for k in _ENDPOINT_KEYS if k in cloud})
    doc["session"] = session
    return doc


def _read_existing(paths: Iterable[str]) -> Dict[str, str]:
    """The texts of those of `paths` that exist (relative paths: against the working
    directory)."""
    files = {}
    for path in paths:
        try:
            with open(path, encoding="utf-8") as f:
                files[path] = f.read()
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as e:
            raise OSError(f"cannot read {path} (named by the cloud settings): {e}") from e
    return files


def _applicable(resolution: Dict[str, Any]) -> Dict[str, Any]:
    """The resolved cloud document, once its TLS settings are known to hold here:
    wasmtime-py's wasi:http takes no TLS options (the platform's trusted roots, always
    verified): `verify: false` cannot be applied (an error), a CA file neither (a warning:
    the default roots may well trust the cloud). (A token cache is not kept: an
    `ImageComponent` logs in once.)"""
    if resolution.get("verify") is False:
        raise ValueError(
            "the cloud settings turn TLS verification off (OS_INSECURE or clouds.yaml "
            "`verify: false`), which the Python adapter cannot do: wasmtime-py's wasi:http "
            "always verifies; use the bundled openstack-image host for this cloud")
    if resolution.get("cacert"):
        # Many openrc files name a CA bundle for a publicly trusted cloud: say it, go on.
        warnings.warn(
            f"the cloud settings name the CA file {resolution['cacert']} (OS_CACERT or "
            "clouds.yaml `cacert`), which the Python adapter cannot apply: wasmtime-py's "
            "wasi:http trusts only the default roots, so a cloud whose certificate only that "
            "CA signs is refused; use the bundled openstack-image host for such a cloud",
            stacklevel=3)
    return resolution["cloud"]


class ComponentError(Exception):
    """An error the component returned (the `err` case of a JSON-face function).

    `kind` is the name of the typed `error` case (`invalid-spec`, `auth-failed`,
    `not-found`, `conflict`, `timeout`, `transport`, `api`, ..., or `invalid-request`
    when the request document itself could not be read); `fields` lists
    `{"field", "message"}` for `invalid-spec`; `document` is the whole error object.
    """

    def __init__(self, kind: str, message: str, fields: Optional[List[Dict[str, str]]] = None,
                 document: Optional[Dict[str, Any]] = None, function: str = ""):
        self.kind = kind
        self.message = message
        self.fields = list(fields or [])
        self.document = document if document is not None else {"kind": kind, "message": message}
        self.function = function
        text = f"{kind}: {message}"
        for f in self.fields:
            text += f"\n  {f.get('field')}: {f.get('message')}"
        super().__init__(text)

    @property
    def field_names(self) -> List[str]:
        return [f.get("field", "") for f in self.fields]

    @property
    def image_id(self) -> Optional[str]:
        """With `unauthorized` from a create: the image it had made before the refusal."""
        value = self.document.get("image_id")
        return value if isinstance(value, str) else None

    @classmethod
    def from_text(cls, text: str, function: str = "") -> "ComponentError":
        try:
            doc = json.loads(text)
        except ValueError:
            doc = None
        if not isinstance(doc, dict):
            return cls("unknown", text, [], {"kind": "unknown", "message": text}, function)
        return cls(str(doc.get("kind", "unknown")), str(doc.get("message", "")),
                   doc.get("fields") or [], doc, function)


class ComponentTrap(RuntimeError):
    """The component trapped (or hit the memory cap / call deadline). The instance that
    trapped is discarded; the next call starts a fresh one."""


def _dirs_for(doc: Optional[Dict[str, Any]]) -> "tuple[set[str], set[str]]":
    """(read-only dirs, read-write dirs) a spec or state document needs."""
    ro: set = set()
    rw: set = set()
    if not isinstance(doc, dict):
        return ro, rw
    path = doc.get("local_file_path")
    if isinstance(path, str) and os.path.isabs(path):
        parent = os.path.dirname(os.path.normpath(path))
        if os.path.isdir(parent):
            ro.add(parent)
    download = _cached_download(doc)
    if download is not None:
        os.makedirs(download.cache, exist_ok=True)
        rw.add(download.cache)
    return ro, rw


def leaves_url_to_glance(doc: Dict[str, Any]) -> bool:
    """Whether the component never fetches the spec's URL: Glance fetches it (web-download,
    glance-download) and no `import_fallback: upload` has the component fetch it when Glance's
    import fails (the component's own rule, `ImportMethod::leaves_url_to_glance`)."""
    glance_fetches = (doc.get("web_download") is True
                      or doc.get("import_method") in ("web-download", "glance-download"))
    return glance_fetches and doc.get("import_fallback") != "upload"


# ----- the download cache ----------------------------------------------------------------
# The component downloads a URL source into the cache directory it is given (here the
# spec's `image_cache_path` itself) as `<md5(url + "true"|"false")>.img` with a JSON record
# `<entry>.img.json` beside it. It can neither lock files nor see other processes, so the
# adapter keeps the cache as the bundled host does (host/src/image_cache.rs), on the same
# directory and with the same locks, so that both may share it: a lock file per entry,
# `<cache>/.locks/<area>/<entry>.lock` (`_` for entries directly in `<cache>/`, as this
# adapter keeps them; `component-<id>` for the host's per-component areas), locked with
# flock(2) (`fcntl.flock`, the lock Rust's `File::lock` takes). A call holds a shared lock
# on the entry it may use from before the component starts until it returns; an entry is
# removed only under an exclusive lock taken without waiting, so an entry another process
# is using is never removed. An entry's last use is its data file's modification time.

#: The download cache's size limit when neither `cache_max_size` nor the variable says.
DEFAULT_CACHE_MAX_SIZE = "10G"

#: The variable the limit is read from (the bundled host's `--cache-max-size` reads it too).
CACHE_MAX_SIZE_VARIABLE = "OPENSTACK_IMAGE_CACHE_MAX_SIZE"

_CACHE_LOCKS = ".locks"

# A size: a number, then an optional binary multiple (K, M, G, T, P, E; `1G` is 1 GiB)
# written with or without `B`/`iB`, or a plain `B`.
_SIZE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(?:([kmgtpe])(?:i?b)?|b)?", re.IGNORECASE)
_SIZE_EXPONENTS = {"k": 1, "m": 2, "g": 3, "t": 4, "p": 5, "e": 6}


def parse_cache_size(value: "str | int", name: str = "cache_max_size") -> Optional[int]:
    """The download cache's limit in bytes from `value`: bytes as an int, or a size text
    (`512M`, `20G`, `1.5GiB`, `0`: binary multiples, so `1G` is 1 GiB; `B`/`iB` optional), or
    `none` for no limit (None). A ValueError names `name` and the value."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"{name}: {value!r} is not a size: bytes cannot be negative")
        return value
    if not isinstance(value, str):
        raise ValueError(f"{name}: {value!r} is not a size: give a text such as 512M, 20G, "
                         "1.5GiB or none (no limit), or a number of bytes")
    text = value.strip()
    if text.lower() == "none":
        return None
    match = _SIZE.fullmatch(text)
    if match is None:
        raise ValueError(f"{name}: {value!r} is not a size: write e.g. 512M, 20G, 1.5GiB, 0, "
                         "or none for no limit (binary multiples: 1G = 1 GiB)")
    number, unit = match.groups()
    return int(Fraction(number) * 1024 ** _SIZE_EXPONENTS.get((unit or "").lower(), 0))


def _cache_limit(cache_max_size: "str | int | None") -> Optional[int]:
    """The limit `ImageComponent(cache_max_size=...)` means: the value given, else
    OPENSTACK_IMAGE_CACHE_MAX_SIZE, else 10G."""
    if cache_max_size is not None:
        return parse_cache_size(cache_max_size)
    variable = os.environ.get(CACHE_MAX_SIZE_VARIABLE, "").strip()
    if variable:
        return parse_cache_size(variable, CACHE_MAX_SIZE_VARIABLE)
    return parse_cache_size(DEFAULT_CACHE_MAX_SIZE)


def _cache_entry_name(url: str, decompress: bool) -> str:
    """The cache's file for a URL and decompress flag (the component's and the host's name)."""
    key = url + ("true" if decompress else "false")
    return hashlib.md5(key.encode("utf-8"), usedforsecurity=False).hexdigest() + ".img"


class _Download(NamedTuple):
    """A URL the component downloads into a cache directory."""
    cache: str
    url: str
    decompress: bool


def _cached_download(doc: Optional[Dict[str, Any]]) -> Optional[_Download]:
    """The download `doc` (a spec) has the component make into its cache directory: a URL
    source the component fetches itself, with an absolute `image_cache_path` (not `none`)."""
    if not isinstance(doc, dict):
        return None
    cache, url = doc.get("image_cache_path"), doc.get("image_source_url")
    if (isinstance(cache, str) and cache not in ("", "none") and os.path.isabs(cache)
            and isinstance(url, str) and url and not leaves_url_to_glance(doc)):
        return _Download(os.path.normpath(cache), url, doc.get("decompress") is True)
    return None


class _CacheEntry(NamedTuple):
    data: str
    #: The directory below the cache that holds it: "" or `component-<id>`.
    area: str
    #: Bytes on disk: the data and its record.
    size: int
    #: The data file's modification time (ns).
    last_use: int

    @property
    def name(self) -> str:
        return os.path.basename(self.data)


def _list_dir(path: str) -> List[str]:
    try:
        return os.listdir(path)
    except FileNotFoundError:
        return []


def _cache_areas(cache: str) -> List[str]:
    """The directories entries live in: the cache itself (this adapter's) and every
    component's area (`component-<id>`, the bundled host's)."""
    return [""] + sorted(name for name in _list_dir(cache)
                         if name.startswith("component-") and os.path.isdir(os.path.join(cache, name)))


def _lock_path(cache: str, area: str, name: str) -> str:
    return os.path.join(cache, _CACHE_LOCKS, area or "_", f"{name}.lock")


def _lock(path: str, shared: bool) -> Optional[int]:
    """A descriptor of the lock file at `path` (created, with its directory, if missing)
    locked with flock(2): shared, waiting while another process holds it exclusively; or
    exclusive if free (None when another process holds it). A lock file removed between
    opening and locking it is opened again, so the lock taken is always on the file the path
    names. Closing the descriptor releases the lock."""
    while True:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o666)
        try:
            if shared:
                fcntl.flock(fd, fcntl.LOCK_SH)
            else:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    return None
            held = os.fstat(fd)
            try:
                now: Optional[os.stat_result] = os.stat(path)
            except FileNotFoundError:
                now = None
        except BaseException:
            os.close(fd)
            raise
        if now is not None and (now.st_ino, now.st_dev) == (held.st_ino, held.st_dev):
            return fd
        os.close(fd)


def _hold_cache_entry(download: _Download) -> int:
    """Takes a shared lock on the entry of `download` (waiting while a prune removes it) and
    marks the entry used now; returns the descriptor holding the lock."""
    name = _cache_entry_name(download.url, download.decompress)
    fd = _lock(_lock_path(download.cache, "", name), shared=True)
    if fd is None:
        raise RuntimeError("a waiting shared lock is always taken")
    data = os.path.join(download.cache, name)
    try:
        os.utime(data, ns=(os.stat(data).st_atime_ns, time.time_ns()))
    except OSError:
        pass
    return fd


def _remove_unlocked(path: str) -> bool:
    try:
        os.remove(path)
        return True
    except FileNotFoundError:
        return False


def _remove_cache_leftovers(cache: str) -> List[str]:
    """Removes what killed runs left in `cache`: partial downloads (`.<entry>.<id>.part`,
    `.<entry>.json.<id>.part`) and records (`<entry>.json`) without their data, of entries
    no process holds. Returns the files removed."""
    removed = []
    for area in _cache_areas(cache):
        directory = os.path.join(cache, area)
        names = _list_dir(directory)
        present = set(names)
        for name in names:
            if name.startswith(".") and name.endswith(".part"):
                end = name.find(".img", 1)
                if end < 0:
                    continue
                entry = name[1:end + 4]
            elif name.endswith(".img.json"):
                entry = name[:-len(".json")]
                if entry in present:
                    continue
            else:
                continue
            fd = _lock(_lock_path(cache, area, entry), shared=False)
            if fd is None:
                continue
            try:
                if _remove_unlocked(os.path.join(directory, name)):
                    removed.append(os.path.join(directory, name))
            finally:
                os.close(fd)
    return removed


def _cache_entries(cache: str) -> List[_CacheEntry]:
    """Every entry of `cache`, least recently used first."""
    entries = []
    for area in _cache_areas(cache):
        directory = os.path.join(cache, area)
        for name in _list_dir(directory):
            if name.startswith(".") or not name.endswith(".img"):
                continue
            data = os.path.join(directory, name)
            try:
                meta = os.stat(data)
            except OSError:
                continue
            if not os.path.isfile(data):
                continue
            try:
                record = os.stat(data + ".json").st_size
            except OSError:
                record = 0
            entries.append(_CacheEntry(data, area, meta.st_size + record, meta.st_mtime_ns))
    entries.sort(key=lambda e: e.last_use)
    return entries


def _remove_cache_entry(cache: str, entry: _CacheEntry) -> bool:
    """Removes an entry unless a process holds it; True when removed."""
    lock_path = _lock_path(cache, entry.area, entry.name)
    fd = _lock(lock_path, shared=False)
    if fd is None:
        return False
    try:
        _remove_unlocked(entry.data)
        _remove_unlocked(entry.data + ".json")
        # Unlinked while locked: a process that opened it meanwhile sees, once it has the
        # lock, that the path is no longer its file, and locks the new one.
        with contextlib.suppress(OSError):
            os.remove(lock_path)
    finally:
        os.close(fd)
    return True


def _prune_cache(cache: str, max_bytes: int) -> "tuple[List[_CacheEntry], List[_CacheEntry], int]":
    """Removes the least recently used entries of `cache` until it holds at most `max_bytes`,
    skipping those another process holds. Returns (removed, kept in use, bytes left)."""
    entries = _cache_entries(cache)
    remaining = sum(e.size for e in entries)
    removed: List[_CacheEntry] = []
    kept: List[_CacheEntry] = []
    for entry in entries:
        if remaining <= max_bytes:
            continue
        if _remove_cache_entry(cache, entry):
            remaining -= entry.size
            removed.append(entry)
        else:
            kept.append(entry)
    return removed, kept, remaining


@contextlib.contextmanager
def _using_caches(docs: Iterable[Optional[Dict[str, Any]]], max_bytes: Optional[int]) -> Iterator[None]:
    """Around one component call, the download caches its specs' downloads use, as the
    bundled host keeps them: first what killed runs left is removed and each download's
    entry is held (shared lock, marked used); when the call ends (returned or failed) the
    holds are released and each cache is trimmed to `max_bytes` (None: no limit), least
    recently used first; a cache that cannot be trimmed is a warning."""
    downloads = sorted({d for d in map(_cached_download, docs) if d is not None})
    if not downloads:
        yield
        return
    caches = sorted({d.cache for d in downloads})
    holds: List[int] = []
    try:
        for cache in caches:
            _remove_cache_leftovers(cache)
        for download in downloads:
            holds.append(_hold_cache_entry(download))
    except BaseException:
        for fd in holds:
            os.close(fd)
        raise
    try:
        yield
    finally:
        for fd in holds:
            os.close(fd)
        if max_bytes is not None:
            for cache in caches:
                try:
                    _prune_cache(cache, max_bytes)
                except OSError as e:
                    warnings.warn(f"could not trim the download cache {cache}: {e}", stacklevel=3)


class _Live:
    """One store + one component instance, with the preopens it was made with."""

    def __init__(self, store: wasmtime.Store, funcs: Dict[str, wc.Func], ro: frozenset, rw: frozenset):
        self.store = store
        self.funcs = funcs
        self.ro = ro
        self.rw = rw

    def covers(self, ro: Iterable[str], rw: Iterable[str]) -> bool:
        return set(rw) <= self.rw and set(ro) <= (self.ro | self.rw)


class ImageComponent:
    """The openstack-image component's JSON face, with Python dicts in and out.

    The component is compiled once (per `ImageComponent`). The cloud is resolved once, by
    the component's `resolve-cloud-json`, and this object logs in to Keystone once (through
    `authenticate-json`): the lifecycle calls (create, read, update, delete) get the cloud
    without credentials plus that session, used as it is until two minutes before it
    expires. When the cloud refuses the session (`unauthorized`), this object logs in again
    once and repeats the call; a create cut short after making its image record has that
    image deleted with the new session and is repeated unless the spec named its id.
    Calls reuse one instance until a call needs a directory the instance was not given, or
    the component traps; then a fresh store and instance are made (with the same session).
    Not thread-safe: use one `ImageComponent` per thread.
    """

    def __init__(self, wasm_path: "str | os.PathLike[str]", cloud: Optional[Dict[str, Any]] = None,
                 dirs: Iterable["str | os.PathLike[str]"] = (), *,
                 memory_limit_mib: int = 512, deadline_seconds: Optional[float] = 7200,
                 progress: Optional[Callable[[Dict[str, Any]], None]] = None,
                 cache_max_size: "str | int | None" = None):
        """`cloud`: cloud settings (a clouds.yaml cloud entry) that win over the OS_*
        variables and clouds.yaml, setting by setting; the cloud is resolved on first use
        (see `resolve_cloud`). `dirs`: extra directories to preopen read-only (under their
        own absolute paths). `memory_limit_mib`: the component's linear-memory cap. `deadline_seconds`:
        wall-clock limit of one call, enforced by epoch interruption (None: no limit; it
        interrupts wasm code, not a host call blocked on I/O). `progress`: called with each
        progress JSON object the component writes on stderr, from a reader thread, so
        events may arrive shortly after the call returns (default: stderr is inherited).
        `cache_max_size`: how large each download cache (`image_cache_path`) may grow, as the
        bundled host's `--cache-max-size`: bytes, or a size such as `512M`, `20G`, `1.5GiB`
        (binary multiples), or `none` for no limit (None: OPENSTACK_IMAGE_CACHE_MAX_SIZE, else
        10G); after each call that may download, the least recently used entries beyond it
        are removed (a ValueError here when the value is not a size).
        """
        self.wasm_path = os.fspath(wasm_path)
        self._settings = cloud
        self._cloud: Optional[Dict[str, Any]] = None
        self.dirs = frozenset(os.path.abspath(os.fspath(d)) for d in dirs)
        self.memory_limit_bytes = memory_limit_mib * 1024 * 1024
        self.deadline_seconds = deadline_seconds
        self.progress = progress
        #: The download caches' limit in bytes (None: no limit).
        self.cache_max_bytes = _cache_limit(cache_max_size)

        config = wasmtime.Config()
        config.epoch_interruption = deadline_seconds is not None
        self.engine = wasmtime.Engine(config)
        self.component = wc.Component.from_file(self.engine, self.wasm_path)
        if self.component.get_export_index(RESOURCE_INTERFACE) is None:
            raise ValueError(
                f"{self.wasm_path} does not export {RESOURCE_INTERFACE} (the JSON face); "
                "it may be a component built for the lifecycle-provider world only")
        self.linker = wc.Linker(self.engine)
        self.linker.add_wasip2()      # wasi:cli, clocks, filesystem, io, random, sockets
        self.linker.add_wasi_http()   # wasi:http/types + wasi:http/outgoing-handler
        self._live: Optional[_Live] = None
        self._session: Optional[Dict[str, Any]] = None

    # ----- instance management -------------------------------------------------------

    @property
    def cloud(self) -> Dict[str, Any]:
        """The cloud document, credentials included (resolved on first use); only
        `authenticate` gives it to the component."""
        if self._cloud is None:
            self._cloud = _applicable(self.resolve_cloud(self._settings))
        return self._cloud

    def _progress_pipe(self, wasi: wasmtime.WasiConfig) -> None:
        """Points the component's stderr at a pipe read by a Python thread that calls
        `self.progress` once per line.

        (Not `WasiConfig.stderr_custom`: wasmtime writes and finalizes custom outputs on its
        tokio worker threads, and a Python callback reached from one of those while the
        interpreter is shutting down aborts the process: "panic in a function that cannot
        unwind".)"""
        read_fd, write_fd = os.pipe()
        try:
            wasi.stderr_file = f"/proc/self/fd/{write_fd}"   # wasmtime opens its own descriptor
        finally:
            os.close(write_fd)
        callback = self.progress

        def pump() -> None:
            with os.fdopen(read_fd, "rb") as pipe:   # EOF when the store drops its end
                for line in pipe:
                    text = line.decode("utf-8", "replace").strip()
                    if not text:
                        continue
                    try:
                        event = json.loads(text)
                    except ValueError:
                        event = {"message": text}
                    if not isinstance(event, dict):
                        event = {"message": event}
                    try:
                        callback(event)  # type: ignore[misc]
                    except Exception:   # a broken callback must not stop the pipe
                        pass

        threading.Thread(target=pump, name="openstack-image-stderr", daemon=True).start()

    def _instantiate(self, ro: frozenset, rw: frozenset) -> _Live:
        wasi = wasmtime.WasiConfig()   # no args, no env, no stdin, stdout discarded
        if self.progress is None:
            wasi.inherit_stderr()
        else:
            self._progress_pipe(wasi)
        for d in sorted(rw):
            wasi.preopen_dir(d, d, True)
        for d in sorted(ro - rw):
            wasi.preopen_dir(d, d, False)    # read-only dir and file permissions
        store = wasmtime.Store(self.engine)
        store.set_limits(memory_size=self.memory_limit_bytes)
        store.set_wasi(wasi)
        store.set_wasi_http()
        if self.deadline_seconds is not None:
            store.set_epoch_deadline(1)
        instance = self.linker.instantiate(store, self.component)
        iface = instance.get_export_index(store, RESOURCE_INTERFACE)
        funcs: Dict[str, wc.Func] = {}
        for name in _FUNCTIONS:
            idx = instance.get_export_index(store, name, iface)
            func = instance.get_func(store, idx) if idx is not None else None
            if func is None:
                raise ValueError(f"{self.wasm_path}: {RESOURCE_INTERFACE} has no function {name}")
            funcs[name] = func
        return _Live(store, funcs, ro, rw)

    def _instance_for(self, docs: Iterable[Optional[Dict[str, Any]]]) -> _Live:
        ro: set = set(self.dirs)
        rw: set = set()
        for doc in docs:
            r, w = _dirs_for(doc)
            ro |= r
            rw |= w
        if self._live is None or not self._live.covers(ro, rw):
            if self._live is not None:   # keep what the old instance had: fewer re-instantiations
                ro |= self._live.ro
                rw |= self._live.rw
            self._live = None
            self._live = self._instantiate(frozenset(ro), frozenset(rw))
        return self._live

    def for_cloud(self, cloud: Optional[Dict[str, Any]]) -> "ImageComponent":
        """Another `ImageComponent` on the same compiled component for other cloud settings
        (another project or user, say the member side of a shared image): its own cloud,
        session and instances; the compile is not repeated."""
        other = copy.copy(self)
        other._settings = cloud
        other._cloud = None
        other._live = None
        other._session = None
        return other

    def close(self) -> None:
        """Drops the live instance (the compiled component stays)."""
        self._live = None

    def __enter__(self) -> "ImageComponent":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ----- calls ---------------------------------------------------------------------

    def _invoke(self, name: str, args: tuple, dir_docs: Iterable[Optional[Dict[str, Any]]]) -> Any:
        dir_docs = tuple(dir_docs)
        # A download the call may make is held while it runs; then its cache is trimmed.
        with _using_caches(dir_docs, self.cache_max_bytes):
            return self._invoke_live(name, args, dir_docs)

    def _invoke_live(self, name: str, args: tuple, dir_docs: Iterable[Optional[Dict[str, Any]]]) -> Any:
        live = self._instance_for(dir_docs)
        func = live.funcs[name]
        timer = None
        if self.deadline_seconds is not None:
            live.store.set_epoch_deadline(1)
            timer = threading.Timer(self.deadline_seconds, self.engine.increment_epoch)
            timer.daemon = True
            timer.start()
        try:
            result = func(live.store, *args)
            func.post_return(live.store)
        except wasmtime.WasmtimeError as e:
            # A trapped instance may not be entered again: start over on the next call.
            self._live = None
            raise ComponentTrap(f"{name}: the component trapped: {e}") from e
        finally:
            if timer is not None:
                timer.cancel()
        return result

    def _call_json(self, name: str, request: Dict[str, Any],
                   dir_docs: Iterable[Optional[Dict[str, Any]]] = ()) -> Any:
        result = self._invoke(name, (json.dumps(request),), dir_docs)
        # result<string, string>: both cases carry a string, so wasmtime-py returns a
        # tagged wasmtime.component.Variant.
        if not isinstance(result, wc.Variant):
            raise TypeError(f"{name}: expected result<string, string>, got {result!r}")
        if result.tag == "err":
            raise ComponentError.from_text(result.payload, name)
        return json.loads(result.payload)

    def schema(self) -> Dict[str, Any]:
        """The JSON Schema of the spec, state and cloud documents."""
        return json.loads(self._invoke("schema", (), ()))

    def check(self, spec: Dict[str, Any]) -> Dict[str, Any]:
        """Validates `spec` (no network calls); returns it with defaults filled in."""
        # check probes local_file_path, so its directory is preopened (read-only).
        return self._call_json("check-json", {"spec": spec}, (spec,))["spec"]

    def diff(self, spec: Dict[str, Any], state: Dict[str, Any]) -> Dict[str, Any]:
        """The plan to go from `state` to `spec`: {"action", "changes", "replaces", ...}.
        (diff re-reads the local file when its size or mtime moved: its directory is preopened.)"""
        return self._call_json("diff-json", {"spec": spec, "state": state}, (spec, state))

    def resolve_cloud(self, settings: Optional[Dict[str, Any]] = None,
                      environ: Optional[Mapping[str, str]] = None) -> Dict[str, Any]:
        """`{"cloud", "cacert", "verify", "token_cache"}` by the component's one cloud rule
        (`resolve-cloud-json`, the same in every runtime): `settings` (a clouds.yaml cloud
        entry) over the OS_* variables of `environ` (default: `os.environ`) over the
        clouds.yaml cloud OS_CLOUD names, with secure.yaml merged in. The clouds.yaml and
        secure.yaml files the rule names are read here (HOME, XDG_CONFIG_HOME and
        OS_CLIENT_CONFIG_FILE say where; relative paths are against the working directory).
        A problem with the settings is a `ComponentError` of kind `invalid-request`."""
        request: Dict[str, Any] = {"environment": cloud_environment(environ)}
        if settings is not None:
            request["settings"] = settings
        answer = self._call_json("resolve-cloud-json", request)
        if "read" in answer:
            answer = self._call_json("resolve-cloud-json",
                                     {**request, "files": _read_existing(answer["read"])})
        return answer

    def authenticate(self) -> Dict[str, Any]:
        """Logs in to Keystone (always; a held session is replaced) and holds the session
        (token, expiry, the catalog's image endpoints) that the lifecycle calls get instead
        of the credentials. Called by the first call that needs the cloud; call it yourself
        to fail early."""
        self._session = self._call_json("authenticate-json", {"cloud": self.cloud})
        return self._session

    def _held_session(self) -> Dict[str, Any]:
        """The session held while usable (at first, one given in the cloud settings), else
        a new login."""
        if self._session is None and isinstance(self.cloud.get("session"), dict):
            self._session = self.cloud["session"]
        if self._session is None or not _usable(self._session):
            self.authenticate()
        return self._session  # type: ignore[return-value]

    def _on_cloud(self, name: str, request: Dict[str, Any],
                  dir_docs: Iterable[Optional[Dict[str, Any]]] = ()) -> Any:
        """Calls `name` with `request` plus the cloud without credentials and the held
        session; when the cloud refused the session, logs in again and calls once more. A
        create that names the image it made before the refusal has that image deleted
        first, and is not repeated when the spec named that id (Glance never reuses one)."""
        dir_docs = tuple(dir_docs)

        def call(session: Dict[str, Any]) -> Any:
            return self._call_json(name, {**request, "cloud": session_only_cloud(self.cloud, session)},
                                   dir_docs)

        try:
            return call(self._held_session())
        except ComponentError as refusal:
            if refusal.kind != "unauthorized":
                raise
            session = self.authenticate()
            if refusal.image_id is not None:
                self._delete_half_made(refusal, session, request.get("spec") or {})
        return call(session)

    def _delete_half_made(self, refusal: ComponentError, session: Dict[str, Any],
                          spec: Dict[str, Any]) -> None:
        """Deletes the image a refused create left behind; raises the refusal, saying so,
        unless the create may be repeated (the image is gone, the spec did not name it)."""
        image_id = refusal.image_id
        request: Dict[str, Any] = {"cloud": session_only_cloud(self.cloud, session), "id": image_id}
        if isinstance(spec.get("region"), str):
            request["region"] = spec["region"]
        timeout = (spec.get("timeouts") or {}).get("delete")
        if isinstance(timeout, int):
            request["timeout_seconds"] = timeout
        try:
            self._call_json("delete-json", request)
        except (ComponentError, ComponentTrap) as e:
            outcome = f"the half-made image {image_id} could not be deleted: {e}"
        else:
            if spec.get("image_id") != image_id:
                return
            outcome = f"the half-made image {image_id} was deleted"
        document = {**refusal.document, "message": f"{refusal.message}; {outcome}"}
        raise ComponentError(refusal.kind, document["message"], refusal.fields, document,
                             refusal.function) from refusal

    def check_with_cloud(self, spec: Dict[str, Any],
                         before: Optional[Dict[str, Any]] = None) -> None:
        """Raises ComponentError (invalid-spec) when the cloud's own metadata definitions rule
        out a property `spec` would send; `before`: properties the image already has, whose
        unchanged values are not checked again. Changes nothing."""
        before = before or {}
        sent = {k: v for k, v in (spec.get("properties") or {}).items() if before.get(k) != v}
        if sent:
            self._on_cloud("check-with-cloud-json", {"spec": {**spec, "properties": sent}})

    def create(self, spec: Dict[str, Any]) -> Dict[str, Any]:
        """Creates the image, uploads its data, waits for `active`; returns its state. Its
        properties are first checked against the cloud's definitions (`check_with_cloud`)."""
        self.check_with_cloud(spec)
        return self._on_cloud("create-json", {"spec": spec}, (spec,))

    def read(self, id: str, state: Optional[Dict[str, Any]] = None) -> Optional[Dict[str, Any]]:
        """The image's state, or None when it is gone. `state`: its last known state."""
        request: Dict[str, Any] = {"id": id}
        if state is not None:
            request["state"] = state
        return self._on_cloud("read-json", request)

    def update(self, state: Dict[str, Any], spec: Dict[str, Any]) -> Dict[str, Any]:
        """Updates the image in place; returns the new state."""
        self.check_with_cloud(spec, state.get("properties"))
        # update patches metadata only: it reads no file, so it needs no preopen.
        return self._on_cloud("update-json", {"state": state, "spec": spec})

    def delete(self, id: str, region: Optional[str] = None,
               timeout_seconds: Optional[int] = None) -> Dict[str, Any]:
        """Deletes the image (an image already gone counts as deleted)."""
        request: Dict[str, Any] = {"id": id}
        if region is not None:
            request["region"] = region
        if timeout_seconds is not None:
            request["timeout_seconds"] = timeout_seconds
        return self._on_cloud("delete-json", request)

    def find(self, query: Dict[str, Any]) -> Dict[str, Any]:
        """One image the query matches (Terraform's image data source: name, name_regex,
        visibility, owner, tags, properties, size_min/max, sort, most_recent, member_status,
        hidden, container_format, disk_format, region), as a flat state. ComponentError
        `not-found` when none matches; several are an error unless `most_recent`."""
        return self._on_cloud("find-json", {"query": query})

    # ----- the membership resource -----------------------------------------------------
    # One project's membership of a shared image: {"image_id", "member_id", "status",
    # "side", "region"} (`$defs.membership_spec` of the schema); its state is flat
    # (`$defs.membership_state`) with the id `IMAGE_ID/MEMBER_ID`. `side: owner` offers the
    # image (delete withdraws it), `side: member` (the default) answers the offer (delete
    # rejects it). No file is read: these calls preopen nothing.

    def check_membership(self, spec: Dict[str, Any]) -> Dict[str, Any]:
        """Validates a membership spec (no network calls); returns it with defaults filled in."""
        return self._call_json("check-membership-json", {"spec": spec})["spec"]

    def diff_membership(self, spec: Dict[str, Any], state: Dict[str, Any]) -> Dict[str, Any]:
        """The plan to go from the membership `state` to `spec`."""
        return self._call_json("diff-membership-json", {"spec": spec, "state": state})

    def create_membership(self, spec: Dict[str, Any]) -> Dict[str, Any]:
        """Offers the image (owner side) or answers the offer (member side); returns the
        membership's state."""
        return self._on_cloud("create-membership-json", {"spec": spec})

    def read_membership(self, spec: Optional[Dict[str, Any]] = None,
                        id: Optional[str] = None) -> Optional[Dict[str, Any]]:
        """The membership's state, or None when the image or the membership is gone. `id`
        (`IMAGE_ID/MEMBER_ID`, or `IMAGE_ID` for this session's project) may stand in for the
        spec's image and member (imports)."""
        request: Dict[str, Any] = {}
        if spec is not None:
            request["spec"] = spec
        if id is not None:
            request["id"] = id
        return self._on_cloud("read-membership-json", request)

    def update_membership(self, state: Dict[str, Any], spec: Dict[str, Any]) -> Dict[str, Any]:
        """Sets the answer `spec` names; returns the new state."""
        return self._on_cloud("update-membership-json", {"state": state, "spec": spec})

    def delete_membership(self, state: Dict[str, Any]) -> Dict[str, Any]:
        """Withdraws the offer (owner side) or rejects it (member side); one already gone
        counts as done."""
        return self._on_cloud("delete-membership-json", {"state": state})
