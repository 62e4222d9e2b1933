"""`segment_dataset`: the whole job on Ray Data, from image paths to files and results.parquet.

    driver: the listing checked as it streams (folder.check); names -> one Vocabulary (the text
            graph runs here only) -> ray.put; the listing into the object store, block by block
    plan    (tasks)  : which images are done, which to do, any foreign file at an output name;
                       kept whole in the object store, the images to do sorted there by padded size
    decode  (tasks)  : file -> RGB pixels
    segment (actors) : one Segmenter per actor -> <stem>_labels.png, <stem>.json [, <stem>_overlay.png]
    driver: result rows streamed into results.parquet (written whole at the end)

The driver never holds the listing, pixels or result rows: 17 bytes an image (two hashes, for the
checks, and whether its row is still to come); Ray Data's streaming executor bounds what is in
flight. Each file is written atomically; a rerun skips what is complete.
"""
from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import sys
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from sanrt.runtime.errors import OutputError, RangeError, SanrtError, first_line
from sanrt.runtime.manifest import Manifest
from sanrt.runtime.outputs import MARK, lock_folder, write_atomic

from . import folder
from .folder import RESULTS, Listing
from .sources import ImageList
from .stages import RESULT_SCHEMA, SegmentActor, SharedVocabulary, decode_batch, made_with, plan_batch

PLAN_ROWS = 256  # images per planning task: each checks files, no pixels
# images per decoding task (a whole number of actor batches): enough tasks to keep every actor fed,
# few enough blocks for the driver to track, each block's pixels a few tens of MB at most
DECODE_ROWS = (16, 64)
# A task whose worker dies (a lost node, an OOM kill) runs again elsewhere, and an actor that dies is
# restarted whenever there is room for it, its batch retried on it, this often. Past that, or while
# the restart finds no room, Ray Data drops the batch and goes on with the actors it has; the job
# runs the images it lost again in a fresh actor pool, ROUNDS runs in all; then they are error rows
# (a batch that kills every worker it meets).
TASK_RETRIES = 3
ACTOR_RESTARTS = -1
ROUNDS = 3
ACTOR_INIT_DEATHS = 4  # actors that die starting, one after another, before the job gives up
log = logging.getLogger("sanrt")


class ClusterError(SanrtError):
    """No Ray cluster at the address, or a Ray job that cannot run there."""


@dataclass
class Summary:
    ok: int
    error: int
    skipped: int
    seconds: float  # the whole call, Ray's start and the planning included
    segment_seconds: float  # the decode + segment stage alone
    out: Path
    results: Path
    driver_cpu_seconds: float = 0.0  # CPU time of this process (all its threads) for the Ray stages
    driver_cpu_per_image: float = 0.0  # the same per image once results flow (start-up costs apart)

    @property
    def total(self) -> int:
        return self.ok + self.error + self.skipped

    @property
    def images_per_s(self) -> float:
        """Images segmented (ok or error) per second of the segment stage."""
        done = self.ok + self.error
        return done / self.segment_seconds if self.segment_seconds > 0 else 0.0


@contextmanager
def _quiet_stderr(quiet: bool):
    """File descriptor 2 to /dev/null while Ray's core starts in this process: it prints a line there
    about the log level it was given, and its connection retries (ray.init's errors still raise)."""
    if not quiet:
        yield
        return
    sys.stderr.flush()
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def _probe(address: str) -> None:
    """A HOST:PORT with nothing listening fails in seconds here; ray.init would retry for minutes."""
    if address in ("auto", "local") or "://" in address:
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ClusterError(f"--address {address} is not local, auto or HOST:PORT")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=3).close()
    except OSError as e:
        raise ClusterError(f"no Ray cluster at {address} ({e.strerror or e})") from None


@lru_cache(maxsize=1)
def _process_token() -> str:
    """One token per process: Ray's core reads it once, so a second local instance must share it."""
    return secrets.token_hex(32)


