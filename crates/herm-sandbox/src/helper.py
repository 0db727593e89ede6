# herm's in-sandbox exec helper: one long-lived process per container that runs commands sent
# as JSON lines on stdin and streams their output back as JSON lines on stdout, so a command
# costs a write and a read instead of a new `docker exec`. Each command runs as `bash -c` in
# its own session (process group), which a kill request or its time limit kills whole.
import base64, json, os, signal, subprocess, sys, threading, time

lock = threading.Lock()
procs = {}


def send(obj):
    data = (json.dumps(obj) + "\n").encode()
    with lock:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()


def pump(rid, fd, name):
    try:
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                return
            send({"id": rid, "s": name, "d": base64.b64encode(chunk).decode()})
    finally:
        os.close(fd)


def kill_group(pid):
    # Again until the group is gone: a fork bomb forks between one kill and the next.
    for _ in range(1000):
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        except Exception:
            pass
        time.sleep(0.005)


def watch(proc, done, seconds):
    # The time limit; waits on the event the request sets when its output has ended.
    if not done.wait(seconds) and proc:
        kill_group(proc[0].pid)


def feed(fd, data):
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    except Exception:
        pass
    finally:
        os.close(fd)


def run(req):
    rid = req["id"]
    stdin = req.get("in")
    # Every thread this command needs starts before the command does: once it has used up
    # the pids limit (a fork bomb), no new thread could start.
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    in_r, in_w = os.pipe() if stdin is not None else (None, None)
    proc, done = [], threading.Event()
    threads = [
        threading.Thread(target=pump, args=(rid, out_r, "o")),
        threading.Thread(target=pump, args=(rid, err_r, "e")),
    ]
    watcher = threading.Thread(target=watch, args=(proc, done, req["t"]), daemon=True)
    for t in threads + [watcher]:
        t.start()
    if in_w is not None:
        threading.Thread(target=feed, args=(in_w, base64.b64decode(stdin)), daemon=True).start()
    try:
        p = subprocess.Popen(
            ["bash", "-c", req["c"]],
            cwd=req.get("cwd") or "/workspace",
            stdin=in_r if in_r is not None else subprocess.DEVNULL,
            stdout=out_w,
            stderr=err_w,
            start_new_session=True,
        )
    except Exception as e:  # a bad cwd, say
        p = None
        error = str(e)
    finally:
        for fd in (out_w, err_w, in_r):
            if fd is not None:
                os.close(fd)
    if p is None:
        done.set()
        for t in threads:
            t.join()
        send({"id": rid, "err": error})
        return
    proc.append(p)
    procs[rid] = p
    code = p.wait()
    # Output ends when the last process holding the pipes exits; one left running in the
    # background is still killed by the time limit.
    for t in threads:
        t.join()
    done.set()
    procs.pop(rid, None)
    send({"id": rid, "x": code})


send({"ready": True})
for line in sys.stdin:
    req = json.loads(line)
    if "kill" in req:
        p = procs.get(req["kill"])
        if p is not None:
            kill_group(p.pid)
        continue
    try:
        threading.Thread(target=run, args=(req,), daemon=True).start()
    except RuntimeError:  # no thread can start while another command holds every pid
        send({"id": req["id"], "err": "the sandbox's process limit is reached; try again"})
