"""The benchmark suite of openstack-image (issue 7): `bench/run [--quick] [--reps N] [--out FILE]`.

Builds the release binary and copies it to bench/.work, starts the dev cloud when it is not
running (and stops it again only then), makes random input images, runs every case several
times interleaved with its comparison, prints a table of medians and ratios and writes it as
JSON. Every image it creates carries the name prefix `bench-<random>-` and is deleted again.

Python 3.11 standard library only. Targets are reported, never asserted: the exit status is
non-zero only when a case could not be run at all.
"""

import argparse
import datetime
import json
import os
import platform
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
WORK_DIR = BENCH_DIR / ".work"
DEV_CLOUD = REPO_DIR / "scripts" / "dev-cloud"
RELAY = REPO_DIR / "scripts" / "keepalive-relay"
# One way of the remote cloud's link (case 8).
REMOTE_DELAY_MS = 25

MIB = 1024 * 1024
GIB = 1024 * MIB


@dataclass
class Sizes:
    """The inputs of one run: full sizes by default, small ones with --quick (CI)."""

    upload: int
    memory_small: int
    memory_large: int
    warm_plan_images: int
    parallel_images: int
    remote_images: int
    reps: int

    @staticmethod
    def for_run(quick: bool, reps: int | None) -> "Sizes":
        if quick:
            return Sizes(16 * MIB, 32 * MIB, 64 * MIB, 4, 4, 3, reps or 2)
        return Sizes(1 * GIB, 256 * MIB, 2 * GIB, 100, 16, 10, reps or 3)


@dataclass
class Row:
    """One line of the results table."""

    case: str
    ours: str
    comparison: str
    ratio: float | None
    target: str
    met: bool | None
    note: str = ""
    samples: dict = field(default_factory=dict)