class _Ray:
    """A Ray session for one job: a private local instance (started and stopped here) or a running
    cluster joined at `address`; an already initialised session (the caller's own) is used as it is."""

    def __init__(self, address: str, num_cpus: int, verbose: bool):
        self.address, self.num_cpus, self.verbose, self.started = address, num_cpus, verbose, False
        self.saved_env: dict[str, str | None] = {}

    def _setenv(self, name: str, value: str) -> None:
        if name not in os.environ:
            self.saved_env[name] = None
            os.environ[name] = value

    def __enter__(self):
        # Ray's own output (log lines, usage stats, per-operator progress bars) only when verbose
        self._setenv("RAY_USAGE_STATS_ENABLED", "0")
        self.saved_filters = warnings.filters[:]
        if not self.verbose:
            # Ray Data's advice (block counts, concurrency limits) is for pipelines tuned by hand
            warnings.filterwarnings("ignore", module=r"ray(\.|$)")
            # Ray's C++ core prints its errors to the driver's stderr; those a job meets are about Ray
            # itself (that Ray Data passes actor arguments through the object store): fatal ones only
            self._setenv("RAY_BACKEND_LOG_LEVEL", "fatal")
        if self.address == "local":
            if "ray" not in sys.modules:
                # a private instance: its processes advertise the loopback address, not the machine's
                self._setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
            if "RAY_AUTH_MODE" not in os.environ:
                # Ray's token authentication, with a token of this job's own in the environment (its
                # processes inherit it): nothing else can join, and no token file is left in ~/.ray
                self._setenv("RAY_AUTH_MODE", "token")
                self._setenv("RAY_AUTH_TOKEN", _process_token())
        import ray

        if ray.is_initialized():
            return ray
        level = logging.INFO if self.verbose else logging.ERROR
        try:
            with _quiet_stderr(not self.verbose), _own_sigterm():
                if self.address == "local":
                    ray.init(address="local", num_cpus=self.num_cpus, include_dashboard=False,
                             log_to_driver=self.verbose, logging_level=level)
                else:
                    ray.init(address=self.address, log_to_driver=self.verbose, logging_level=level)
        except Exception as e:  # ConnectionError, AuthenticationError, a version mismatch, ...
            self._restore()
            raise ClusterError(f"no Ray cluster at {self.address}: {first_line(e)}") from None
        self.started = True
        if not self.verbose:
            self._mute_notices()
        return ray

    def _mute_notices(self) -> None:
        """Ray's driver prints the cluster's notices (a task retried, a node marked dead) to stdout from a
        thread of its own; the job reports what they cost (images lost and run again) itself."""
        import ray._private.worker as worker

        shown = self.print_to_stdstream = getattr(worker, "print_to_stdstream", None)
        if shown is not None:
            worker.print_to_stdstream = lambda data, ignore_prefix: (
                None if data.get("pid") == "raylet" else shown(data, ignore_prefix))

    def _restore(self) -> None:
        for name, value in self.saved_env.items():
            if value is None:
                os.environ.pop(name, None)
        self.saved_env.clear()
        warnings.filters[:] = self.saved_filters

    def __exit__(self, *exc):
        if self.started:
            import ray
            import ray._private.worker as worker

            ray.shutdown()  # a local instance stops; a cluster only loses this driver
            if getattr(self, "print_to_stdstream", None) is not None:
                worker.print_to_stdstream = self.print_to_stdstream
        self._restore()


@contextmanager
def _own_sigterm():
    """ray.init puts a SIGTERM handler of Ray's in this process (sys.exit(15): no `interrupted` line, exit
    code 15); the process's own (cli.run's: one `interrupted` line, every file whole, exit code 130)
    is put back after it."""
    import signal
    import threading

    main = threading.current_thread() is threading.main_thread()
    handler = signal.getsignal(signal.SIGTERM) if main else None
    try:
        yield
    finally:
        if handler is not None:
            signal.signal(signal.SIGTERM, handler)


