"""Shared helpers for the benchmarks: processes started and always stopped, free ports,
CPU from the kernel's own accounting (utime+stime of whole process trees) and memory as PSS."""

import atexit
import json
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parent.parent
# Where cargo puts the builds (CARGO_TARGET_DIR when set, as cargo itself does).
TARGET = pathlib.Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target")
TICK = os.sysconf("SC_CLK_TCK")
_started = []


def _cleanup():
    for p in reversed(_started):
        stop(p)


atexit.register(_cleanup)
signal.signal(signal.SIGTERM, lambda *_: (_cleanup(), os._exit(1)))


_port_range = None


def free_port():
    """A free loopback TCP port: from `GWBENCH_PORTS` (e.g. `37000-37999`, for runs that must
    stay in a range of their own) when set, else one the kernel picks."""
    global _port_range
    spec = os.environ.get("GWBENCH_PORTS")
    if spec:
        if _port_range is None:
            lo, hi = (int(x) for x in spec.split("-"))
            _port_range = iter(range(lo, hi + 1))
        for port in _port_range:
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
        raise RuntimeError(f"no free port left in GWBENCH_PORTS={spec}")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cmd, **kw):
    kw.setdefault("stdin", subprocess.DEVNULL)
    kw.setdefault("stdout", subprocess.DEVNULL)
    kw.setdefault("stderr", subprocess.DEVNULL)
    p = subprocess.Popen(cmd, start_new_session=True, **kw)
    _started.append(p)
    return p


def stop(p, timeout=5):
    if p.poll() is None:
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def wait_port(port, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), 0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"port {port} never opened")


def _children():
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = open(f"/proc/{d}/stat").read()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            kids.setdefault(ppid, []).append(int(d))
    return kids


def tree(pids):
    """The pids and all their descendants."""
    kids, out, todo = _children(), [], list(pids)
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def cpu_split(pids):
    """(user, system) CPU seconds of the process trees."""
    user = system = 0.0
    for p in tree(pids):
        try:
            f = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        user += int(f[11]) / TICK
        system += int(f[12]) / TICK
    return user, system


def cpu_seconds(pids):
    return sum(cpu_split(pids))


def box_stat():
    """The whole box's (busy, total) CPU jiffies from /proc/stat (idle and iowait are not busy)."""
    f = [int(x) for x in open("/proc/stat").readline().split()[1:9]]
    return sum(f) - f[3] - f[4], sum(f)


def pss_kib(pids):
    total = 0
    for p in tree(pids):
        try:
            text = open(f"/proc/{p}/smaps_rollup").read()
            total += int(re.search(r"^Pss:\s+(\d+)", text, re.M).group(1))
        except (OSError, AttributeError):
            try:
                text = open(f"/proc/{p}/status").read()
                total += int(re.search(r"^VmRSS:\s+(\d+)", text, re.M).group(1))
            except (OSError, AttributeError):
                pass
    return total


def counters(pids):
    """Kernel counters of the process trees, summed: read- and write-type system calls
    (`syscr`/`syscw` of /proc/PID/io, every thread, dead ones too; they count read/write/readv/
    writev/sendfile... but not send/recv/sendmsg/recvmsg/epoll, so they are not all system
    calls) and context switches (voluntary and not, of the live threads, /proc/PID/task/*/status)."""
    out = {"syscr": 0, "syscw": 0, "vcsw": 0, "nvcsw": 0}
    for p in tree(pids):
        try:
            io = dict(line.split(": ") for line in open(f"/proc/{p}/io").read().splitlines())
            out["syscr"] += int(io["syscr"])
            out["syscw"] += int(io["syscw"])
        except (OSError, KeyError, ValueError):
            pass
        try:
            tids = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for t in tids:
            try:
                text = open(f"/proc/{p}/task/{t}/status").read()
                out["vcsw"] += int(re.search(r"^voluntary_ctxt_switches:\s+(\d+)", text, re.M).group(1))
                out["nvcsw"] += int(re.search(r"^nonvoluntary_ctxt_switches:\s+(\d+)", text, re.M).group(1))
            except (OSError, AttributeError):
                pass
    return out


