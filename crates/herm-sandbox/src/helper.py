# herm's in-sandbox exec helper: one long-lived process per container that runs commands sent
# as JSON lines on stdin and streams their output back as JSON lines on stdout, so a command
# costs a write and a read instead of a new `docker exec`. Each command runs under `timeout`
# in its own session (process group), which a kill request or the timeout kills whole.
import base64, json, os, signal, subprocess, sys, threading

lock = threading.Lock()
procs = {}


def send(obj):
    data = (json.dumps(obj) + "\n").encode()
    with lock:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()


def pump(rid, stream, name):
    while True:
        chunk = os.read(stream.fileno(), 65536)
        if not chunk:
            return
        send({"id": rid, "s": name, "d": base64.b64encode(chunk).decode()})


def run(req):
    rid = req["id"]
    stdin = req.get("in")
    try:
        p = subprocess.Popen(
            ["timeout", "-s", "KILL", str(req["t"]), "bash", "-c", req["c"]],
            cwd=req.get("cwd") or "/workspace",
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except Exception as e:  # a bad cwd, say
        send({"id": rid, "err": str(e)})
        return
    procs[rid] = p
    if stdin is not None:
        def feed():
            try:
                p.stdin.write(base64.b64decode(stdin))
                p.stdin.close()
            except Exception:
                pass
        threading.Thread(target=feed, daemon=True).start()
    readers = [threading.Thread(target=pump, args=(rid, p.stdout, "o")), threading.Thread(target=pump, args=(rid, p.stderr, "e"))]
    for t in readers:
        t.start()
    code = p.wait()
    for t in readers:
        t.join()
    procs.pop(rid, None)
    send({"id": rid, "x": code})


send({"ready": True})
for line in sys.stdin:
    req = json.loads(line)
    if "kill" in req:
        p = procs.get(req["kill"])
        if p is not None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except Exception:
                pass
        continue
    threading.Thread(target=run, args=(req,), daemon=True).start()
