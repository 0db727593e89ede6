//! herm's in-sandbox exec helper, in Rust, linked statically so that it runs in any Linux
//! image (no python3, no particular C library needed). The build script compiles this one
//! file with `rustc` alone (the standard library, no crates) and herm copies the binary into
//! each container's `/tmp` when it opens the container's exec channel. `helper.py` speaks the
//! same protocol and serves where this binary cannot be placed.
//!
//! The protocol: JSON lines on stdin, `{"id", "c" (command), "t" (seconds), "cwd"?, "in"?
//! (base64 stdin)}` or `{"kill": id}`; JSON lines on stdout, `{"ready": true}` once, then
//! `{"id", "s": "o"|"e", "d": base64}` output chunks and a last `{"id", "x": status}` (a
//! negative status is the signal that killed it) or `{"id", "err": message}`.
//!
//! How a command runs: bash in its own process group, which a kill request or the time
//! limit kills whole (again and again until it is gone: a fork bomb forks between kills).
//! One thread per command polls its output pipes, its input and a pidfd, and keeps the time
//! limit; it starts before the command, because once a fork bomb has used up the pids
//! limit no new thread could. One bash waits started ahead ("warm") with its pipes ready for
//! the next plain command (no stdin, default directory): it reads the command's text from
//! its standard input and runs it with `eval`, with /dev/null as the command's input.

use std::collections::HashMap;
use std::io::{BufRead, PipeReader, PipeWriter, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, Stdio};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

const WORKSPACE: &str = "/workspace";

