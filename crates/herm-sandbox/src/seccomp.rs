//! The seccomp filter of the namespaces backend, compiled to classic BPF for bubblewrap's
//! `--seccomp` (applied just before the command runs). It refuses, with EPERM, the syscalls
//! an agent's commands never need and an escape would: new namespaces, mounts and root
//! changes, tracing other processes, kernel modules and kexec, keyrings, eBPF and perf,
//! userfaultfd, handle-based opens, and changing the clock or swap.
//!
//! Known gap: `clone3` cannot be filtered by its flags (they sit in a struct) and refusing it
//! breaks threads, so namespace creation through `clone3` is stopped only by the dropped
//! capabilities and `no_new_privs`.

use crate::{Error, Result};
use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, TargetArch};
use std::collections::BTreeMap;

fn denied() -> Vec<i64> {
    let mut v = vec![
        libc::SYS_mount,
        libc::SYS_umount2,
        libc::SYS_pivot_root,
        libc::SYS_chroot,
        libc::SYS_unshare,
        libc::SYS_setns,
        libc::SYS_ptrace,
        libc::SYS_process_vm_readv,
        libc::SYS_process_vm_writev,
        libc::SYS_kexec_load,
        libc::SYS_init_module,
        libc::SYS_finit_module,
        libc::SYS_delete_module,
        libc::SYS_reboot,
        libc::SYS_swapon,
        libc::SYS_swapoff,
        libc::SYS_bpf,
        libc::SYS_perf_event_open,
        libc::SYS_keyctl,
        libc::SYS_add_key,
        libc::SYS_request_key,
        libc::SYS_userfaultfd,
        libc::SYS_open_by_handle_at,
        libc::SYS_name_to_handle_at,
        libc::SYS_acct,
        libc::SYS_quotactl,
        libc::SYS_syslog,
        libc::SYS_settimeofday,
        libc::SYS_clock_settime,
    ];
    #[cfg(target_arch = "x86_64")]
    v.extend([libc::SYS_iopl, libc::SYS_ioperm, libc::SYS_kexec_file_load]);
    v
}

/// The filter as the raw `struct sock_filter` array bubblewrap reads.
pub fn program() -> Result<Vec<u8>> {
    let arch = TargetArch::try_from(std::env::consts::ARCH).map_err(|e| Error::Engine(format!("seccomp: {e}")))?;
    let rules: BTreeMap<i64, Vec<seccompiler::SeccompRule>> = denied().into_iter().map(|s| (s, Vec::new())).collect();
    let filter = SeccompFilter::new(rules, SeccompAction::Allow, SeccompAction::Errno(libc::EPERM as u32), arch)
        .map_err(|e| Error::Engine(format!("seccomp: {e}")))?;
    let bpf: BpfProgram =
        filter.try_into().map_err(|e: seccompiler::BackendError| Error::Engine(format!("seccomp: {e}")))?;
    let mut out = Vec::with_capacity(bpf.len() * 8);
    for ins in bpf {
        out.extend_from_slice(&ins.code.to_ne_bytes());
        out.push(ins.jt);
        out.push(ins.jf);
        out.extend_from_slice(&ins.k.to_ne_bytes());
    }
    Ok(out)
}
