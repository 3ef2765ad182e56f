//! What a sandbox child may still do once it has confined itself, before it reads a byte of
//! the untrusted file: resource limits, a Landlock allow-list for files and TCP ports, and a
//! seccomp filter that refuses new programs, processes and sockets. Every mode (and the probe)
//! goes through [`confine`]. Each layer is applied as far as the kernel allows and reported:
//! on an old kernel the parser runs less confined rather than not at all.

use std::{
    fmt,
    path::{Path, PathBuf},
};

use landlock::{
    ABI, Access, AccessFs, AccessNet, LandlockStatus, PathBeneath, PathFd, Ruleset, RulesetAttr,
    RulesetCreatedAttr, RulesetStatus, Scope,
};
use serde::{Deserialize, Serialize};

/// Descriptors a child may hold: stdin, stdout, stderr, the PDF and Tesseract's model files,
/// one at a time (measured: an OCR run in two languages holds 5 at most).
pub const MAX_OPEN_FILES: u64 = 32;

/// What one child may use once confined.
#[derive(Debug, Clone, Default)]
pub struct Allowance {
    /// Address-space limit.
    pub memory_mb: u64,
    /// CPU-time limit, over the child's whole life.
    pub cpu_secs: u64,
    /// The largest file it may write (`RLIMIT_FSIZE`): 0 when it writes none.
    pub max_file_bytes: u64,
    /// Files it may read, and folders whose files it may read (without listing them).
    pub reads: Vec<PathBuf>,
    /// Whether it may read (and list) Tesseract's model folders.
    pub ocr_models: bool,
}

impl Allowance {
    /// `extract` (and the probe): read the PDF and the OCR models, write nothing.
    pub fn extract(file: &Path, memory_mb: u64, cpu_secs: u64) -> Self {
        Allowance {
            memory_mb,
            cpu_secs,
            reads: vec![file.to_owned()],
            ocr_models: true,
            ..Allowance::default()
        }
    }

    /// `batch`: read the PDFs in `reads` (files, and folders read recursively) and the OCR
    /// models, write nothing.
    pub fn batch(reads: &[PathBuf], memory_mb: u64, cpu_secs: u64) -> Self {
        Allowance {
            memory_mb,
            cpu_secs,
            reads: reads.to_vec(),
            ocr_models: true,
            ..Allowance::default()
        }
    }

    /// `split`: read the PDF; write, through the descriptor opened before confinement, a
    /// subset of its pages, bounded well above what pruned pages of this file can take.
    pub fn split(file: &Path, memory_mb: u64, cpu_secs: u64) -> Self {
        let size = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
        Allowance {
            memory_mb,
            cpu_secs,
            max_file_bytes: size.saturating_mul(4).saturating_add(16 * 1024 * 1024),
            reads: vec![file.to_owned()],
            ocr_models: false,
        }
    }

    /// `inspector`: read the uploads checked in `uploads` (named later, on stdin).
    pub fn inspector(uploads: &Path, memory_mb: u64, cpu_secs: u64) -> Self {
        Allowance {
            memory_mb,
            cpu_secs,
            reads: vec![uploads.to_owned()],
            ..Allowance::default()
        }
    }
}

/// Which protections a confined child has, as the kernel granted them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Protections {
    /// The Landlock ABI the rules were applied with; 0 without Landlock.
    pub landlock_abi: u32,
    /// How much of the Landlock allow-list is enforced: `full`, `partial` or `none`.
    pub landlock: String,
    /// Whether the seccomp filter is installed.
    pub seccomp: bool,
}

impl fmt::Display for Protections {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.landlock_abi {
            0 => f.write_str("no Landlock (not in this kernel)")?,
            abi => write!(f, "Landlock ABI {abi} ({} allow-list)", self.landlock)?,
        }
        match self.seccomp {
            true => f.write_str(", seccomp filter on"),
            false => f.write_str(", no seccomp filter (not in this kernel or architecture)"),
        }
    }
}

/// Confines this (child) process to `allowance`, for good: limits, then Landlock, then
/// seccomp. Fails only on a mistake in the rules, never because the kernel lacks a feature.
pub fn confine(allowance: &Allowance) -> anyhow::Result<Protections> {
    lower_limits(allowance)?;
    let (landlock_abi, landlock) = landlock(allowance)?;
    let seccomp = seccomp::install()?;
    Ok(Protections {
        landlock_abi,
        landlock: landlock.into(),
        seccomp,
    })
}

