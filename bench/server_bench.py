#!/usr/bin/env python3
"""Load benchmark of `larserve serve` with NVIDIA's perf_analyzer, against the same engine in-process.

    .venv/bin/python bench/server_bench.py [--protocols grpc,grpc-stream,http] [--batches 1,256]
        [--concurrency 1,2,4,8,16,32,64] [--window-ms 2000] [--threads 0[,1,...]] [--rounds 1]
        [--out server.json]
        [--larserve build/cpu-release/src/apps/larserve] [--perf-analyzer .venv/bin/perf_analyzer]
        [--model-repository models] [--model emtrkmichel] [--grpc-url H:P --http-url H:P]

What is measured. perf_analyzer (unmodified, scripts/setup.sh) sends requests of --batches
patches from `concurrency` synchronous clients, for every protocol, batch and concurrency, one
perf_analyzer run each (time windows of --window-ms, repeated until stable). Protocol `grpc` is
unary ModelInfer, `grpc-stream` the bidirectional ModelStreamInfer (perf_analyzer --streaming),
`http` the REST API with binary tensors. From its verbose
CSV: throughput, client latency percentiles and the server's own breakdown (ModelStatistics:
queue, compute input/infer/output, averages per request); from its report, the server's
inference and execution counts, hence the average batch the dynamic batcher formed.

The reference: `larserve exec` of the very same engine in-process. The model's ONNX file is built
once into a plan with the profile the server derives from config.pbtxt (batch 1:OPT:MAX, OPT =
the largest preferred batch size, else min(max_batch_size, 256); MAX = max_batch_size; cpu
backend; tactics timed at OPT with --threads intra-op threads) and the server is given that plan
(a copy of the model's folder whose config.pbtxt names model.plan), so both run the same
optimised graph with the same kernel choices and thread count. The server runs one instance
thread per instance_group count, each with its own execution context; `exec` runs as many
contexts (--threads N) with the same intra-op threads, with denormals flushed to zero as the
server's instance threads do (`exec --ftz`). --serve-onnx serves the repository as it
is instead (the server then builds and times its own engine). The in-process runs come first,
with no server running. Each --threads value is a full pass (plan, in-process, server, sweep).
`--serve-args` passes more options to `larserve serve` (e.g. `--run-inline http`).
`--shared-memory system` has perf_analyzer pass tensors through system shared memory regions
(Triton's extension for clients on the same node) rather than in the request and response.

Noisy hosts: with --rounds N the in-process runs and the server sweep alternate N times (the server
restarted for each sweep, the in-process runs with no server running), ending with in-process
runs, and each sweep is compared with the mean of the in-process runs just before and just after
it; the summary gives the median ratio over the rounds per level.
Results: docs/perf/server.md.

Added latency of one-patch requests: perf_analyzer's p50 at batch 1, concurrency 1, minus the
in-process p50 at batch 1 (per protocol).

Cores: over every perf_analyzer run, the CPU seconds per second of the server's instance threads
(named lsv-instance, with their OpenMP teams; from /proc/PID/task), of its other threads, of
perf_analyzer (rusage of the finished child) and of the whole machine (/proc/stat); over every
`exec` run, exec's own. On a machine that server and client share, the instances' share of the
cores bounds the throughput against in-process.

Needs only the Python standard library (it runs on the GPU machine from scripts/device_bundle.sh,
where tritonclient is absent). Prints a table; --out writes the raw numbers, the commands, the
commit and the machine as JSON. When the load tool and the server share a machine's cores (as on a
small VM), the numbers include that contention.
"""
import argparse
import csv
import datetime
import json
import os
import platform
import re
import resource
import statistics
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

SRC = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HANG_GUARD_S = 1800  # a stuck process is killed; nothing is judged by time