def _sanrt_cause(e: BaseException) -> SanrtError | None:
    """A SanrtError a Ray task raised (Ray wraps it, sometimes twice)."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, SanrtError) and type(e).__module__.startswith("sanrt"):
            return e
        e = getattr(e, "cause", None) or e.__cause__
    return None


@contextmanager
def _data_context(verbose: bool):
    """Ray Data's settings for the job, put back after it (a caller's own pipelines keep theirs)."""
    import ray.data

    ctx = ray.data.DataContext.get_current()
    logger = logging.getLogger("ray.data")
    wanted = {"enable_progress_bars": verbose,  # the driver shows one bar of images instead
              "max_errored_blocks": -1,  # a batch that failed every retry: its rows are missing, run again
              # the pool starts with the actors that find room, not waiting for all (a lost node's)
              "wait_for_min_actors_s": -1,
              # an actor placed on a node about to be found dead dies starting: start another
              "max_consecutive_actor_init_deaths": ACTOR_INIT_DEATHS}
    saved, level = {k: getattr(ctx, k) for k in wanted}, logger.level
    for k, v in wanted.items():
        setattr(ctx, k, v)
    # a dropped batch is logged with a traceback; the job reports and reruns its images itself
    logger.setLevel(logging.INFO if verbose else logging.CRITICAL)
    try:
        yield ctx
    finally:
        for k, v in saved.items():
            setattr(ctx, k, v)
        logger.setLevel(level)


class _RowGroups:
    """results.parquet's writer: result rows arrive a batch at a time; row groups of GROUP rows."""

    GROUP = 8192

    def __init__(self, writer):
        self.writer, self.schema, self.pending, self.rows = writer, writer.schema, [], 0

    def write_table(self, table) -> None:
        self.pending.append(table)
        self.rows += table.num_rows
        if self.rows >= self.GROUP:
            self.flush()

    def flush(self) -> None:
        import pyarrow as pa

        if self.pending:
            self.writer.write_table(pa.concat_tables(self.pending))
            self.pending, self.rows = [], 0