def say(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def human_bytes(n: float) -> str:
    for unit, size in (("GiB", GIB), ("MiB", MIB), ("KiB", 1024)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n:.0f} B"


def median(values: list[float]) -> float:
    return statistics.median(values)


# ------------------------------------------------------------------ processes


@dataclass
class Measured:
    """What one child process took: wall time, peak RSS, exit status and its output."""

    seconds: float
    cpu_seconds: float
    max_rss_kib: int
    status: int
    output: str


def measure(argv: list[str], env: dict, cwd: Path | None = None, ok=(0,)) -> Measured:
    """Runs argv once; wall time around fork..wait, peak RSS from wait4 of this very child."""
    with tempfile.TemporaryFile() as out:
        start = time.perf_counter()
        child = subprocess.Popen(argv, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        _, wait_status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(wait_status)
        out.seek(0)
        output = out.read().decode(errors="replace")
    if child.returncode not in ok:
        raise RuntimeError(
            f"{' '.join(map(str, argv))} exited with {child.returncode}:\n{output[-4000:]}"
        )
    cpu = usage.ru_utime + usage.ru_stime
    return Measured(seconds, cpu, usage.ru_maxrss, child.returncode, output)


def cloud_cpu_seconds(env: dict) -> float:
    """CPU time (user + system) the dev cloud's Keystone and Glance processes used so far:
    every process in the process groups of their uwsgi masters (pid files of dev-cloud)."""
    run_dir = Path(env["DEV_CLOUD_DIR"]) / "run"
    groups = set()
    for name in ("keystone.pid", "glance.pid"):
        try:
            groups.add(int((run_dir / name).read_text().strip()))
        except (OSError, ValueError):
            pass
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # After the command: state ppid pgrp ... utime (12th) stime (13th).
        if int(fields[2]) in groups:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def run(argv: list[str], env: dict | None = None, cwd: Path | None = None, ok=(0,)) -> str:
    return measure(argv, env or os.environ.copy(), cwd, ok).output


class Relay:
    """scripts/keepalive-relay in front of `upstream` (HOST:PORT): keep-alive toward its
    clients, `delay_ms` each way (and one round trip more for each new connection, its TCP
    handshake), counting the connections and requests it sees."""

    def __init__(self, upstream: str, delay_ms: float, stats: Path):
        self.stats = stats
        self.process = subprocess.Popen(
            [sys.executable, str(RELAY), "--upstream", upstream, "--delay-ms", str(delay_ms),
             "--stats", str(stats)], stdout=subprocess.PIPE, text=True)
        self.url = f"http://127.0.0.1:{int(self.process.stdout.readline())}"

    def traffic(self) -> tuple[int, int]:
        """(connections, requests) so far."""
        stats = json.loads(self.stats.read_text())
        return stats["connections"], stats["requests"]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait()


# ------------------------------------------------------------------ setup


def ensure_tools() -> None:
    """Installs what a fresh machine lacks, as scripts/test does."""
    wanted = {"curl": "curl", "qemu-img": "qemu-utils", "gzip": "gzip", "strace": "strace"}
    missing = [pkg for tool, pkg in wanted.items() if shutil.which(tool) is None]
    if missing:
        say(f"installing {' '.join(missing)}")
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True,
                       stdout=subprocess.DEVNULL)


def build_binary(work: Path) -> Path:
    """Builds the release binary and copies it, so others' rebuilds cannot change it mid-run."""
    subprocess.run(["rustup", "target", "add", "wasm32-wasip2"], check=False,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    say("building (cargo build --release --workspace --all-targets)")
    # The whole workspace, as scripts/test builds it: the same feature resolution, so after a
    # test run nothing is compiled again.
    subprocess.run(["cargo", "build", "--release", "--locked", "--workspace", "--all-targets"], cwd=REPO_DIR,
                   check=True)
    binary = work / "openstack-image"
    shutil.copy2(REPO_DIR / "target" / "release" / "openstack-image", binary)
    return binary


def dev_cloud_env() -> dict:
    """The `export K=V` lines of `scripts/dev-cloud env`, as a dict."""
    out = subprocess.run([str(DEV_CLOUD), "env"], check=True, capture_output=True, text=True)
    env = {}
    for line in out.stdout.splitlines():
        if line.startswith("export ") and "=" in line:
            key, value = line[len("export "):].split("=", 1)
            env[key] = value.strip("'\"")
    return env


class GlanceClient:
    """Just enough REST for setup and cleanup (never timed)."""

    def __init__(self, env: dict):
        body = {"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": env["OS_USERNAME"], "password": env["OS_PASSWORD"],
                "domain": {"name": env["OS_USER_DOMAIN_NAME"]}}}},
            "scope": {"project": {"name": env["OS_PROJECT_NAME"],
                                  "domain": {"name": env["OS_PROJECT_DOMAIN_NAME"]}}}}}
        request = urllib.request.Request(
            env["OS_AUTH_URL"].rstrip("/") + "/auth/tokens", json.dumps(body).encode(),
            {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as answer:
            self.token = answer.headers["X-Subject-Token"]
            self.url = image_endpoint(json.load(answer), env["OS_REGION_NAME"])

    def call(self, method: str, path: str):
        request = urllib.request.Request(self.url + path, method=method,
                                         headers={"X-Auth-Token": self.token})
        with urllib.request.urlopen(request, timeout=60) as answer:
            data = answer.read()
        return json.loads(data) if data else None

    def images_named(self, prefix: str) -> list[dict]:
        images, path = [], "/v2/images?limit=200"
        while path:
            page = self.call("GET", path)
            images += [i for i in page["images"] if (i.get("name") or "").startswith(prefix)]
            path = page.get("next")
        return images

    def delete(self, image_id: str) -> None:
        try:
            self.call("DELETE", f"/v2/images/{image_id}")
        except urllib.error.HTTPError as err:
            if err.code != 404:
                raise


def image_endpoint(token_body: dict, region: str) -> str:
    for service in token_body["token"]["catalog"]:
        if service["type"] == "image":
            for endpoint in service["endpoints"]:
                if endpoint["interface"] == "public" and endpoint.get("region") in (region, None):
                    return endpoint["url"].rstrip("/")
    raise RuntimeError("the token's catalog has no public image endpoint")


def write_random(path: Path, size: int, random_fraction: float = 1.0, seed: int = 7) -> None:
    """A raw image of `size` bytes: 1 MiB blocks, `random_fraction` of them random, the rest
    zeros (a disk image's typical mix; zeros keep gzip of the large inputs quick)."""
    chooser = random.Random(seed)
    zero = bytes(MIB)
    with open(path, "wb") as out:
        left = size
        while left > 0:
            n = min(MIB, left)
            out.write(os.urandom(n) if chooser.random() < random_fraction else zero[:n])
            left -= n


def write_spec(path: Path, images: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"images": images}, indent=2))
    return path


def local_image(name: str, file: Path, disk_format: str = "raw") -> dict:
    return {"name": name, "container_format": "bare", "disk_format": disk_format,
            "local_file_path": str(file)}


# ------------------------------------------------------------------ the run


