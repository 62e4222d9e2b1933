"""sanrt-batch on real Ray: label maps equal to the in-process Segmenter bit for bit, every kind of
--images, reruns that skip what is complete and redo what is damaged, the collision rule, a missing
cluster in bounded time, a node killed mid-job, and the benchmark's smoke run.

One Ray head per module (`ray start --head`, its own temp dir, ports and auth token; stopped by
killing the processes of its session, never `ray stop`, which would stop every Ray on the machine);
--address local in one test only."""
import importlib.util
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, run_script
from PIL import Image

if importlib.util.find_spec("ray") is None or importlib.util.find_spec("pyarrow") is None:
    # found, not imported: this process may not import Ray before it sets Ray's environment
    pytest.skip("Ray Data is not installed (pip install -e '.[batch]')", allow_module_level=True)

RAY = str(Path(sys.executable).with_name("ray"))
NAMES = ["cat", "person", "sky", "grass"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _session_pids(sid: int) -> list[int]:
    pids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if os.getsid(int(d)) == sid:
                    pids.append(int(d))
            except OSError:
                pass
    return pids


class Cluster:
    """A Ray cluster of this machine's processes: each node started by `ray start` in a session of its
    own, so that its processes (raylet, workers, agents) are found, and killed, by session id."""

    def __init__(self):
        self.env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="token",
                        RAY_AUTH_TOKEN=secrets.token_hex(32))
        self.nodes: list[tuple[int, str]] = []  # (session id, temp dir)
        self.address = None

    def start(self, num_cpus: int) -> int:
        head = self.address is None
        temp = tempfile.mkdtemp(prefix="sanrt-ray-", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
        args = [RAY, "start", "--num-cpus", str(num_cpus), "--temp-dir", temp, "--disable-usage-stats",
                "--node-ip-address", "127.0.0.1", "--object-store-memory", str(200 << 20),
                "--dashboard-agent-listen-port", str(_free_port())]
        if head:
            port = _free_port()
            args += ["--head", "--port", str(port), "--include-dashboard=false", "--dashboard-port", str(_free_port()),
                     "--ray-client-server-port", str(_free_port())]
        else:
            args += ["--address", self.address]
        p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=self.env,
                             start_new_session=True)
        self.nodes.append((p.pid, temp))  # the session outlives `ray start` itself
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err[-2000:]
        if head:
            self.address = f"127.0.0.1:{port}"
        return p.pid

    def kill(self, sid: int, timeout: float = 20) -> None:
        """SIGKILL every process of a node's session, until none is left (bounded)."""
        deadline = time.monotonic() + timeout
        while (pids := _session_pids(sid)) and time.monotonic() < deadline:
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            time.sleep(0.1)

    def stop(self) -> None:
        import shutil

        for sid, temp in reversed(self.nodes):
            self.kill(sid)
            shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster():
    c = Cluster()
    try:
        c.start(num_cpus=2)  # room for two actors of one thread, or one of two
        yield c
    finally:
        c.stop()


def _photos(folder: Path, n: int, tiny_dev) -> list[Path]:
    """n small PNGs in three sizes (three padded sizes: batches must group them), from the fixture photos."""
    folder.mkdir(parents=True, exist_ok=True)
    bases = [np.load(npz)["orig_image_hwc_u8"] for npz in sorted(tiny_dev.glob("*.npz"))]
    sizes = [(48, 64), (64, 48), (40, 60)]
    paths = []
    for i in range(n):
        h, w = sizes[i % 3]
        p = folder / f"photo{i:02d}.png"
        Image.fromarray(np.roll(bases[i % len(bases)], i, axis=0)).resize((w, h), Image.BILINEAR).save(p)
        paths.append(p)
    return paths


@pytest.fixture(scope="module")
def photos(tiny_dev, tmp_path_factory):
    return _photos(tmp_path_factory.mktemp("photos"), 8, tiny_dev)


@pytest.fixture(scope="module")
def reference(tiny_export, photos):
    """Each photo segmented alone by the in-process Segmenter (infer.py's answers)."""
    from sanrt.runtime import Segmenter, load_image

    with Segmenter(tiny_export) as seg:
        vocab = seg.vocabulary(NAMES)
        return {p.stem: seg.segment([load_image(p)], vocab)[0].labels for p in photos}


def _batch(*args, env=None, timeout=240):
    return run_script("batch/job.py", *args, timeout=timeout, env_extra=env)


def _job(export, images, out, cluster, *extra):
    code, _, err = _batch("--export", export, "--images", images, "--vocab", ",".join(NAMES), "--out", out,
                          "--address", cluster.address, *extra, env=cluster.env)
    assert code == 0, err
    return err


