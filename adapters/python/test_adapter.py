#!/usr/bin/env python3
"""End-to-end test of the Python adapter against a real OpenStack (Keystone + Glance).

    OPENSTACK_IMAGE_WASM=target/openstack-image.wasm python test_adapter.py -v

Needs OS_* variables for the cloud and DEV_CLOUD_VENV (or `openstack` on PATH) for the
observer CLI, which checks every step independently of the component.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from openstack_image_component import (  # noqa: E402
    ComponentError,
    ComponentTrap,
    ImageComponent,
    cloud_from_env,
)

WASM = os.environ.get("OPENSTACK_IMAGE_WASM", "")
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

    def test_read_of_missing_image_is_none(self):
        self.assertIsNone(self.images.read(str(uuid.uuid4())))

    def test_bad_password_is_auth_failed(self):
        cloud = cloud_from_env()
        cloud["auth"]["password"] = "not-the-password"
        wrong = ImageComponent(WASM, cloud=cloud)
        with self.assertRaises(ComponentError) as caught:
            wrong.read(str(uuid.uuid4()))
        self.assertEqual(caught.exception.kind, "auth-failed", caught.exception)

    def test_one_login_serves_every_instance(self):
        images = ImageComponent(WASM, cloud=cloud_from_env())
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
        # Checking the held session again keeps it (Keystone still accepts the token).
        self.assertEqual(images.authenticate()["token"], session["token"])
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


if __name__ == "__main__":
    unittest.main()