class Bench:
    def __init__(self, args):
        self.args = args
        self.sizes = Sizes.for_run(args.quick, args.reps)
        self.prefix = f"bench-{uuid.uuid4().hex[:8]}-"
        WORK_DIR.mkdir(exist_ok=True)
        self.work = Path(tempfile.mkdtemp(prefix="run-", dir=WORK_DIR))
        self.rows: list[Row] = []
        self.errors: list[str] = []
        self.started_cloud = False
        self.server: subprocess.Popen | None = None
        self.env: dict = {}
        self.glance: GlanceClient | None = None
        self.binary = Path()
        self.specs: list[Path] = []
        self.relays: list[Relay] = []
        self.endpoints: list[tuple[str, str]] = []  # (region, endpoint id) to delete

    # -------------------------------------------------------------- lifecycle

    def setup(self) -> None:
        ensure_tools()
        self.binary = Path(self.args.binary) if self.args.binary else build_binary(WORK_DIR)
        if subprocess.run([str(DEV_CLOUD), "status"], capture_output=True).returncode != 0:
            say("starting the dev cloud (scripts/dev-cloud up)")
            subprocess.run([str(DEV_CLOUD), "up"], check=True)
            self.started_cloud = True
        else:
            say("using the dev cloud that is already running")
        cloud = dev_cloud_env()
        self.env = {**os.environ, **cloud, "NO_COLOR": "1",
                    "OPENSTACK_IMAGE_CACHE_DIR": str(self.work / "cache")}
        self.openstack = str(Path(cloud["DEV_CLOUD_VENV"]) / "bin" / "openstack")
        self.glance = GlanceClient(cloud)
        # Prime the component cache: every timed run but the cold start finds it warm.
        self.plan_new_image()

    def teardown(self) -> None:
        for spec in self.specs:
            state = spec.parent / "openstack-image.state.json"
            if state.exists() and (json.loads(state.read_text()).get("images")
                                   or json.loads(state.read_text()).get("creating")):
                try:
                    self.ours("destroy", spec, "--force")
                except Exception as err:  # the sweep below still deletes by name
                    say(f"destroy {spec}: {err}")
        if self.server:
            self.server.terminate()
            self.server.wait()
        for relay in self.relays:
            relay.stop()
        for region, endpoint in self.endpoints:
            subprocess.run([self.openstack, "endpoint", "delete", endpoint], env=self.env,
                           check=False, capture_output=True)
            subprocess.run([self.openstack, "region", "delete", region], env=self.env,
                           check=False, capture_output=True)
        if self.glance:
            try:
                leftovers = self.glance.images_named(self.prefix)
                if leftovers:
                    say(f"deleting {len(leftovers)} leftover images")
                    subprocess.run([self.openstack, "image", "delete",
                                    *[i["id"] for i in leftovers]], env=self.env, check=False)
            except Exception as err:
                say(f"could not list leftover images: {err}")
        shutil.rmtree(self.work, ignore_errors=True)
        if self.started_cloud:
            subprocess.run([str(DEV_CLOUD), "down"], check=False)

    # -------------------------------------------------------------- helpers

    def ours(self, command: str, spec: Path, *extra: str, ok=(0,)) -> Measured:
        argv = [str(self.binary), command, "-q", "-f", str(spec), *extra]
        return measure(argv, self.env, ok=ok)

    def spec(self, name: str, images: dict) -> Path:
        path = write_spec(self.work / name / "spec.json", images)
        self.specs.append(path)
        return path

    def plan_new_image(self, env: dict | None = None) -> Measured:
        """`plan` of a spec holding one image not yet created: instantiates the component and
        calls `check`, and no cloud call at all (verified: it passes with OS_AUTH_URL dead)."""
        spec = self.work / "new-image" / "spec.json"
        if not spec.exists():
            file = self.work / "new-image" / "tiny.raw"
            write_spec(spec, {"tiny": local_image(self.prefix + "never-created", file)})
            file.write_bytes(b"\0" * 512)
        argv = [str(self.binary), "plan", "-q", "-f", str(spec)]
        return measure(argv, env or self.env, ok=(2,))

    def add(self, row: Row) -> None:
        self.rows.append(row)
        say(f"{row.case}: {row.ours} vs {row.comparison}"
            + (f" → {row.ratio:.3f}" if row.ratio is not None else ""))

    # -------------------------------------------------------------- 1. upload

    def case_upload(self) -> None:
        size = self.sizes.upload
        file = self.work / "upload.raw"
        write_random(file, size)
        times = {"ours": [], "curl": [], "openstack": [], "ours_cpu": [], "cloud_ours": [],
                 "cloud_curl": []}
        for rep in range(self.sizes.reps):
            spec = self.spec(f"upload-{rep}", {"up": local_image(f"{self.prefix}up-ours-{rep}", file)})
            cloud = cloud_cpu_seconds(self.env)
            m = self.ours("apply", spec)
            times["cloud_ours"].append(cloud_cpu_seconds(self.env) - cloud)
            times["ours"].append(m.seconds)
            times["ours_cpu"].append(m.cpu_seconds)
            self.ours("destroy", spec)

            cloud = cloud_cpu_seconds(self.env)
            start = time.perf_counter()
            image_id = self.curl_create(f"{self.prefix}up-curl-{rep}", file)
            times["curl"].append(time.perf_counter() - start)
            times["cloud_curl"].append(cloud_cpu_seconds(self.env) - cloud)
            self.glance.delete(image_id)

            m = measure([self.openstack, "image", "create", "--file", str(file),
                         "--disk-format", "raw", "--container-format", "bare",
                         "-f", "value", "-c", "id", f"{self.prefix}up-osc-{rep}"], self.env)
            times["openstack"].append(m.seconds)
            self.glance.delete(m.output.strip().splitlines()[-1])
        ours, curl, osc = (median(times[k]) for k in ("ours", "curl", "openstack"))
        label = f"1. Upload {human_bytes(size)} (s)"
        self.add(Row(f"{label} vs curl", f"{ours:.2f}", f"{curl:.2f}", ours / curl, "≤ 1.10",
                     ours / curl <= 1.10, samples=times))
        self.add(Row(f"{label} vs openstack image create", f"{ours:.2f}", f"{osc:.2f}",
                     ours / osc, "< 1.00", ours / osc < 1.0))
        # Where the time goes on a small machine: our process's own CPU (reading, hashing,
        # sending) and Keystone + Glance's CPU during each upload.
        self.add(Row(f"1. (info) Upload CPU (core-s): openstack-image + cloud vs curl's cloud",
                     f"{median(times['ours_cpu']):.2f} + {median(times['cloud_ours']):.2f}",
                     f"{median(times['cloud_curl']):.2f}", None, "—", None))

    def curl_token(self) -> tuple[str, str]:
        """A password token and the image endpoint from its catalog, with curl."""
        env = self.env
        auth = json.dumps({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": env["OS_USERNAME"], "password": env["OS_PASSWORD"],
                "domain": {"name": env["OS_USER_DOMAIN_NAME"]}}}},
            "scope": {"project": {"name": env["OS_PROJECT_NAME"],
                                  "domain": {"name": env["OS_PROJECT_DOMAIN_NAME"]}}}}})
        headers = self.work / "curl-headers"
        body = run(["curl", "-sS", "-f", "-D", str(headers), "-H", "Content-Type: application/json",
                    "-d", auth, env["OS_AUTH_URL"].rstrip("/") + "/auth/tokens"])
        token = next(line.split(":", 1)[1].strip() for line in headers.read_text().splitlines()
                     if line.lower().startswith("x-subject-token:"))
        return token, image_endpoint(json.loads(body), env["OS_REGION_NAME"])

    def curl_create(self, name: str, file: Path) -> str:
        """Token, POST /v2/images, PUT the file, poll until active: all with curl."""
        token, glance = self.curl_token()
        auth_header = f"X-Auth-Token: {token}"
        created = json.loads(run(["curl", "-sS", "-f", "-H", auth_header,
                                  "-H", "Content-Type: application/json", "-d",
                                  json.dumps({"name": name, "disk_format": "raw",
                                              "container_format": "bare"}),
                                  f"{glance}/v2/images"]))
        image = f"{glance}/v2/images/{created['id']}"
        # -T streams the file (--data-binary @file would first read it all into memory);
        # an empty Expect header skips curl's one-second wait for "100 Continue".
        run(["curl", "-sS", "-f", "-X", "PUT", "-H", auth_header, "-H", "Expect:",
             "-H", "Content-Type: application/octet-stream", "-T", str(file), f"{image}/file"])
        while True:
            status = json.loads(run(["curl", "-sS", "-f", "-H", auth_header, image]))["status"]
            if status == "active":
                return created["id"]
            if status not in ("queued", "saving", "importing"):
                raise RuntimeError(f"curl upload ended as {status}")
            time.sleep(0.05)

    # -------------------------------------------------------------- 2. memory, 7. source reads

    def start_server(self, directory: Path) -> int:
        log = self.work / "served.log"
        self.server = subprocess.Popen(
            [sys.executable, str(BENCH_DIR / "source_server.py"), str(directory), str(log)],
            stdout=subprocess.PIPE, text=True)
        self.served_log = log
        return int(self.server.stdout.readline())

    def served(self) -> list[tuple[str, str, int]]:
        if not self.served_log.exists():
            return []
        lines = self.served_log.read_text().split("\n")
        return [(m, p, int(n)) for m, p, n in (line.split() for line in lines if line)]

    def case_memory(self) -> None:
        served_dir = self.work / "served"
        served_dir.mkdir()
        port = self.start_server(served_dir)
        inputs = {}
        for size in (self.sizes.memory_small, self.sizes.memory_large):
            raw = self.work / f"memory-{size // MIB}m.raw"
            write_random(raw, size, random_fraction=0.25, seed=size)
            gz = served_dir / f"memory-{size // MIB}m.raw.gz"
            with open(gz, "wb") as out:
                subprocess.run(["gzip", "-1", "-c", str(raw)], stdout=out, check=True)
            inputs[size] = (raw, gz)
        rss = {f"{mode}-{size // MIB}m": [] for mode in ("file", "url") for size in inputs}
        url_reads: dict[int, list[int]] = {size: [] for size in inputs}
        for rep in range(self.sizes.reps):
            for mode in ("file", "url"):
                for size, (raw, gz) in inputs.items():
                    name = f"{self.prefix}mem-{mode}-{size // MIB}m-{rep}"
                    if mode == "file":
                        image = local_image(name, raw)
                    else:
                        image = {"name": name, "container_format": "bare", "disk_format": "raw",
                                 "image_source_url": f"http://127.0.0.1:{port}/{gz.name}",
                                 "decompress": True, "image_cache_path": "none"}
                    spec = self.spec(f"mem-{mode}-{size}-{rep}", {"m": image})
                    before = len(self.served())
                    m = self.ours("apply", spec)
                    rss[f"{mode}-{size // MIB}m"].append(m.max_rss_kib)
                    if mode == "url":
                        got = [n for meth, _, n in self.served()[before:] if meth == "GET"]
                        url_reads[size].append(sum(got))
                    self.ours("destroy", spec)
        small, large = self.sizes.memory_small // MIB, self.sizes.memory_large // MIB
        for mode, label in (("file", "local file"), ("url", "URL, gzip, streamed")):
            lo, hi = median(rss[f"{mode}-{small}m"]), median(rss[f"{mode}-{large}m"])
            ratio = hi / lo
            self.add(Row(f"2. Peak RSS, {label}: {large} MiB vs {small} MiB (MiB)",
                         f"{hi / 1024:.1f}", f"{lo / 1024:.1f}", ratio, "≤ 64 MiB; ≤ 1.10",
                         hi / 1024 <= 64 and ratio <= 1.10,
                         samples={k: v for k, v in rss.items() if k.startswith(mode)}))
        size = self.sizes.memory_large
        gz_size = inputs[size][1].stat().st_size
        reads = url_reads[size]
        self.add(Row(f"7. Source bytes read, URL {human_bytes(size)} gzip (bytes served)",
                     str(max(reads)), str(gz_size), max(reads) / gz_size, "= 1 (exactly once)",
                     all(r == gz_size for r in reads), samples={"served": reads}))

    def case_source_reads_file(self) -> None:
        """Sums every read syscall on the source file's descriptors (strace -y) in one create."""
        file = self.work / "upload.raw"
        size = file.stat().st_size
        spec = self.spec("reads", {"r": local_image(f"{self.prefix}reads", file)})
        trace = self.work / "reads.strace"
        measure(["strace", "-f", "-qq", "-y", "-s", "0", "--seccomp-bpf",
                 "-e", "trace=read,pread64,readv,preadv,preadv2", "-o", str(trace),
                 str(self.binary), "apply", "-q", "-f", str(spec)], self.env)
        self.ours("destroy", spec)
        marker = f"<{file}>"
        total = 0
        for line in trace.read_text(errors="replace").splitlines():
            if marker in line and "= " in line:
                result = line.rsplit("= ", 1)[1].split()[0]
                if result.lstrip("-").isdigit() and int(result) > 0:
                    total += int(result)
        self.add(Row(f"7. Source bytes read, local file {human_bytes(size)} (read syscalls)",
                     str(total), str(size), total / size, "= 1 (exactly once)", total == size))

    # -------------------------------------------------------------- 3. digests

    def case_digests(self) -> None:
        """plan re-hashes a local file whose mtime moved (MD5, SHA-256, SHA-512 in one read);
        the hashing time is plan(mtime moved) − plan(mtime as recorded)."""
        file = self.work / "upload.raw"
        size = file.stat().st_size
        spec = self.spec("digests", {"d": local_image(f"{self.prefix}digests", file)})
        recorded = file.stat().st_mtime_ns
        self.ours("apply", spec)
        samples = {"plan_touched": [], "plan_untouched": [], "md5sum": [], "sha512sum": [],
                   "sha256sum": []}
        try:
            for _ in range(self.sizes.reps):
                os.utime(file, ns=(recorded, recorded))
                samples["plan_untouched"].append(self.ours("plan", spec).seconds)
                os.utime(file, ns=(recorded + 10**9, recorded + 10**9))
                samples["plan_touched"].append(self.ours("plan", spec).seconds)
                for tool in ("md5sum", "sha512sum", "sha256sum"):
                    samples[tool].append(measure([tool, str(file)], self.env).seconds)
        finally:
            os.utime(file, ns=(recorded, recorded))
        hashing = median(samples["plan_touched"]) - median(samples["plan_untouched"])
        ours = size / hashing / MIB
        native = size / (median(samples["md5sum"]) + median(samples["sha512sum"])) / MIB
        native3 = size / sum(median(samples[t]) for t in ("md5sum", "sha512sum", "sha256sum")) / MIB
        self.add(Row(f"3. Digests over {human_bytes(size)} (MiB/s)", f"{ours:.0f}",
                     f"{native:.0f}", ours / native, "≥ 0.80", ours / native >= 0.8,
                     note="ours: MD5+SHA-256+SHA-512 in the component; "
                          "comparison: md5sum + sha512sum", samples=samples))
        self.add(Row("3. (info) Digests vs md5sum + sha256sum + sha512sum (MiB/s)",
                     f"{ours:.0f}", f"{native3:.0f}", ours / native3, "—", None))

    # -------------------------------------------------------------- 4. warm plan

    def case_warm_plan(self) -> None:
        file = self.work / "warm.raw"
        write_random(file, 64 * 1024)
        one = self.spec("warm-1", {"w": local_image(f"{self.prefix}warm-1", file)})
        n = self.sizes.warm_plan_images
        many = self.spec(f"warm-{n}", {f"w{i:03}": local_image(f"{self.prefix}warm-n-{i}", file)
                                        for i in range(n)})
        self.ours("apply", one)
        self.ours("apply", many, "--parallel", "8")
        state = json.loads((one.parent / "openstack-image.state.json").read_text())
        image_id = state["images"]["w"]["image"]["id"]
        samples = {"plan_1": [], "plan_1_token_cache": [], "openstack_show": [], f"plan_{n}": [],
                   "token": []}
        self.ours("plan", one, "--token-cache", ok=(0,))  # keeps a token for the runs below
        for _ in range(self.sizes.reps):
            start = time.perf_counter()
            self.curl_token()
            samples["token"].append(time.perf_counter() - start)
            samples["plan_1"].append(self.ours("plan", one).seconds)
            samples["plan_1_token_cache"].append(self.ours("plan", one, "--token-cache").seconds)
            samples["openstack_show"].append(
                measure([self.openstack, "image", "show", image_id], self.env).seconds)
            samples[f"plan_{n}"].append(self.ours("plan", many).seconds)
        p1, show, pn = (median(samples[k]) for k in ("plan_1", "openstack_show", f"plan_{n}"))
        self.add(Row("4. Warm plan, 1 image vs openstack image show (s)", f"{p1:.3f}",
                     f"{show:.3f}", p1 / show, "≤ 0.10", p1 / show <= 0.10, samples=samples))
        cached = median(samples["plan_1_token_cache"])
        self.add(Row("4. Warm plan with --token-cache, 1 image vs openstack image show (s)",
                     f"{cached:.3f}", f"{show:.3f}", cached / show, "≤ 0.10", cached / show <= 0.10))
        self.add(Row("4. Warm plan with --token-cache (a kept session: no Keystone request), 1 image (s)",
                     f"{cached:.3f}", "—", None, "≤ 0.05 s", cached <= 0.05))
        self.add(Row(f"4. Warm plan, {n} images vs 1 image (s)", f"{pn:.3f}", f"{p1:.3f}",
                     pn / p1, "≤ 3.0", pn / p1 <= 3.0))
        token = median(samples["token"])
        self.add(Row("4. (info) Keystone password token alone (curl) vs openstack image show (s)",
                     f"{token:.3f}", f"{show:.3f}", token / show, "—", None))
        self.ours("destroy", one)
        self.ours("destroy", many)

    # -------------------------------------------------------------- 5. cold start

    def case_cold_start(self) -> None:
        samples = {"cold": [], "compile": [], "store": [], "warm": [], "process": []}
        phases = re.compile(r"compiled (\d+) KiB of component in (\d+) ms, serialized and stored it in (\d+) ms")
        size_kib = 0
        for rep in range(self.sizes.reps):
            empty = self.work / f"cold-cache-{rep}"
            # -vv logs the cold start's phases: compile (Cranelift, validation included) and
            # serialize + store; the rest of the run is process start, reading the spec and
            # instantiating, as in a warm run.
            m = self.plan_new_image({**self.env, "OPENSTACK_IMAGE_CACHE_DIR": str(empty),
                                     "RUST_LOG": "openstack_image=debug"})
            samples["cold"].append(m.seconds)
            found = phases.search(m.output)
            if found:
                size_kib = int(found.group(1))
                samples["compile"].append(int(found.group(2)) / 1000)
                samples["store"].append(int(found.group(3)) / 1000)
            shutil.rmtree(empty)
            for _ in range(5):
                samples["warm"].append(self.plan_new_image().seconds)
                samples["process"].append(measure([str(self.binary), "--version"], self.env).seconds)
        cold, warm, process = (median(samples[k]) for k in ("cold", "warm", "process"))
        self.add(Row("5. Cold start: plan, empty component cache (s)", f"{cold:.2f}", "—", None,
                     "< 1 s", cold < 1.0, samples=samples))
        if samples["compile"]:
            compile_s, store_s = median(samples["compile"]), median(samples["store"])
            self.add(Row(f"5. (info) Cold start phases: Cranelift compile of the {size_kib} KiB "
                         "component vs serialize + store (s)", f"{compile_s:.3f}", f"{store_s:.3f}",
                         None, "—", None))
        self.add(Row("5. Warm instantiate: plan (no cloud calls) − process start (ms)",
                     f"{(warm - process) * 1000:.1f}", f"{warm * 1000:.1f} (whole run)", None,
                     "≤ 15 ms", (warm - process) <= 0.015))

    # -------------------------------------------------------------- 6. parallel apply

    def case_parallel(self) -> None:
        raw = self.work / "parallel.raw"
        qcow2 = self.work / "parallel.qcow2"
        write_random(raw, 4 * MIB)
        run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(qcow2)])
        n = self.sizes.parallel_images
        samples = {"parallel_1": [], "parallel_8": [], "cpu_1": [], "cpu_8": []}
        for rep in range(self.sizes.reps):
            for parallel in (1, 8):
                spec = self.spec(f"parallel-{parallel}-{rep}", {
                    f"p{i:02}": local_image(f"{self.prefix}par{parallel}-{rep}-{i}", qcow2, "qcow2")
                    for i in range(n)})
                cloud = cloud_cpu_seconds(self.env)
                m = self.ours("apply", spec, "--parallel", str(parallel))
                samples[f"parallel_{parallel}"].append(m.seconds)
                samples[f"cpu_{parallel}"].append(m.cpu_seconds + cloud_cpu_seconds(self.env) - cloud)
                self.ours("destroy", spec)
        p1, p8 = median(samples["parallel_1"]), median(samples["parallel_8"])
        self.add(Row(f"6. Parallel apply, {n} qcow2 images: --parallel 8 vs 1 (s)", f"{p8:.2f}",
                     f"{p1:.2f}", p1 / p8, "≥ 3.0 (speed-up)", p1 / p8 >= 3.0, samples=samples))
        # openstack-image, Keystone and Glance need this much CPU for the creates; on nproc
        # cores no schedule can finish faster than cpu / nproc.
        cpu = median(samples["cpu_1"])
        bound = p1 / (cpu / os.cpu_count())
        self.add(Row(f"6. (info) CPU of openstack-image + Keystone + Glance for --parallel 1 "
                     f"(core-s) vs its wall time; speed-up bound on {os.cpu_count()} cores",
                     f"{cpu:.2f}", f"{p1:.2f}", bound, "—", None))

    # -------------------------------------------------------------- 8. remote cloud

    def remote_cloud(self) -> tuple[dict, Relay, Relay]:
        """Keystone and Glance behind relays that add REMOTE_DELAY_MS each way; Glance's relay
        is the image endpoint of a region of its own. The settings to use it, and the relays."""
        stats = self.work / "relays"
        stats.mkdir(exist_ok=True)
        auth = urllib.parse.urlsplit(self.env["OS_AUTH_URL"])
        glance = urllib.parse.urlsplit(self.env["DEV_CLOUD_GLANCE_URL"])
        keystone_relay = Relay(auth.netloc, REMOTE_DELAY_MS, stats / "keystone.json")
        glance_relay = Relay(glance.netloc, REMOTE_DELAY_MS, stats / "glance.json")
        self.relays += [keystone_relay, glance_relay]
        region = f"{self.prefix}remote"
        run([self.openstack, "region", "create", region], self.env)
        endpoint = run([self.openstack, "endpoint", "create", "--region", region, "image",
                        "public", glance_relay.url, "-f", "value", "-c", "id"], self.env).strip()
        self.endpoints.append((region, endpoint))
        env = {**self.env, "OS_AUTH_URL": keystone_relay.url + auth.path, "OS_REGION_NAME": region}
        return env, keystone_relay, glance_relay

    def case_remote(self) -> None:
        """Create and plan N small images on a cloud 25 ms away, vs N `openstack image create`
        and N `openstack image show`: wall time and the TCP connections each opened."""
        env, keystone, glance = self.remote_cloud()
        file = self.work / "remote.raw"
        write_random(file, 64 * 1024)
        n = self.sizes.remote_images
        samples = {k: [] for k in ("create", "plan", "plan_kept", "osc_create", "osc_show")}
        traffic = {k: [] for k in samples}

        def timed(key: str, argvs: list[list[str]], ok=(0,)) -> list[str]:
            before = [r.traffic() for r in (keystone, glance)]
            outputs, seconds = [], 0.0
            for argv in argvs:
                m = measure(argv, env, ok=ok)
                outputs.append(m.output)
                seconds += m.seconds
            after = [r.traffic() for r in (keystone, glance)]
            samples[key].append(seconds)
            traffic[key].append({
                "connections": sum(a[0] - b[0] for a, b in zip(after, before)),
                "requests": sum(a[1] - b[1] for a, b in zip(after, before)),
                "keystone_connections": after[0][0] - before[0][0],
                "keystone_requests": after[0][1] - before[0][1],
                "glance_requests": after[1][1] - before[1][1],
            })
            return outputs

        for rep in range(self.sizes.reps):
            spec = self.spec(f"remote-{rep}", {
                f"r{i:02}": local_image(f"{self.prefix}remote-{rep}-{i}", file) for i in range(n)})
            timed("create", [[str(self.binary), "apply", "-q", "-f", str(spec)]])
            timed("plan", [[str(self.binary), "plan", "-q", "-f", str(spec)]])
            # A session kept by an earlier run (--token-cache): the plan asks Keystone nothing.
            measure([str(self.binary), "plan", "-q", "--token-cache", "-f", str(spec)], env)
            timed("plan_kept", [[str(self.binary), "plan", "-q", "--token-cache", "-f", str(spec)]])
            measure([str(self.binary), "destroy", "-q", "-f", str(spec)], env)
            created = timed("osc_create", [
                [self.openstack, "image", "create", "--file", str(file), "--disk-format", "raw",
                 "--container-format", "bare", "-f", "value", "-c", "id",
                 f"{self.prefix}remote-osc-{rep}-{i}"] for i in range(n)])
            ids = [out.strip().splitlines()[-1] for out in created]
            timed("osc_show", [[self.openstack, "image", "show", image_id] for image_id in ids])
            for image_id in ids:
                self.glance.delete(image_id)

        def conns(key: str) -> str:
            t = traffic[key][-1]
            return f"{t['connections']} ({t['requests']} requests)"

        label = f"8. Remote cloud ({REMOTE_DELAY_MS} ms each way)"
        for ours, theirs, what, comparison in (
                ("create", "osc_create", f"apply of {n} new images", "openstack image create"),
                ("plan", "osc_show", f"plan of {n} images", "openstack image show")):
            a, b = median(samples[ours]), median(samples[theirs])
            self.add(Row(f"{label}: {what} vs {n} × {comparison} (s)", f"{a:.2f}", f"{b:.2f}",
                         a / b, "< 1.00", a / b < 1.0, samples={ours: samples[ours],
                                                                theirs: samples[theirs]}))
            t = traffic[ours][-1]
            self.add(Row(f"{label}: TCP connections (requests) of that {ours}", conns(ours),
                         conns(theirs), t["connections"] / traffic[theirs][-1]["connections"],
                         "fewer than requests", t["connections"] < t["requests"],
                         samples={ours: traffic[ours], theirs: traffic[theirs]}))
        kept, show = median(samples["plan_kept"]), median(samples["osc_show"])
        self.add(Row(f"{label}: plan of {n} images with a kept session (--token-cache) vs "
                     f"{n} × openstack image show (s)", f"{kept:.2f}", f"{show:.2f}", kept / show,
                     "< 1.00", kept / show < 1.0, samples={"plan_kept": samples["plan_kept"]}))
        t = traffic["plan_kept"][-1]
        requests = f"{t['glance_requests']} to Glance, {t['keystone_requests']} to Keystone"
        self.add(Row(f"{label}: requests of that plan", requests, f"{n} to Glance, 0 to Keystone",
                     t["glance_requests"] / n, "1 per image; 0 to Keystone",
                     t["glance_requests"] == n and t["keystone_requests"] == 0,
                     samples={"plan_kept": traffic["plan_kept"]}))

    # -------------------------------------------------------------- report

    def cases(self):
        return [self.case_upload, self.case_memory, self.case_digests, self.case_warm_plan,
                self.case_cold_start, self.case_parallel, self.case_source_reads_file,
                self.case_remote]

    def table(self) -> str:
        head = ["case", "ours", "comparison", "ratio", "target", "met?"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        # Case 7's URL row comes from the memory runs: order by case number.
        for r in sorted(self.rows, key=lambda r: int(r.case.split(".")[0])):
            ratio = "—" if r.ratio is None else f"{r.ratio:.3f}"
            met = {True: "yes", False: "**no**", None: "—"}[r.met]
            lines.append(f"| {r.case} | {r.ours} | {r.comparison} | {ratio} | {r.target} | {met} |")
        return "\n".join(lines)

    def machine(self) -> dict:
        mem_kib = next(int(line.split()[1]) for line in open("/proc/meminfo")
                       if line.startswith("MemTotal:"))
        cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                    if line.startswith("model name")), platform.processor())
        rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True,
                               cwd=REPO_DIR).stdout.strip()
        return {"nproc": os.cpu_count(), "memory_gib": round(mem_kib / 1024 / 1024, 1),
                "cpu": cpu, "kernel": platform.release(), "rustc": rustc,
                "python": platform.python_version()}

    def write_json(self, path: Path, seconds: float) -> None:
        s = self.sizes
        data = {
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "quick": self.args.quick, "duration_seconds": round(seconds, 1),
            "machine": self.machine(),
            "sizes": {"upload_bytes": s.upload, "memory_bytes": [s.memory_small, s.memory_large],
                      "warm_plan_images": s.warm_plan_images,
                      "parallel_images": s.parallel_images, "remote_images": s.remote_images,
                      "reps": s.reps},
            "rows": [r.__dict__ for r in self.rows],
            "errors": self.errors,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="small sizes and 2 repetitions (CI: keeps the suite working; "
                             "the targets are meant for full sizes)")
    parser.add_argument("--reps", type=int, help="repetitions of each case (default 3, quick 2)")
    parser.add_argument("--out", type=Path, help="JSON results (default bench/results.json, "
                                                 "quick: bench/.work/results-quick.json)")
    parser.add_argument("--binary", help="use this openstack-image binary instead of building")
    parser.add_argument("--only", action="append", metavar="CASE",
                        help="run only cases whose name contains CASE (upload, reads, digests, "
                             "memory, warm, cold, parallel, remote); repeatable")
    args = parser.parse_args()
    out = args.out or (WORK_DIR / "results-quick.json" if args.quick else BENCH_DIR / "results.json")

    # SIGTERM/SIGINT unwind through teardown, which deletes every image this run made.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    bench = Bench(args)
    started = time.perf_counter()
    try:
        bench.setup()
        for case in bench.cases():
            name = case.__name__.removeprefix("case_")
            if args.only and not any(o in name for o in args.only):
                continue
            say(f"case {name}")
            try:
                case()
            except Exception as err:
                bench.errors.append(f"{name}: {err}")
                say(f"case {name} failed: {err}")
    finally:
        bench.teardown()
    seconds = time.perf_counter() - started
    s = bench.sizes
    print(f"\nopenstack-image benchmark — {'quick' if args.quick else 'full'} run, "
          f"{s.reps} repetitions, medians; {seconds:.0f} s\n")
    print(bench.table())
    for error in bench.errors:
        print(f"\nERROR {error}")
    bench.write_json(out, seconds)
    print(f"\nresults: {out}")
    return 1 if bench.errors else 0


if __name__ == "__main__":
    sys.exit(main())