def _rows(out: Path) -> dict:
    from sanrt.batch import read_results

    return {Path(r["path"]).stem: r for r in read_results(out)}


def _assert_equal_labels(out: Path, reference: dict, stems=None) -> None:
    for stem in stems or reference:
        got = np.asarray(Image.open(out / f"{stem}_labels.png"))
        assert got.dtype == np.uint8 and np.array_equal(got, reference[stem]), stem


def _no_temporary_files(out: Path) -> None:
    left = [p.name for p in out.iterdir() if p.name.startswith(".") or p.name.endswith(".tmp")]
    assert not left, left


def test_a_folder_matches_the_in_process_segmenter_bit_for_bit(tiny_export, photos, reference, tmp_path):
    """--address local: a private Ray instance; a corrupt and an out-of-range image are error rows."""
    images = tmp_path / "images"
    images.mkdir()
    for p in photos:
        (images / p.name).write_bytes(p.read_bytes())
    (images / "cut.png").write_bytes(photos[0].read_bytes()[:150])
    Image.fromarray(np.zeros((1, 10000, 3), np.uint8)).save(images / "thin.png")  # -> a 0-pixel-high input
    out = tmp_path / "out"
    code, stdout, err = _batch("--export", tiny_export, "--images", images, "--vocab", ",".join(NAMES), "--out", out,
                               "--overlays", "--actors", "2", "--batch", "3")
    assert code == 0, err
    assert "Traceback" not in err and not stdout.strip(), err  # Ray's own output stays hidden
    assert err.strip().splitlines()[-1].startswith(f"{len(photos)} ok, 2 error, 0 skipped"), err
    rows = _rows(out)
    assert len(rows) == len(photos) + 2
    assert rows["cut"]["status"] == "error" and "corrupt or truncated" in rows["cut"]["error"]
    assert rows["thin"]["status"] == "error" and "outside the export's range" in rows["thin"]["error"]
    _assert_equal_labels(out, reference)
    for p in photos:
        r, report = rows[p.stem], json.loads((out / f"{p.stem}.json").read_text())
        assert r["status"] == "ok" and r["error"] is None and (r["height"], r["width"]) == reference[p.stem].shape
        assert r["classes"] == report["classes"] and report["written_by"] == "sanrt" and report["image"] == str(images / p.name)
        assert {"decode", "preprocess", "image_graph", "head", "postprocess"} <= set(report["timings_s"])
        assert sum(c["fraction"] for c in r["classes"]) == pytest.approx(1.0, abs=1e-4)
        with Image.open(out / f"{p.stem}_overlay.png") as im:
            assert im.info["Software"].startswith("sanrt")  # the photo, a legend beside it
    assert max(r["batch"] for r in rows.values() if r["batch"]) > 1  # images of one padded size were batched
    _no_temporary_files(out)


