"""`larserve serve` over HTTP/REST against NVIDIA's own HTTP client (tritonclient.http, unmodified,
from PyPI) and curl, on loopback ports chosen at run time: health, metadata, configuration,
inference with JSON and binary tensors equal to our engine in-process, concurrency with request
ids kept, statistics shared with gRPC, the right HTTP codes and messages for bad requests (the
server keeps serving after each), unload/load, and the Prometheus metrics endpoint."""
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_util import (IN, LARSERVE, MODEL, OUT_EM, OUT_MI, Server, have_serve, local_scores,  # noqa: E402
                        make_repo, patches)
from serve_util import repo  # noqa: E402,F401  (a fixture)

httpclient = pytest.importorskip("tritonclient.http")
grpcclient = pytest.importorskip("tritonclient.grpc")
from tritonclient.utils import InferenceServerException  # noqa: E402

pytestmark = pytest.mark.skipif(not have_serve(http=True), reason=f"no larserve with the HTTP server at {LARSERVE}")


@pytest.fixture(scope="module")
def server(repo):
    s = Server(repo, "--max-message-mb", "16", http=True)
    yield s
    assert s.stop() == 0


@pytest.fixture(scope="module")
def client(server):
    return httpclient.InferenceServerClient(server.http)


def infer(client, x, binary=True, request_id="", outputs=None, model=MODEL, version=""):
    inp = httpclient.InferInput(IN, list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=binary)
    if outputs is None:
        outputs = [httpclient.InferRequestedOutput(o, binary_data=binary) for o in (OUT_EM, OUT_MI)]
    return client.infer(model, [inp], model_version=version, request_id=request_id, outputs=outputs)