def ints(text):
    return [int(v) for v in text.split(",") if v.strip()]


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--larserve", default=os.path.join(SRC, "build/cpu-release/src/apps/larserve"),
                    help="larserve binary or wrapper script (e.g. the device bundle's larserve.sh)")
    ap.add_argument("--perf-analyzer", default=None,
                    help="perf_analyzer or its wrapper (default: $PERF_ANALYZER, else .venv/bin/perf_analyzer)")
    ap.add_argument("--model-repository", default=os.path.join(SRC, "models"))
    ap.add_argument("--model", default="emtrkmichel")
    ap.add_argument("--threads", default="0",
                    help="intra-op threads of each instance's engine, server and in-process alike (0 = as "
                         "`larserve serve --threads 0`: the cores, less a quarter on 8 or more, divided "
                         "among the config's instances); "
                         "a comma list measures each in turn")
    ap.add_argument("--protocols", default="grpc",
                    help="comma list of grpc (unary ModelInfer), grpc-stream (ModelStreamInfer, "
                         "perf_analyzer --streaming), http")
    ap.add_argument("--shared-memory", choices=["none", "system"], default="none",
                    help="perf_analyzer --shared-memory: system puts every request's inputs and "
                         "outputs in POSIX shared memory regions registered with the server (Triton's "
                         "extension, for clients on the same node) instead of in the messages")
    ap.add_argument("--rounds", type=int, default=1,
                    help="alternate in-process runs and server sweeps this many times (noisy hosts)")
    ap.add_argument("--batches", default="1,256", help="patches per request, comma list")
    ap.add_argument("--concurrency", default="1,2,4,8,16,32,64", help="concurrent requests, comma list")
    ap.add_argument("--window-ms", type=int, default=2000, help="perf_analyzer's measurement window")
    ap.add_argument("--stability-percentage", type=float, default=10,
                    help="perf_analyzer -s (its default 10); a level not stable within it is measured again "
                         "at 3x, then 10x, and marked")
    ap.add_argument("--max-trials", type=int, default=10, help="perf_analyzer -r")
    ap.add_argument("--exec-seconds", type=float, default=5, help="measurement time of each `larserve exec`")
    ap.add_argument("--grpc-url", help="measure a running server at HOST:PORT instead of starting one")
    ap.add_argument("--http-url", help="its HTTP address, for --protocols http")
    ap.add_argument("--http-threads", type=int, default=0,
                    help="larserve serve --http-threads; 0: the server's default (workers start as "
                         "connections arrive)")
    ap.add_argument("--serve-args", default="",
                    help="more `larserve serve` arguments, one string (e.g. \"--run-inline http\")")
    ap.add_argument("--serve-onnx", action="store_true",
                    help="serve the repository's model as it is rather than the in-process plan")
    ap.add_argument("--work-dir", help="keep the plan, repository, CSVs and logs here (default: a temporary folder)")
    ap.add_argument("--out", help="JSON file of the raw numbers")
    ap.add_argument("--commit", help="what --larserve was built from, when not this checkout's HEAD "
                                     "(default: git, else the bundle's COMMIT file)")
    a = ap.parse_args(argv)
    a.protocols = [p.strip() for p in a.protocols.split(",") if p.strip()]
    for p in a.protocols:
        if p not in ("grpc", "grpc-stream", "http"):
            ap.error(f"unknown protocol {p!r}")
    a.batches, a.concurrency, a.threads = ints(a.batches), ints(a.concurrency), ints(a.threads)
    if a.perf_analyzer is None:
        a.perf_analyzer = os.environ.get("PERF_ANALYZER") or os.path.join(SRC, ".venv/bin/perf_analyzer")
    if a.rounds < 1:
        ap.error("--rounds must be at least 1")
    if a.grpc_url and "http" in a.protocols and not a.http_url:
        ap.error("--protocols http with --grpc-url needs --http-url")
    return a


# --- machine, commit ---------------------------------------------------------------------------

def machine():
    cpu, flags = platform.processor(), ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and not flags:
                    flags = line
    except OSError:
        pass
    m = {"cpu": cpu, "logical_cpus": os.cpu_count(), "usable_cpus": len(os.sched_getaffinity(0)),
         "avx512": " avx512f" in flags, "amx": " amx_tile" in flags, "kernel": platform.release(),
         "os": os_name(), "python": platform.python_version(), "host": platform.node()}
    try:
        with open("/proc/meminfo") as f:
            m["memory_gib"] = round(int(f.readline().split()[1]) / 2**20, 1)
    except OSError:
        pass
    return m


def os_name():
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return platform.platform()