def test_every_source_kind_reruns_and_damage(tiny_export, photos, reference, cluster, tmp_path):
    """Parquet, glob, text file and folder name the same images; a rerun skips them all, a damaged or
    missing output is recomputed alone, --force recomputes everything."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from sanrt.batch import image_paths

    folder = photos[0].parent
    listing = tmp_path / "list.txt"
    listing.write_text("# the photos\n\n" + "\n".join(os.path.relpath(p, tmp_path) for p in photos) + "\n")
    table = tmp_path / "list.parquet"
    pq.write_table(pa.table({"path": [str(p) for p in photos], "other": list(range(len(photos)))}), table)
    glob = str(folder / "photo*.png")
    for src in (listing, table):
        assert image_paths(src) == [str(p) for p in photos], src
    for src in (folder, glob):  # in the file system's order
        assert sorted(image_paths(src)) == [str(p) for p in photos], src

    out = tmp_path / "out"
    err = _job(tiny_export, table, out, cluster)
    assert err.strip().splitlines()[-1].startswith(f"{len(photos)} ok, 0 error, 0 skipped"), err
    _assert_equal_labels(out, reference)
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}

    err = _job(tiny_export, glob, out, cluster)
    assert err.strip().splitlines()[-1].startswith(f"0 ok, 0 error, {len(photos)} skipped"), err
    assert all(r["status"] == "skipped" and r["classes"] for r in _rows(out).values())
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name != "results.parquet"} == \
        {k: v for k, v in mtimes.items() if k != "results.parquet"}

    damaged = out / f"{photos[1].stem}_labels.png"
    damaged.write_bytes(damaged.read_bytes()[:-40])  # cut short: still sanrt's mark, no longer whole
    (out / f"{photos[2].stem}.json").unlink()
    err = _job(tiny_export, listing, out, cluster)
    assert err.strip().splitlines()[-1].startswith(f"2 ok, 0 error, {len(photos) - 2} skipped"), err
    rows = _rows(out)
    assert {s for s, r in rows.items() if r["status"] == "ok"} == {photos[1].stem, photos[2].stem}
    _assert_equal_labels(out, reference)

    err = _job(tiny_export, folder / "photo0[0-2].png", out, cluster, "--force")
    assert err.strip().splitlines()[-1].startswith("3 ok, 0 error, 0 skipped"), err
    _assert_equal_labels(out, reference)
    _no_temporary_files(out)


def test_images_on_a_pyarrow_file_system(tiny_export, photos, reference, cluster, tmp_path):
    """--images as a URI (file://, read through pyarrow's file system as s3:// or gs:// would be): a
    Parquet list at a URI, its relative entries resolved beside it; the same answers, the URIs recorded;
    a rerun skips them. A scheme pyarrow lacks is one error line, before the cluster is looked for."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    shared = tmp_path / "bucket dir"  # a space: URIs spell it %20
    shared.mkdir()
    for p in photos:
        (shared / p.name).write_bytes(p.read_bytes())
    pq.write_table(pa.table({"path": [p.name for p in photos]}), shared / "list.parquet")
    uri = shared.as_uri()
    out = tmp_path / "out"
    err = _job(tiny_export, f"{uri}/list.parquet", out, cluster)
    assert err.strip().splitlines()[-1].startswith(f"{len(photos)} ok, 0 error, 0 skipped"), err
    _assert_equal_labels(out, reference)
    rows = _rows(out)
    assert {r["path"] for r in rows.values()} == {f"{uri}/{p.name}" for p in photos}
    assert json.loads((out / f"{photos[0].stem}.json").read_text())["image"] == f"{uri}/{photos[0].name}"
    err = _job(tiny_export, f"{uri}/list.parquet", out, cluster)
    assert err.strip().splitlines()[-1].startswith(f"0 ok, 0 error, {len(photos)} skipped"), err

    code, _, err = _batch("--export", tiny_export, "--images", "nosuchfs://bucket/photos/", "--vocab", "cat",
                          "--out", tmp_path / "out2", "--address", "127.0.0.1:1")
    assert code == 2 and err.strip().startswith("error: nosuchfs://bucket/: no pyarrow file system"), err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "out2").exists()


def test_a_foreign_file_stops_the_job_before_anything_is_written(tiny_export, photos, cluster, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / f"{photos[3].stem}.json").write_text('{"mine": true}')  # a user's file at an output name
    code, _, err = _batch("--export", tiny_export, "--images", photos[0].parent, "--vocab", "cat", "--out", out,
                          "--address", cluster.address, env=cluster.env)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and "was not written by sanrt" in lines[0], err
    assert [p.name for p in out.iterdir()] == [f"{photos[3].stem}.json"]


def test_sigterm_mid_job_is_one_line_and_leaves_files_whole(tiny_export, photos, cluster, tmp_path):
    """Ray's driver puts its own SIGTERM handler in place; the job keeps cli.run's: `interrupted`, 130."""
    out = tmp_path / "out"
    job = subprocess.Popen([sys.executable, str(ROOT / "batch" / "job.py"), "--export", str(tiny_export), "--images",
                            str(photos[0].parent), "--vocab", "cat", "--out", str(out), "--address", cluster.address,
                            "--batch", "1"], env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while job.poll() is None and time.monotonic() < deadline and not (out.is_dir() and any(out.glob("*.json"))):
            time.sleep(0.1)
        job.send_signal(signal.SIGTERM)
        _, err = job.communicate(timeout=60)
    finally:
        if job.poll() is None:
            job.kill()
    assert job.returncode == 130, err
    assert err.strip().splitlines()[-1] == "interrupted: nothing half-written was left", err
    _no_temporary_files(out)
    for f in out.glob("*_labels.png"):
        with Image.open(f) as im:
            im.load()  # every file there is whole


def test_no_cluster_at_the_address_is_one_line_in_bounded_time(tiny_export, photos, tmp_path):
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "sanrt.batch", "--export", str(tiny_export), "--images",
                        str(photos[0]), "--vocab", "cat", "--out", str(tmp_path / "out"), "--address", "127.0.0.1:1"],
                       capture_output=True, text=True, timeout=60)
    assert time.monotonic() - t0 < 30
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: no Ray cluster at 127.0.0.1:1"), p.stderr
    assert not (tmp_path / "out").exists()