fn lower_limits(allowance: &Allowance) -> std::io::Result<()> {
    use rlimit::{Resource, setrlimit};
    let bytes = allowance.memory_mb.saturating_mul(1024 * 1024);
    setrlimit(Resource::AS, bytes, bytes)?;
    setrlimit(Resource::CPU, allowance.cpu_secs, allowance.cpu_secs + 1)?;
    setrlimit(Resource::CORE, 0, 0)?;
    let file = match coverage_profile_dir() {
        Some(_) => rlimit::INFINITY,
        None => allowance.max_file_bytes,
    };
    setrlimit(Resource::FSIZE, file, file)?;
    setrlimit(Resource::NOFILE, MAX_OPEN_FILES, MAX_OPEN_FILES)?;
    // The child starts no process, nor any thread (Tesseract runs with OMP_THREAD_LIMIT=1).
    // The count is per user, so any small number refuses them all alike, threads included;
    // root is exempt, which is why seccomp is the real guard.
    setrlimit(Resource::NPROC, 0, 0)
}

/// In a coverage build (`scripts/coverage`, which builds with `--cfg tarpaulin`) only: the
/// folder the child writes its coverage profile to when it exits, so that the parser's side
/// is measured too. Never in a build that is deployed.
fn coverage_profile_dir() -> Option<PathBuf> {
    if !cfg!(tarpaulin) {
        return None;
    }
    let profile = PathBuf::from(std::env::var_os("LLVM_PROFILE_FILE")?);
    profile.parent().map(Path::to_owned)
}

/// The newest Landlock ABI these rules were tested on: newer kernels are asked for nothing
/// beyond it, older ones enforce what they can.
const LANDLOCK_ABI: ABI = ABI::V7;