mod sys {
    //! The few system calls the standard library does not offer.
    #[repr(C)]
    pub struct PollFd {
        pub fd: i32,
        pub events: i16,
        pub revents: i16,
    }
    unsafe extern "C" {
        pub fn poll(fds: *mut PollFd, n: u64, timeout: i32) -> i32;
        pub fn kill(pid: i32, sig: i32) -> i32;
        pub fn fcntl(fd: i32, cmd: i32, arg: i32) -> i32;
        pub fn syscall(n: i64, a: i64, b: i64) -> i64;
        pub fn close(fd: i32) -> i32;
    }
    pub const POLLIN: i16 = 0x1;
    pub const POLLOUT: i16 = 0x4;
    pub const F_GETFL: i32 = 3;
    pub const F_SETFL: i32 = 4;
    pub const O_NONBLOCK: i32 = 0o4000;
    pub const SIGKILL: i32 = 9;
    pub const ESRCH: i32 = 3;
    /// `pidfd_open`, the same number on every architecture.
    pub const SYS_PIDFD_OPEN: i64 = 434;
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

// ---- output ---------------------------------------------------------------------------

static OUT: Mutex<()> = Mutex::new(());

fn send(line: String) {
    let _one = lock(&OUT);
    let mut out = std::io::stdout().lock();
    // Nobody to tell if herm's end is gone: the helper then ends with its input.
    let _ = out.write_all(line.as_bytes()).and_then(|_| out.write_all(b"\n")).and_then(|_| out.flush());
}

fn quote(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            '\n' => q.push_str("\\n"),
            '\r' => q.push_str("\\r"),
            '\t' => q.push_str("\\t"),
            c if (c as u32) < 0x20 => q.push_str(&format!("\\u{:04x}", c as u32)),
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn b64_encode(data: &[u8]) -> String {
    let mut s = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                s.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

fn b64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().filter(|c| *c != b'=') {
        let v = B64.iter().position(|x| *x == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

// ---- input ------------------------------------------------------------------------------

/// The values a request holds.
enum Value {
    Null,
    Bool,
    Num(i64),
    Str(String),
}

/// Parses one flat JSON object (string keys; string, integer, boolean or null values).
fn parse(line: &str) -> Option<HashMap<String, Value>> {
    let b = line.as_bytes();
    let mut i = 0;
    let ws = |i: &mut usize| {
        while *i < b.len() && b[*i].is_ascii_whitespace() {
            *i += 1;
        }
    };
    let mut map = HashMap::new();
    ws(&mut i);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i += 1;
    loop {
        ws(&mut i);
        match b.get(i)? {
            b'}' => return Some(map),
            b',' => {
                i += 1;
                continue;
            }
            _ => {}
        }
        let key = string(b, &mut i)?;
        ws(&mut i);
        if b.get(i) != Some(&b':') {
            return None;
        }
        i += 1;
        ws(&mut i);
        let value = match b.get(i)? {
            b'"' => Value::Str(string(b, &mut i)?),
            b'n' if b[i..].starts_with(b"null") => {
                i += 4;
                Value::Null
            }
            b't' if b[i..].starts_with(b"true") => {
                i += 4;
                Value::Bool
            }
            b'f' if b[i..].starts_with(b"false") => {
                i += 5;
                Value::Bool
            }
            _ => {
                let start = i;
                while i < b.len() && (b[i] == b'-' || b[i].is_ascii_digit()) {
                    i += 1;
                }
                Value::Num(std::str::from_utf8(&b[start..i]).ok()?.parse().ok()?)
            }
        };
        map.insert(key, value);
    }
}

fn hex4(b: &[u8], i: usize) -> Option<u32> {
    u32::from_str_radix(std::str::from_utf8(b.get(i..i + 4)?).ok()?, 16).ok()
}

/// A JSON string starting at `b[*i]` (the opening quote); leaves `*i` past the closing one.
fn string(b: &[u8], i: &mut usize) -> Option<String> {
    if b.get(*i) != Some(&b'"') {
        return None;
    }
    *i += 1;
    let mut out: Vec<u8> = Vec::new();
    loop {
        match *b.get(*i)? {
            b'"' => {
                *i += 1;
                return String::from_utf8(out).ok();
            }
            b'\\' => {
                let e = *b.get(*i + 1)?;
                *i += 2;
                let c = match e {
                    b'n' => '\n',
                    b't' => '\t',
                    b'r' => '\r',
                    b'b' => '\u{8}',
                    b'f' => '\u{c}',
                    b'u' => {
                        let mut u = hex4(b, *i)?;
                        *i += 4;
                        if (0xD800..0xDC00).contains(&u) && b.get(*i) == Some(&b'\\') && b.get(*i + 1) == Some(&b'u') {
                            let low = hex4(b, *i + 2)?;
                            *i += 6;
                            u = 0x10000 + ((u - 0xD800) << 10) + (low.checked_sub(0xDC00)?);
                        }
                        char::from_u32(u)?
                    }
                    other => other as char,
                };
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
            c => {
                out.push(c);
                *i += 1;
            }
        }
    }
}

// ---- processes --------------------------------------------------------------------------

/// Process groups of running commands, by request id (for kill requests).
static PROCS: Mutex<Option<HashMap<u64, i32>>> = Mutex::new(None);

/// Kills the group once; false when it is gone.
fn kill_once(pgid: i32) -> bool {
    // SAFETY: kill(2) with a negative pid signals a process group; no memory is involved.
    let r = unsafe { sys::kill(-pgid, sys::SIGKILL) };
    !(r != 0 && std::io::Error::last_os_error().raw_os_error() == Some(sys::ESRCH))
}

/// Kills the group until it is gone (at most about five seconds).
fn kill_group(pgid: i32) {
    for _ in 0..1000 {
        if !kill_once(pgid) {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn nonblocking(fd: RawFd) {
    // SAFETY: fcntl on a descriptor this process owns.
    unsafe {
        let flags = sys::fcntl(fd, sys::F_GETFL, 0);
        if flags >= 0 {
            sys::fcntl(fd, sys::F_SETFL, flags | sys::O_NONBLOCK);
        }
    }
}

/// A bash started ahead of its command, which it reads from `script`.
struct Warm {
    child: Child,
    out: PipeReader,
    err: PipeReader,
    script: PipeWriter,
}

fn start_warm() -> std::io::Result<Warm> {
    let (out, out_w) = std::io::pipe()?;
    let (err, err_w) = std::io::pipe()?;
    let (script_r, script) = std::io::pipe()?;
    let child = Command::new("bash")
        .args(["-c", "eval \"$(< /dev/stdin)\" < /dev/null"])
        .current_dir(WORKSPACE)
        .stdin(script_r)
        .stdout(out_w)
        .stderr(err_w)
        .process_group(0)
        .spawn()?;
    Ok(Warm { child, out, err, script })
}

/// Keeps one warm bash ready; a new one is started when a command has finished, not when
/// one is taken, so that starting it never competes with the command it was taken for.
struct Warmer {
    slot: Mutex<(Option<Warm>, bool)>,
    wake: Condvar,
}

static WARMER: Warmer = Warmer { slot: Mutex::new((None, true)), wake: Condvar::new() };

impl Warmer {
    fn run(&self) {
        loop {
            {
                let mut s = lock(&self.slot);
                while s.0.is_some() || !s.1 {
                    s = self.wake.wait(s).unwrap_or_else(|p| p.into_inner());
                }
                s.1 = false;
            }
            match start_warm() {
                Ok(w) => lock(&self.slot).0 = Some(w),
                Err(_) => {
                    // The process limit is reached, say: try again soon.
                    std::thread::sleep(Duration::from_millis(100));
                    self.refill();
                }
            }
        }
    }

    fn take(&self) -> Option<Warm> {
        let mut w = lock(&self.slot).0.take()?;
        if !matches!(w.child.try_wait(), Ok(None)) {
            // Killed while it waited.
            let _ = w.child.wait();
            self.refill();
            return None;
        }
        Some(w)
    }

    fn refill(&self) {
        lock(&self.slot).1 = true;
        self.wake.notify_one();
    }
}

struct Request {
    id: u64,
    command: String,
    seconds: u64,
    cwd: Option<String>,
    stdin: Option<Vec<u8>>,
}

fn spawn_cold(req: &Request) -> std::io::Result<(Child, PipeReader, PipeReader, Option<PipeWriter>)> {
    let (out, out_w) = std::io::pipe()?;
    let (err, err_w) = std::io::pipe()?;
    let mut cmd = Command::new("bash");
    cmd.args(["-c", &req.command])
        .current_dir(req.cwd.as_deref().unwrap_or(WORKSPACE))
        .stdout(out_w)
        .stderr(err_w)
        .process_group(0);
    let input = match &req.stdin {
        Some(_) => {
            let (r, w) = std::io::pipe()?;
            cmd.stdin(r);
            Some(w)
        }
        None => {
            cmd.stdin(Stdio::null());
            None
        }
    };
    let child = cmd.spawn()?;
    drop(cmd);
    Ok((child, out, err, input))
}

/// Feeds the input, streams the output and waits for the process within the time limit.
/// Output ends when the last process holding the pipes exits; one left running in the
/// background is killed by the time limit. Returns the exit status.
fn serve(id: u64, child: &mut Child, out: PipeReader, err: PipeReader, input: Option<PipeWriter>, data: &[u8], seconds: u64) -> i64 {
    let pgid = child.id() as i32;
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut streams: Vec<(PipeReader, &str)> = vec![(out, "o"), (err, "e")];
    let mut input = input;
    if let Some(w) = &input {
        nonblocking(w.as_raw_fd());
    }
    let mut rest = data;
    // SAFETY: pidfd_open(2) takes a pid and flags and returns a new descriptor or -1.
    let pidfd = unsafe { sys::syscall(sys::SYS_PIDFD_OPEN, i64::from(pgid), 0) } as i32;
    let mut pidfd = (pidfd >= 0).then_some(pidfd);
    let (mut status, mut killing, mut gone_at): (Option<i64>, bool, Option<Instant>) = (None, false, None);
    let mut buf = vec![0u8; 64 * 1024];
    while !streams.is_empty() || status.is_none() {
        if gone_at.is_some_and(|t| t.elapsed() > Duration::from_secs(2)) {
            // The group is dead but something that left it still holds the output.
            break;
        }
        if !killing && Instant::now() >= deadline {
            killing = true;
        }
        let wait = if killing {
            if kill_once(pgid) {
                5
            } else {
                gone_at.get_or_insert_with(Instant::now);
                500
            }
        } else {
            (deadline.saturating_duration_since(Instant::now()).as_millis() as i32).saturating_add(1)
        };
        if streams.is_empty() && pidfd.is_none() {
            // No pidfd on this kernel: ask again each millisecond.
            match child.try_wait() {
                Ok(Some(s)) => status = Some(code(s)),
                _ => std::thread::sleep(Duration::from_millis(1).min(Duration::from_millis(wait as u64))),
            }
            continue;
        }
        let mut fds: Vec<sys::PollFd> =
            streams.iter().map(|(r, _)| sys::PollFd { fd: r.as_raw_fd(), events: sys::POLLIN, revents: 0 }).collect();
        if let Some(w) = &input {
            fds.push(sys::PollFd { fd: w.as_raw_fd(), events: sys::POLLOUT, revents: 0 });
        }
        if let Some(p) = pidfd {
            fds.push(sys::PollFd { fd: p, events: sys::POLLIN, revents: 0 });
        }
        // SAFETY: `fds` is a valid array of `fds.len()` pollfd structures.
        let n = unsafe { sys::poll(fds.as_mut_ptr(), fds.len() as u64, wait) };
        if n <= 0 {
            continue;
        }
        let mut closed = Vec::new();
        for (k, f) in fds.iter().enumerate().filter(|(_, f)| f.revents != 0) {
            if k < streams.len() {
                match streams[k].0.read(&mut buf) {
                    Ok(0) | Err(_) => closed.push(k),
                    Ok(n) => send(format!(
                        "{{\"id\": {id}, \"s\": \"{}\", \"d\": \"{}\"}}",
                        streams[k].1,
                        b64_encode(&buf[..n])
                    )),
                }
            } else if Some(f.fd) == pidfd {
                if let Ok(s) = child.wait() {
                    status = Some(code(s));
                }
                // SAFETY: closing the pidfd this function opened.
                unsafe { sys::close(f.fd) };
                pidfd = None;
            } else if let Some(w) = &mut input {
                let end = rest.len().min(64 * 1024);
                match w.write(&rest[..end]) {
                    Ok(n) => rest = &rest[n..],
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    // The command closed its input.
                    Err(_) => rest = &[],
                }
                if rest.is_empty() {
                    input = None;
                }
            }
        }
        for k in closed.into_iter().rev() {
            streams.remove(k);
        }
    }
    if let Some(p) = pidfd {
        // SAFETY: closing the pidfd this function opened.
        unsafe { sys::close(p) };
    }
    match status {
        Some(s) => s,
        None => child.wait().map(code).unwrap_or(-9),
    }
}

fn code(s: std::process::ExitStatus) -> i64 {
    match (s.code(), s.signal()) {
        (Some(c), _) => i64::from(c),
        (None, Some(sig)) => -i64::from(sig),
        _ => -1,
    }
}

fn run(req: Request, warm: Option<Warm>) {
    let id = req.id;
    let was_warm = warm.is_some();
    let (mut child, out, err, input, data) = match warm {
        Some(w) => (w.child, w.out, w.err, Some(w.script), req.command.clone().into_bytes()),
        None => match spawn_cold(&req) {
            Ok((c, o, e, i)) => (c, o, e, i, req.stdin.clone().unwrap_or_default()),
            Err(e) => return send(format!("{{\"id\": {id}, \"err\": {}}}", quote(&e.to_string()))),
        },
    };
    lock(&PROCS).get_or_insert_with(HashMap::new).insert(id, child.id() as i32);
    let status = serve(id, &mut child, out, err, input, &data, req.seconds);
    lock(&PROCS).get_or_insert_with(HashMap::new).remove(&id);
    send(format!("{{\"id\": {id}, \"x\": {status}}}"));
    if was_warm {
        WARMER.refill();
    }
}

fn request(map: &HashMap<String, Value>) -> Option<Request> {
    let id = match map.get("id")? {
        Value::Num(n) => u64::try_from(*n).ok()?,
        _ => return None,
    };
    let command = match map.get("c")? {
        Value::Str(s) => s.clone(),
        _ => return None,
    };
    let seconds = match map.get("t") {
        Some(Value::Num(n)) => u64::try_from(*n).unwrap_or(1).max(1),
        _ => 120,
    };
    let cwd = match map.get("cwd") {
        Some(Value::Str(s)) if s != WORKSPACE => Some(s.clone()),
        _ => None,
    };
    let stdin = match map.get("in") {
        Some(Value::Str(s)) => Some(b64_decode(s)?),
        _ => None,
    };
    Some(Request { id, command, seconds, cwd, stdin })
}

fn main() {
    if std::thread::Builder::new().spawn(|| WARMER.run()).is_err() {
        return;
    }
    send("{\"ready\": true}".into());
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { return };
        let Some(map) = parse(&line) else { continue };
        if let Some(Value::Num(k)) = map.get("kill") {
            let pgid = u64::try_from(*k).ok().and_then(|k| lock(&PROCS).as_ref()?.get(&k).copied());
            if let Some(pgid) = pgid {
                kill_group(pgid);
            }
            continue;
        }
        let Some(req) = request(&map) else { continue };
        let plain = req.stdin.is_none() && req.cwd.is_none() && !req.command.contains('\0');
        let warm = if plain { WARMER.take() } else { None };
        let id = req.id;
        // The command's one thread starts before the command does.
        let (tx, rx) = std::sync::mpsc::channel::<(Request, Option<Warm>)>();
        let started = std::thread::Builder::new().spawn(move || {
            if let Ok((req, warm)) = rx.recv() {
                run(req, warm);
            }
        });
        match started {
            Ok(_) => {
                let _ = tx.send((req, warm));
            }
            Err(_) => {
                if let Some(mut w) = warm {
                    kill_group(w.child.id() as i32);
                    let _ = w.child.wait();
                    WARMER.refill();
                }
                send(format!("{{\"id\": {id}, \"err\": \"the sandbox's process limit is reached; try again\"}}"));
            }
        }
    }
}