def test_images_that_share_a_name_are_refused_up_front(tiny_export, photos, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / photos[0].name).write_bytes(photos[0].read_bytes())
    code, _, err = _batch("--export", tiny_export, "--images", photos[0].parent, other, "--vocab", "cat",
                          "--out", tmp_path / "out", "--address", "127.0.0.1:1")
    assert code == 2 and err.strip().startswith("error: several images share the name 'photo00'"), err
    assert not (tmp_path / "out").exists()


def test_the_stages_are_plain_functions_of_arrow_tables(tiny_export, photos, reference):
    """What a user's own Ray Data pipeline maps: decode_batch, then SegmentActor (out=None: each row
    carries its label map as PNG bytes), called here without Ray, as map_batches calls them."""
    import io

    import pyarrow as pa

    from sanrt.batch import DECODED_SCHEMA, SegmentActor, decode_batch, make_vocabulary

    vocab, _, _ = make_vocabulary(tiny_export, NAMES)
    decoded = decode_batch(pa.table({"path": [str(p) for p in photos[:4]]}), export=str(tiny_export))
    assert decoded.schema == DECODED_SCHEMA and decoded.column("status").to_pylist() == ["ok"] * 4
    rows = SegmentActor(str(tiny_export), vocab, batch=2)(decoded).to_pylist()
    assert [r["status"] for r in rows] == ["ok"] * 4 and rows[0]["batch"] == 2  # photos 0 and 3 share a size
    for r in rows:
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(r["labels_png"]))), reference[Path(r["path"]).stem])


# Another driver's actor that holds every CPU of the head until told to go (a line on stdin)
_HOLD = """
import sys, ray
ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False)
@ray.remote(num_cpus=int(sys.argv[2]))
class Hold:
    def ready(self):
        return True
h = Hold.remote()
ray.get(h.ready.remote(), timeout=120)  # raises, printing nothing, if the CPUs never come free
print("held", flush=True)
sys.stdin.readline()
"""


