#!/usr/bin/env python3
"""Tests of the Python adapter: the cloud settings and sessions without a cloud, then end to
end against a real OpenStack (Keystone + Glance).

    OPENSTACK_IMAGE_WASM=target/openstack-image.wasm python test_adapter.py -v

The end-to-end tests need OS_* variables for the cloud and DEV_CLOUD_VENV (or `openstack` on
PATH) for the observer CLI, which checks every step independently of the component.
"""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import uuid
from datetime import datetime, timedelta, timezone
from unittest import mock

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import openstack_image_component as oic  # noqa: E402
from openstack_image_component import (  # noqa: E402
    ComponentError,
    ComponentTrap,
    ImageComponent,
    cloud_environment,
    parse_cache_size,
    session_only_cloud,
)

WASM = os.environ.get("OPENSTACK_IMAGE_WASM", "")
TABLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "fixtures",
                     "cloud-resolution.json")
SECRETS = (("auth", "password"), ("auth", "application_credential_secret"), ("auth", "token"),
           ("session", "token"))
IMAGE_BYTES = 3 * 1024 * 1024 + 12345   # a few MiB, not a multiple of any chunk size
RUN = f"pyadapter-{uuid.uuid4().hex[:8]}"


def openstack_cli() -> str:
    venv = os.environ.get("DEV_CLOUD_VENV")
    if venv and os.path.exists(os.path.join(venv, "bin", "openstack")):
        return os.path.join(venv, "bin", "openstack")
    found = shutil.which("openstack")
    if not found:
        raise unittest.SkipTest("no observer CLI: set DEV_CLOUD_VENV or put `openstack` on PATH")
    return found