def measure(groups, seconds, with_counters=False):
    """CPU (in cores) and PSS (KiB) of each named group of pids over the same window;
    `with_counters`: also the `counters` per second (`syscr_per_s`, ...)."""
    before = {k: cpu_split(v) for k, v in groups.items()}
    before_c = {k: counters(v) for k, v in groups.items()} if with_counters else {}
    t0 = time.time()
    time.sleep(seconds)
    dt = time.time() - t0
    out = {}
    for k, v in groups.items():
        user, system = cpu_split(v)
        u, s = (user - before[k][0]) / dt, (system - before[k][1]) / dt
        out[k] = {"cpu_cores": u + s, "user_cores": u, "system_cores": s, "pss_kib": pss_kib(v)}
        if with_counters:
            after = counters(v)
            out[k].update({f"{c}_per_s": (after[c] - before_c[k][c]) / dt for c in after})
    return out


_PERF = None


def perf_syscalls_ok():
    """Whether `perf stat` can count the raw_syscalls:sys_enter tracepoint here (perf installed,
    tracefs readable, perf_event_open allowed); checked once."""
    global _PERF
    if _PERF is None:
        _PERF = False
        if shutil.which("perf"):
            try:
                p = subprocess.run(["perf", "stat", "-x,", "-e", "raw_syscalls:sys_enter", "--", "true"],
                                   capture_output=True, text=True, timeout=20)
                _PERF = p.returncode == 0 and any(l.split(",")[0].strip().isdigit() for l in p.stderr.splitlines())
            except (OSError, subprocess.TimeoutExpired):
                pass
    return _PERF