def test_a_node_lost_mid_job_costs_no_image(tiny_export, tiny_dev, cluster, tmp_path):
    """A second node of 1 CPU joins while another driver holds the head's CPUs, so the job's first
    actor (1 thread) can only start there and takes every batch; once it has written images, that
    node's processes are killed (SIGKILL) and the head is let go: the job's second actor starts there,
    runs what was lost, and the job ends with every image's files, equal to in-process, and no
    temporary file left behind. (The head keeps 2 CPUs: the module's other jobs run 1x2 and 2x1.)"""
    from sanrt.runtime import Segmenter, load_image

    photos = _photos(tmp_path / "many", 24, tiny_dev)
    hold = subprocess.Popen([sys.executable, "-c", _HOLD, cluster.address, "2"], env=cluster.env, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    job = None
    try:
        assert hold.stdout.readline().strip() == "held"
        worker = cluster.start(num_cpus=1)
        out = tmp_path / "out"
        job = subprocess.Popen([sys.executable, str(ROOT / "batch" / "job.py"), "--export", str(tiny_export),
                                "--images", str(photos[0].parent), "--vocab", ",".join(NAMES), "--out", str(out),
                                "--address", cluster.address, "--actors", "2", "--threads-per-actor", "1",
                                "--batch", "2"],
                               env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline, done = time.monotonic() + 150, 0
        while time.monotonic() < deadline and job.poll() is None and done < 2:
            time.sleep(0.1)
            done = len(list(out.glob("*.json"))) if out.is_dir() else 0
        assert job.poll() is None and done >= 2, f"no image written on the second node ({done} done)"
        cluster.kill(worker)
        hold.communicate("go\n", timeout=30)
        _, err = job.communicate(timeout=240)
    finally:
        for p in (hold, job):
            if p is not None and p.poll() is None:
                p.kill()
    assert job.returncode == 0, err
    assert err.strip().splitlines()[-1].startswith(f"{len(photos)} ok, 0 error, 0 skipped"), err
    rows = _rows(out)
    assert len(rows) == len(photos) and all(r["status"] == "ok" for r in rows.values())
    with Segmenter(tiny_export) as seg:
        vocab = seg.vocabulary(NAMES)
        _assert_equal_labels(out, {p.stem: seg.segment([load_image(p)], vocab)[0].labels for p in photos})
    _no_temporary_files(out)


def test_benchmark_smoke(tiny_export, cluster, tmp_path):
    code, out, err = run_script("benchmarks/batch_throughput.py", "--export", tiny_export, "--images", "2",
                                "--ceiling-images", "20", "--address", cluster.address, "--results", tmp_path,
                                timeout=300, env_extra=cluster.env)
    assert code == 0, err
    rep = json.loads((tmp_path / "batch_throughput.json").read_text())
    assert rep["identical"] is True and [r["config"] for r in rep["ray"]] == ["1x2", "2x1"]
    assert all(r["ok"] == 2 for r in rep["ray"]) and rep["bytes"]["decoded"] > 640 * 640 * 3 * 0.5
    assert [r["nodes"] for r in rep["scaling"]["nodes"]] == [10, 100, 1000]
    assert (tmp_path / "batch_throughput.md").read_text().startswith("<!-- written by sanrt")


def _check_measured(images, warm, out):
    """folder.check over `images`, then its entries read back, under tracemalloc (after a first run
    over `warm`, so that the modules' first use is apart): (Listing, entries, kept bytes, peak bytes)."""
    import tracemalloc

    from sanrt.batch import ImageList
    from sanrt.batch import folder as job_folder

    job_folder.check(ImageList(warm), out, overlays=False)
    tracemalloc.start()
    try:
        checked = job_folder.check(ImageList(images), out, overlays=False)
        kept = tracemalloc.get_traced_memory()[0]
        entries = sum(1 for _ in checked.entries())
        return checked, entries, kept, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_the_driver_streams_a_large_folder(tmp_path):
    """A folder of 50,000 images is checked and read back as the file system lists it, never held:
    the driver keeps the listing's 16 bytes an image, and its peak stays under 64 bytes an image (the
    paths alone, as a list, take over 150 here); sanrt's outputs of an earlier run into the folder
    are not inputs."""
    from sanrt.runtime.outputs import save_png

    n = 50_000
    photos = tmp_path / "archive"
    photos.mkdir()
    for i in range(n):
        os.close(os.open(photos / f"image_{i:07d}_{i * 7919 % 10**8:08d}.jpg", os.O_CREAT | os.O_WRONLY))
    (photos / "notes.txt").write_text("not an image")
    save_png(Image.new("L", (4, 4)), photos / "image_0000000_00000000_labels.png")  # sanrt's mark
    (tmp_path / "warm").mkdir()
    (tmp_path / "warm" / "a.jpg").touch()
    checked, entries, kept, peak = _check_measured(photos, tmp_path / "warm", tmp_path / "out")
    assert (checked.count, checked.repeats, entries) == (n, frozenset(), n)
    assert kept < 20 * n + (1 << 20) and peak < 64 * n + (1 << 20), (kept, peak)
    assert sys.getsizeof(str(photos / "image_0000000_00000000.jpg")) + 8 > 150


def test_the_driver_streams_a_long_listing(tmp_path):
    """A text list of 100,000 paths is checked and read back without being held: the driver keeps 16
    bytes an image, and its peak stays under half of what the list of paths alone takes; a repeated
    entry runs once, two images with one name are refused, a listing changed meanwhile is refused."""
    from sanrt.batch import ImageList
    from sanrt.batch import folder as job_folder
    from sanrt.runtime.errors import ImageError, OutputError

    n = 100_000
    listing = tmp_path / "list.txt"
    lines = [f"/mnt/datasets/archive/train/{i // 1000:04d}/image_{i:07d}_{i * 7919 % 10**8:08d}.jpg" for i in range(n)]
    listing.write_text("\n".join(lines + [lines[5]]) + "\n")  # the sixth image named again
    out = tmp_path / "out"
    (tmp_path / "warm.txt").write_text(lines[0])
    checked, entries, kept, peak = _check_measured(listing, tmp_path / "warm.txt", out)
    assert (checked.count, checked.repeats, entries) == (n + 1, frozenset({n}), n)
    held = sum(sys.getsizeof(s) for s in lines) + sys.getsizeof(lines)  # the paths as a list: ~12 MB
    assert kept < 20 * n + (1 << 20) and peak < held / 2, (kept, peak, held)
    assert checked.has_stem(Path(lines[7]).stem) and not checked.has_stem("image_9999999")

    listing.write_text("\n".join(lines[:10] + [f"/elsewhere/{Path(lines[3]).stem}.png"]) + "\n")
    with pytest.raises(OutputError, match=f"several images share the name '{Path(lines[3]).stem}'"):
        job_folder.check(ImageList(listing), out, overlays=False)
    listing.write_text("\n".join(lines[:10]) + "\n")
    checked = job_folder.check(ImageList(listing), out, overlays=False)
    listing.write_text("\n".join(lines[:11]) + "\n")
    with pytest.raises(ImageError, match="changed while the job was starting"):
        list(checked.entries())