def request(url, method, path, body=None, headers=None):
    """A raw HTTP request (for what tritonclient would not send): (status, headers, body bytes)."""
    conn = http.client.HTTPConnection(url, timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        conn.close()


def test_health_metadata_config_index(client):
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready(MODEL) and client.is_model_ready(MODEL, "1")
    assert not client.is_model_ready(MODEL, "2") and not client.is_model_ready("broken")
    meta = client.get_server_metadata()
    assert meta["name"] == "larserve" and "binary_tensor_data" in meta["extensions"]
    md = client.get_model_metadata(MODEL)
    assert md["name"] == MODEL and md["versions"] == ["1"] and md["platform"] == "onnxruntime_onnx"
    assert [(t["name"], t["datatype"], t["shape"]) for t in md["inputs"]] == [(IN, "FP32", [-1, 48, 48, 1])]
    assert [(t["name"], t["shape"]) for t in md["outputs"]] == [(OUT_EM, [-1, 3]), (OUT_MI, [-1, 1])]
    assert client.get_model_metadata(MODEL, "1") == md
    cfg = client.get_model_config(MODEL)
    assert cfg["max_batch_size"] == 1024 and cfg["input"][0]["name"] == IN
    assert cfg["input"][0]["dims"] == [48, 48, 1]  # 64-bit integers as numbers, as Triton writes them
    assert cfg["dynamic_batching"]["max_queue_delay_microseconds"] == 20000
    index = {(m["name"], m["version"]): m for m in client.get_model_repository_index()}
    assert index[(MODEL, "1")]["state"] == "READY"
    broken = [m for (name, _), m in index.items() if name == "broken"]
    assert broken and broken[0]["state"] == "UNAVAILABLE" and broken[0]["reason"], broken


def test_infer_binary_and_json_equal_our_engine_in_process(client, tmp_path):
    x = patches(64, 1)
    em, mi = local_scores(x, tmp_path)
    for binary in (True, False):
        r = infer(client, x, binary=binary, request_id=f"req-{binary}")
        resp = r.get_response()
        assert resp["id"] == f"req-{binary}" and resp["model_name"] == MODEL and resp["model_version"] == "1"
        for o in resp["outputs"]:
            assert ("binary_data_size" in o.get("parameters", {})) == binary, o.keys()
            assert ("data" in o) == (not binary)
        np.testing.assert_allclose(r.as_numpy(OUT_EM), em, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(r.as_numpy(OUT_MI), mi, rtol=1e-5, atol=1e-7)
    # JSON input, binary outputs (no outputs named: the client asks for binary_data_output).
    inp = httpclient.InferInput(IN, [3, 48, 48, 1], "FP32")
    inp.set_data_from_numpy(x[:3], binary_data=False)
    r = client.infer(MODEL, [inp])
    np.testing.assert_allclose(r.as_numpy(OUT_EM), em[:3], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(r.as_numpy(OUT_MI), mi[:3], rtol=1e-5, atol=1e-7)
    # Only the requested output.
    r = infer(client, x[:2], outputs=[httpclient.InferRequestedOutput(OUT_MI, binary_data=True)])
    assert r.as_numpy(OUT_EM) is None
    np.testing.assert_allclose(r.as_numpy(OUT_MI), mi[:2], rtol=1e-5, atol=1e-7)


def test_async_infer_concurrency_keeps_ids_and_forms_batches(server, client, tmp_path):
    before = client.get_inference_statistics(MODEL)["model_stats"][0]
    n = 48
    x = patches(n, 2)
    em, mi = local_scores(x, tmp_path)
    c = httpclient.InferenceServerClient(server.http, concurrency=8)
    pending = []
    for i in range(n):
        inp = httpclient.InferInput(IN, [1, 48, 48, 1], "FP32")
        inp.set_data_from_numpy(x[i:i + 1])
        pending.append((i, c.async_infer(MODEL, [inp], request_id=f"a{i}")))
    for i, p in pending:
        r = p.get_result(timeout=60)
        assert r.get_response()["id"] == f"a{i}"
        np.testing.assert_allclose(r.as_numpy(OUT_EM), em[i:i + 1], rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(r.as_numpy(OUT_MI), mi[i:i + 1], rtol=1e-5, atol=1e-7)
    c.close()
    after = client.get_inference_statistics(MODEL)["model_stats"][0]
    assert after["inference_stats"]["success"]["count"] - before["inference_stats"]["success"]["count"] == n
    assert after["inference_count"] - before["inference_count"] == n
    # Eight connections waiting at once within a 20 ms queue delay: batches form.
    assert after["execution_count"] - before["execution_count"] < n
    assert any(b["batch_size"] > 1 for b in after["batch_stats"])
    s = after["inference_stats"]
    for key in ("success", "queue", "compute_input", "compute_infer", "compute_output"):
        assert s[key]["count"] >= n and s[key]["ns"] > 0, key


def test_more_open_connections_than_a_fixed_pool_had_workers(server, tmp_path):
    """httplib ties a worker to each open (keep-alive) connection; workers now start as
    connections arrive, so 40 connections held open at once (the fixed pool had 16 workers) are
    all answered, each at once, not after another connection's 5 s keep-alive timeout."""
    x = patches(1, 5)
    em, _ = local_scores(x, tmp_path)
    body = json.dumps({"inputs": [{"name": IN, "datatype": "FP32", "shape": [1, 48, 48, 1],
                                   "data": x.ravel().tolist()}],
                       "outputs": [{"name": OUT_EM}]})
    conns = [http.client.HTTPConnection(server.http, timeout=3) for _ in range(40)]
    try:
        for round_ in range(2):  # the second round reuses the kept-alive connections
            for k, conn in enumerate(conns):
                conn.request("POST", f"/v2/models/{MODEL}/infer", body=body,
                             headers={"Content-Type": "application/json"})
                r = conn.getresponse()
                out = json.loads(r.read())
                assert r.status == 200, (round_, k, out)
                got = np.array(out["outputs"][0]["data"], dtype=np.float32).reshape(1, 3)
                np.testing.assert_allclose(got, em, rtol=1e-5, atol=1e-7)
    finally:
        for conn in conns:
            conn.close()


def test_a_burst_of_connections_is_not_reset(server):
    """perf_analyzer at concurrency 64 opens its connections at once and sends at once. httplib
    listens with a backlog of 5: the kernel dropped handshakes past it and reset connections
    that had already sent ("Failure when receiving data from the peer"). Every one of 256
    connections opened in one burst, each sending its request before any is answered, gets 200."""
    import socket
    host, port = server.http.rsplit(":", 1)
    request = (f"GET /v2/models/{MODEL}/ready HTTP/1.1\r\nHost: x\r\n\r\n").encode()
    socks = []
    try:
        for _ in range(256):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            s.connect_ex((host, int(port)))
            socks.append(s)
        for s in socks:
            s.setblocking(True)
            s.settimeout(30)
            s.sendall(request)
        failures = []
        for k, s in enumerate(socks):
            try:
                reply = s.recv(4096)
                if not reply.startswith(b"HTTP/1.1 200"):
                    failures.append((k, reply[:40]))
            except OSError as e:
                failures.append((k, repr(e)))
        assert not failures, failures[:5]
    finally:
        for s in socks:
            s.close()


def test_grpc_and_http_requests_share_statistics(server, client):
    g = grpcclient.InferenceServerClient(server.grpc)
    before = client.get_inference_statistics(MODEL, "1")["model_stats"][0]
    infer(client, patches(2, 3))
    inp = grpcclient.InferInput(IN, [3, 48, 48, 1], "FP32")
    inp.set_data_from_numpy(patches(3, 4))
    g.infer(MODEL, [inp])
    after = client.get_inference_statistics(MODEL, "1")["model_stats"][0]
    assert after["inference_stats"]["success"]["count"] - before["inference_stats"]["success"]["count"] == 2
    assert after["inference_count"] - before["inference_count"] == 5
    # Both frontends report the same numbers.
    gs = g.get_inference_statistics(MODEL).model_stats[0]
    assert gs.inference_count == after["inference_count"] and gs.execution_count == after["execution_count"]
    assert gs.inference_stats.success.count == after["inference_stats"]["success"]["count"]
    everything = client.get_inference_statistics()["model_stats"]
    assert [(m["name"], m["version"]) for m in everything] == [(MODEL, "1")]


@pytest.mark.skipif(shutil.which("curl") is None, reason="no curl")
def test_curl(server, tmp_path):
    r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", f"http://{server.http}/v2/health/ready"],
                       capture_output=True, text=True, timeout=60)
    assert r.stdout == "200", r
    x = patches(2, 5)
    em, mi = local_scores(x, tmp_path)
    # Nested data, as people write it by hand.
    body = {"id": "curl-1", "inputs": [{"name": IN, "shape": [2, 48, 48, 1], "datatype": "FP32", "data": x.tolist()}]}
    (tmp_path / "req.json").write_text(json.dumps(body))
    r = subprocess.run(["curl", "-s", "-w", "\n%{http_code}", "-H", "Content-Type: application/json",
                        "--data-binary", f"@{tmp_path / 'req.json'}", f"http://{server.http}/v2/models/{MODEL}/infer"],
                       capture_output=True, text=True, timeout=60)
    text, code = r.stdout.rsplit("\n", 1)
    assert code == "200", r.stdout[:500]
    resp = json.loads(text)
    assert resp["id"] == "curl-1"
    out = {o["name"]: np.array(o["data"], dtype=np.float32).reshape(o["shape"]) for o in resp["outputs"]}
    np.testing.assert_allclose(out[OUT_EM], em, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(out[OUT_MI], mi, rtol=1e-5, atol=1e-7)


def binary_request(x_bytes, shape, datatype="FP32", name=IN, size=None, extra=b"", header_length=None):
    """An infer request in the binary tensor extension, built by hand: (body, headers)."""
    header = json.dumps({"inputs": [{"name": name, "shape": shape, "datatype": datatype,
                                     "parameters": {"binary_data_size": len(x_bytes) if size is None else size}}]})
    body = header.encode() + x_bytes + extra
    return body, {"Inference-Header-Content-Length": str(len(header) if header_length is None else header_length),
                  "Content-Type": "application/octet-stream"}


def json_request(data, shape, datatype="FP32", name=IN, **more):
    return json.dumps({"inputs": [{"name": name, "shape": shape, "datatype": datatype, "data": data}], **more}).encode(), \
        {"Content-Type": "application/json"}


ONE = patches(1, 6)
SHAPE = [1, 48, 48, 1]
BAD_REQUESTS = {
    # case: (path, (body, headers), HTTP code, text in the error)
    "unknown model": (f"/v2/models/nosuch/infer", lambda: binary_request(ONE.tobytes(), SHAPE), 404, "nosuch"),
    "unknown version": (f"/v2/models/{MODEL}/versions/7/infer", lambda: binary_request(ONE.tobytes(), SHAPE), 404,
                        "version 7"),
    "input name": (None, lambda: binary_request(ONE.tobytes(), SHAPE, name="wrong_name"), 400, "wrong_name"),
    "shape": (None, lambda: binary_request(ONE.tobytes(), [1, 48, 48]), 400, "shape"),
    "datatype": (None, lambda: binary_request(ONE.astype(np.float64).tobytes(), SHAPE, datatype="FP64"), 400, "FP64"),
    "byte count": (None, lambda: binary_request(ONE.tobytes()[:-4], SHAPE), 400, "bytes, expected 9216"),
    "binary size beyond the body": (None, lambda: binary_request(ONE.tobytes(), SHAPE, size=9220), 400, "remain"),
    "bytes left over": (None, lambda: binary_request(ONE.tobytes(), SHAPE, extra=b"1234"), 400, "add up to"),
    "bad header length": (None, lambda: binary_request(ONE.tobytes(), SHAPE, header_length=10 ** 9), 400,
                          "Inference-Header-Content-Length"),
    "json value count": (None, lambda: json_request([1.0] * 100, SHAPE), 400, "100 values"),
    "json value type": (None, lambda: json_request(["a"] * 2304, SHAPE), 400, "not a number"),
    "no inputs": (None, lambda: (b'{"id": "x"}', {}), 400, "inputs"),
    "malformed json": (None, lambda: (b'{"inputs": [', {}), 400, "not valid JSON"),
    "batch above max": (None, lambda: binary_request(patches(1025, 7).tobytes(), [1025, 48, 48, 1]), 400, "1024"),
    "classification": (None, lambda: json_request(ONE.ravel().tolist(), SHAPE,
                                                  outputs=[{"name": OUT_EM, "parameters": {"classification": 2}}]),
                       501, "classification"),
    # 2000 patches = 18 MB > --max-message-mb 16.
    "oversized body": (None, lambda: binary_request(patches(2000, 8).tobytes(), [2000, 48, 48, 1]), 413, "limit"),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_requests_get_the_right_code_and_the_server_keeps_serving(server, client, case):
    path, make, code, text = BAD_REQUESTS[case]
    body, headers = make()
    status, _, raw = request(server.http, "POST", path or f"/v2/models/{MODEL}/infer", body, headers)
    error = json.loads(raw)["error"]
    assert status == code, (status, error)
    assert text.lower() in error.lower(), error
    if code == 400 and case not in ("malformed json", "no inputs", "bytes left over", "bad header length"):
        assert "main_input" in error or "wrong_name" in error or MODEL in error, error
    # Still serving.
    assert infer(client, ONE).as_numpy(OUT_EM).shape == (1, 3)


def test_errors_through_tritonclient_and_other_endpoints(server, client):
    bad = httpclient.InferInput("wrong_name", SHAPE, "FP32")
    bad.set_data_from_numpy(ONE)
    with pytest.raises(InferenceServerException) as e:
        client.infer(MODEL, [bad])
    assert e.value.status() == "400" and "wrong_name" in e.value.message() and MODEL in e.value.message()
    with pytest.raises(InferenceServerException) as e:
        client.get_model_metadata("nosuch")
    assert e.value.status() == "404"
    status, _, raw = request(server.http, "GET", "/v2/no/such/path")
    assert status == 404 and "error" in json.loads(raw)
    status, _, raw = request(server.http, "GET", "/v2/cudasharedmemory/status")
    assert status == 501 and "CUDA shared memory" in json.loads(raw)["error"]
    status, _, raw = request(server.http, "POST", "/v2/repository/models/broken/load", b"{}")
    assert status != 200 and "broken" in json.loads(raw)["error"]
    assert client.is_server_live()


def test_system_shared_memory(server, client, tmp_path):
    """Triton's system shared memory extension through tritonclient.http and
    tritonclient.utils.shared_memory: inputs read from and outputs written to registered regions
    (at offsets), the status of the regions, regions registered over HTTP used over gRPC and the
    other way round, and clear errors for bad regions, offsets and sizes."""
    shm = pytest.importorskip("tritonclient.utils.shared_memory")
    n = 3
    x = patches(n, 6)
    em, mi = local_scores(x, tmp_path)
    in_bytes, em_bytes, mi_bytes = x.nbytes, em.nbytes, mi.nbytes
    key = f"/larserve_test_http_{os.getpid()}"
    h = shm.create_shared_memory_region("io", key, 64 + in_bytes + em_bytes + mi_bytes)
    g = grpcclient.InferenceServerClient(server.grpc)
    try:
        shm.set_shared_memory_region(h, [x], offset=64)
        client.unregister_system_shared_memory()
        client.register_system_shared_memory("io", key, 64 + in_bytes + em_bytes + mi_bytes)
        status = client.get_system_shared_memory_status()
        assert status == [{"name": "io", "key": key, "offset": 0,
                           "byte_size": 64 + in_bytes + em_bytes + mi_bytes}], status
        assert client.get_system_shared_memory_status("io") == status
        # The same region seen through gRPC (one manager for both frontends, as in Triton).
        gstatus = g.get_system_shared_memory_status()
        assert list(gstatus.regions) == ["io"] and gstatus.regions["io"].key == key

        inp = httpclient.InferInput(IN, [n, 48, 48, 1], "FP32")
        inp.set_shared_memory("io", in_bytes, offset=64)
        out_em = httpclient.InferRequestedOutput(OUT_EM)
        out_em.set_shared_memory("io", em_bytes, offset=64 + in_bytes)
        out_mi = httpclient.InferRequestedOutput(OUT_MI, binary_data=True)  # not in shared memory
        r = client.infer(MODEL, [inp], outputs=[out_em, out_mi])
        got = {o["name"]: o for o in r.get_response()["outputs"]}
        # As Triton: an output written to shared memory comes back as name, datatype and shape only
        # (NVIDIA's C++ HTTP client reads "binary_data_size" from any output with parameters).
        assert got[OUT_EM] == {"name": OUT_EM, "datatype": "FP32", "shape": [n, 3]}, got[OUT_EM]
        np.testing.assert_allclose(shm.get_contents_as_numpy(h, np.float32, [n, 3], offset=64 + in_bytes),
                                   em, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(r.as_numpy(OUT_MI), mi, rtol=1e-5, atol=1e-7)

        # A region registered over gRPC, at an offset into the object, used over HTTP.
        client.unregister_system_shared_memory("io")
        assert client.get_system_shared_memory_status() == []
        g.register_system_shared_memory("in_only", key, in_bytes, offset=64)
        inp = httpclient.InferInput(IN, [n, 48, 48, 1], "FP32")
        inp.set_shared_memory("in_only", in_bytes)
        r = client.infer(MODEL, [inp])
        np.testing.assert_allclose(r.as_numpy(OUT_EM), em, rtol=1e-5, atol=1e-7)

        def fails(call, *words, code="400"):
            with pytest.raises(InferenceServerException) as e:
                call()
            assert e.value.status() == code, e.value
            for w in words:
                assert w in e.value.message(), (w, e.value.message())

        fails(lambda: client.register_system_shared_memory("in_only", key, 16), "already registered")
        fails(lambda: client.register_system_shared_memory("nokey", "/larserve_no_such_key", 16), "unable to open",
              "/larserve_no_such_key")
        fails(lambda: client.register_system_shared_memory("big", key, 64 + in_bytes + em_bytes + mi_bytes + 1),
              "exceeds the object's")
        fails(lambda: client.register_system_shared_memory("empty", key, 0), "byte_size must be positive")
        fails(lambda: client.get_system_shared_memory_status("nosuch"), "nosuch", code="404")
        bad = httpclient.InferInput(IN, [n, 48, 48, 1], "FP32")
        bad.set_shared_memory("nosuch", in_bytes)
        fails(lambda: client.infer(MODEL, [bad]), "no shared memory region 'nosuch'", IN)
        bad.set_shared_memory("in_only", in_bytes, offset=4)
        fails(lambda: client.infer(MODEL, [bad]), "exceeds the", "in_only")
        bad = httpclient.InferInput(IN, [n, 48, 48, 1], "FP32")
        bad.set_shared_memory("in_only", in_bytes - 4)
        fails(lambda: client.infer(MODEL, [bad]), "shared_memory_byte_size", str(in_bytes))
        small = httpclient.InferRequestedOutput(OUT_EM)
        small.set_shared_memory("in_only", em_bytes - 4)
        fails(lambda: client.infer(MODEL, [inp], outputs=[small]), "too small", OUT_EM)
        # Unregistering everything (an unknown name is no error, as in Triton).
        client.unregister_system_shared_memory("nosuch")
        client.unregister_system_shared_memory()
        assert client.get_system_shared_memory_status() == []
        fails(lambda: client.infer(MODEL, [inp]), "no shared memory region 'in_only'")
        assert client.is_server_live()
    finally:
        client.unregister_system_shared_memory()
        shm.destroy_shared_memory_region(h)


def metric_values(text, name):
    return {m.group(1): float(m.group(2))
            for m in re.finditer(rf'^{name}\{{model="([^"]+)",version="1"\}} (\S+)$', text, re.M)}


def test_metrics(server, client):
    with urllib.request.urlopen(f"http://{server.metrics}/metrics", timeout=60) as r:
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = r.read().decode()
    names = ["nv_inference_request_success", "nv_inference_request_failure", "nv_inference_count",
             "nv_inference_exec_count", "nv_inference_pending_request_count", "nv_inference_request_duration_us",
             "nv_inference_queue_duration_us", "nv_inference_compute_input_duration_us",
             "nv_inference_compute_infer_duration_us", "nv_inference_compute_output_duration_us"]
    for name in names:
        assert f"# HELP {name} " in text and f"# TYPE {name} " in text, name
        assert MODEL in metric_values(text, name), name
    assert "# TYPE nv_inference_count counter" in text
    assert "# TYPE nv_inference_pending_request_count gauge" in text
    stats = client.get_inference_statistics(MODEL)["model_stats"][0]
    s = stats["inference_stats"]
    assert metric_values(text, "nv_inference_count")[MODEL] == stats["inference_count"]
    assert metric_values(text, "nv_inference_exec_count")[MODEL] == stats["execution_count"]
    assert metric_values(text, "nv_inference_request_success")[MODEL] == s["success"]["count"]
    assert metric_values(text, "nv_inference_request_failure")[MODEL] == s["fail"]["count"] > 0
    assert metric_values(text, "nv_inference_request_duration_us")[MODEL] == s["success"]["ns"] // 1000 > 0
    assert metric_values(text, "nv_inference_pending_request_count")[MODEL] == 0


def test_metrics_count_the_items_inferred(tmp_path):
    """A fresh server: nv_inference_count is exactly the items inferred, over HTTP and gRPC."""
    s = Server(make_repo(tmp_path / "repo"), http=True)
    try:
        infer(httpclient.InferenceServerClient(s.http), patches(4, 9))
        inp = grpcclient.InferInput(IN, [3, 48, 48, 1], "FP32")
        inp.set_data_from_numpy(patches(3, 10))
        grpcclient.InferenceServerClient(s.grpc).infer(MODEL, [inp])
        with urllib.request.urlopen(f"http://{s.metrics}/metrics", timeout=60) as r:
            text = r.read().decode()
        assert metric_values(text, "nv_inference_count") == {MODEL: 7}
        assert metric_values(text, "nv_inference_request_success") == {MODEL: 2}
        assert metric_values(text, "nv_inference_request_failure") == {MODEL: 0}
        assert 1 <= metric_values(text, "nv_inference_exec_count")[MODEL] <= 2
    finally:
        assert s.stop() == 0


def test_unload_and_load_like_triton(server, client):
    client.unload_model(MODEL)
    assert not client.is_model_ready(MODEL)
    # An unloaded model is unavailable (503), a model never known is not found (404).
    with pytest.raises(InferenceServerException) as e:
        infer(client, patches(1, 11))
    assert e.value.status() == "503" and MODEL in e.value.message(), (e.value.status(), e.value.message())
    status, _, _ = request(server.http, "GET", f"/v2/models/{MODEL}")
    assert status == 503
    with urllib.request.urlopen(f"http://{server.metrics}/metrics", timeout=60) as r:
        assert f'model="{MODEL}"' not in r.read().decode()
    client.load_model(MODEL)
    assert client.is_model_ready(MODEL)
    assert infer(client, patches(1, 11)).as_numpy(OUT_MI).shape == (1, 1)
    with pytest.raises(InferenceServerException):
        client.load_model("broken")
    assert client.is_server_live()


@pytest.mark.parametrize("mode", [["--busy-wait-us", "0", "--run-inline", "grpc,http"],
                                  ["--busy-wait-us", "1000"]], ids=["inline", "busy-wait"])
def test_lone_requests_inline_or_busy_waiting(tmp_path, mode):
    """One-patch requests one after the other, as a latency-bound client sends them, over both
    protocols: run on the frontends' own threads (`--busy-wait-us 0 --run-inline grpc,http`, no
    queue delay so that they may) or handed to the polling instance (the default). Either way each
    runs alone and gets our engine's scores."""
    root = tmp_path / "repo"
    make_repo(root)
    cfg = root / MODEL / "config.pbtxt"
    cfg.write_text(cfg.read_text().replace("max_queue_delay_microseconds: 20000", "max_queue_delay_microseconds: 0"))
    x = patches(6, 11)
    em, mi = local_scores(x, tmp_path)
    s = Server(root, *mode, http=True)
    try:
        h = httpclient.InferenceServerClient(s.http)
        g = grpcclient.InferenceServerClient(s.grpc)
        for i in range(len(x)):
            if i % 2:
                r = infer(h, x[i:i + 1], request_id=f"h{i}")
                assert r.get_response()["id"] == f"h{i}"
            else:
                inp = grpcclient.InferInput(IN, [1, 48, 48, 1], "FP32")
                inp.set_data_from_numpy(x[i:i + 1])
                r = g.infer(MODEL, [inp], request_id=f"g{i}")
                assert r.get_response().id == f"g{i}"
            np.testing.assert_allclose(r.as_numpy(OUT_EM), em[i:i + 1], rtol=1e-5, atol=1e-7)
            np.testing.assert_allclose(r.as_numpy(OUT_MI), mi[i:i + 1], rtol=1e-5, atol=1e-7)
        st = g.get_inference_statistics(MODEL).model_stats[0]
        assert st.inference_count == len(x) and st.execution_count == len(x)
        assert st.inference_stats.success.count == len(x) and st.inference_stats.fail.count == 0
    finally:
        assert s.stop() == 0


@pytest.mark.parametrize("frontend", ["gRPC", "HTTP", "metrics"])
def test_a_second_server_on_a_port_in_use_is_refused(server, client, repo, frontend):
    """gRPC and httplib set SO_REUSEPORT by default, with which a second server binds a port in use
    and silently takes part of its connections: larserve turns it off, so the second one exits
    with an error naming the port, and the first keeps serving."""
    port = server.urls[frontend].rsplit(":", 1)[1]
    ports = {"gRPC": "0", "HTTP": "0", "metrics": "0", frontend: port}
    r = subprocess.run([LARSERVE, "serve", "--model-repository", str(repo), "--grpc-port", ports["gRPC"],
                        "--http-port", ports["HTTP"], "--metrics-port", ports["metrics"], "--threads", "1"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    assert f"cannot serve {frontend} on 127.0.0.1:{port}" in r.stderr, r.stderr
    assert client.is_server_live()
