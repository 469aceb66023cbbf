"""Run the openstack-image WebAssembly component from Python through its JSON face.

The component (world `openstack:image/image-provider`) exports the interface
`openstack:image/resource@0.1.0`, whose functions take one JSON document and return one
(`result<string, string>`). This module loads the component with wasmtime-py, links
WASI preview 2 and wasi:http (the component calls Keystone and Glance itself), and wraps
the JSON face in a small class that takes and returns Python dicts:

    from openstack_image_component import ImageComponent
    with ImageComponent("openstack-image.wasm") as images:     # cloud from OS_* variables
        state = images.create({"name": "demo", "container_format": "bare",
                               "disk_format": "raw", "local_file_path": "/images/demo.raw"})
        state = images.read(state["id"], state)
        state = images.update(state, {**spec, "tags": ["demo"]})
        images.delete(state["id"])

Errors the component returns come back as `ComponentError` (kind, message, fields);
a trap inside the component (a bug, the memory cap, the deadline) as `ComponentTrap`.

Sandbox: the component sees no environment variables, no arguments, no stdin or stdout;
stderr (progress JSON lines) goes to this process's stderr or to a `progress` callback.
It sees only the directories it needs, preopened under their own absolute paths: the
directory of a spec's `local_file_path` read-only, a spec's `image_cache_path` (only for
URL sources that the component downloads) read-write, plus any `dirs` given to the
constructor read-only. wasmtime-py offers no hook to filter outgoing HTTP: the component
may reach any host this process can reach.
"""

from __future__ import annotations

import json
import os
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional

import wasmtime
from wasmtime import component as wc

__all__ = [
    "ImageComponent",
    "ComponentError",
    "ComponentTrap",
    "cloud_from_env",
    "RESOURCE_INTERFACE",
]

RESOURCE_INTERFACE = "openstack:image/resource@0.1.0"

_FUNCTIONS = (
    "schema",
    "authenticate-json",
    "check-json",
    "diff-json",
    "create-json",
    "read-json",
    "update-json",
    "delete-json",
)


# A session is reused while its token has at least this long to live.
_SESSION_MARGIN = timedelta(seconds=60)


def _lives(session: Dict[str, Any], margin: timedelta) -> bool:
    """Whether the session's token has `margin` to live (no expiry given: it is kept until
    Keystone refuses it, which the component handles by logging in again)."""
    text = session.get("expires_at")
    if not text:
        return True
    try:
        expires = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return False
    if expires.tzinfo is None:
        expires = expires.replace(tzinfo=timezone.utc)
    return expires - datetime.now(timezone.utc) >= margin


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


