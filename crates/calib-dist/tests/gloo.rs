//! Real Gloo groups of separate processes on loopback: this test binary starts copies of itself
//! as the ranks (through the crate's own launcher), each running one test function as a rank.

use calib_dist::launch::spawn_local;
use calib_dist::{Backend, ProcessGroup, Rendezvous};
use calib_train::collective::Collective;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tch::{Kind, Tensor};

/// In a rank: the group this process belongs to. In the test itself: `None`.
fn rank_group(timeout: Duration) -> Option<ProcessGroup> {
    let rendezvous = Rendezvous::from_env(timeout).expect("launcher variables")?;
    Some(ProcessGroup::join(Backend::Gloo, &rendezvous).expect("join"))
}

/// Runs `test` of this binary as `n` ranks.
fn launch(test: &str, n: usize, grace: Duration) -> calib_dist::Result<()> {
    let args: Vec<OsString> = ["--exact", test, "--nocapture", "--test-threads=1"].iter().map(OsString::from).collect();
    spawn_local(&std::env::current_exe().unwrap(), &args, n, grace)
}

fn values(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(t.to_kind(Kind::Double).reshape([-1])).unwrap()
}

#[test]
fn three_ranks_sum_and_broadcast_in_buckets() {
    let Some(group) = rank_group(Duration::from_secs(60)) else {
        launch("three_ranks_sum_and_broadcast_in_buckets", 3, Duration::from_secs(30)).unwrap();
        return;
    };
    let r = group.rank() as f64;
    assert_eq!(group.world_size(), 3);
    // Two float tensors (one a non-contiguous view), a double, an int64: packed into buckets of
    // 16 bytes, so some collectives carry one tensor and some several.
    let group = group.with_bucket_bytes(16);
    let base = Tensor::from_slice(&[r, 2.0 * r, 3.0 * r, 4.0 * r]).to_kind(Kind::Float).view([2, 2]);
    let mut ts = vec![
        Tensor::from_slice(&[1.0f32 + r as f32, 0.5]),
        base.tr(),
        Tensor::from_slice(&[r, r, r, r]),
        Tensor::from_slice(&[group.rank() as i64 * 7]),
    ];
    group.all_reduce_sum(&mut ts).unwrap();
    assert_eq!(values(&ts[0]), vec![6.0, 1.5]);
    // The transposed view of Σr·[[1,2],[3,4]] = [[3,6],[9,12]], read in the view's order.
    assert_eq!(values(&ts[1]), vec![3.0, 9.0, 6.0, 12.0]);
    assert_eq!(values(&ts[2]), vec![3.0; 4]);
    assert_eq!(values(&ts[3]), vec![21.0]);
    let mut ts = vec![Tensor::from_slice(&[r, -r]), Tensor::from_slice(&[r as f32; 9])];
    group.broadcast(&mut ts, 2).unwrap();
    assert_eq!(values(&ts[0]), vec![2.0, -2.0]);
    assert_eq!(values(&ts[1]), vec![2.0; 9]);
    let e = group.broadcast(&mut ts, 3).unwrap_err().to_string();
    assert!(e.contains("root 3 ≥ world 3"), "{e}");
    group.barrier().unwrap();
}

/// Where the surviving ranks of the fault test write what they saw: a folder named for the test
/// process that launched them.
fn fault_dir(launcher: u32) -> PathBuf {
    std::env::temp_dir().join(format!("calib-dist-fault-{launcher}"))
}

#[test]
fn a_dead_rank_stops_the_others_with_an_error() {
    let Some(group) = rank_group(Duration::from_secs(60)) else {
        let dir = fault_dir(std::process::id());
        std::fs::create_dir_all(&dir).unwrap();
        let started = Instant::now();
        let result = launch("a_dead_rank_stops_the_others_with_an_error", 3, Duration::from_secs(120));
        let e = result.unwrap_err().to_string();
        assert!(e.starts_with("rank 1 of 3 failed (exit status: 3)"), "{e}");
        for rank in [0, 2] {
            let seen = std::fs::read_to_string(dir.join(format!("rank-{rank}")))
                .unwrap_or_else(|_| panic!("rank {rank} did not report its error"));
            assert!(seen.starts_with(&format!("collective all-reduce: rank {rank} of 3: ")), "{seen}");
            assert!(seen.contains("Connection closed by peer"), "{seen}");
        }
        // Found by the closed connections, long before the 60 s timeout.
        assert!(started.elapsed() < Duration::from_secs(50), "{:?}", started.elapsed());
        std::fs::remove_dir_all(&dir).unwrap();
        return;
    };
    let mut t = [Tensor::from_slice(&[1.0f32])];
    group.all_reduce_sum(&mut t).unwrap();
    if group.rank() == 1 {
        std::process::exit(3);
    }
    // The survivors' next collectives fail instead of hanging.
    let err = (0..100).find_map(|_| group.all_reduce_sum(&mut t).err()).expect("a collective with a dead peer failed");
    let launcher = std::os::unix::process::parent_id();
    std::fs::write(fault_dir(launcher).join(format!("rank-{}", group.rank())), err.to_string()).unwrap();
}

/// The ranks of a launcher killed with SIGKILL (no clean-up of its own) end with it: each rank
/// asks the kernel for a signal when its parent dies.
#[test]
fn ranks_end_with_their_launcher() {
    const NAME: &str = "ranks_end_with_their_launcher";
    if std::env::var("RANK").is_ok() {
        // A rank: say who it is, then wait far longer than the test does.
        let dir = PathBuf::from(std::env::var("CALIB_DIST_PIDS").unwrap());
        std::fs::write(dir.join(std::process::id().to_string()), "").unwrap();
        std::thread::sleep(Duration::from_secs(120));
        return;
    }
    if std::env::var("CALIB_DIST_ROLE").as_deref() == Ok("launcher") {
        let _ = launch(NAME, 2, Duration::from_secs(120));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut launcher = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", NAME, "--nocapture", "--test-threads=1"])
        .env("CALIB_DIST_ROLE", "launcher")
        .env("CALIB_DIST_PIDS", dir.path())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let pids = loop {
        let pids: Vec<u32> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_str().unwrap().parse().unwrap())
            .collect();
        if pids.len() == 2 {
            break pids;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the ranks did not start");
        std::thread::sleep(Duration::from_millis(50));
    };
    launcher.kill().unwrap();
    launcher.wait().unwrap();
    // Gone, or a zombie waiting for whoever adopted it.
    let ended = |pid: u32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map_or(true, |stat| stat.rsplit(')').next().unwrap().trim_start().starts_with('Z'))
    };
    let killed = Instant::now();
    while !pids.iter().all(|&p| ended(p)) {
        assert!(killed.elapsed() < Duration::from_secs(20), "ranks {pids:?} outlived their launcher");
        std::thread::sleep(Duration::from_millis(50));
    }
}