fn landlock(allowance: &Allowance) -> anyhow::Result<(u32, &'static str)> {
    let read_file = landlock::BitFlags::from(AccessFs::ReadFile);
    let read_dir = AccessFs::ReadFile | AccessFs::ReadDir;
    let mut ruleset = Ruleset::default()
        // Handled and never granted: every other file access, TCP bind and connect, and
        // signals or abstract Unix sockets reaching outside the child.
        .handle_access(AccessFs::from_all(LANDLOCK_ABI))?
        .handle_access(AccessNet::from_all(LANDLOCK_ABI))?
        .scope(Scope::from_all(LANDLOCK_ABI))?
        .create()?;
    let models = match allowance.ocr_models {
        true => super::ocr::tessdata_dirs(),
        false => Vec::new(),
    };
    let profiles = coverage_profile_dir();
    let write_profile =
        AccessFs::ReadFile | AccessFs::WriteFile | AccessFs::MakeReg | AccessFs::Truncate;
    let rules = (allowance.reads.iter().map(|path| (path, read_file)))
        .chain(models.iter().map(|dir| (dir, read_dir)))
        .chain(profiles.iter().map(|dir| (dir, write_profile)));
    for (path, access) in rules {
        // A path that does not exist needs no rule: the child's read of it fails either way.
        if let Ok(fd) = PathFd::new(path) {
            ruleset = ruleset.add_rule(PathBeneath::new(fd, access))?;
        }
    }
    let status = ruleset.restrict_self()?;
    let abi = match status.landlock {
        LandlockStatus::Available { effective_abi, .. } => effective_abi as u32,
        _ => 0,
    };
    let enforced = match status.ruleset {
        RulesetStatus::FullyEnforced => "full",
        RulesetStatus::PartiallyEnforced => "partial",
        RulesetStatus::NotEnforced => "none",
    };
    Ok((abi, enforced))
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod seccomp {
    use std::collections::BTreeMap;

    use seccompiler::{
        BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
        SeccompRule,
    };

    /// Refused with EPERM. A denylist, so the parser, Tesseract and the allocator keep every
    /// call they make; these are the calls an exploit needs to get out.
    const DENIED: &[i64] = &[
        // Running another program.
        libc::SYS_execve,
        libc::SYS_execveat,
        #[cfg(target_arch = "x86_64")]
        libc::SYS_fork,
        #[cfg(target_arch = "x86_64")]
        libc::SYS_vfork,
        // The network, and local sockets.
        libc::SYS_socket,
        libc::SYS_socketpair,
        libc::SYS_connect,
        // Other processes' memory and descriptors.
        libc::SYS_ptrace,
        libc::SYS_process_vm_readv,
        libc::SYS_process_vm_writev,
        libc::SYS_pidfd_getfd,
        // io_uring performs opens, sockets and connects without the calls above.
        libc::SYS_io_uring_setup,
        libc::SYS_io_uring_enter,
        libc::SYS_io_uring_register,
        // What the child could do to the machine as root: namespaces and mounts, kernel
        // modules, kexec, reboot, BPF, perf, keyrings, and opening files by handle (which
        // skips the path checks).
        libc::SYS_unshare,
        libc::SYS_setns,
        libc::SYS_mount,
        libc::SYS_umount2,
        libc::SYS_pivot_root,
        libc::SYS_chroot,
        libc::SYS_init_module,
        libc::SYS_finit_module,
        libc::SYS_delete_module,
        libc::SYS_kexec_load,
        libc::SYS_kexec_file_load,
        libc::SYS_reboot,
        libc::SYS_bpf,
        libc::SYS_perf_event_open,
        libc::SYS_add_key,
        libc::SYS_request_key,
        libc::SYS_keyctl,
        libc::SYS_open_by_handle_at,
    ];

    /// x86_64 kernels built with the x32 ABI take the same calls with this bit set (and a few
    /// under numbers of their own): without these entries the list above could be stepped
    /// around. The filter kills calls of any other architecture (i386) outright.
    #[cfg(target_arch = "x86_64")]
    const X32: i64 = 0x4000_0000;
    /// x32's own numbers for execve, ptrace, kexec_load, process_vm_readv/writev, execveat.
    #[cfg(target_arch = "x86_64")]
    const X32_ONLY: &[i64] = &[520, 521, 528, 539, 540, 545];

    /// Installs the filters on every thread of this process; `false` when the kernel has no
    /// seccomp filters.
    pub fn install() -> anyhow::Result<bool> {
        for filter in [denied()?, clone3()?] {
            match seccompiler::apply_filter_all_threads(&filter) {
                Ok(()) => {}
                Err(seccompiler::Error::Seccomp(e))
                    if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS)) =>
                {
                    return Ok(false);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(true)
    }

    fn with_x32(numbers: &[i64]) -> Vec<i64> {
        #[cfg(target_arch = "x86_64")]
        let x32: Vec<i64> = numbers.iter().map(|n| n | X32).collect();
        #[cfg(not(target_arch = "x86_64"))]
        let x32 = Vec::new();
        numbers.iter().copied().chain(x32).collect()
    }

    fn program(rules: BTreeMap<i64, Vec<SeccompRule>>, errno: i32) -> anyhow::Result<BpfProgram> {
        let filter = SeccompFilter::new(
            rules,
            SeccompAction::Allow,
            SeccompAction::Errno(errno as u32),
            std::env::consts::ARCH.try_into()?,
        )?;
        Ok(filter.try_into()?)
    }

    /// [`DENIED`], and `clone` when it makes a process rather than a thread (no
    /// `CLONE_THREAD` in its flags).
    fn denied() -> anyhow::Result<BpfProgram> {
        let process = SeccompRule::new(vec![SeccompCondition::new(
            0,
            SeccompCmpArgLen::Qword,
            SeccompCmpOp::MaskedEq(libc::CLONE_THREAD as u64),
            0,
        )?])?;
        let mut rules: BTreeMap<_, _> = with_x32(DENIED).into_iter().map(|n| (n, vec![])).collect();
        #[cfg(target_arch = "x86_64")]
        rules.extend(X32_ONLY.iter().map(|n| (n | X32, vec![])));
        for clone in with_x32(&[libc::SYS_clone]) {
            rules.insert(clone, vec![process.clone()]);
        }
        program(rules, libc::EPERM)
    }

    /// `clone3` passes its flags in memory, where a filter cannot read them: "not
    /// implemented" makes glibc start threads with `clone`, which the filter can check.
    fn clone3() -> anyhow::Result<BpfProgram> {
        let rules = with_x32(&[libc::SYS_clone3])
            .into_iter()
            .map(|n| (n, vec![]))
            .collect();
        program(rules, libc::ENOSYS)
    }
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
mod seccomp {
    /// seccompiler builds filters for x86_64 and aarch64 only.
    pub fn install() -> anyhow::Result<bool> {
        Ok(false)
    }
}