def perf_syscalls(groups, seconds):
    """Every system call (the raw_syscalls:sys_enter tracepoint) and context switch of each
    named group of pids, per second, over the same window: one `perf stat -p` per group,
    attached to the threads the processes have when it starts. None when perf cannot count.
    While it counts, every system call on the machine takes the kernel's slow (traced) path,
    so keep this window apart from a CPU window."""
    if not perf_syscalls_ok():
        return None
    procs = {}
    for k, v in groups.items():
        pids = ",".join(str(p) for p in tree(v))
        procs[k] = subprocess.Popen(["perf", "stat", "-x,", "-e", "raw_syscalls:sys_enter,context-switches",
                                     "-p", pids, "--", "sleep", str(seconds)],
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    out = {}
    for k, p in procs.items():
        err = p.communicate(timeout=seconds + 30)[1]
        got = {}
        for line in err.splitlines():
            f = line.split(",")
            if len(f) > 2 and f[0].strip().isdigit():
                got[f[2]] = int(f[0])
        if "raw_syscalls:sys_enter" in got:
            out[k] = {"syscalls_per_s": got["raw_syscalls:sys_enter"] / seconds,
                      "cswitch_per_s": got.get("context-switches", 0) / seconds, "seconds": seconds}
    return out


def raise_open_files():
    """Raises this process's soft open-files limit to the hard one (children inherit it: the
    servers and viewer tools of a 1,000-viewer run need a few thousand descriptors); returns it."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft


def tmpdir():
    d = tempfile.mkdtemp(prefix="gwbench-")
    atexit.register(shutil.rmtree, d, True)
    return pathlib.Path(d)


def make_clip(dirpath, size="640x360", rate=30, seconds=10):
    """An H.264 + AAC FLV clip, looped by the sources (copying it costs them almost nothing)."""
    out = dirpath / f"clip-{size}-{rate}.flv"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100", "-t", str(seconds),
         "-c:v", "libx264", "-preset", "veryfast", "-g", str(rate * 2), "-b:v", "1000k", "-pix_fmt", "yuv420p",
         "-c:a", "aac", "-b:a", "64k", str(out)],
        check=True, timeout=120)
    return out


def source(clip, url):
    """A publisher looping the clip in real time, copying (no encode)."""
    return start(["ffmpeg", "-v", "error", "-re", "-stream_loop", "-1", "-i", str(clip), "-c", "copy", "-f", "flv", url])


def nginx(dirpath, apps=("live",)):
    """nginx-rtmp as a CDN origin on a free loopback port."""
    port = free_port()
    conf = dirpath / "nginx.conf"
    app_conf = "\n".join(f"application {a} {{ live on; }}" for a in apps)
    conf.write_text(f"""load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
daemon off; master_process off; worker_processes 1;
error_log {dirpath}/nginx-error.log; pid {dirpath}/nginx.pid;
events {{ worker_connections 4096; }}
rtmp {{ server {{ listen 127.0.0.1:{port}; {app_conf} }} }}
""")
    p = start(["nginx", "-p", str(dirpath), "-c", str(conf)])
    wait_port(port)
    return p, port


def gateway(dirpath, binary=None, extra=()):
    binary = binary or TARGET / "release" / "interop-gateway"
    log = open(dirpath / "gateway.log", "w+")
    # Port 0 (the kernel picks) unless the run must stay in `GWBENCH_PORTS`.
    ports = [free_port(), free_port()] if os.environ.get("GWBENCH_PORTS") else [0, 0]
    p = start([str(binary), "serve", "--http", f"127.0.0.1:{ports[0]}", "--rtmp", f"127.0.0.1:{ports[1]}",
               "--matrix", str(ROOT / "matrix.yaml"), "--pipelines", str(ROOT / "pipelines"),
               # The benchmarks' CDN origins (nginx-rtmp) listen on loopback.
               "--allow-relay-host", "127.0.0.1", *extra],
              stderr=log, env={"RUST_LOG": "warn", **os.environ})
    end = time.time() + 30
    while time.time() < end:
        log.seek(0)
        m = re.search(r"listening http=(\S+) rtmp=(\S+)", log.read())
        if m:
            return p, m.group(1), m.group(2)
        if p.poll() is not None:
            break
        time.sleep(0.1)
    log.seek(0)
    raise RuntimeError("gateway did not start:\n" + log.read()[-3000:])


def api(http, method, path, body=None):
    req = urllib.request.Request(f"http://{http}{path}", method=method,
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        text = r.read()
        return json.loads(text) if text else None


def probe(url, timeout=15):
    """Codec names ffprobe reads from a URL (empty on failure)."""
    try:
        out = subprocess.run(["ffprobe", "-v", "error", "-rw_timeout", "5000000", "-show_streams", "-of", "json", url],
                             capture_output=True, timeout=timeout).stdout
        return sorted(s["codec_name"] for s in json.loads(out or b"{}").get("streams", []))
    except (subprocess.TimeoutExpired, json.JSONDecodeError):
        return []


class Sweep:
    """A real-time capacity sweep of one side: starts at the step nearest `start`, goes up while
    N holds, or down from a first N that does not, until the answer is known."""

    def __init__(self, steps, start=0):
        self.steps = steps
        self.i = min(range(len(steps)), key=lambda k: abs(steps[k] - start))
        self.tried, self.best, self.down, self.done = [], 0, False, False

    def next_n(self):
        return None if self.done or not 0 <= self.i < len(self.steps) else self.steps[self.i]

    def record(self, ok, cores, slowest):
        n = self.steps[self.i]
        self.tried.append({"streams": n, "real_time": ok, "cpu_cores": cores, "slowest_fps": slowest})
        if ok:
            self.best = max(self.best, n)
            self.done = self.down
            self.i += 1
        elif self.best or self.i == 0:
            self.done = True
        else:
            self.down, self.i = True, self.i - 1

    def result(self):
        """The largest N that held, whether the last step tried still held (the limit lies
        beyond the steps), and every step."""
        tried = sorted(self.tried, key=lambda x: x["streams"])
        return {"max_real_time": self.best, "limit_reached": bool(tried) and tried[-1]["real_time"], "steps": tried}


def sweep_sides(run_alone, steps, start):
    """Capacity sweeps of several sides, one step of each in turn (gateway N, ffmpeg N, gateway
    next N, ...), so a drift in the machine's speed hits every side alike. `run_alone(side, n)`
    -> (every stream real time?, CPU cores, slowest fps); `start`: side -> first N."""
    sweeps = {side: Sweep(steps, n) for side, n in start.items()}
    while True:
        pending = [(side, sw) for side, sw in sweeps.items() if sw.next_n() is not None]
        if not pending:
            return {side: sw.result() for side, sw in sweeps.items()}
        for side, sw in pending:
            sw.record(*run_alone(side, sw.next_n()))