def commit(larserve):
    """git's short commit (+ "working tree" if tracked files differ), else the bundle's COMMIT file."""
    try:
        h = subprocess.run(["git", "-C", SRC, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
        if h.returncode == 0:
            d = subprocess.run(["git", "-C", SRC, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True)
            return h.stdout.strip() + (" (working tree)" if d.stdout.strip() else "")
    except OSError:
        pass
    f = os.path.join(os.path.dirname(os.path.abspath(larserve)), "COMMIT")
    if os.path.exists(f):
        with open(f) as fh:
            return fh.read().strip() + " (bundle)"
    return "unknown"


# --- model configuration (the few fields that set the server's engine) ----------------------------

def read_config(model_dir):
    with open(os.path.join(model_dir, "config.pbtxt")) as f:
        text = f.read()
    body = re.sub(r"#[^\n]*", "", text)

    def first_int(pattern, default):
        m = re.search(pattern, body)
        return int(m.group(1)) if m else default
    max_batch = first_int(r"\bmax_batch_size\s*:\s*(\d+)", 0)
    preferred = [int(v) for m in re.finditer(r"\bpreferred_batch_size\s*:\s*\[([^\]]*)\]", body)
                 for v in re.findall(r"\d+", m.group(1))]
    preferred += [int(v) for v in re.findall(r"\bpreferred_batch_size\s*:\s*(\d+)", body)]
    instances = 0
    m = re.search(r"\binstance_group\s*:?\s*\[", body)
    if m:  # the instance_group list, brackets matched: the sum of its counts
        depth, end = 0, m.end() - 1
        for end in range(m.end() - 1, len(body)):
            depth += {"[": 1, "]": -1}.get(body[end], 0)
            if depth == 0:
                break
        instances = sum(int(v) for v in re.findall(r"\bcount\s*:\s*(\d+)", body[m.end():end]))
    versions = sorted((int(d) for d in os.listdir(model_dir) if d.isdigit()), reverse=True)
    return {"text": text, "max_batch_size": max_batch, "preferred_batch_sizes": sorted(set(preferred)),
            "instances": instances or 1,
            "max_queue_delay_us": first_int(r"\bmax_queue_delay_microseconds\s*:\s*(\d+)", 0),
            "dynamic_batching": bool(re.search(r"\bdynamic_batching\b", body)),
            "version": versions[0] if versions else None}


def engine_profile(cfg):
    """The batch profile the server builds with (src/serve/model_config.cc EngineSettingsFromConfig)."""
    mx = cfg["max_batch_size"]
    if mx <= 0:
        return None
    opt = max(cfg["preferred_batch_sizes"]) if cfg["preferred_batch_sizes"] else min(mx, 256)
    return (1, max(1, min(opt, mx)), mx)


# --- processes -----------------------------------------------------------------------------------

# --- CPU accounting -------------------------------------------------------------------------------
# Where the machine's cores went during one perf_analyzer run: the server's instance threads (named
# lsv-instance, with their OpenMP teams) against its other threads (gRPC, HTTP, responders), the
# load generator (perf_analyzer and its children) and the whole machine (/proc/stat, kernel work
# such as loopback TCP included). On a small machine shared by server and client, throughput
# against in-process is bounded by the instances' share of the cores.

INSTANCE_THREAD = "lsv-instance"


def _ticks():
    return os.sysconf("SC_CLK_TCK")


def process_cpu(pid, proc="/proc"):
    """CPU seconds of process pid: {"total": s (exited threads included), "threads": {tid: (name, s)}}."""
    def utime_stime(text):
        fields = text[text.rindex(")") + 2:].split()  # after "pid (comm) ": state is field 3
        return (int(fields[11]) + int(fields[12])) / _ticks()  # utime, stime: fields 14, 15

    with open(os.path.join(proc, str(pid), "stat")) as f:
        total = utime_stime(f.read())
    threads = {}
    task = os.path.join(proc, str(pid), "task")
    for tid in os.listdir(task):
        try:
            with open(os.path.join(task, tid, "stat")) as f:
                text = f.read()
        except OSError:
            continue  # the thread ended in between
        threads[tid] = (text[text.index("(") + 1:text.rindex(")")], utime_stime(text))
    return {"total": total, "threads": threads}


def machine_busy(proc="/proc"):
    """Busy CPU seconds of the whole machine since boot (all but idle and iowait), from /proc/stat."""
    with open(os.path.join(proc, "stat")) as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / _ticks()  # user nice system idle iowait irq softirq steal


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


class CpuMeter:
    """CPU used between start() and stop(), in cores (CPU seconds per wall second)."""

    def __init__(self, server_pid=None, proc="/proc"):
        self.pid, self.proc = server_pid, proc

    def start(self):
        self.t0, self.busy0, self.child0 = time.monotonic(), machine_busy(self.proc), children_cpu()
        self.srv0 = process_cpu(self.pid, self.proc) if self.pid else None

    def stop(self):
        wall = time.monotonic() - self.t0
        out = {"wall_s": wall, "machine_cores": (machine_busy(self.proc) - self.busy0) / wall,
               "client_cores": (children_cpu() - self.child0) / wall, "cores_available": len(os.sched_getaffinity(0))}
        if self.srv0:
            out.update(server_split(self.srv0, process_cpu(self.pid, self.proc), wall))
        return out


def server_split(before, after, wall):
    """The server's cores, split into its instance threads and the rest, and by thread name."""
    by_name = {}
    for tid, (name, s) in after["threads"].items():
        by_name[name] = by_name.get(name, 0.0) + s - before["threads"].get(tid, (name, 0.0))[1]
    total = (after["total"] - before["total"]) / wall
    inst = by_name.get(INSTANCE_THREAD, 0.0) / wall
    return {"server_cores": total, "server_instance_cores": inst, "server_other_cores": total - inst,
            "server_threads_cores": {k: v / wall for k, v in sorted(by_name.items(), key=lambda kv: -kv[1])
                                     if v > 0}}


def run(cmd, log=None, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=HANG_GUARD_S, **kw)
    if log:
        with open(log, "w") as f:
            f.write("$ " + " ".join(cmd) + "\n" + r.stdout + r.stderr)
    return r


class Server:
    def __init__(self, larserve, repo, threads, protocols, log, http_workers=0, extra=()):
        http_port = "0" if "http" in protocols else "-1"
        self.cmd = [larserve, "serve", "--model-repository", repo, "--grpc-port", "0", "--http-port", http_port,
                    "--metrics-port", "-1", "--threads", str(threads)]
        if http_workers:
            self.cmd += ["--http-threads", str(http_workers)]
        self.cmd += list(extra)
        self.err = open(log, "w")
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=self.err, text=True)
        self.urls = {}
        for _ in range(2 if http_port == "0" else 1):
            line = self.proc.stdout.readline()
            m = re.search(r"(gRPC|HTTP) listening on ([\d.]+):(\d+)", line)
            if not m:
                self.stop()
                with open(log) as f:
                    raise RuntimeError(f"larserve serve did not start: {line}{f.read()}")
            self.urls[m.group(1).lower()] = f"{m.group(2)}:{m.group(3)}"

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.err.close()


def in_process(a, plan, batch, instances, threads, log):
    cmd = [a.larserve, "exec", plan, "--batch", str(batch), "--threads", str(instances),
           "--intra-threads", str(threads), "--seconds", str(a.exec_seconds), "--ftz", "--json"]
    meter = CpuMeter()
    meter.start()
    r = run(cmd, log)
    cpu = meter.stop()
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {r.stderr.strip()}")
    j = json.loads(r.stdout)
    # exec's cores: its whole run, plan loading and warm-up included.
    return {"command": cmd, "throughput": j["throughput_inferences_per_s"], "runs": j["runs"],
            "cpu": {"exec_cores": cpu["client_cores"], "machine_cores": cpu["machine_cores"], "wall_s": cpu["wall_s"]},
            "p50_us": j["latency_ms"]["p50"] * 1e3, "p90_us": j["latency_ms"]["p90"] * 1e3,
            "p99_us": j["latency_ms"]["p99"] * 1e3, "min_us": j["latency_ms"]["min"] * 1e3, "raw": j}


def server_counts(stdout):
    """The server section of perf_analyzer's report (ModelStatistics over the measured windows)."""
    out = {}
    for key, name in (("Request count", "client_requests"), ("Inference count", "server_inferences"),
                      ("Execution count", "server_executions"), ("Successful request count", "server_successes")):
        m = re.search(rf"^\s*{key}: (\d+)", stdout, re.M)
        if m:
            out[name] = int(m.group(1))
    if out.get("server_executions"):
        out["avg_executed_batch"] = out["server_inferences"] / out["server_executions"]
    return out


def perf_level(a, protocol, url, batch, conc, work, server_pid=None):
    """One perf_analyzer run at one concurrency; when perf_analyzer finds no stable windows (it then
    exits 2 and writes no CSV), again with 3x, then 10x the stability percentage."""
    attempts = []
    for stability in (a.stability_percentage, 3 * a.stability_percentage, 10 * a.stability_percentage):
        tag = f"{protocol}_b{batch}_c{conc}_s{stability:g}"
        csv_path = os.path.join(work, tag + ".csv")
        cmd = [a.perf_analyzer, "-m", a.model, "-u", url, "-i", "http" if protocol == "http" else "grpc"]
        if protocol == "grpc-stream":
            cmd.append("--streaming")
        if a.shared_memory != "none":
            cmd += ["--shared-memory", a.shared_memory]
        cmd += ["-b", str(batch), "--concurrency-range", str(conc), "--measurement-mode", "time_windows",
               "--measurement-interval", str(a.window_ms), "--stability-percentage", f"{stability:g}",
               "--max-trials", str(a.max_trials), "-f", csv_path, "--verbose-csv"]
        load = os.getloadavg()[0]
        meter = CpuMeter(server_pid)
        meter.start()
        r = run(cmd, os.path.join(work, tag + ".log"))
        cpu = meter.stop()
        attempts.append({"command": cmd, "returncode": r.returncode, "loadavg_1min_before": load, "cpu": cpu})
        if r.returncode == 0 and os.path.exists(csv_path):
            with open(csv_path, newline="") as f:
                rows = list(csv.DictReader(f))
            if len(rows) != 1:
                raise RuntimeError(f"{csv_path}: expected one row, got {rows}")
            row = {k: float(v) for k, v in rows[0].items() if v not in (None, "")}
            return {"protocol": protocol, "batch": batch, "concurrency": conc, "stability_percentage": stability,
                    "attempts": attempts, "csv": row, **server_counts(r.stdout), "cpu": cpu,
                    "throughput": row["Inferences/Second"], "p50_us": row["p50 latency"],
                    "p90_us": row["p90 latency"], "p99_us": row["p99 latency"], "avg_us": row["Avg latency"],
                    "server_queue_us": row["Server Queue"],
                    "server_compute_us": row["Server Compute Input"] + row["Server Compute Infer"]
                    + row["Server Compute Output"],
                    "server_compute_infer_us": row["Server Compute Infer"]}
        attempts[-1]["error"] = (r.stdout + r.stderr).strip().splitlines()[-3:]
        if "stable measurement" not in r.stdout + r.stderr:
            break
    return {"protocol": protocol, "batch": batch, "concurrency": conc, "attempts": attempts,
            "error": attempts[-1]["error"]}


# --- report --------------------------------------------------------------------------------------

def cores(cpu):
    """The table's cores columns: server instance threads, the server's other threads, the load
    generator, the whole machine (busy cores)."""
    if not cpu:
        return f"{'-':>11} {'-':>5} {'-':>6} {'-':>5}"
    inst, other = cpu.get("server_instance_cores"), cpu.get("server_other_cores")
    f = lambda v, w: f"{v:{w}.2f}" if v is not None else f"{'-':>{w}}"  # noqa: E731
    return f"{f(inst, 11)} {f(other, 5)} {f(cpu['client_cores'], 6)} {f(cpu['machine_cores'], 5)}"


def table(run_, stability):
    resolved = f" = {run_['threads_resolved']}" if "threads_resolved" in run_ else ""
    lines = [f"threads {run_['threads']}{resolved} per instance (server --threads, exec --intra-threads):"]
    rounds = len(run_.get("in_process_rounds", [])) > 0
    head = (f"{'protocol':11} {'batch':>5} {'conc':>4} {'round':>5} {'infer/s':>9} {'x inproc':>8} {'p50 ms':>8} "
            f"{'p99 ms':>8} {'queue us':>9} {'compute us':>10} {'exec batch':>10} {'cores: inst':>11} "
            f"{'srv':>5} {'client':>6} {'busy':>5}")
    lines += [head, "-" * len(head)]
    for r in run_["rows"]:
        if "error" in r:
            lines.append(f"{r['protocol']:11} {r['batch']:5d} {r['concurrency']:4d} {r['round']:5d}  "
                         f"failed: {' '.join(r['error'])[:80]}")
            continue
        eb = r.get("avg_executed_batch", float("nan"))
        mark = "" if r["stability_percentage"] == stability else f"  (s {r['stability_percentage']:g}%)"
        lines.append(f"{r['protocol']:11} {r['batch']:5d} {r['concurrency']:4d} {r['round']:5d} {r['throughput']:9.0f} "
                     f"{r.get('ratio', float('nan')):8.2f} {r['p50_us'] / 1e3:8.3f} {r['p99_us'] / 1e3:8.3f} "
                     f"{r['server_queue_us']:9.0f} {r['server_compute_us']:10.0f} {eb:10.1f} {cores(r.get('cpu'))}{mark}")
    if rounds:
        lines.append("median over rounds (each round against the mean of the in-process runs before and after it):")
        for v in run_["summary"]:
            lines.append(f"  {v['protocol']:11} batch {v['batch']:4d} conc {v['concurrency']:3d}: x inproc "
                         f"{v['ratio_median']:.2f} (" + " ".join(f"{x:.2f}" for x in v["ratios"]) + "), "
                         f"{v['throughput_median']:.0f} infer/s, p50 {v['p50_us_median']:.0f} us")
    lines.append("cores (CPU seconds per second over each perf_analyzer run): inst = the server's instance threads "
                 "and their intra-op teams, srv = its other threads (gRPC, HTTP, responders), client = "
                 "perf_analyzer, busy = the whole machine"
                 + "".join(f", of {r['cpu']['cores_available']} cpus" for r in run_["rows"][:1] if "cpu" in r))
    lines.append("in-process (larserve exec, same plan and threads, one context per instance):")
    refs = [x["in_process"] for x in run_["in_process_rounds"]] if rounds else [run_["in_process"]]
    for b in sorted(int(b) for b in run_["in_process"]):
        vals = [ref.get(b, ref.get(str(b))) for ref in refs]
        lines.append(f"  batch {b:5d}: " + " / ".join(f"{v['throughput']:.0f}" for v in vals) + " infer/s, p50 "
                     + " / ".join(f"{v['p50_us'] / 1e3:.3f}" for v in vals) + " ms"
                     + (", cores " + " / ".join(f"{v['cpu']['exec_cores']:.2f}" for v in vals)
                        if all("cpu" in v for v in vals) else ""))
    if "in_process_single" in run_:
        singles = ([x["in_process_single"] for x in run_["in_process_rounds"]] if rounds
                   else [run_["in_process_single"]])
        lines.append("  batch     1, one context alone: p50 " +
                     " / ".join(f"{v['p50_us'] / 1e3:.3f}" for v in singles) + " ms")
    for p, v in run_["added_latency_us"].items():
        lines.append(f"added latency, one patch, {p}: p50 {v['server_p50_us']:.0f} us through the server - "
                     f"{v['in_process_p50_us']:.0f} us in-process = {v['added_us']:.0f} us"
                     + (" (median of rounds: " + " ".join(f"{x:.0f}" for x in v["added_us_per_round"]) + ")"
                        if rounds else ""))
    return "\n".join(lines)


def measure(a, threads, cfg, model_dir, onnx, profile, work):
    """Everything for one intra-op thread setting: plan, in-process runs, server, perf_analyzer sweep."""
    os.makedirs(work, exist_ok=True)
    out = {"threads": threads, "loadavg_start": os.getloadavg()}
    if threads == 0:
        # As `larserve serve --threads 0` (AutoThreads): the usable cores, less a quarter on 8 or
        # more, divided among the model's instances; build, exec and the server all get that number.
        cores = len(os.sched_getaffinity(0))
        threads = max(1, (cores - cores // 4 if cores >= 8 else cores) // cfg["instances"])
        out["threads_resolved"] = threads
    # 1. The engine: a plan built as the server builds the model, for the in-process runs (and the server).
    plan = os.path.join(work, "model.plan")
    build = [a.larserve, "build", onnx, "-o", plan, "--backend", "cpu", "--threads", str(threads), "--json"]
    if profile:
        build += ["--batch", ":".join(map(str, profile))]
    r = run(build, os.path.join(work, "build.log"))
    if r.returncode != 0:
        sys.exit(f"server_bench: {' '.join(build)} failed: {r.stderr.strip()}")
    bj = json.loads(r.stdout)
    out["engine"] = {"build_command": build, "batch_profile": profile,
                     "tactics": [t.get("chosen") for t in bj.get("tactic_choices", [])],
                     "served": "the model's ONNX, built by the server" if a.serve_onnx else "this plan"}

    # 2. In-process, before any server runs (with --rounds, again after every sweep).
    def reference(k):
        tag = f"_r{k}" if a.rounds > 1 else ""
        ref = {}
        for b in a.batches:
            print(f"[server_bench] threads {threads}: in-process batch {b}", flush=True)
            ref[b] = in_process(a, plan, b, cfg["instances"], threads, os.path.join(work, f"exec_b{b}{tag}.log"))
        single = None
        if 1 in a.batches and cfg["instances"] > 1:
            # The latency reference of a lone one-patch request: one context, nothing beside it.
            single = in_process(a, plan, 1, 1, threads, os.path.join(work, f"exec_b1_single{tag}.log"))
        return ref, single

    refs = [reference(0)]
    out["in_process"] = refs[0][0]
    if refs[0][1]:
        out["in_process_single"] = refs[0][1]

    # 3. The server: ours (the same plan) or one given by address; one sweep per round.
    out["rows"] = []
    for k in range(a.rounds):
        rwork = os.path.join(work, f"round{k}") if a.rounds > 1 else work
        os.makedirs(rwork, exist_ok=True)
        server = None
        if a.grpc_url:
            urls = {"grpc": a.grpc_url, "http": a.http_url}
            out["server"] = {"external": urls}
        else:
            repo = os.path.join(work, "repo")
            shutil.rmtree(repo, ignore_errors=True)
            if a.serve_onnx:
                shutil.copytree(model_dir, os.path.join(repo, a.model))
            else:
                vdir = os.path.join(repo, a.model, str(cfg["version"]))
                os.makedirs(vdir)
                shutil.copy(plan, os.path.join(vdir, "model.plan"))
                with open(os.path.join(repo, a.model, "config.pbtxt"), "w") as f:
                    f.write(cfg["text"].rstrip("\n") + "\n# server_bench: the in-process plan\n"
                            'default_model_filename: "model.plan"\n')
            server = Server(a.larserve, repo, threads, a.protocols, os.path.join(rwork, "serve.log"),
                            a.http_threads, shlex.split(a.serve_args))
            urls = server.urls
            out["server"] = {"command": server.cmd, "urls": urls}
        urls = dict(urls, **{"grpc-stream": urls.get("grpc")})
        try:
            for protocol in a.protocols:
                for b in a.batches:
                    for c in a.concurrency:
                        row = perf_level(a, protocol, urls[protocol], b, c, rwork,
                                         server.proc.pid if server else None)
                        row["round"] = k
                        out["rows"].append(row)
                        msg = (f"failed: {row['error']}" if "error" in row else
                               f"{row['throughput']:.0f} infer/s, p50 {row['p50_us']:.0f} us")
                        print(f"[server_bench] threads {threads}: round {k}: {protocol} batch {b} concurrency {c}: "
                              f"{msg}", flush=True)
        finally:
            if server:
                server.stop()
        if a.rounds > 1:
            refs.append(reference(k + 1))
    out["loadavg_end"] = os.getloadavg()

    # Each sweep against the in-process runs around it (one round: the runs before it).
    if a.rounds > 1:
        out["in_process_rounds"] = [{"in_process": r, "in_process_single": s1} for r, s1 in refs]

    def bracket(k, b, key, single=False):
        vals = []
        for r, s1 in refs[k:k + 2] if a.rounds > 1 else refs[:1]:
            v = s1 if single and s1 else r.get(b)
            if v:
                vals.append(v[key])
        return sum(vals) / len(vals) if vals else None

    for r in out["rows"]:
        if "error" in r or r["batch"] not in out["in_process"]:
            continue
        r["in_process_throughput"] = bracket(r["round"], r["batch"], "throughput")
        r["ratio"] = r["throughput"] / r["in_process_throughput"]
    summary = {}
    for r in out["rows"]:
        if "ratio" in r:
            summary.setdefault((r["protocol"], r["batch"], r["concurrency"]), []).append(r)
    out["summary"] = [{"protocol": p, "batch": b, "concurrency": c, "rounds": len(rs),
                       "ratio_median": statistics.median(x["ratio"] for x in rs),
                       "ratios": [x["ratio"] for x in rs],
                       "throughput_median": statistics.median(x["throughput"] for x in rs),
                       "p50_us_median": statistics.median(x["p50_us"] for x in rs)}
                      for (p, b, c), rs in summary.items()]
    out["added_latency_us"] = {}
    if 1 in out["in_process"]:
        for p in a.protocols:
            rows = [r for r in out["rows"] if r["protocol"] == p and r["batch"] == 1 and r["concurrency"] == 1
                    and "error" not in r]
            if not rows:
                continue
            added = [r["p50_us"] - bracket(r["round"], 1, "p50_us", single=True) for r in rows]
            out["added_latency_us"][p] = {
                "server_p50_us": statistics.median(r["p50_us"] for r in rows),
                "in_process_p50_us": statistics.median(bracket(r["round"], 1, "p50_us", single=True) for r in rows),
                "added_us": statistics.median(added), "added_us_per_round": added}
    return out


def main(argv=None):
    a = parse_args(argv)
    for tool in (a.larserve, a.perf_analyzer):
        if not (os.path.isfile(tool) and os.access(tool, os.X_OK)):
            sys.exit(f"server_bench: {tool} is not an executable (perf_analyzer: run scripts/setup.sh)")
    model_dir = os.path.join(a.model_repository, a.model)
    cfg = read_config(model_dir)
    onnx = os.path.join(model_dir, str(cfg["version"]), "model.onnx")
    if not os.path.exists(onnx):
        sys.exit(f"server_bench: no {onnx}")
    profile = engine_profile(cfg)
    for b in a.batches:
        if profile and b > profile[2]:
            sys.exit(f"server_bench: batch {b} exceeds the model's max_batch_size {profile[2]}")

    work = a.work_dir or tempfile.mkdtemp(prefix="server_bench_")
    os.makedirs(work, exist_ok=True)
    pa_version = run([a.perf_analyzer, "--version"])
    result = {
        "bench": "bench/server_bench.py", "argv": sys.argv[1:] if argv is None else argv,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "commit": a.commit or commit(a.larserve), "machine": machine(),
        "settings": {k: getattr(a, k) for k in ("protocols", "batches", "concurrency", "rounds", "shared_memory", "window_ms", "threads",
                                                 "stability_percentage", "max_trials", "exec_seconds", "model",
                                                 "model_repository", "serve_onnx", "larserve", "http_threads")},
        "perf_analyzer": {"path": a.perf_analyzer, "version": (pa_version.stdout + pa_version.stderr).strip(),
                          "mode": "synchronous clients (one per concurrent request), random input data, "
                                  "time windows, one perf_analyzer run per concurrency level"},
        "model_config": {k: v for k, v in cfg.items() if k != "text"},
        "runs": [],
    }
    print(f"[server_bench] {result['commit']} on {result['machine']['cpu']} "
          f"({result['machine']['usable_cpus']} cpus), work dir {work}", flush=True)
    for threads in a.threads:
        result["runs"].append(measure(a, threads, cfg, model_dir, onnx, profile, os.path.join(work, f"t{threads}")))
    text = "\n\n".join(table(r, a.stability_percentage) for r in result["runs"])
    result["table"] = text
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            json.dump(result, f, indent=1, default=str)
            f.write("\n")
        print(f"[server_bench] wrote {a.out}")
    if not a.work_dir:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if all("error" not in r for run_ in result["runs"] for r in run_["rows"]) else 1


if __name__ == "__main__":
    sys.exit(main())