def cloud_from_env(environ: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
    """A clouds.yaml-style cloud entry built from the standard OS_* variables.

    Password auth: OS_AUTH_URL, OS_USERNAME (or OS_USER_ID), OS_PASSWORD,
    OS_PROJECT_NAME (or OS_PROJECT_ID), OS_USER_DOMAIN_NAME/_ID, OS_PROJECT_DOMAIN_NAME/_ID.
    Application credentials: OS_APPLICATION_CREDENTIAL_ID or _NAME, plus _SECRET.
    Token: OS_TOKEN. Also OS_REGION_NAME, OS_INTERFACE (OS_ENDPOINT_TYPE), OS_AUTH_TYPE.
    """
    env = os.environ if environ is None else environ
    if not env.get("OS_AUTH_URL"):
        raise ValueError("OS_AUTH_URL is not set (source an openrc file or pass cloud=...)")
    auth_keys = {
        "OS_AUTH_URL": "auth_url",
        "OS_USERNAME": "username",
        "OS_USER_ID": "user_id",
        "OS_PASSWORD": "password",
        "OS_PROJECT_NAME": "project_name",
        "OS_PROJECT_ID": "project_id",
        "OS_USER_DOMAIN_NAME": "user_domain_name",
        "OS_USER_DOMAIN_ID": "user_domain_id",
        "OS_PROJECT_DOMAIN_NAME": "project_domain_name",
        "OS_PROJECT_DOMAIN_ID": "project_domain_id",
        "OS_APPLICATION_CREDENTIAL_ID": "application_credential_id",
        "OS_APPLICATION_CREDENTIAL_NAME": "application_credential_name",
        "OS_APPLICATION_CREDENTIAL_SECRET": "application_credential_secret",
        "OS_TOKEN": "token",
    }
    auth = {key: env[var] for var, key in auth_keys.items() if env.get(var)}
    if "application_credential_secret" in auth:
        auth_type = "v3applicationcredential"
        for key in ("password", "token", "project_name", "project_id",
                    "project_domain_name", "project_domain_id"):
            auth.pop(key, None)
    elif "token" in auth and "password" not in auth:
        auth_type = "token"
    else:
        auth_type = "password"
        auth.pop("token", None)
    cloud: Dict[str, Any] = {"auth": auth, "auth_type": env.get("OS_AUTH_TYPE") or auth_type}
    if env.get("OS_REGION_NAME"):
        cloud["region_name"] = env["OS_REGION_NAME"]
    interface = env.get("OS_INTERFACE") or env.get("OS_ENDPOINT_TYPE")
    if interface:
        cloud["interface"] = interface.replace("URL", "").lower() if interface.endswith("URL") else interface
    return cloud


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
    cache = doc.get("image_cache_path")
    if (isinstance(cache, str) and cache not in ("", "none") and os.path.isabs(cache)
            and doc.get("image_source_url") and doc.get("web_download") is not True
            and doc.get("import_method") not in ("web-download", "glance-download")):
        os.makedirs(cache, exist_ok=True)
        rw.add(os.path.normpath(cache))
    return ro, rw


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

    The component is compiled once (per `ImageComponent`), and logs in to Keystone once: the
    session `authenticate-json` returns goes into every later call's `cloud.session`. Calls
    reuse one instance until a call needs a directory the instance was not given, or the
    component traps; then a fresh store and instance are made (with the same session). Not
    thread-safe: use one `ImageComponent` per thread.
    """

    def __init__(self, wasm_path: "str | os.PathLike[str]", cloud: Optional[Dict[str, Any]] = None,
                 dirs: Iterable["str | os.PathLike[str]"] = (), *,
                 memory_limit_mib: int = 512, deadline_seconds: Optional[float] = 7200,
                 progress: Optional[Callable[[Dict[str, Any]], None]] = None):
        """`cloud`: a clouds.yaml cloud entry (default: built from OS_* variables on first
        use). `dirs`: extra directories to preopen read-only (under their own absolute
        paths). `memory_limit_mib`: the component's linear-memory cap. `deadline_seconds`:
        wall-clock limit of one call, enforced by epoch interruption (None: no limit; it
        interrupts wasm code, not a host call blocked on I/O). `progress`: called with each
        progress JSON object the component writes on stderr, from a reader thread, so
        events may arrive shortly after the call returns (default: stderr is inherited).
        """
        self.wasm_path = os.fspath(wasm_path)
        self._cloud = cloud
        self.dirs = frozenset(os.path.abspath(os.fspath(d)) for d in dirs)
        self.memory_limit_bytes = memory_limit_mib * 1024 * 1024
        self.deadline_seconds = deadline_seconds
        self.progress = progress

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
        if self._cloud is None:
            self._cloud = cloud_from_env()
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

    def close(self) -> None:
        """Drops the live instance (the compiled component stays)."""
        self._live = None

    def __enter__(self) -> "ImageComponent":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ----- calls ---------------------------------------------------------------------

    def _invoke(self, name: str, args: tuple, dir_docs: Iterable[Optional[Dict[str, Any]]]) -> Any:
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

    def authenticate(self) -> Dict[str, Any]:
        """Gets the Keystone session (token, expiry, the catalog's image endpoints) that
        every later call passes in `cloud.session`, so no instance this object makes logs
        in again; a held session is checked with Keystone and kept while it is accepted.
        Called by the first call that needs the cloud; call it yourself to fail early."""
        cloud = dict(self.cloud)
        if self._session is not None:
            cloud["session"] = self._session
        self._session = self._call_json("authenticate-json", {"cloud": cloud})
        return self._session

    def _cloud_doc(self) -> Dict[str, Any]:
        """The cloud document with the session (a session given in `cloud` wins)."""
        if "session" in self.cloud:
            return self.cloud
        if self._session is not None and not _lives(self._session, _SESSION_MARGIN):
            self._session = None      # about to expire: log in again
        if self._session is None:
            self.authenticate()
        return {**self.cloud, "session": self._session}

    def create(self, spec: Dict[str, Any]) -> Dict[str, Any]:
        """Creates the image, uploads its data, waits for `active`; returns its state."""
        return self._call_json("create-json", {"cloud": self._cloud_doc(), "spec": spec}, (spec,))

    def read(self, id: str, state: Optional[Dict[str, Any]] = None) -> Optional[Dict[str, Any]]:
        """The image's state, or None when it is gone. `state`: its last known state."""
        request: Dict[str, Any] = {"cloud": self._cloud_doc(), "id": id}
        if state is not None:
            request["state"] = state
        return self._call_json("read-json", request)

    def update(self, state: Dict[str, Any], spec: Dict[str, Any]) -> Dict[str, Any]:
        """Updates the image in place; returns the new state."""
        # update patches metadata only: it reads no file, so it needs no preopen.
        return self._call_json("update-json", {"cloud": self._cloud_doc(), "state": state, "spec": spec})

    def delete(self, id: str, region: Optional[str] = None,
               timeout_seconds: Optional[int] = None) -> Dict[str, Any]:
        """Deletes the image (an image already gone counts as deleted)."""
        request: Dict[str, Any] = {"cloud": self._cloud_doc(), "id": id}
        if region is not None:
            request["region"] = region
        if timeout_seconds is not None:
            request["timeout_seconds"] = timeout_seconds
        return self._call_json("delete-json", request)
