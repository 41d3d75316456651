"""`medfit tune --workers 2` on a real PostgreSQL server (a throwaway cluster from Debian's binaries): one worker is
killed mid-trial, the other finishes the stage with every trial (the killed one failed by its heartbeat and run again);
the password-carrying URL reaches the spawned worker by environment, never on its command line.

`make test` installs Debian's postgresql when it is missing; without its binaries this test fails (it does not skip)."""
import glob
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import optuna
import psutil
import psycopg
import pytest
from optuna.trial import TrialState

from medfit.config import load_config
from medfit.tune.drivers import driver_url
from medfit.tune.report import write_outputs
from medfit.tune.search import open_storage, stage_study_name

NPZ = "pneumoniamnist/pneumoniamnist_reconstructed.npz"
TRIALS = 2


def pg_binary(name: str) -> str:
    """A PostgreSQL server binary: on PATH, else the newest of Debian's /usr/lib/postgresql/*/bin."""
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)),
                                       None)
    if found is None:
        pytest.fail(f"PostgreSQL's {name} is missing: apt-get install -y postgresql (`make test` does it)")
    return found


def as_server_user(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run it as Debian's postgres user."""
    if os.geteuid() != 0:
        return cmd
    if shutil.which("runuser") is None:
        pytest.fail("running as root without runuser: cannot start PostgreSQL as the postgres user")
    return ["runuser", "-u", "postgres", "--", *cmd]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url():
    """A PostgreSQL cluster in a temporary folder (password authentication, no fsync), its URL; removed afterwards."""
    initdb, pg_ctl = pg_binary("initdb"), pg_binary("pg_ctl")
    folder = Path(tempfile.mkdtemp(prefix="medfit-pg-"))  # under /tmp: pytest's own folders are private to root
    password = secrets.token_urlsafe(12)
    (folder / "pw").write_text(password + "\n")
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
        shutil.chown(folder / "pw", "postgres")
    data, port = folder / "data", free_port()
    subprocess.run(as_server_user([initdb, "-D", str(data), "-U", "medfit", "--pwfile", str(folder / "pw"),
                                   "-A", "scram-sha-256", "--no-sync", "-E", "UTF8"]), check=True,
                   capture_output=True)
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
    subprocess.run(as_server_user([pg_ctl, "-D", str(data), "-o", options, "-l", str(folder / "log"), "-w",
                                   "start"]), check=True, capture_output=True)
    try:
        yield f"postgresql://medfit:{password}@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(as_server_user([pg_ctl, "-D", str(data), "-m", "immediate", "stop"]), capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def tune_yaml(shared_data, tmp_path) -> Path:
    path = tmp_path / "tune.yaml"
    path.write_text(f"""
name: pg-tune
seed: 11
output_dir: {tmp_path / 'runs'}
data: {{source: medmnist, root: {shared_data / NPZ}, image_size: 28, channels: 1, limit_per_split: 64}}
model: {{name: test_resnet}}
train: {{epochs: 1, batch_size: 32, logger: csv, progress_bar: false, optim: {{scheduler: none}}}}
audit: {{near_duplicates: false}}
tune:
  heartbeat_seconds: 1
  pruner: none
  space: {{train.optim.lr: {{type: float, low: 1.0e-4, high: 3.0e-2, log: true}}}}
  stages: [{{name: lr, params: [train.optim.lr], trials: {TRIALS}}}]
""")
    return path


def wait_for(predicate, timeout: float, what: str):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def waiting_on_lock(conn) -> int:
    """Server processes waiting for a lock they asked for (the workers blocked on the held trials table)."""
    return conn.execute("SELECT count(DISTINCT pid) FROM pg_locks WHERE NOT granted").fetchone()[0]


def test_two_workers_on_postgres_finish_the_stage_when_one_is_killed(postgres_url, shared_data, tmp_path):
    assert driver_url(postgres_url).startswith("postgresql+psycopg://")  # psycopg 3, the medfit[postgres] extra
    config = tune_yaml(shared_data, tmp_path)
    storage = open_storage(postgres_url, 1)  # the schema, so that the trials table can be held before any trial
    name = stage_study_name("pg", 0, "lr")
    env = {**os.environ, "MEDFIT_TUNE_STORAGE": postgres_url, "OMP_NUM_THREADS": "1"}
    with psycopg.connect(postgres_url, autocommit=True) as watch, psycopg.connect(postgres_url) as hold:
        # both workers take their first trial together: the trials table is held until both wait on it (else the
        # first worker, started seconds earlier, may run the whole stage before the second has imported torch)
        hold.execute("LOCK TABLE trials IN EXCLUSIVE MODE")
        tuner = subprocess.Popen([sys.executable, "-m", "medfit.commands.tune", str(config), "--study", "pg",
                                  "--workers", "2"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True)
        try:
            worker = wait_for(lambda: next((c for c in psutil.Process(tuner.pid).children()
                                            if "--worker-index" in c.cmdline()), None), 240, "the spawned worker")
            assert urlsplit(postgres_url).password not in " ".join(worker.cmdline())  # off `ps`
            assert worker.environ()["MEDFIT_TUNE_STORAGE"] == postgres_url  # by environment
            wait_for(lambda: waiting_on_lock(watch) >= 2, 240, "both workers to ask for a trial")
            hold.commit()

            def running_on_worker():
                trials = optuna.load_study(study_name=name, storage=storage).trials
                return next((t for t in trials if t.state == TrialState.RUNNING
                             and t.user_attrs.get("worker", "").endswith(f":{worker.pid}")), None)

            killed = wait_for(running_on_worker, 120, "a trial running on the spawned worker")
            worker.send_signal(signal.SIGKILL)
            out, err = tuner.communicate(timeout=300)
        finally:
            if tuner.poll() is None:
                tuner.kill()
    assert tuner.returncode == 1, out + err  # worker 0 finished the stage, then reports the lost worker
    assert "1 of 1 spawned workers failed" in err
    study = optuna.load_study(study_name=name, storage=storage)
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == TRIALS and not study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))
    assert study.trials[killed.number].state == TrialState.FAIL  # failed once its heartbeat went stale
    retried = [t for t in complete if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retried) == 1 and retried[0].params == killed.params
    assert {t.user_attrs["worker"] for t in complete} == {f"{socket.gethostname()}:{tuner.pid}"}

    summary = write_outputs(load_config(config), "pg", postgres_url)  # what rerunning the command finishes with
    best = max(complete, key=lambda t: t.value)
    assert summary["stages"][0]["best_value"] == pytest.approx(best.value)
    assert summary["stages"][0]["best_params"] == best.params
