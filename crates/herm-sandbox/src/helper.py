# herm's in-sandbox exec helper: one long-lived process per container that runs commands sent
# as JSON lines on stdin and streams their output back as JSON lines on stdout, so a command
# costs a write and a read instead of a new `docker exec`. Each command runs in bash in its
# own session (process group), which a kill request or its time limit kills whole.
#
# A command's round trip is kept short in two ways. One thread serves a command: it polls the
# output pipes, the text going in and the process itself (a pidfd), and keeps the time limit,
# so no thread is started per pipe. And starting bash, most of a small command's cost, is done
# ahead of time: one bash waits ("warm"), in its own session, with its pipes ready, for the
# command's text, then runs it with `eval`, which behaves as `bash -c` does (same $0, `return`
# refused at the top level, no extra variable or open file; a syntax error names `eval` where
# `bash -c` would name `-c`). A command with standard input or another working directory, or
# one that finds no warm bash ready, starts its own.
import base64, json, os, select, signal, subprocess, sys, threading, time

lock = threading.Lock()
procs = {}
WORKSPACE = "/workspace"


def send(obj):
    data = (json.dumps(obj) + "\n").encode()
    with lock:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()


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


class Warm:
    """A bash started ahead of its command: the command's text arrives on `script`."""

    def __init__(self):
        self.out_r, out_w = os.pipe()
        self.err_r, err_w = os.pipe()
        script_r, self.script = os.pipe()
        try:
            # The text arrives on standard input: `$(< /dev/stdin)` reads it without starting
            # another program, and the command itself runs with /dev/null as its input.
            self.proc = subprocess.Popen(
                ["bash", "-c", 'eval "$(< /dev/stdin)" < /dev/null'],
                cwd=WORKSPACE,
                stdin=script_r,
                stdout=out_w,
                stderr=err_w,
                start_new_session=True,
            )
        except Exception:
            for fd in (self.out_r, self.err_r, self.script):
                os.close(fd)
            raise
        finally:
            for fd in (out_w, err_w, script_r):
                os.close(fd)

    def discard(self):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except Exception:
            pass
        self.proc.wait()
        for fd in (self.out_r, self.err_r, self.script):
            os.close(fd)


class Warmer:
    """Keeps one warm bash ready. A new one is started when a command has finished, not when
    one is taken, so that starting it never competes with the command it was taken for."""

    def __init__(self):
        self.cond = threading.Condition()
        self.ready = None
        self.wanted = True
        threading.Thread(target=self.loop, daemon=True).start()

    def loop(self):
        while True:
            with self.cond:
                while self.ready is not None or not self.wanted:
                    self.cond.wait()
                self.wanted = False
            try:
                warm = Warm()
            except Exception:  # the process limit is reached, say: try again soon
                time.sleep(0.1)
                self.refill()
                continue
            with self.cond:
                self.ready = warm

    def take(self):
        with self.cond:
            warm, self.ready = self.ready, None
        if warm is not None and warm.proc.poll() is not None:  # killed while it waited
            warm.discard()
            self.refill()
            return None
        return warm

    def refill(self):
        with self.cond:
            self.wanted = True
            self.cond.notify()


def cold(req, stdin):
    """Starts bash for the request: its pipes and the process (None and the error if not)."""
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    in_r, in_w = os.pipe() if stdin is not None else (None, None)
    try:
        p = subprocess.Popen(
            ["bash", "-c", req["c"]],
            cwd=req.get("cwd") or WORKSPACE,
            stdin=in_r if in_r is not None else subprocess.DEVNULL,
            stdout=out_w,
            stderr=err_w,
            start_new_session=True,
        )
        error = None
    except Exception as e:  # a bad cwd, say
        p, error = None, str(e)
        for fd in (out_r, err_r, in_w):
            if fd is not None:
                os.close(fd)
    finally:
        for fd in (out_w, err_w, in_r):
            if fd is not None:
                os.close(fd)
    return out_r, err_r, in_w, p, error