def observe(image_id: str):
    """`openstack image show -f json ID` as a dict, or None when the image is gone."""
    proc = subprocess.run([openstack_cli(), "image", "show", "-f", "json", image_id],
                          capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        if "No Image found" in proc.stderr or "Could not find" in proc.stderr or "404" in proc.stderr:
            return None
        raise AssertionError(f"openstack image show {image_id} failed: {proc.stderr.strip()}")
    return json.loads(proc.stdout)


def observer_delete(image_id: str) -> None:
    cli = openstack_cli()
    subprocess.run([cli, "image", "set", "--unprotected", image_id], capture_output=True, timeout=120)
    subprocess.run([cli, "image", "delete", image_id], capture_output=True, timeout=120)


def walk(node):
    """Every dict inside a JSON document."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def masked(resolution):
    """The resolved document as the resolution table shows it: secrets masked, no retries."""
    doc = json.loads(json.dumps(resolution))
    cloud = doc.get("cloud") or {}
    for outer, key in SECRETS:
        if key in (cloud.get(outer) or {}):
            cloud[outer][key] = "(sensitive)"
    cloud.pop("retries", None)
    return doc


def later(minutes=60):
    """An `expires_at` `minutes` from now."""
    return (datetime.now(timezone.utc) + timedelta(minutes=minutes)).isoformat()


class CloudSettingsTest(unittest.TestCase):
    """The cloud settings and the session rules, without a cloud."""

    images: ImageComponent

    @classmethod
    def setUpClass(cls):
        if not WASM:
            raise unittest.SkipTest("set OPENSTACK_IMAGE_WASM to the component (.wasm) to test")
        cls.images = ImageComponent(WASM)

    @classmethod
    def tearDownClass(cls):
        cls.images.close()

    def test_the_cloud_resolution_table_resolves_as_every_runtime_resolves_it(self):
        with open(TABLE, encoding="utf-8") as f:
            cases = json.load(f)["cases"]
        for case in cases:
            with self.subTest(case["name"]), tempfile.TemporaryDirectory() as tmp:
                environ = {**case["environment"], "HOME": tmp}
                if "clouds_yaml" in case:
                    environ["OS_CLIENT_CONFIG_FILE"] = os.path.join(tmp, "clouds.yaml")
                    with open(environ["OS_CLIENT_CONFIG_FILE"], "w", encoding="utf-8") as f:
                        f.write(case["clouds_yaml"])
                if "secure_yaml" in case:
                    with open(os.path.join(tmp, "secure.yaml"), "w", encoding="utf-8") as f:
                        f.write(case["secure_yaml"])
                if "expect" in case:
                    self.assertEqual(masked(self.images.resolve_cloud(environ=environ)), case["expect"])
                else:
                    with self.assertRaises(ComponentError) as caught:
                        self.images.resolve_cloud(environ=environ)
                    self.assertIn(case["error"], str(caught.exception))

    def test_the_component_is_given_only_the_variables_the_rule_reads(self):
        environ = {"OS_CLOUD": "dev", "HOME": "/home/u", "XDG_CONFIG_HOME": "/x",
                   "AWS_SECRET_ACCESS_KEY": "no", "PATH": "/bin"}
        self.assertEqual(cloud_environment(environ),
                         {"OS_CLOUD": "dev", "HOME": "/home/u", "XDG_CONFIG_HOME": "/x"})

    def test_lifecycle_calls_get_the_cloud_without_credentials(self):
        cloud = {
            "auth": {"auth_url": "https://keystone.example.org/v3", "username": "demo",
                     "user_domain_name": "Default", "password": "s3cret-password",
                     "application_credential_secret": "ac-s3cret", "token": "gAAAA-token",
                     "project_name": "demo", "project_domain_name": "Default"},
            "auth_type": "password", "region_name": "RegionOne", "interface": "internal",
            "retries": 2,
        }
        session = {"token": "gAAAA-session", "expires_at": later(), "image_endpoints": []}
        self.assertEqual(session_only_cloud(cloud, session), {
            "auth": {"auth_url": "https://keystone.example.org/v3", "project_name": "demo",
                     "project_domain_name": "Default"},
            "region_name": "RegionOne", "interface": "internal", "retries": 2,
            "session": session,
        })

    # ----- sessions, with a scripted component -----------------------------------

    def scripted(self, script):
        """`self.images` with `_call_json` answering from `script` (function -> answers in
        turn; an exception is raised), logins numbered t1, t2, ...; returns the calls made."""
        calls = []

        def call_json(name, request, dir_docs=()):
            calls.append((name, request))
            if name == "authenticate-json":
                logins = sum(1 for n, _ in calls if n == name)
                return {"token": f"t{logins}", "expires_at": later(), "image_endpoints": []}
            answer = script[name].pop(0)
            if isinstance(answer, Exception):
                raise answer
            return answer

        self.images._call_json = call_json
        self.addCleanup(vars(self.images).pop, "_call_json")
        self.images._cloud = {"auth": {"auth_url": "https://keystone.example.org/v3", "username": "u",
                                       "password": "s3cret-password", "project_name": "p"},
                              "auth_type": "password"}
        self.images._session = None
        self.addCleanup(setattr, self.images, "_cloud", None)
        self.addCleanup(setattr, self.images, "_session", None)
        return calls

    @staticmethod
    def refusal(image_id=None):
        return ComponentError.from_text(json.dumps(
            {"kind": "unauthorized", "message": "Glance answered 401", "image_id": image_id}),
            "create-json")

    def test_a_refused_session_costs_one_login_and_the_call_again(self):
        calls = self.scripted({"read-json": [self.refusal(), None, None]})
        self.assertIsNone(self.images.read("x"))
        self.assertIsNone(self.images.read("x"))
        self.assertEqual([(n, r.get("cloud", {}).get("session", {}).get("token")) for n, r in calls], [
            ("authenticate-json", None), ("read-json", "t1"), ("authenticate-json", None),
            ("read-json", "t2"), ("read-json", "t2")])
        for name, request in calls:
            if name != "authenticate-json":
                self.assertNotIn("s3cret", json.dumps(request), name)
                self.assertNotIn("username", request["cloud"]["auth"], name)

    def test_a_refused_create_deletes_its_half_made_image_and_creates_again(self):
        state = {"id": "second", "status": "active"}
        calls = self.scripted({"create-json": [self.refusal("half"), state],
                               "delete-json": [{"id": "half", "deleted": True}]})
        spec = {"name": "n", "region": "RegionTwo", "timeouts": {"delete": 30}}
        self.assertEqual(self.images.create(spec), state)
        self.assertEqual([n for n, _ in calls], ["authenticate-json", "create-json", "authenticate-json",
                                                 "delete-json", "create-json"])
        deletion = calls[3][1]
        self.assertEqual((deletion["id"], deletion["region"], deletion["timeout_seconds"],
                          deletion["cloud"]["session"]["token"]), ("half", "RegionTwo", 30, "t2"))

    def test_a_refused_create_of_a_named_id_is_not_repeated(self):
        calls = self.scripted({"create-json": [self.refusal("named")],
                               "delete-json": [{"id": "named", "deleted": True}]})
        with self.assertRaises(ComponentError) as caught:
            self.images.create({"name": "n", "image_id": "named"})
        self.assertEqual((caught.exception.kind, caught.exception.image_id), ("unauthorized", "named"))
        self.assertIn("Glance answered 401; the half-made image named was deleted", caught.exception.message)
        self.assertEqual([n for n, _ in calls], ["authenticate-json", "create-json", "authenticate-json",
                                                 "delete-json"])

    def test_a_second_refusal_is_the_answer(self):
        calls = self.scripted({"update-json": [self.refusal(), self.refusal()]})
        with self.assertRaises(ComponentError) as caught:
            self.images.update({"id": "x"}, {"name": "n"})
        self.assertEqual(caught.exception.kind, "unauthorized")
        self.assertEqual(sum(1 for n, _ in calls if n == "authenticate-json"), 2)


class CacheLimitTest(unittest.TestCase):
    """The download cache kept as the bundled host keeps it (same files, same flock locks),
    without a component or a cloud."""

    def setUp(self):
        if not shutil.which("flock"):
            self.skipTest("needs flock(1) (util-linux) to hold locks from another process")
        self.cache = tempfile.mkdtemp(prefix=f"{RUN}-cache-")
        self.addCleanup(shutil.rmtree, self.cache, True)

    def entry(self, url, size=1000, hours_ago=1, area=""):
        """A cache entry (data + record) last used `hours_ago`; its data path."""
        directory = os.path.join(self.cache, area)
        os.makedirs(directory, exist_ok=True)
        data = os.path.join(directory, oic._cache_entry_name(url, False))
        with open(data, "wb") as f:
            f.write(b"\0" * size)
        with open(data + ".json", "w", encoding="utf-8") as f:
            json.dump({"url": url, "decompress": False}, f)
        when = time.time() - hours_ago * 3600
        os.utime(data, (when, when))
        return data

    def lock_of(self, data, area="_"):
        return os.path.join(self.cache, ".locks", area, os.path.basename(data) + ".lock")

    def held_elsewhere(self, lock):
        """Holds `lock` shared from another process (flock(1)) until the test ends, or the
        returned function ends it. (`--close`: only flock(1) itself, the process waited for,
        holds the lock, not the command it runs.)"""
        os.makedirs(os.path.dirname(lock), exist_ok=True)
        proc = subprocess.Popen(["flock", "--shared", "--close", lock, "sh", "-c", "echo held; exec sleep 30"],
                                stdout=subprocess.PIPE, start_new_session=True)
        self.assertEqual(proc.stdout.readline(), b"held\n")

        def end():
            if proc.returncode is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                proc.stdout.close()
        self.addCleanup(end)
        return end

    def free_elsewhere(self, lock):
        """Whether another process could take `lock` exclusively now (as a prune would)."""
        return subprocess.run(["flock", "--exclusive", "--nonblock", lock, "true"]).returncode == 0

    def spec(self, url, **more):
        return {"container_format": "bare", "disk_format": "raw", "image_source_url": url,
                "image_cache_path": self.cache, **more}

    def test_sizes_parse_in_binary_units_or_none(self):
        self.assertEqual(parse_cache_size("512M"), 512 << 20)
        self.assertEqual(parse_cache_size("20G"), 20 << 30)
        self.assertEqual(parse_cache_size("1.5GiB"), 3 << 29)
        self.assertEqual(parse_cache_size("10 MB"), 10 << 20)
        self.assertEqual(parse_cache_size("2k"), 2048)
        self.assertEqual(parse_cache_size("0"), 0)
        self.assertEqual(parse_cache_size("123B"), 123)
        self.assertEqual(parse_cache_size(4096), 4096)
        self.assertIsNone(parse_cache_size("none"))
        self.assertIsNone(parse_cache_size(" None "))
        for bad in ("lots", "-1", "1.5X", "G", "", "1iB"):
            with self.subTest(bad), self.assertRaises(ValueError) as caught:
                parse_cache_size(bad)
            self.assertIn(repr(bad), str(caught.exception))
            self.assertIn("20G", str(caught.exception))
        with self.assertRaises(ValueError):
            parse_cache_size(-5)

    def test_the_limit_is_the_option_else_the_variable_else_10g(self):
        variable = oic.CACHE_MAX_SIZE_VARIABLE
        with mock.patch.dict(os.environ):
            os.environ.pop(variable, None)
            self.assertEqual(oic._cache_limit(None), 10 << 30)
            os.environ[variable] = "none"
            self.assertIsNone(oic._cache_limit(None))
            self.assertEqual(oic._cache_limit("1M"), 1 << 20)
            os.environ[variable] = "big"
            with self.assertRaises(ValueError) as caught:
                oic._cache_limit(None)
            self.assertIn(variable, str(caught.exception))

    def test_entry_names_are_the_hosts(self):
        # md5 of the URL and "true"/"false", as documents::spec::cache_entry_name.
        self.assertEqual(oic._cache_entry_name("http://h/x", False), "cae0cdf7a338e3e15a34a479e13eaf5d.img")
        self.assertEqual(oic._cache_entry_name("http://h/x", True), "ac23090939691c4838365695847855ea.img")

    def test_leftovers_of_killed_runs_go_unless_their_entry_is_held(self):
        name = lambda url: oic._cache_entry_name(url, False)  # noqa: E731
        killed = os.path.join(self.cache, f".{name('http://h/killed')}.0123.part")
        killed_record = os.path.join(self.cache, f".{name('http://h/killed')}.json.4567.part")
        orphan_record = os.path.join(self.cache, f"{name('http://h/orphan')}.json")
        running = os.path.join(self.cache, f".{name('http://h/running')}.89ab.part")
        kept = self.entry("http://h/kept", 10)
        for path in (killed, killed_record, orphan_record, running):
            with open(path, "wb") as f:
                f.write(b"partial")
        self.held_elsewhere(os.path.join(self.cache, ".locks", "_", name("http://h/running") + ".lock"))

        removed = oic._remove_cache_leftovers(self.cache)
        self.assertEqual(sorted(removed), sorted([killed, killed_record, orphan_record]))
        self.assertTrue(os.path.exists(running), "a download in progress elsewhere is left alone")
        self.assertTrue(os.path.exists(kept) and os.path.exists(kept + ".json"))

    def test_prune_removes_the_least_recently_used_beyond_the_limit(self):
        old = self.entry("http://h/old", hours_ago=4, area="component-abc")
        mid = self.entry("http://h/mid", hours_ago=3)
        new = self.entry("http://h/new", hours_ago=2)
        entries = oic._cache_entries(self.cache)
        self.assertEqual([e.data for e in entries], [old, mid, new])
        each = entries[0].size
        self.assertEqual(each, 1000 + os.path.getsize(old + ".json"))

        removed, kept, remaining = oic._prune_cache(self.cache, 2 * each)
        self.assertEqual(([e.data for e in removed], kept, remaining), ([old], [], 2 * each))
        self.assertFalse(os.path.exists(old) or os.path.exists(old + ".json"))
        self.assertFalse(os.path.exists(self.lock_of(old, "component-abc")), "its lock file goes too")
        self.assertTrue(os.path.exists(mid) and os.path.exists(new))

        removed, _, remaining = oic._prune_cache(self.cache, each + 1)
        self.assertEqual(([e.data for e in removed], remaining), ([mid], each))
        self.assertEqual(oic._prune_cache(self.cache, each), ([], [], each))

    def test_an_entry_another_process_holds_is_kept(self):
        held = self.entry("http://h/held", hours_ago=5)
        free = self.entry("http://h/free", hours_ago=1)
        release = self.held_elsewhere(self.lock_of(held))
        removed, kept, _ = oic._prune_cache(self.cache, 0)
        self.assertEqual(([e.data for e in removed], [e.data for e in kept]), ([free], [held]))
        self.assertTrue(os.path.exists(held) and os.path.exists(held + ".json"))

        release()
        removed, kept, remaining = oic._prune_cache(self.cache, 0)
        self.assertEqual(([e.data for e in removed], kept, remaining), ([held], [], 0))
        self.assertEqual(os.listdir(self.cache), [".locks"])

    def test_a_call_holds_its_entry_then_trims_the_cache(self):
        used = self.entry("http://h/used", hours_ago=5)
        other = self.entry("http://h/other", hours_ago=1)
        leftover = os.path.join(self.cache, f".{oic._cache_entry_name('http://h/gone', False)}.1.part")
        with open(leftover, "wb") as f:
            f.write(b"partial")
        seen = {}

        class Func:
            def __call__(_, store, *args):
                seen["leftover"] = os.path.exists(leftover)
                seen["free"] = self.free_elsewhere(self.lock_of(used))
                seen["mtime"] = os.path.getmtime(used)
                return "answer"

            def post_return(_, store):
                pass

        images = ImageComponent.__new__(ImageComponent)
        images.deadline_seconds = None
        images.cache_max_bytes = os.path.getsize(used) + os.path.getsize(used + ".json")
        images._instance_for = lambda docs: type("Live", (), {"store": None, "funcs": {"check-json": Func()}})
        started = time.time()
        self.assertEqual(images._invoke("check-json", (), (self.spec("http://h/used"),)), "answer")
        self.assertEqual(seen["leftover"], False, "leftovers go before the call")
        self.assertEqual(seen["free"], False, "the entry is held while the call runs")
        self.assertGreaterEqual(seen["mtime"], started - 1, "holding it marked it used")
        self.assertTrue(self.free_elsewhere(self.lock_of(used)), "released after the call")
        self.assertTrue(os.path.exists(used), "the entry just used is the most recent")
        self.assertFalse(os.path.exists(other), "the least recently used one went to fit the limit")

        # A failed call releases and trims as well; specs Glance fetches hold nothing.
        images.cache_max_bytes = 0
        images._instance_for = lambda docs: (_ for _ in ()).throw(ComponentTrap("boom"))
        with self.assertRaises(ComponentTrap):
            images._invoke("check-json", (), (self.spec("http://h/used"),))
        self.assertFalse(os.path.exists(used))
        kept = self.entry("http://h/kept")
        answer = type("Func", (), {"__call__": lambda *_: "answer", "post_return": lambda *_: None})()
        images._instance_for = lambda docs: type("Live", (), {"store": None, "funcs": {"check-json": answer}})
        images._invoke("check-json", (), (self.spec("http://h/kept", import_method="web-download"),
                                          self.spec("http://h/kept", image_cache_path="none")))
        self.assertTrue(os.path.exists(kept), "no download in the call: the cache is left alone")


class AdapterTest(unittest.TestCase):
    images: ImageComponent
    tmp: str
    image_path: str
    sha512: str

    @classmethod
    def setUpClass(cls):
        if not WASM:
            raise unittest.SkipTest("set OPENSTACK_IMAGE_WASM to the component (.wasm) to test")
        if not os.environ.get("OS_AUTH_URL"):
            raise unittest.SkipTest("OS_* variables are not set (eval \"$(scripts/dev-cloud env)\")")
        cls.tmp = tempfile.mkdtemp(prefix=f"{RUN}-")
        cls.image_path = os.path.join(cls.tmp, "disk.raw")
        data = os.urandom(IMAGE_BYTES)
        with open(cls.image_path, "wb") as f:
            f.write(data)
        cls.sha512 = hashlib.sha512(data).hexdigest()
        cls.events = []

        def progress(event):
            cls.events.append(event)
            print(f"    progress: {json.dumps(event, sort_keys=True)}", file=sys.stderr)

        started = time.monotonic()
        cls.images = ImageComponent(WASM, progress=progress)
        print(f"\n  component compiled in {time.monotonic() - started:.1f}s", file=sys.stderr)

    @classmethod
    def tearDownClass(cls):
        cls.images.close()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        self.created = []

    def tearDown(self):
        for image_id in self.created:
            if observe(image_id) is not None:
                observer_delete(image_id)

    def spec(self, suffix: str, **extra):
        spec = {
            "name": f"{RUN}-{suffix}",
            "container_format": "bare",
            "disk_format": "raw",
            "local_file_path": self.image_path,
            "properties": {"adapter": "python", "run": RUN},
            "tags": ["pyadapter", "first"],
            "timeouts": {"create": 600, "update": 300, "delete": 300},
        }
        spec.update(extra)
        return spec

    # ----- no cloud --------------------------------------------------------------

    def test_schema_is_json_schema_with_annotations(self):
        schema = self.images.schema()
        self.assertIsInstance(schema, dict)
        text = json.dumps(schema)
        self.assertIn("x-force-new", text)
        self.assertIn("x-computed", text)
        annotated = {}
        for node in walk(schema):
            props = node.get("properties")
            if isinstance(props, dict):
                for name, prop in props.items():
                    if isinstance(prop, dict) and "x-force-new" in prop:
                        annotated.setdefault(name, prop["x-force-new"])
        for field in ("disk_format", "container_format", "local_file_path"):
            self.assertTrue(annotated.get(field), f"{field} should be x-force-new: {annotated}")
        self.assertFalse(annotated.get("name", True), "name is updated in place")
        self.assertFalse(annotated.get("tags", True), "tags are updated in place")

    def test_check_fills_defaults(self):
        checked = self.images.check(self.spec("check"))
        self.assertEqual(checked["disk_format"], "raw")
        self.assertEqual(checked["local_file_path"], self.image_path)
        self.assertEqual(sorted(checked["tags"]), ["first", "pyadapter"])

    def test_check_names_the_bad_field(self):
        with self.assertRaises(ComponentError) as caught:
            self.images.check(self.spec("bad", disk_format="floppy"))
        err = caught.exception
        self.assertEqual(err.kind, "invalid-spec")
        self.assertIn("disk_format", err.field_names, err)
        self.assertTrue(err.message)

        with self.assertRaises(ComponentError) as caught:
            self.images.check(self.spec("bad", disk_fromat="raw"))
        self.assertEqual(caught.exception.kind, "invalid-spec")
        self.assertIn("disk_fromat", caught.exception.field_names, caught.exception)

        # The instance is still usable after an error.
        self.assertEqual(self.images.check(self.spec("ok"))["disk_format"], "raw")

    def test_a_property_the_cloud_rules_out_is_refused_before_create(self):
        # The dev cloud loads Glance's stock metadefs (hw_disk_bus: scsi, virtio, ...).
        spec = self.spec("metadefs", properties={"hw_disk_bus": "virtoi"})
        with self.assertRaises(ComponentError) as caught:
            self.images.create(spec)
        err = caught.exception
        self.assertEqual(err.kind, "invalid-spec", err)
        self.assertIn("properties.hw_disk_bus", err.field_names, err)
        self.assertIn("virtio", str(err.document), err)
        listed = subprocess.run([openstack_cli(), "image", "list", "--name", spec["name"], "-f", "value"],
                                capture_output=True, text=True, timeout=120)
        self.assertEqual(listed.stdout.strip(), "", "nothing was created")
        self.images.check_with_cloud(self.spec("metadefs", properties={"hw_disk_bus": "virtio"}))

    def test_read_of_missing_image_is_none(self):
        self.assertIsNone(self.images.read(str(uuid.uuid4())))

    def test_bad_password_is_auth_failed(self):
        # A password setting over the OS_* variables: Keystone refuses the login.
        wrong = ImageComponent(WASM, cloud={"auth": {"password": "not-the-password"}})
        with self.assertRaises(ComponentError) as caught:
            wrong.read(str(uuid.uuid4()))
        self.assertEqual(caught.exception.kind, "auth-failed", caught.exception)

    def test_one_login_serves_every_instance(self):
        images = ImageComponent(WASM)
        session = images.authenticate()
        self.assertTrue(session["token"])
        self.assertTrue(session["image_endpoints"], session)
        # From now on the credentials are not used: with a wrong password, calls still work,
        # in this instance and in a fresh one, because they carry the session.
        images.cloud["auth"]["password"] = "not-the-password"
        self.assertIsNone(images.read(str(uuid.uuid4())))
        images.close()
        self.assertIsNone(images.read(str(uuid.uuid4())))
        self.assertEqual(images._session["token"], session["token"])
        images.close()

    def test_lifecycle_calls_carry_the_session_and_no_credentials(self):
        images = ImageComponent(WASM)
        sent = []
        call_json = images._call_json

        def recording(name, request, dir_docs=()):
            sent.append((name, request))
            return call_json(name, request, dir_docs)

        images._call_json = recording
        self.assertIsNone(images.read(str(uuid.uuid4())))
        self.assertEqual([name for name, _ in sent],
                         ["resolve-cloud-json", "authenticate-json", "read-json"])
        read = sent[-1][1]
        self.assertEqual(read["cloud"]["session"]["token"], images._session["token"])
        self.assertFalse(os.environ["OS_PASSWORD"] in json.dumps(read), "the read carries the password")
        self.assertEqual(sorted(read["cloud"]["auth"]), ["auth_url", "project_domain_name", "project_name"])
        images.close()

    def test_a_session_glance_refuses_costs_one_login(self):
        # A session given in the settings whose token Glance refuses: were the component given
        # the password as well, it would log in itself and this object keep the refused one.
        real = ImageComponent(WASM).authenticate()
        refused = {**real, "token": "gAAAAABnot-a-valid-token"}
        images = ImageComponent(WASM, cloud={"session": refused})
        self.assertIsNone(images.read(str(uuid.uuid4())))
        self.assertNotIn(images._session["token"], (refused["token"], real["token"]))
        images.close()

    def test_trap_discards_the_instance(self):
        # A call that outlives the deadline traps (epoch interruption); a trapped instance
        # must not be entered again, so the next call gets a fresh one.
        self.images.read(str(uuid.uuid4()))          # a live instance with a cached token
        self.images.deadline_seconds = 0.001
        trapped = False
        try:
            # A read can finish within the millisecond on an idle machine, or before the
            # timer thread gets to run on a busy one: a few tries, one must trap.
            for _ in range(20):
                try:
                    self.images.read(str(uuid.uuid4()))
                except ComponentTrap:
                    trapped = True
                    break
        finally:
            self.images.deadline_seconds = 7200
        self.assertTrue(trapped, "no call outlived a 1 ms deadline")
        self.assertIsNone(self.images._live)
        self.assertIsNone(self.images.read(str(uuid.uuid4())))

    # ----- create -> read -> update -> delete -----------------------------------

    def test_lifecycle(self):
        spec = self.spec("cycle")
        self.events.clear()
        started = time.monotonic()
        state = self.images.create(spec)
        self.created.append(state["id"])
        image_id = state["id"]
        self.assertEqual(state["status"], "active")
        self.assertEqual(state["size_bytes"], IMAGE_BYTES)
        self.assertEqual(state["name"], spec["name"])
        self.assertEqual(state.get("os_hash_value"), self.sha512)
        print(f"\n  create: {time.monotonic() - started:.1f}s ({image_id})", file=sys.stderr)

        # Progress JSON lines on the component's stderr reach the callback (from a reader
        # thread, so give the last line a moment).
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not any(
                e.get("event") == "upload" and e.get("image") == image_id for e in self.events):
            time.sleep(0.05)
        uploads = [e for e in self.events if e.get("event") == "upload" and e.get("image") == image_id]
        self.assertTrue(uploads, self.events)
        self.assertEqual(uploads[-1].get("bytes"), IMAGE_BYTES, uploads)

        seen = observe(image_id)
        self.assertIsNotNone(seen)
        self.assertEqual(seen["status"], "active")
        self.assertEqual(seen["name"], spec["name"])
        self.assertEqual(seen["size"], IMAGE_BYTES)
        self.assertEqual(seen["disk_format"], "raw")
        self.assertEqual(seen["properties"].get("adapter"), "python")
        self.assertEqual(seen["properties"].get("run"), RUN)
        self.assertEqual(sorted(seen["tags"]), ["first", "pyadapter"])

        read = self.images.read(image_id, state)
        self.assertIsNotNone(read)
        for key in ("id", "status", "checksum", "os_hash_value", "size_bytes", "name",
                    "disk_format", "container_format", "properties"):
            self.assertEqual(read.get(key), state.get(key), key)
        self.assertEqual(sorted(read["tags"]), sorted(state["tags"]))

        plan = self.images.diff(spec, read)
        self.assertEqual(plan["action"], "no-op", plan)

        desired = self.spec("cycle", properties={"adapter": "python", "run": RUN, "stage": "updated"},
                            tags=["pyadapter", "second"])
        plan = self.images.diff(desired, read)
        self.assertEqual(plan["action"], "update", plan)
        changed = {c["field"] for c in plan["changes"]}
        self.assertIn("tags", changed)
        self.assertIn("properties.stage", changed)

        updated = self.images.update(read, desired)
        self.assertEqual(updated["id"], image_id)
        self.assertEqual(updated["properties"].get("stage"), "updated")
        self.assertEqual(sorted(updated["tags"]), ["pyadapter", "second"])

        seen = observe(image_id)
        self.assertEqual(seen["id"], image_id)
        self.assertEqual(seen["properties"].get("stage"), "updated")
        self.assertEqual(sorted(seen["tags"]), ["pyadapter", "second"])
        self.assertEqual(seen["status"], "active")

        self.assertEqual(self.images.delete(image_id), {"id": image_id, "deleted": True})
        self.assertIsNone(observe(image_id))
        self.assertIsNone(self.images.read(image_id))
        # Deleting again counts as deleted.
        self.assertEqual(self.images.delete(image_id)["deleted"], True)


def members(image_id: str):
    """The image's members as Glance has them (`openstack image member list`): id -> status."""
    proc = subprocess.run([openstack_cli(), "image", "member", "list", "-f", "json", image_id],
                          capture_output=True, text=True, timeout=120, check=True)
    return {row["Member ID"]: row["Status"] for row in json.loads(proc.stdout)}


def settings_of(who: str):
    """Cloud settings of one of the dev cloud's users (over the OS_* variables)."""
    return {"auth": {key: os.environ[f"DEV_CLOUD_{who}_{var}"]
                     for key, var in (("username", "USERNAME"), ("password", "PASSWORD"),
                                      ("project_name", "PROJECT"))}}


class MembershipTest(unittest.TestCase):
    """The publisher project shares an image with the consumer project through the
    membership resource: offer, acceptance, drift, rejection, withdrawal."""

    @classmethod
    def setUpClass(cls):
        if not WASM:
            raise unittest.SkipTest("set OPENSTACK_IMAGE_WASM to the component (.wasm) to test")
        if not os.environ.get("OS_AUTH_URL") or not os.environ.get("DEV_CLOUD_CONSUMER_USERNAME"):
            raise unittest.SkipTest("the dev cloud's publisher and consumer users are not set")
        cls.tmp = tempfile.mkdtemp(prefix=f"{RUN}-share-")
        path = os.path.join(cls.tmp, "disk.raw")
        with open(path, "wb") as f:
            f.write(os.urandom(1024 * 1024))
        cls.publisher = ImageComponent(WASM, settings_of("PUBLISHER"), progress=lambda _: None)
        cls.consumer = cls.publisher.for_cloud(settings_of("CONSUMER"))
        cls.image = cls.publisher.create({
            "name": f"{RUN}-shared", "container_format": "bare", "disk_format": "raw",
            "local_file_path": path, "visibility": "shared",
        })
        proc = subprocess.run([openstack_cli(), "project", "show", "-f", "value", "-c", "id",
                               os.environ["DEV_CLOUD_CONSUMER_PROJECT"]],
                              capture_output=True, text=True, timeout=120, check=True)
        cls.consumer_project = proc.stdout.strip()

    @classmethod
    def tearDownClass(cls):
        observer_delete(cls.image["id"])
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_offer_accept_drift_reject_withdraw(self):
        image_id, project = self.image["id"], self.consumer_project
        offer = self.publisher.create_membership(
            self.publisher.check_membership({"image_id": image_id, "member_id": project, "side": "owner"}))
        self.assertEqual(offer["id"], f"{image_id}/{project}")
        self.assertEqual(offer["status"], "pending")
        self.assertEqual(members(image_id), {project: "pending"})

        # The owner cannot answer for the member: refused, naming the side that must act.
        with self.assertRaises(ComponentError) as refused:
            self.publisher.update_membership(offer, {**offer, "status": "accepted"})
        self.assertIn("member", str(refused.exception))
        self.assertEqual(members(image_id), {project: "pending"})

        wanted = self.consumer.check_membership({"image_id": image_id})
        self.assertEqual((wanted["status"], wanted["side"]), ("accepted", "member"))
        answer = self.consumer.create_membership(wanted)
        self.assertEqual((answer["member_id"], answer["status"]), (project, "accepted"))
        self.assertEqual(members(image_id), {project: "accepted"})

        # Rejected out of band: read shows it, diff plans the answer again, update gives it.
        subprocess.run([openstack_cli(), "image", "set", "--reject", image_id], check=True,
                       capture_output=True, timeout=120,
                       env={**os.environ, "OS_USERNAME": os.environ["DEV_CLOUD_CONSUMER_USERNAME"],
                            "OS_PASSWORD": os.environ["DEV_CLOUD_CONSUMER_PASSWORD"],
                            "OS_PROJECT_NAME": os.environ["DEV_CLOUD_CONSUMER_PROJECT"]})
        drifted = self.consumer.read_membership(id=answer["id"])
        self.assertEqual(drifted["status"], "rejected")
        self.assertEqual(self.consumer.diff_membership(wanted, drifted)["action"], "update")
        answer = self.consumer.update_membership(drifted, wanted)
        self.assertEqual(answer["status"], "accepted")
        self.assertEqual(members(image_id), {project: "accepted"})
        self.assertEqual(self.consumer.diff_membership(wanted, answer)["action"], "no-op")

        self.consumer.delete_membership(answer)
        self.assertEqual(members(image_id), {project: "rejected"})
        self.publisher.delete_membership(offer)
        self.assertEqual(members(image_id), {})
        self.assertIsNone(self.publisher.read_membership(id=offer["id"]))
        self.assertEqual(self.publisher.delete_membership(offer)["deleted"], True)


if __name__ == "__main__":
    unittest.main()
