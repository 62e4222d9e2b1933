"""Start and stop the `tritonserver` binary that nvidia-pytriton's wheel carries (Python backend only),
for tests and benchmarks on CPUs: 127.0.0.1 only, free ports, bounded start and stop.

The serving environment (`make serve-env`: .venv-triton) holds that wheel (installed without its
Python dependencies), sanrt with ONNX Runtime, and numpy < 2, which the Python-backend stub needs.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from sanrt.runtime import cli
from sanrt.runtime.errors import BackendError

ROOT = Path(__file__).resolve().parents[1]


def default_env() -> Path:
    """$SANRT_TRITON_ENV, else a .venv-triton in the working folder, else the source checkout's
    (`make serve-env`); from an installed wheel the first two apply."""
    if os.environ.get("SANRT_TRITON_ENV"):
        return Path(os.environ["SANRT_TRITON_ENV"])
    for candidate in (Path.cwd() / ".venv-triton", ROOT / ".venv-triton"):
        if (candidate / "bin" / "python").is_file():
            return candidate
    return Path.cwd() / ".venv-triton"


def serving_env(env_dir: str | Path | None = None) -> dict:
    """{python, site_packages, libdir, tritonserver, libs, stub_dir} of a serving environment."""
    env_dir = Path(env_dir or default_env())
    python = env_dir / "bin" / "python"
    if not python.is_file():
        raise BackendError(f"no serving environment at {env_dir} (make serve-env makes one)")
    info = json.loads(subprocess.run(
        [str(python), "-c", "import json, site, sys, sysconfig; print(json.dumps({'site': site.getsitepackages()[0], "
         "'libdir': sysconfig.get_config_var('LIBDIR'), 'version': f'{sys.version_info[0]}.{sys.version_info[1]}'}))"],
        capture_output=True, text=True, check=True, timeout=60).stdout)
    server_root = Path(info["site"]) / "pytriton" / "tritonserver"
    binary = server_root / "bin" / "tritonserver"
    if not binary.is_file():
        raise BackendError(f"{env_dir} has no tritonserver (pip install --no-deps nvidia-pytriton there)")
    return {"python": python, "site_packages": info["site"], "libdir": info["libdir"], "tritonserver": binary,
            "libs": Path(info["site"]) / "nvidia_pytriton.libs", "server_root": server_root, "version": info["version"]}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TritonServer:
    """`with TritonServer(repo) as server:` ... server.http_url, server.grpc_url."""

    def __init__(self, repo: str | Path, env_dir=None, start_timeout: float = 120, log_path: Path | None = None):
        self.repo, self.env = Path(repo).resolve(), serving_env(env_dir)
        self.start_timeout = start_timeout
        self.work = Path(tempfile.mkdtemp(prefix="sanrt-triton-"))
        self.log_path = log_path or self.work / "server.log"
        self.proc = None

    def _backend_dir(self) -> Path:
        """Triton looks for the Python backend's stub beside libtriton_python.so: lay out a backend
        folder with the stub built for the serving environment's Python."""
        src = self.env["server_root"]
        dst = self.work / "backends" / "python"
        dst.mkdir(parents=True)
        for f in (src / "backends" / "python").iterdir():
            os.symlink(f, dst / f.name)
        stub = src / "python_backend_stubs" / self.env["version"] / "triton_python_backend_stub"
        if not stub.is_file():
            raise BackendError(f"nvidia-pytriton has no Python-backend stub for Python {self.env['version']}")
        shutil.copy(stub, dst / stub.name)
        return dst.parent

    def start(self) -> "TritonServer":
        self.http_port, self.grpc_port = _free_port(), _free_port()
        env = dict(os.environ, LD_LIBRARY_PATH=os.pathsep.join(
            [self.env["libdir"], str(self.env["libs"]), os.environ.get("LD_LIBRARY_PATH", "")]))
        cmd = [str(self.env["tritonserver"]), f"--model-repository={self.repo}", f"--backend-directory={self._backend_dir()}",
               "--http-address=127.0.0.1", "--grpc-address=127.0.0.1", f"--http-port={self.http_port}",
               f"--grpc-port={self.grpc_port}", "--allow-metrics=false", "--exit-timeout-secs=5", "--log-verbose=0"]
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BackendError(f"tritonserver exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                with urllib.request.urlopen(f"http://{self.http_url}/v2/health/ready", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.5)
        self.stop()
        raise BackendError(f"tritonserver not ready after {self.start_timeout:.0f} s: {self.log_tail()}")

    @property
    def http_url(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, n: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def stop(self, timeout: float = 20) -> float:
        """SIGTERM, then SIGKILL to the whole process group after `timeout`; returns seconds taken."""
        t = time.monotonic()
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        if getattr(self, "log", None):
            self.log.close()
        shutil.rmtree(self.work, ignore_errors=True)  # the backend folder and a log kept there
        return time.monotonic() - t

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False


def _serve(argv) -> int:
    ap = cli.ArgumentParser(prog="python -m sanrt.serving.server",
                                 description="Serve a repository (export/to_triton.py) on 127.0.0.1 until Ctrl-C or SIGTERM.")
    ap.add_argument("repo", type=Path)
    args = ap.parse_args(argv)
    if not args.repo.is_dir():
        raise BackendError(f"model repository not found: {args.repo}")
    with TritonServer(args.repo) as s:
        print(f"serving {args.repo}: HTTP {s.http_url}, gRPC {s.grpc_url}", flush=True)
        try:
            code = s.proc.wait()
        except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (docker stop, systemd) through cli.run
            print("stopping tritonserver", file=sys.stderr, flush=True)
            return 0  # leaving the with block stops the server's whole process group
    raise BackendError(f"tritonserver exited by itself with code {code}")


def main(argv=None) -> int:
    return cli.run(_serve, argv)


if __name__ == "__main__":
    sys.exit(main())
