//! Who this process is in a group, from the launcher's variables, and the local launcher.
//!
//! - torchrun (and any launcher following its convention): `RANK`, `WORLD_SIZE`, `LOCAL_RANK`,
//!   `MASTER_ADDR`, `MASTER_PORT`; with `TORCHELASTIC_USE_AGENT_STORE=True` the store is torchrun's
//!   agent's, as for PyTorch's own ranks.
//! - Slurm's `srun`: `SLURM_PROCID`, `SLURM_NTASKS`, `SLURM_LOCALID`; the address of rank 0 comes
//!   from `MASTER_ADDR` (a batch script sets it from `scontrol show hostnames`), or is loopback when
//!   the job has one node.
//! - `--nproc-per-node N` ([`spawn_local`]): N copies of this program on this machine, each given
//!   torchrun's variables, as `torchrun --standalone` does.

use crate::error::{Error, Result};
use std::ffi::OsString;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

/// The port of rank 0's store when none is given (PyTorch's default).
pub const DEFAULT_PORT: u16 = 29500;

/// How to reach the group and which member this process is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendezvous {
    pub master_addr: String,
    pub master_port: u16,
    pub rank: usize,
    pub world: usize,
    /// The rank among this machine's ranks: the GPU it uses.
    pub local_rank: usize,
    /// How long a rank waits for the others, at the rendezvous and in every collective.
    pub timeout: Duration,
    /// torchrun's agent serves the store at `master_addr:master_port` (it sets
    /// `TORCHELASTIC_USE_AGENT_STORE=True`): every rank connects to it, none serves one.
    pub agent_store: bool,
}

impl Rendezvous {
    pub fn is_loopback(&self) -> bool {
        matches!(self.master_addr.as_str(), "127.0.0.1" | "localhost" | "::1")
    }

    /// The group a launcher describes in `get`'s variables (`std::env::var` in use), or `None`
    /// for a single process: none set, or one Slurm task.
    pub fn from_vars(get: impl Fn(&str) -> Option<String>, timeout: Duration) -> Result<Option<Self>> {
        let (rank, world, local_rank, single_node) = if let Some(world) = get("WORLD_SIZE") {
            let world = number("WORLD_SIZE", &world)?;
            let rank = number("RANK", &need(&get, "RANK", "WORLD_SIZE")?)?;
            let local = get("LOCAL_RANK").map(|v| number("LOCAL_RANK", &v)).transpose()?.unwrap_or(0);
            (rank, world, local, false)
        } else if let Some(world) = get("SLURM_NTASKS") {
            let world = number("SLURM_NTASKS", &world)?;
            let rank = number("SLURM_PROCID", &need(&get, "SLURM_PROCID", "SLURM_NTASKS")?)?;
            let local = get("SLURM_LOCALID").map(|v| number("SLURM_LOCALID", &v)).transpose()?.unwrap_or(0);
            let nodes = get("SLURM_NNODES").or_else(|| get("SLURM_JOB_NUM_NODES"));
            let single = nodes.map(|n| number("SLURM_NNODES", &n)).transpose()?.is_some_and(|n| n == 1);
            (rank, world, local, single)
        } else {
            return Ok(None);
        };
        if world == 0 {
            return Err(env("WORLD_SIZE", "0", "a group needs at least one rank"));
        }
        if rank >= world {
            return Err(env("RANK", &rank.to_string(), &format!("must be below the world size {world}")));
        }
        // One Slurm task is a plain process; torchrun's world of one is a group of one, as it is
        // for DDP.
        if world == 1 && get("WORLD_SIZE").is_none() {
            return Ok(None);
        }
        let master_addr = match get("MASTER_ADDR") {
            Some(a) if !a.trim().is_empty() => a.trim().to_string(),
            _ if single_node => "127.0.0.1".into(),
            _ if get("SLURM_NTASKS").is_some() && get("WORLD_SIZE").is_none() => {
                return Err(env(
                    "MASTER_ADDR",
                    "",
                    "not set in a Slurm job on several nodes: export MASTER_ADDR=$(scontrol show hostnames \"$SLURM_JOB_NODELIST\" | head -n 1) before srun",
                ))
            }
            _ => "127.0.0.1".into(),
        };
        let master_port = match get("MASTER_PORT") {
            Some(p) => p.trim().parse::<u16>().map_err(|_| env("MASTER_PORT", &p, "not a port number"))?,
            None => DEFAULT_PORT,
        };
        let agent_store = get("TORCHELASTIC_USE_AGENT_STORE").as_deref() == Some("True");
        Ok(Some(Self { master_addr, master_port, rank, world, local_rank, timeout, agent_store }))
    }

