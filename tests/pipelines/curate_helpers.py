"""Helpers for the curate tests: build a run folder from the real demo sources, run the job, compare outputs, and
start Beam's local job service and an EXTERNAL worker pool on loopback."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import PYTHON, REPO


def build_demo_run(sources_run: Path, run_dir: Path) -> Path:
    """A run folder for the curate tests: RUN/sources copied from the session's demo run (the real demo corpora,
    read by the sources stage), RUN/tasks built from the documents the demo mixture holds out (what
    decontamination compares with) and RUN/classifier trained on them with the demo classifier spec."""
    import shutil

    from data_specs import specs
    from filters.classifier_train import train
    from sources.stage import load_sources

    shutil.copytree(sources_run / "sources", run_dir / "sources")
    build_tasks(run_dir, "demo")
    train(specs.load("classifier", "demo"), load_sources(run_dir), run_dir / "classifier")
    return run_dir


def build_tasks(run_dir: Path, mixture: str | Path) -> dict:
    """RUN/tasks: the built-in eval tasks from RUN/sources' documents that the mixture holds out (the tasks stage's
    own functions)."""
    from data_specs import specs
    from eval.builtin import write_tasks
    from eval.stage import make_tasks

    tasks, _ = make_tasks(run_dir / "sources", specs.load("mixtures", mixture))
    return write_tasks(tasks, run_dir / "tasks")


def tree_digest(folder: Path) -> dict[str, str]:
    """relative path -> sha256 of every file under folder (hidden temporary files included: there must be none)."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def curate_cmd(spec: str | Path, run_dir: Path, *beam_args: str) -> list[str]:
    return [PYTHON, "-m", "glamkit.cli", "curate", "--spec", str(spec), "--run", str(run_dir), *beam_args]


def run_curate(spec: str | Path, run_dir: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(curate_cmd(spec, run_dir, *args), cwd=REPO, env=env(), capture_output=True, text=True,
                          timeout=timeout)


def env() -> dict[str, str]:
    paths = [str(REPO), *[p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Beam's job service and worker pool, each in its own process, bound to 127.0.0.1 only (Beam's stock entry points
# bind every interface). The worker pool runs SDK harnesses as threads: the pipeline still crosses the Fn API's
# gRPC + pickling boundary, as on Dataflow or Flink.
_SERVICE = r"""
import logging, sys, time
import grpc
from apache_beam.portability.api import beam_fn_api_pb2_grpc
from apache_beam.runners.portability import local_job_service
from apache_beam.runners.worker.worker_pool_main import BeamFnExternalWorkerPoolServicer
from apache_beam.utils import thread_pool_executor

logging.getLogger().setLevel(logging.INFO)
kind, port = sys.argv[1], int(sys.argv[2])
if kind == "job":
    class Loopback(local_job_service.LocalJobServicer):
        def get_bind_address(self):
            return "127.0.0.1"
    Loopback().start_grpc_server(port)
else:
    server = grpc.server(thread_pool_executor.shared_unbounded_instance())
    server.add_insecure_port(f"127.0.0.1:{port}")
    beam_fn_api_pb2_grpc.add_BeamFnExternalWorkerPoolServicer_to_server(
        BeamFnExternalWorkerPoolServicer(use_process=False), server)
    server.start()
print("ready", flush=True)
while True:
    time.sleep(3600)
"""


def start_service(kind: str, port: int, log: Path) -> subprocess.Popen:
    out = open(log, "w")  # the process owns it until it is stopped
    proc = subprocess.Popen([sys.executable, "-c", _SERVICE, kind, str(port)], cwd=REPO, env=env(), stdout=out,
                            stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{kind} service exited: {log.read_text()[-2000:]}")
        if "ready" in log.read_text():
            return proc
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"{kind} service did not start: {log.read_text()[-2000:]}")