def serve(rid, p, out_r, err_r, in_w, data, seconds):
    """Feeds `data` to `in_w`, streams the output and waits for the process, within the time
    limit. Output ends when the last process holding the pipes exits; one left running in
    the background is still killed by the time limit. Returns the exit status."""
    deadline = time.monotonic() + seconds
    poller = select.poll()
    names = {out_r: "o", err_r: "e"}
    for fd in names:
        poller.register(fd, select.POLLIN)
    view = memoryview(data or b"")
    if in_w is not None:
        os.set_blocking(in_w, False)
        poller.register(in_w, select.POLLOUT)
    try:
        pidfd = os.pidfd_open(p.pid)
        poller.register(pidfd, select.POLLIN)
    except Exception:  # no pidfd here: the process is waited for once its output has ended
        pidfd = None
    code, killing, gone_at = None, False, None
    while names or code is None:
        if gone_at is not None and time.monotonic() - gone_at > 2:
            # The group is dead but something that left it (a new session) still holds the
            # output: stop reading; it runs on without being heard.
            break
        if not names and pidfd is None:
            try:
                code = p.wait(None if killing else max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                kill_group(p.pid)
                code = p.wait()
            break
        if not killing and time.monotonic() >= deadline:
            killing = True
        if killing:
            # Past the limit: kill the group again at every turn (a fork bomb forks between
            # one kill and the next) until it is gone, reaping the leader meanwhile.
            try:
                os.killpg(p.pid, signal.SIGKILL)
                wait = 5
            except ProcessLookupError:
                gone_at = gone_at or time.monotonic()
                wait = 500
            except Exception:
                wait = 5
        else:
            wait = max(0, int((deadline - time.monotonic()) * 1000) + 1)
        events = poller.poll(wait)
        for fd, _ in events:
            if fd in names:
                chunk = os.read(fd, 65536)
                if chunk:
                    send({"id": rid, "s": names[fd], "d": base64.b64encode(chunk).decode()})
                else:
                    poller.unregister(fd)
                    os.close(fd)
                    del names[fd]
            elif fd == pidfd:
                code = p.wait()
                poller.unregister(pidfd)
                os.close(pidfd)
                pidfd = None
            elif fd == in_w:
                try:
                    view = view[os.write(in_w, view[:65536]):] if view else view
                except BlockingIOError:
                    continue
                except OSError:  # the command closed its input
                    view = view[:0]
                if not view:
                    poller.unregister(in_w)
                    os.close(in_w)
                    in_w = None
    for fd in names:
        os.close(fd)
    if in_w is not None:
        os.close(in_w)
    if pidfd is not None:
        os.close(pidfd)
    if code is None:
        code = p.wait()
    return code


def run(req, warm):
    rid = req["id"]
    stdin = req.get("in")
    if warm is not None:
        out_r, err_r, in_w, p, error = warm.out_r, warm.err_r, warm.script, warm.proc, None
        data = req["c"].encode()
    else:
        out_r, err_r, in_w, p, error = cold(req, stdin)
        data = base64.b64decode(stdin) if stdin is not None else None
    if p is None:
        send({"id": rid, "err": error})
        return
    procs[rid] = p
    code = serve(rid, p, out_r, err_r, in_w, data, req["t"])
    procs.pop(rid, None)
    send({"id": rid, "x": code})
    if warm is not None:
        warmer.refill()


warmer = Warmer()
send({"ready": True})
for line in sys.stdin:
    req = json.loads(line)
    if "kill" in req:
        p = procs.get(req["kill"])
        if p is not None:
            kill_group(p.pid)
        continue
    plain = req.get("in") is None and (req.get("cwd") or WORKSPACE) == WORKSPACE and "\0" not in req["c"]
    warm = warmer.take() if plain else None
    # The command's one thread starts before the command does: once a fork bomb has used up
    # the pids limit, no new thread could start.
    try:
        threading.Thread(target=run, args=(req, warm), daemon=True).start()
    except RuntimeError:  # no thread can start while another command holds every pid
        if warm is not None:
            warm.discard()
            warmer.refill()
        send({"id": req["id"], "err": "the sandbox's process limit is reached; try again"})