    /// [`Rendezvous::from_vars`] over this process's environment.
    pub fn from_env(timeout: Duration) -> Result<Option<Self>> {
        Self::from_vars(|k| std::env::var(k).ok(), timeout)
    }
}

fn need(get: &impl Fn(&str) -> Option<String>, var: &'static str, with: &str) -> Result<String> {
    get(var).ok_or_else(|| env(var, "", &format!("not set, but {with} is")))
}

fn number(var: &'static str, value: &str) -> Result<usize> {
    value.trim().parse().map_err(|_| env(var, value, "not a non-negative integer"))
}

fn env(var: &'static str, value: &str, problem: &str) -> Error {
    Error::Env { var, value: value.into(), problem: problem.into() }
}

/// A free TCP port on loopback for a local group's store.
fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| Error::Launch(format!("no free port: {e}")))?;
    listener.local_addr().map(|a| a.port()).map_err(|e| Error::Launch(format!("no free port: {e}")))
}

/// Runs `program args` as `nproc` local ranks (torchrun's variables set, loopback rendezvous)
/// and waits for them; a rank dies with the launcher. When a rank fails, the others are given `grace` to stop by themselves
/// (their collectives fail as soon as the peer is gone), then killed; the error names the first
/// rank that failed.
pub fn spawn_local(program: &Path, args: &[OsString], nproc: usize, grace: Duration) -> Result<()> {
    if nproc == 0 {
        return Err(Error::Launch("--nproc-per-node must be at least 1".into()));
    }
    let port = free_port()?.to_string();
    let mut children: Vec<Option<Child>> = Vec::with_capacity(nproc);
    for rank in 0..nproc {
        let mut command = Command::new(program);
        // SAFETY: prctl is async-signal-safe; it only asks the kernel to end the child with the
        // launcher, so a launcher killed by any signal leaves no rank behind.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command
            .args(args)
            // Our own store, served by rank 0, whatever launcher started this one.
            .env_remove("TORCHELASTIC_USE_AGENT_STORE")
            .env("RANK", rank.to_string())
            .env("LOCAL_RANK", rank.to_string())
            .env("WORLD_SIZE", nproc.to_string())
            .env("LOCAL_WORLD_SIZE", nproc.to_string())
            .env("MASTER_ADDR", "127.0.0.1")
            .env("MASTER_PORT", &port)
            .spawn();
        match child {
            Ok(c) => children.push(Some(c)),
            Err(e) => {
                kill_all(&mut children);
                return Err(Error::Launch(format!("{}: cannot start rank {rank}: {e}", program.display())));
            }
        }
    }
    let mut first_failure: Option<(usize, ExitStatus)> = None;
    let mut deadline: Option<Instant> = None;
    loop {
        for (rank, slot) in children.iter_mut().enumerate() {
            let Some(child) = slot else { continue };
            if let Ok(Some(status)) = child.try_wait() {
                *slot = None;
                if !status.success() && first_failure.is_none() {
                    first_failure = Some((rank, status));
                    deadline = Some(Instant::now() + grace);
                }
            }
        }
        if children.iter().all(Option::is_none) {
            break;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            kill_all(&mut children);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    match first_failure {
        None => Ok(()),
        Some((rank, status)) => {
            Err(Error::Launch(format!("rank {rank} of {nproc} failed ({status}); the group stopped")))
        }
    }
}

fn kill_all(children: &mut [Option<Child>]) {
    for child in children.iter_mut().flatten() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse(vars: &[(&str, &str)]) -> Result<Option<Rendezvous>> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Rendezvous::from_vars(|k| map.get(k).cloned(), Duration::from_secs(7))
    }

    #[test]
    fn torchrun_variables() {
        let r = parse(&[
            ("RANK", "3"),
            ("WORLD_SIZE", "8"),
            ("LOCAL_RANK", "1"),
            ("MASTER_ADDR", "10.0.0.5"),
            ("MASTER_PORT", "29400"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(
            r,
            Rendezvous {
                master_addr: "10.0.0.5".into(),
                master_port: 29400,
                rank: 3,
                world: 8,
                local_rank: 1,
                timeout: Duration::from_secs(7),
                agent_store: false,
            }
        );
        let agent = parse(&[("RANK", "1"), ("WORLD_SIZE", "2"), ("TORCHELASTIC_USE_AGENT_STORE", "True")]);
        assert!(agent.unwrap().unwrap().agent_store);
        assert!(!r.is_loopback());
        // Defaults: loopback, PyTorch's port, local rank 0.
        let r = parse(&[("RANK", "1"), ("WORLD_SIZE", "2")]).unwrap().unwrap();
        assert_eq!((r.master_addr.as_str(), r.master_port, r.local_rank), ("127.0.0.1", 29500, 0));
        assert!(r.is_loopback());
    }

    #[test]
    fn slurm_variables() {
        let r = parse(&[("SLURM_PROCID", "5"), ("SLURM_NTASKS", "8"), ("SLURM_LOCALID", "1"), ("SLURM_NNODES", "2")]);
        let e = r.unwrap_err().to_string();
        assert!(e.starts_with("MASTER_ADDR=: not set in a Slurm job on several nodes"), "{e}");
        let r = parse(&[
            ("SLURM_PROCID", "5"),
            ("SLURM_NTASKS", "8"),
            ("SLURM_LOCALID", "1"),
            ("SLURM_NNODES", "2"),
            ("MASTER_ADDR", "node01"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!((r.rank, r.world, r.local_rank, r.master_addr.as_str()), (5, 8, 1, "node01"));
        // One node: loopback without MASTER_ADDR.
        let r = parse(&[("SLURM_PROCID", "1"), ("SLURM_NTASKS", "4"), ("SLURM_LOCALID", "1"), ("SLURM_NNODES", "1")]);
        assert_eq!(r.unwrap().unwrap().master_addr, "127.0.0.1");
        // torchrun's variables win over Slurm's (torchrun started under srun).
        let r = parse(&[("RANK", "0"), ("WORLD_SIZE", "2"), ("SLURM_PROCID", "1"), ("SLURM_NTASKS", "4")]);
        assert_eq!(r.unwrap().unwrap().world, 2);
    }

    #[test]
    fn single_processes_and_bad_values() {
        assert_eq!(parse(&[]).unwrap(), None);
        assert_eq!(parse(&[("RANK", "0"), ("WORLD_SIZE", "1")]).unwrap().unwrap().world, 1);
        assert_eq!(parse(&[("SLURM_PROCID", "0"), ("SLURM_NTASKS", "1")]).unwrap(), None);
        let err = |vars: &[(&str, &str)]| parse(vars).unwrap_err().to_string();
        assert_eq!(err(&[("RANK", "2"), ("WORLD_SIZE", "2")]), "RANK=2: must be below the world size 2");
        assert_eq!(err(&[("RANK", "x"), ("WORLD_SIZE", "2")]), "RANK=x: not a non-negative integer");
        assert_eq!(err(&[("WORLD_SIZE", "2")]), "RANK=: not set, but WORLD_SIZE is");
        assert_eq!(
            err(&[("RANK", "0"), ("WORLD_SIZE", "2"), ("MASTER_PORT", "70000")]),
            "MASTER_PORT=70000: not a port number"
        );
        assert_eq!(err(&[("SLURM_NTASKS", "4")]), "SLURM_PROCID=: not set, but SLURM_NTASKS is");
    }
}
