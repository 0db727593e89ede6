//! What the namespaces backend does in the forked child just before it becomes bubblewrap:
//! join the deployment's cgroups (so nothing of the command ever runs unlimited), enter the
//! deployment's network namespace when it has one, and put the seccomp program at file
//! descriptor 3, where `bwrap --seccomp 3` reads it.
//!
//! Doing this in the child instead of in a shell in front of bubblewrap (`sh -c 'echo $$ >
//! cgroup.procs; exec nsenter --net=… bwrap …'`) saves two programs' start per command.
//! Everything is opened and formatted before the fork; the child makes only
//! async-signal-safe system calls (open, write, close, dup2, fcntl, setns).

use crate::{Error, Result};
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

pub(super) struct ChildSetup {
    /// `cgroup.procs` of each of the deployment's cgroups.
    procs: Vec<CString>,
    filter: OwnedFd,
    net: Option<OwnedFd>,
}

fn open(path: &Path) -> Result<OwnedFd> {
    std::fs::File::open(path)
        .map(OwnedFd::from)
        .map_err(|e| Error::Engine(format!("cannot open {}: {e}", path.display())))
}

impl ChildSetup {
    pub(super) fn new(cgroups: &[PathBuf], filter: &Path, net: Option<&Path>) -> Result<Self> {
        let procs = cgroups
            .iter()
            .map(|d| {
                CString::new(d.join("cgroup.procs").as_os_str().as_encoded_bytes())
                    .map_err(|_| Error::Engine(format!("cgroup path {} holds a NUL byte", d.display())))
            })
            .collect::<Result<_>>()?;
        Ok(Self { procs, filter: open(filter)?, net: net.map(open).transpose()? })
    }

    /// Runs in the child between fork and exec.
    pub(super) fn apply(&self) -> std::io::Result<()> {
        let fail = || Err(std::io::Error::last_os_error());
        for path in &self.procs {
            // SAFETY: open/write/close on a path formatted before the fork; "0" moves the
            // calling process (cgroup v1 and v2 alike).
            let ok = unsafe {
                let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 {
                    false
                } else {
                    let n = libc::write(fd, b"0".as_ptr().cast(), 1);
                    libc::close(fd);
                    n == 1
                }
            };
            if !ok {
                return fail();
            }
        }
        let filter = self.filter.as_raw_fd();
        // SAFETY: dup2/fcntl on a descriptor this process owns. dup2 onto itself would keep
        // close-on-exec, so that case clears the flag instead.
        let ok =
            unsafe { if filter == 3 { libc::fcntl(3, libc::F_SETFD, 0) == 0 } else { libc::dup2(filter, 3) == 3 } };
        if !ok {
            return fail();
        }
        if let Some(net) = &self.net {
            // SAFETY: setns on a namespace file opened before the fork.
            if unsafe { libc::setns(net.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return fail();
            }
        }
        Ok(())
    }
}
