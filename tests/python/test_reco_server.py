"""`larserve reco --server` (through `larserve serve` and the larserve client library) gives the
same per-hit scores as `reco --local` (FP32, 1e-5 relative), and handles a dead server: a clear
error without --fallback, local inference with it."""
import json
import os
import shutil
import socket
import subprocess
import sys

import h5py
import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_util import LARSERVE, MODEL_FILE, SRC, Server, have_serve  # noqa: E402

pytestmark = pytest.mark.skipif(not have_serve(), reason=f"no larserve with the server at {LARSERVE}")


def run(*args):
    r = subprocess.run([LARSERVE, *args], capture_output=True, text=True)
    return r


@pytest.fixture(scope="module")
def events(tmp_path_factory):
    d = tmp_path_factory.mktemp("reco_server")
    r = run("sim", "--events", "1", "--seed", "11", "-o", str(d / "ev.h5"))
    assert r.returncode == 0, r.stderr
    return d


@pytest.fixture(scope="module")
def server(events):
    repo = events / "repo"
    shutil.copytree(os.path.join(SRC, "models", "emtrkmichel"), repo / "emtrkmichel")
    s = Server(repo)
    yield s.grpc
    assert s.stop() == 0


def scores(path):
    with h5py.File(path) as f:
        return f["hits/scores"][:], f["hits/wire"][:]


def test_server_scores_equal_local(events, server):
    local = run("reco", str(events / "ev.h5"), "--local", "--model", MODEL_FILE, "-o", str(events / "local.h5"),
                "--threads", "1", "--json")
    assert local.returncode == 0, local.stderr
    remote = run("reco", str(events / "ev.h5"), "--server", server, "-o", str(events / "remote.h5"),
                 "--threads", "1", "--json")
    assert remote.returncode == 0, remote.stderr
    lj, rj = json.loads(local.stdout), json.loads(remote.stdout)
    assert rj["mode"] == "server" and rj["hits"] == lj["hits"] > 1000
    # Patches as float32, as sent: at least the patch bytes went over the wire.
    assert rj["client"]["raw_bytes_sent"] == rj["patch_bytes"] and rj["client"]["retries"] == 0
    a, wa = scores(events / "local.h5")
    b, wb = scores(events / "remote.h5")
    assert (wa == wb).all()
    np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-7)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_dead_server_error_and_fallback(events):
    dead = f"127.0.0.1:{free_port()}"
    r = run("reco", str(events / "ev.h5"), "--server", dead, "-o", str(events / "x.h5"), "--retries", "2",
            "--deadline-ms", "2000")
    err = r.stderr.lower()
    assert r.returncode == 1 and ("unavailable" in err or "connect" in err), r.stderr
    r = run("reco", str(events / "ev.h5"), "--server", dead, "--fallback", "--model", MODEL_FILE, "--retries", "2",
            "-o", str(events / "fb.h5"), "--json")
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)
    assert j["client"]["fallbacks"] > 0
    a, _ = scores(events / "fb.h5")
    assert a.shape[0] == j["hits"]


def test_local_and_server_together_refused(events, server):
    r = run("reco", str(events / "ev.h5"), "--local", "--server", server, "-o", str(events / "y.h5"))
    assert r.returncode == 1 and "either --local" in r.stderr
