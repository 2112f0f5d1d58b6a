"""`larserve serve` against NVIDIA's own gRPC client (tritonclient, unmodified, from PyPI) on a
loopback port chosen at run time: health, metadata, configuration, inference equal to our
engine in-process, concurrency with request ids kept, dynamic batches really formed, streaming,
statistics, repository load/unload, and the right gRPC codes for bad requests (the server keeps
serving after each)."""
import os
import queue
import sys
import threading

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_util import IN, LARSERVE, MODEL, OUT_EM, OUT_MI, Server, have_serve, local_scores, patches  # noqa: E402
from serve_util import repo  # noqa: E402,F401  (a fixture)

grpcclient = pytest.importorskip("tritonclient.grpc")
from tritonclient.grpc import service_pb2, service_pb2_grpc  # noqa: E402
from tritonclient.utils import InferenceServerException  # noqa: E402
import grpc  # noqa: E402

pytestmark = pytest.mark.skipif(not have_serve(), reason=f"no larserve with the server at {LARSERVE}")


@pytest.fixture(scope="module")
def server(repo):
    s = Server(repo, "--max-message-mb", "16")
    yield s
    assert s.stop() == 0


@pytest.fixture(scope="module")
def client(server):
    return grpcclient.InferenceServerClient(server.url)


