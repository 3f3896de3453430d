"""A tiny pretrain job submitted through the Ray Jobs API to a head started with `ray start --head`."""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
# What `ray job submit --working-dir .` would upload, minus what a cluster must not receive.
EXCLUDES = [".venv", ".git", "lam-demo", "**/__pycache__", ".pytest_cache", "feature_repo/data"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.e2e
@pytest.mark.drill
def test_tiny_pretrain_job_succeeds_through_the_jobs_api(tiny_world, monkeypatch):
    import ray
    from ray.job_submission import JobStatus, JobSubmissionClient

    ray.shutdown()  # the jobs below run on their own cluster; this process's Ray is not needed
    ray_cli = shutil.which("ray", path=str(Path(sys.executable).parent)) or "ray"
    # Jobs run `python`: put this interpreter's folder first so that `python` has the package installed.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("RAY_ADDRESS", None)
    # Ray 2.60 turns token authentication on for a new cluster; a Ray started earlier in this process
    # may have left the client in "disabled" mode, so say explicitly that this client uses the token.
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    env["RAY_AUTH_MODE"] = "token"
    # A token of this test's own: a fresh machine has no ~/.ray/auth_token, and `ray start` does not make
    # one. The head and the job drivers it starts read it from the environment; the client sends it.
    token = uuid.uuid4().hex
    env["RAY_AUTH_TOKEN"] = token
    env.pop("RAY_AUTH_TOKEN_PATH", None)
    gcs_port, dashboard_port = _free_port(), _free_port()  # not 6379: Redis may hold it
    # Its own temp dir, so that no other ray.init() on this machine finds and joins this head through
    # /tmp/ray/ray_current_cluster; --block and a session of its own, so that the test stops this head
    # only, not every Ray on the machine as `ray stop` would. 3 logical CPUs: 2 training workers and
    # 1 for Ray Data (with none left, its reads would wait forever).
    temp_dir = Path(tempfile.mkdtemp(prefix="lam-ray-"))
    head_log = open(temp_dir / "head.log", "w")  # noqa: SIM115 -- the head writes to it until _stop
    head = subprocess.Popen(
        [
            ray_cli,
            "start",
            "--head",
            "--block",
            f"--temp-dir={temp_dir}",
            f"--port={gcs_port}",
            "--node-ip-address=127.0.0.1",
            "--num-cpus=3",
            "--include-dashboard=true",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={dashboard_port}",
        ],
        env=env,
        stdout=head_log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        _wait_for_dashboard(dashboard_port, head, Path(head_log.name))
        client = JobSubmissionClient(f"http://127.0.0.1:{dashboard_port}", headers={"Authorization": f"Bearer {token}"})
        job_id = client.submit_job(
            entrypoint=f"python -m lam_platform.ray_jobs.pretrain --config tiny --workdir {tiny_world.root}",
            runtime_env={"working_dir": str(ROOT), "excludes": EXCLUDES},
        )
        deadline = time.time() + 300
        while (status := client.get_job_status(job_id)) not in {
            JobStatus.SUCCEEDED,
            JobStatus.FAILED,
            JobStatus.STOPPED,
        }:
            assert time.time() < deadline, f"job {job_id} still {status} after 300 s"
            time.sleep(2)
        logs = client.get_job_logs(job_id)
        assert status == JobStatus.SUCCEEDED, logs[-3000:]
        assert '"artifact"' in logs and (tiny_world.artifacts).exists()
    finally:
        _stop(head)
        head_log.close()
        shutil.rmtree(temp_dir, ignore_errors=True)


def _wait_for_dashboard(port: int, head: subprocess.Popen, log: Path, timeout_s: float = 120) -> None:
    """Poll the head's HTTP endpoint until it answers (`ray start --block` returns only when stopped)."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        assert head.poll() is None, f"`ray start --head` exited with {head.returncode}: {log.read_text()[-3000:]}"
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/version", timeout=2)
            return
        except urllib.error.HTTPError:
            return  # it answers (401 when the token is required): the server is up
        except OSError:
            time.sleep(1)
    raise AssertionError(f"the Ray dashboard on port {port} did not answer within {timeout_s} s")


def _stop(head: subprocess.Popen) -> None:
    """SIGTERM makes `ray start --block` stop the processes it started; the group kill catches stragglers."""
    head.terminate()
    try:
        head.wait(timeout=60)
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(head.pid, signal.SIGKILL)