def default_threads(num_cpus: float, largest_node: float, actors: int) -> int:
    """Threads per actor when not given: the CPUs shared out among the actors, within one node."""
    return max(1, int(min(largest_node, num_cpus // actors)))


def make_vocabulary(export, names, expand=None, backend: str = "auto"):
    """The job's Vocabulary, made once (on the driver): the only place its text graph runs."""
    from sanrt.runtime.segmenter import Segmenter

    with Segmenter(export, backend=backend) as seg:
        vocab = seg.vocabulary(names, expand=None if expand in (None, "none") else expand)
        return vocab, seg.manifest, f"backend {seg.backend} ({seg.precision}) on {seg.image_graph.device}"


def _check_options(actors, threads, batch) -> None:
    for name, v, lo in (("actors", actors, 1), ("batch", batch, 1)):
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise RangeError(f"{name} must be a whole number of at least {lo}, not {v!r}")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise RangeError(f"threads per actor must be a whole number of at least 1, not {threads!r}")


def segment_dataset(export, images, names, out, *, expand=None, address: str = "local", actors: int = 1,
                    threads_per_actor: int | None = None, batch: int = 4, overlays: bool = False,
                    force: bool = False, backend: str = "auto", verbose: bool = False,
                    progress: bool | None = None) -> Summary:
    """Segment every image of `images` (a folder, glob, image, text file of paths or Parquet file with a
    `path` column, or a list of such) with the export at `export` for the class `names`, on Ray Data:
    per image infer.py's files in `out` and one row in `out`/results.parquet. `address`: "local" (a
    private Ray instance, stopped at the end), "auto" or HOST:PORT (a running cluster; every node must
    see `export`, the images and `out` at the same paths). `actors` Segmenters of `threads_per_actor`
    threads each (default: the CPUs shared out); `batch` images per actor call. Images whose outputs
    are complete are skipped (`force`: recomputed); bad images become error rows. SanrtError (one
    line) when the job cannot run: before anything is written when an output name is taken."""
    t_start = time.perf_counter()
    _check_options(actors, threads_per_actor, batch)
    export, out = Path(export), Path(out)
    Manifest.load(export, verify=False)  # a wrong folder fails now, before Ray starts
    images = ImageList(images)
    if progress is None:
        progress = sys.stderr.isatty() or verbose
    made_out, lock, listing = not out.exists(), None, None
    counts = {"ok": 0, "error": 0, "skipped": 0}
    timing = {"segment_s": 0.0, "driver_cpu_s": 0.0, "steady": []}
    try:
        listing = folder.check(images, out, overlays)  # every name, before Ray starts
        _probe(address)
        vocab, manifest, backend_line = make_vocabulary(export, names, expand, backend)
        key = made_with(manifest, vocab)
        about = (f"{len(vocab.names)} classes"
                 f"{f' + {len(vocab.distractors)} distractors' if vocab.distractors else ''}, "
                 f"text side {vocab.text_s:.2f} s{' (cached)' if vocab.cached else ''}; {backend_line}")
        lock = lock_folder(out, f"another sanrt run is writing into {out}; wait for it or choose another --out")
        local_cpus = max(os.cpu_count() or 1, actors * (threads_per_actor or 1))
        try:
            with _Ray(address, local_cpus, verbose) as ray:
                folder.sweep(out, listing)  # an earlier job's, killed
                job = _Job(ray, export, vocab, key, out, listing, actors, threads_per_actor, batch, overlays, force,
                           backend, verbose, progress, about)
                write_atomic(out / RESULTS, lambda tmp: job.run(tmp, counts, timing))
        finally:
            folder.sweep(out, listing)  # this job's workers are gone: what a killed one left (interrupted too)
    except SanrtError:
        raise
    except Exception as e:
        cause = _sanrt_cause(e)
        if cause is not None:
            raise type(cause)(first_line(cause)) from None
        if type(e).__module__.startswith("ray"):
            raise ClusterError(f"the Ray job failed: {first_line(e)}") from None
        raise
    finally:
        if lock is not None:
            os.close(lock)
        if made_out and out.is_dir() and not any(out.iterdir()):
            out.rmdir()  # a job that wrote nothing leaves no new folder behind
    return Summary(counts["ok"], counts["error"], counts["skipped"], time.perf_counter() - t_start,
                   timing["segment_s"], out, out / RESULTS, timing["driver_cpu_s"], _steady(timing["steady"]))


def _steady(marks: list[tuple[float, int]]) -> float:
    """Driver CPU seconds per image between the first and the last result batch: (cpu, rows) marks."""
    if len(marks) < 2 or marks[-1][1] == marks[0][1]:
        return 0.0
    return (marks[-1][0] - marks[0][0]) / (marks[-1][1] - marks[0][1])


def _where(table, *, state: str):
    """The plan rows in one state (a Ray Data filter)."""
    import pyarrow.compute as pc

    return table.filter(pc.equal(table.column("state"), state))


def _among(table, *, indices):
    """The rows whose index is one of `indices` (a Ray Data filter: the images to run again)."""
    import numpy as np

    return table.filter(np.isin(table.column("index").to_numpy(), indices))


def _result_rows(n: int, **columns):
    """Result rows (RESULT_SCHEMA) made on the driver: the columns given, nulls in the others."""
    import pyarrow as pa

    return pa.table({f.name: columns.get(f.name, pa.nulls(n, f.type)) for f in RESULT_SCHEMA}, schema=RESULT_SCHEMA)


def _skipped_rows(table):
    """Plan rows of complete images -> their result rows."""
    import pyarrow as pa

    return _result_rows(table.num_rows, status=pa.array(["skipped"] * table.num_rows, pa.string()),
                        **{c: table.column(c) for c in ("index", "path", "classes", "height", "width")})


class _Job:
    """One run of the stages (segment_dataset's arguments, checked). The driver holds no list of the
    images: the listing goes into the object store a block at a time, the plan's rows stay there
    (materialised: the plan must be whole before anything is written), and what the driver keeps of
    each image is one byte, whether its result row is still to come."""

    def __init__(self, ray, export, vocab, key, out, listing: Listing, actors, threads, batch, overlays, force,
                 backend, verbose, progress, about):
        self.ray, self.export, self.vocab, self.key, self.out = ray, export, vocab, key, out
        self.listing = listing
        self.actors, self.batch, self.overlays, self.force, self.backend = actors, batch, overlays, force, backend
        self.verbose, self.progress, self.about = verbose, progress, about
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        cpus = [n.get("Resources", {}).get("CPU", 0) for n in nodes] or [0]
        self.cluster = f"{len(nodes)} node(s), {sum(cpus):g} CPUs"
        self.threads = threads or default_threads(sum(cpus), max(cpus), actors)
        self.pending = bytearray(listing.count)  # 1: an image whose result row is still to come

    def _map_batches(self, ds, fn, same_rows: bool = True, **kwargs):
        with warnings.catch_warnings():
            # Ray 2.60 marks the retry arguments (max_retries, max_restarts, max_task_retries) deprecated
            # but names no replacement for them: its warning is not the user's to act on
            warnings.simplefilter("ignore", DeprecationWarning)
            return ds.map_batches(fn, batch_format="pyarrow", udf_modifying_row_count=not same_rows, **kwargs)

    def _listing_blocks(self):
        """The listing, PLAN_ROWS entries a block, into the object store as it is read."""
        import pyarrow as pa

        refs, index, paths = [], [], []
        for n, (i, p) in enumerate(self.listing.entries(), 1):
            index.append(i)
            paths.append(p)
            if len(index) == PLAN_ROWS or n == self.listing.unique:  # a full block, or the last
                refs.append(self.ray.put(pa.table({"index": pa.array(index, pa.int64()), "path": paths})))
                index, paths = [], []
        return refs

    def run(self, tmp: Path, counts: dict, timing: dict) -> None:
        import pyarrow.parquet as pq

        schema = RESULT_SCHEMA.with_metadata({"written_by": "sanrt", "sanrt": MARK, "made_with": self.key})
        cpu0 = time.process_time()
        with pq.ParquetWriter(tmp, schema) as parquet, _data_context(self.verbose):
            writer = _RowGroups(parquet)
            planned, todo = self._plan(writer, counts)
            # said once the job is sure to run: a job refused (a foreign file) prints its error line only
            print(f"{self.listing.unique} image(s): {todo} to segment, {counts['skipped']} complete; "
                  f"{self.about}; Ray: {self.cluster}, {self.actors} actor(s) x {self.threads} thread(s)",
                  file=sys.stderr)
            if todo:
                t0 = time.perf_counter()
                self._segment(planned, todo, writer, counts, timing["steady"])
                timing["segment_s"] = time.perf_counter() - t0
            writer.flush()
        timing["driver_cpu_s"] = time.process_time() - cpu0

    def _plan(self, writer, counts: dict):
        """Run the plan stage whole; write the skipped rows; -> (the plan's rows, kept in the object
        store; how many images to do)."""
        ds = self.ray.data.from_arrow_refs(self._listing_blocks())
        planned = self._map_batches(ds, plan_batch, batch_size=None, max_retries=TASK_RETRIES,
                                    fn_kwargs={"out": str(self.out), "overlays": self.overlays, "key": self.key,
                                               "export": str(self.export), "force": self.force}).materialize()
        todo = 0
        for t in planned.iter_batches(batch_format="pyarrow", batch_size=None):
            state = t.column("state").to_pylist()
            if "foreign" in state:
                raise OutputError(t.column("error")[state.index("foreign")].as_py())
            if "skipped" in state:
                s = _skipped_rows(_where(t, state="skipped"))
                writer.write_table(s.cast(writer.schema))
                counts["skipped"] += s.num_rows
            for i, st in zip(t.column("index").to_numpy(), state):
                if st == "todo":
                    self.pending[i] = 1
                    todo += 1
        return planned, todo

    def _segment(self, planned, todo: int, writer, counts: dict, marks: list) -> None:
        """Decode and segment the images to do, streaming result rows into `writer`. Images whose rows
        never came (their batch was dropped after Ray's own retries: a node lost, a worker killed) run
        again in a fresh actor pool, up to ROUNDS times in all."""
        import numpy as np
        from tqdm import tqdm

        shared = SharedVocabulary(self.vocab)  # once into the object store; every actor reads that copy
        # sorted by padded size, so that consecutive images share actor batches and encode_images batches,
        # then cut into the decode tasks' blocks (an actor takes a block at a time: enough of them keep
        # every actor fed); all before the actors start, as they would hold the CPUs these tasks wait for
        lo, hi = DECODE_ROWS
        step = self.batch * -(-min(hi, max(lo, todo // (8 * self.actors))) // self.batch)
        rows = (self._map_batches(planned, _where, same_rows=False, fn_kwargs={"state": "todo"}).sort("key")
                .repartition(target_num_rows_per_block=step).materialize())
        done = 0
        with tqdm(total=todo, desc="segmenting", unit="img", file=sys.stderr, disable=not self.progress) as bar:
            for round_ in range(ROUNDS):
                for t in self._stream(rows, shared).iter_batches(batch_format="pyarrow", batch_size=None):
                    t = t.select(RESULT_SCHEMA.names).cast(writer.schema)
                    index = t.column("index").to_numpy()
                    fresh = [k for k, i in enumerate(index) if self.pending[i]]
                    if len(fresh) < t.num_rows:  # a retried batch whose first run's rows did come
                        t, index = t.take(fresh), index[fresh]
                    for i in index:
                        self.pending[i] = 0
                    writer.write_table(t)
                    status = t.column("status").to_pylist()
                    counts["ok"] += status.count("ok")
                    counts["error"] += status.count("error")
                    bar.update(t.num_rows)
                    done += t.num_rows
                    marks.append((time.process_time(), done))
                lost = np.flatnonzero(np.frombuffer(self.pending, np.uint8))
                if not len(lost):
                    return
                rows = self._map_batches(rows, _among, same_rows=False, num_cpus=0, fn_kwargs={"indices": lost})
                if round_ + 1 < ROUNDS:
                    log.warning(f"{len(lost)} image(s) lost with a Ray worker or node; running them again")
        self._lost(rows, writer, counts)

    def _stream(self, rows, shared):
        """The decode and segment stages over `rows` (plan rows), as a lazy Dataset."""
        from ray.data import ActorPoolStrategy, TaskPoolStrategy

        # Decoding asks for no CPU of its own: it rides on the actors' CPUs (a few per cent of the work),
        # and an actor restarted onto a node's last CPU can never starve it.
        ds = self._map_batches(rows, decode_batch, batch_size=None, num_cpus=0, max_retries=TASK_RETRIES,
                               compute=TaskPoolStrategy(size=max(2, self.actors)), fn_kwargs={"export": str(self.export)})
        return self._map_batches(
            ds, SegmentActor, batch_size=self.batch, num_cpus=self.threads,
            compute=ActorPoolStrategy(min_size=1, max_size=self.actors, initial_size=self.actors),
            fn_constructor_kwargs={"export": str(self.export), "vocabulary": shared, "out": str(self.out),
                                   "overlays": self.overlays, "threads": self.threads, "backend": self.backend,
                                   "batch": self.batch, "key": self.key},
            max_restarts=ACTOR_RESTARTS, max_task_retries=TASK_RETRIES)

    def _lost(self, rows, writer, counts: dict) -> None:
        """Images whose batch failed every retry (Ray dropped it): error rows, so every input has one."""
        import pyarrow as pa

        msg = f"lost with a Ray worker {ROUNDS} times (each run of its batch died); see the Ray logs"
        for t in rows.iter_batches(batch_format="pyarrow", batch_size=None):
            n = t.num_rows
            writer.write_table(_result_rows(n, index=t.column("index"), path=t.column("path"),
                                            status=pa.array(["error"] * n, pa.string()),
                                            error=pa.array([msg] * n, pa.string())).cast(writer.schema))
            counts["error"] += n


def read_results(out) -> list[dict]:
    """results.parquet as a list of rows, in input order (for tests and small jobs)."""
    import pyarrow.parquet as pq

    rows = pq.read_table(Path(out) / RESULTS).to_pylist()
    for r in rows:
        r["classes"] = json.loads(r["classes"]) if r["classes"] else None
    return sorted(rows, key=lambda r: r["index"])