def infer(client, x, request_id="", model=MODEL, version=""):
    inp = grpcclient.InferInput(IN, list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    return client.infer(model, [inp], model_version=version, request_id=request_id)


def test_health_metadata_config_index(client):
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready(MODEL) and client.is_model_ready(MODEL, "1")
    assert not client.is_model_ready(MODEL, "2") and not client.is_model_ready("broken")
    assert client.get_server_metadata().name == "larserve"
    md = client.get_model_metadata(MODEL)
    assert md.name == MODEL and list(md.versions) == ["1"]
    assert [(t.name, t.datatype, list(t.shape)) for t in md.inputs] == [(IN, "FP32", [-1, 48, 48, 1])]
    assert [(t.name, list(t.shape)) for t in md.outputs] == [(OUT_EM, [-1, 3]), (OUT_MI, [-1, 1])]
    cfg = client.get_model_config(MODEL).config
    assert cfg.max_batch_size == 1024 and cfg.input[0].name == IN and cfg.dynamic_batching.max_queue_delay_microseconds == 20000
    index = {(m.name, m.version): m for m in client.get_model_repository_index().models}
    assert index[(MODEL, "1")].state == "READY"
    broken = [m for (name, _), m in index.items() if name == "broken"]
    assert broken and broken[0].state == "UNAVAILABLE" and broken[0].reason, broken


def test_infer_equals_our_engine_in_process(client, tmp_path):
    x = patches(256, 1)
    r = infer(client, x, request_id="req-256")
    assert r.get_response().id == "req-256" and r.get_response().model_version == "1"
    em, mi = local_scores(x, tmp_path)
    np.testing.assert_allclose(r.as_numpy(OUT_EM), em, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(r.as_numpy(OUT_MI), mi, rtol=1e-5, atol=1e-7)
    # Only the requested output, and the typed (non-raw) tensor contents are accepted too.
    inp = grpcclient.InferInput(IN, [2, 48, 48, 1], "FP32")
    inp.set_data_from_numpy(x[:2])
    r = client.infer(MODEL, [inp], outputs=[grpcclient.InferRequestedOutput(OUT_MI)])
    assert r.as_numpy(OUT_EM) is None
    np.testing.assert_allclose(r.as_numpy(OUT_MI), mi[:2], rtol=1e-5, atol=1e-7)


def test_concurrent_clients_keep_ids_and_form_batches(server, client, tmp_path):
    before = client.get_inference_statistics(MODEL).model_stats[0]
    n_threads, per_thread = 8, 6
    x = patches(n_threads * per_thread, 2)
    em, mi = local_scores(x, tmp_path)
    errors = []

    def worker(t):
        c = grpcclient.InferenceServerClient(server.url)  # one channel per client thread
        for k in range(per_thread):
            i = t * per_thread + k
            try:
                r = infer(c, x[i:i + 1], request_id=f"t{t}-{k}")
                assert r.get_response().id == f"t{t}-{k}"
                np.testing.assert_allclose(r.as_numpy(OUT_EM), em[i:i + 1], rtol=1e-5, atol=1e-7)
                np.testing.assert_allclose(r.as_numpy(OUT_MI), mi[i:i + 1], rtol=1e-5, atol=1e-7)
            except Exception as e:  # reported below
                errors.append(e)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]
    after = client.get_inference_statistics(MODEL).model_stats[0]
    requests = n_threads * per_thread
    assert after.inference_stats.success.count - before.inference_stats.success.count == requests
    assert after.inference_count - before.inference_count == requests
    executions = after.execution_count - before.execution_count
    # Eight clients waiting at once within a 20 ms queue delay: batches form.
    assert executions < requests, (executions, requests)
    assert any(b.batch_size > 1 for b in after.batch_stats)
    s = after.inference_stats
    for pair in (s.success, s.queue, s.compute_input, s.compute_infer, s.compute_output):
        assert pair.count >= requests and pair.ns > 0


def test_instance_threads_are_named_for_cpu_accounting(server, client):
    """bench/server_bench.py splits the server's CPU time into its instance threads (named
    lsv-instance, with their intra-op teams) and the rest, by thread name from /proc: a batch of
    1,024 patches is computed on a thread of that name, and it holds most of the server's time."""
    if not os.path.isdir(f"/proc/{server.proc.pid}/task"):
        pytest.skip("no /proc task list on this platform")
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench"))
    import server_bench  # noqa: E402

    x = patches(1024, 5)
    before = server_bench.process_cpu(server.proc.pid)
    for _ in range(3):
        infer(client, x)
    after = server_bench.process_cpu(server.proc.pid)
    assert server_bench.INSTANCE_THREAD in {name for name, _ in after["threads"].values()}
    split = server_bench.server_split(before, after, 1.0)
    assert split["server_instance_cores"] > 0, split
    assert split["server_instance_cores"] > split["server_other_cores"], split
    assert abs(split["server_instance_cores"] + split["server_other_cores"] - split["server_cores"]) < 1e-9


def test_an_idle_open_stream_does_not_keep_the_server_from_stopping(repo):
    """gRPC's Shutdown without a deadline waits for every call: a client holding a ModelStreamInfer
    stream open (idle after its answers) kept SIGTERM from ever stopping the server. After
    --exit-timeout-secs the stream is cancelled and the server exits cleanly."""
    s = Server(repo, "--exit-timeout-secs", "1")
    answers = queue.Queue()
    c = grpcclient.InferenceServerClient(s.url)
    try:
        c.start_stream(callback=lambda result, error: answers.put((result, error)))
        inp = grpcclient.InferInput(IN, [1, 48, 48, 1], "FP32")
        inp.set_data_from_numpy(patches(1, 9))
        c.async_stream_infer(MODEL, [inp], request_id="held")
        result, error = answers.get(timeout=120)
        assert error is None and result.get_response().id == "held"
        assert s.stop() == 0  # stop's wait guards against a hang
    finally:
        c.stop_stream(cancel_requests=True)
        if s.proc.poll() is None:
            s.proc.kill()


def test_stream_keeps_ids(server, tmp_path):
    x = patches(10, 3)
    em, _ = local_scores(x, tmp_path)
    results, done = {}, threading.Event()

    def callback(result, error):
        results[len(results)] = (result, error)
        if len(results) == len(x) + 1:
            done.set()

    c = grpcclient.InferenceServerClient(server.url)
    c.start_stream(callback=callback)
    for i in range(len(x)):
        inp = grpcclient.InferInput(IN, [1, 48, 48, 1], "FP32")
        inp.set_data_from_numpy(x[i:i + 1])
        c.async_stream_infer(MODEL, [inp], request_id=f"s{i}")
    bad = grpcclient.InferInput("no_such_input", [1, 48, 48, 1], "FP32")
    bad.set_data_from_numpy(x[:1])
    c.async_stream_infer(MODEL, [bad], request_id="bad")
    assert done.wait(120)
    c.stop_stream()
    by_id = {}
    for result, error in results.values():
        if error is None:
            by_id[result.get_response().id] = result
        else:
            by_id["error"] = error
    assert "no_such_input" in str(by_id["error"])
    for i in range(len(x)):
        np.testing.assert_allclose(by_id[f"s{i}"].as_numpy(OUT_EM), em[i:i + 1], rtol=1e-5, atol=1e-7)


def raw_request(x_bytes, shape, datatype="FP32", name=IN, model=MODEL, version=""):
    req = service_pb2.ModelInferRequest(model_name=model, model_version=version)
    t = req.inputs.add()
    t.name, t.datatype = name, datatype
    t.shape.extend(shape)
    req.raw_input_contents.append(x_bytes)
    return req


@pytest.mark.parametrize("case,code,text", [
    ("model", grpc.StatusCode.NOT_FOUND, "nosuch"),
    ("version", grpc.StatusCode.NOT_FOUND, "version"),
    ("input name", grpc.StatusCode.INVALID_ARGUMENT, "wrong_name"),
    ("shape", grpc.StatusCode.INVALID_ARGUMENT, "shape"),
    ("datatype", grpc.StatusCode.INVALID_ARGUMENT, "FP64"),
    ("byte count", grpc.StatusCode.INVALID_ARGUMENT, "bytes"),
    ("batch above max", grpc.StatusCode.INVALID_ARGUMENT, "1024"),
    ("oversized message", grpc.StatusCode.RESOURCE_EXHAUSTED, ""),
])
def test_bad_requests_get_the_right_code_and_the_server_keeps_serving(server, client, case, code, text):
    stub = service_pb2_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(
        server.url, options=[("grpc.max_send_message_length", 64 << 20)]))
    one = patches(1, 4)
    shape = [1, 48, 48, 1]
    req = {
        "model": lambda: raw_request(one.tobytes(), shape, model="nosuch"),
        "version": lambda: raw_request(one.tobytes(), shape, version="7"),
        "input name": lambda: raw_request(one.tobytes(), shape, name="wrong_name"),
        "shape": lambda: raw_request(one.tobytes(), [1, 48, 48]),
        "datatype": lambda: raw_request(one.astype(np.float64).tobytes(), shape, datatype="FP64"),
        "byte count": lambda: raw_request(one.tobytes()[:-4], shape),
        "batch above max": lambda: raw_request(patches(1025, 5).tobytes(), [1025, 48, 48, 1]),
        "oversized message": lambda: raw_request(patches(2000, 6).tobytes(), [2000, 48, 48, 1]),  # 18 MB > 16 MiB
    }[case]()
    with pytest.raises(grpc.RpcError) as e:
        stub.ModelInfer(req, timeout=60)
    assert e.value.code() == code, (e.value.code(), e.value.details())
    assert text.lower() in (e.value.details() or "").lower(), e.value.details()
    # Still serving.
    assert infer(client, one).as_numpy(OUT_EM).shape == (1, 3)


def test_system_shared_memory(server, client, tmp_path):
    """Triton's system shared memory extension through tritonclient.grpc and
    tritonclient.utils.shared_memory: an input read from and an output written to a registered
    region (with raw_input_contents for none and the other output sent normally), a streamed
    request using it, the region status, the gRPC codes of bad regions, offsets and sizes, and
    unregistering."""
    shm = pytest.importorskip("tritonclient.utils.shared_memory")
    n = 2
    x = patches(n, 8)
    em, mi = local_scores(x, tmp_path)
    key = f"/larserve_test_grpc_{os.getpid()}"
    size = x.nbytes + em.nbytes
    h = shm.create_shared_memory_region("io", key, size)
    try:
        shm.set_shared_memory_region(h, [x])
        client.unregister_system_shared_memory()
        client.register_system_shared_memory("io", key, size)
        st = client.get_system_shared_memory_status()
        assert list(st.regions) == ["io"]
        assert (st.regions["io"].key, st.regions["io"].offset, st.regions["io"].byte_size) == (key, 0, size)

        inp = grpcclient.InferInput(IN, [n, 48, 48, 1], "FP32")
        inp.set_shared_memory("io", x.nbytes)
        out_em = grpcclient.InferRequestedOutput(OUT_EM)
        out_em.set_shared_memory("io", em.nbytes, offset=x.nbytes)
        r = client.infer(MODEL, [inp], outputs=[out_em, grpcclient.InferRequestedOutput(OUT_MI)])
        resp = r.get_response()
        assert [o.name for o in resp.outputs] == [OUT_EM, OUT_MI] and len(resp.raw_output_contents) == 2
        assert resp.raw_output_contents[0] == b"" and list(resp.outputs[0].shape) == [n, 3]
        assert resp.outputs[0].parameters["shared_memory_region"].string_param == "io"
        np.testing.assert_allclose(shm.get_contents_as_numpy(h, np.float32, [n, 3], offset=x.nbytes),
                                   em, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(r.as_numpy(OUT_MI), mi, rtol=1e-5, atol=1e-7)

        # Streaming: the input from shared memory.
        results = []
        done = threading.Event()

        def callback(result, error):
            results.append((result, error))
            done.set()

        stream_client = grpcclient.InferenceServerClient(server.url)
        stream_client.start_stream(callback=callback)
        stream_client.async_stream_infer(MODEL, [inp], request_id="shm")
        assert done.wait(60)
        stream_client.stop_stream()
        result, error = results[0]
        assert error is None, error
        np.testing.assert_allclose(result.as_numpy(OUT_EM), em, rtol=1e-5, atol=1e-7)

        def fails(call, code, *words):
            with pytest.raises(InferenceServerException) as e:
                call()
            assert e.value.status() == str(code), e.value
            for w in words:
                assert w in e.value.message(), (w, e.value.message())

        fails(lambda: client.register_system_shared_memory("io", key, 16), grpc.StatusCode.ALREADY_EXISTS,
              "already registered")
        fails(lambda: client.register_system_shared_memory("x", "/larserve_no_such_key", 16),
              grpc.StatusCode.INVALID_ARGUMENT, "unable to open")
        fails(lambda: client.register_system_shared_memory("x", key, 16, offset=size),
              grpc.StatusCode.INVALID_ARGUMENT, "exceeds the object's")
        fails(lambda: client.get_system_shared_memory_status("nosuch"), grpc.StatusCode.NOT_FOUND, "nosuch")
        bad = grpcclient.InferInput(IN, [n, 48, 48, 1], "FP32")
        bad.set_shared_memory("io", x.nbytes, offset=em.nbytes + 4)
        fails(lambda: client.infer(MODEL, [bad]), grpc.StatusCode.INVALID_ARGUMENT, "exceeds the", "'io'")
        bad = grpcclient.InferInput(IN, [n, 48, 48, 1], "FP32")
        bad.set_shared_memory("nosuch", x.nbytes)
        fails(lambda: client.infer(MODEL, [bad]), grpc.StatusCode.INVALID_ARGUMENT, "'nosuch'", IN)
        small = grpcclient.InferRequestedOutput(OUT_MI)
        small.set_shared_memory("io", 4)
        fails(lambda: client.infer(MODEL, [inp], outputs=[small]), grpc.StatusCode.INVALID_ARGUMENT,
              "too small", OUT_MI)
        client.unregister_system_shared_memory("io")
        assert list(client.get_system_shared_memory_status().regions) == []
        fails(lambda: client.infer(MODEL, [inp]), grpc.StatusCode.INVALID_ARGUMENT, "'io'")
        assert infer(client, x).as_numpy(OUT_EM).shape == (n, 3)
    finally:
        client.unregister_system_shared_memory()
        shm.destroy_shared_memory_region(h)


def test_unload_and_load(client):
    client.unload_model(MODEL)
    assert not client.is_model_ready(MODEL)
    with pytest.raises(InferenceServerException) as e:
        infer(client, patches(1, 7))
    assert "emtrkmichel" in str(e.value)
    client.load_model(MODEL)
    assert client.is_model_ready(MODEL)
    assert infer(client, patches(1, 7)).as_numpy(OUT_MI).shape == (1, 1)
    with pytest.raises(InferenceServerException):
        client.load_model("broken")
    assert client.is_server_live()
