//! The seam for data parallelism: what the trainer needs from a group of processes (or devices),
//! one replica of the model each. The trainer reduces gradients at accumulation boundaries
//! (before clipping), broadcasts rank 0's weights at the start, sums the epoch's statistics, and
//! only rank 0 writes checkpoints, logs and progress. [`SingleProcess`] is the default; the
//! engine over PyTorch's c10d comes in its own crate. [`LocalGroup`] runs ranks as threads of one
//! process (tests, and a reference the engine is checked against).

use crate::error::{Error, Result};
use std::sync::{Arc, Barrier, Mutex};
use tch::{Device, Tensor};

/// A group of ranks that step together.
pub trait Collective {
    fn rank(&self) -> usize;
    fn world_size(&self) -> usize;
    /// Every rank's `tensors` become the element-wise sum over the ranks (same shapes and order
    /// on every rank).
    fn all_reduce_sum(&self, tensors: &mut [Tensor]) -> Result<()>;
    /// Every rank's `tensors` become rank `root`'s.
    fn broadcast(&self, tensors: &mut [Tensor], root: usize) -> Result<()>;
    /// Returns when every rank has reached it.
    fn barrier(&self) -> Result<()>;
    /// Whether the trainer runs the collectives: with more than one rank, and in a process group
    /// of one (as DDP does, so that a one-rank run checks the engine).
    fn communicates(&self) -> bool {
        self.world_size() > 1
    }
}

/// Every rank's `values` (of any lengths), in rank order, on every rank: an all-gather built
/// from two sums (the lengths, then a zero vector in which each rank fills its own span), run on
/// `device` (NCCL reduces CUDA tensors only). For small host-side exchanges, not for tensors.
pub fn all_gather_f64(collective: &dyn Collective, values: &[f64], device: Device) -> Result<Vec<Vec<f64>>> {
    let (rank, world) = (collective.rank(), collective.world_size());
    if world == 1 {
        return Ok(vec![values.to_vec()]);
    }
    let sum = |v: Vec<f64>| -> Result<Vec<f64>> {
        let mut t = [Tensor::from_slice(&v).to_device(device)];
        collective.all_reduce_sum(&mut t)?;
        Ok(Vec::<f64>::try_from(t[0].to_device(Device::Cpu))?)
    };
    let mut lengths = vec![0.0; world];
    lengths[rank] = values.len() as f64;
    let lengths: Vec<usize> = sum(lengths)?.into_iter().map(|n| n as usize).collect();
    let start: usize = lengths[..rank].iter().sum();
    let mut all = vec![0.0; lengths.iter().sum()];
    all[start..start + values.len()].copy_from_slice(values);
    let all = sum(all)?;
    let mut at = 0;
    Ok(lengths
        .into_iter()
        .map(|n| {
            at += n;
            all[at - n..at].to_vec()
        })
        .collect())
}

/// One process, no communication.
#[derive(Debug, Clone, Copy, Default)]
pub struct SingleProcess;

impl Collective for SingleProcess {
    fn rank(&self) -> usize {
        0
    }
    fn world_size(&self) -> usize {
        1
    }
    fn all_reduce_sum(&self, _tensors: &mut [Tensor]) -> Result<()> {
        Ok(())
    }
    fn broadcast(&self, _tensors: &mut [Tensor], _root: usize) -> Result<()> {
        Ok(())
    }
    fn barrier(&self) -> Result<()> {
        Ok(())
    }
}

/// What the ranks of a [`LocalGroup`] exchange: each rank's contribution, by rank.
struct Exchange {
    slots: Mutex<Vec<Vec<Tensor>>>,
    barrier: Barrier,
}

/// Ranks as threads of one process, exchanging host copies of tensors. Each rank is moved into
/// its own thread.
pub struct LocalGroup {
    rank: usize,
    world: usize,
    shared: Arc<Exchange>,
}

impl LocalGroup {
    /// The `world` ranks of a new group.
    pub fn new(world: usize) -> Vec<LocalGroup> {
        let shared = Arc::new(Exchange {
            slots: Mutex::new((0..world).map(|_| Vec::new()).collect()),
            barrier: Barrier::new(world),
        });
        (0..world).map(|rank| LocalGroup { rank, world, shared: Arc::clone(&shared) }).collect()
    }

    /// Publishes this rank's tensors, waits for all, and returns every rank's (by rank).
    fn gather(&self, tensors: &[Tensor]) -> Result<Vec<Vec<Tensor>>> {
        let host: Vec<Tensor> = tensors.iter().map(|t| t.to_device(Device::Cpu).copy()).collect();
        self.shared.slots.lock().map_err(|_| poisoned())?[self.rank] = host;
        self.shared.barrier.wait();
        let all: Vec<Vec<Tensor>> = self
            .shared
            .slots
            .lock()
            .map_err(|_| poisoned())?
            .iter()
            .map(|ts| ts.iter().map(Tensor::shallow_clone).collect())
            .collect();
        // Nobody publishes again before everyone has read.
        self.shared.barrier.wait();
        Ok(all)
    }
}

fn poisoned() -> Error {
    Error::Collective { operation: "exchange", problem: "another rank panicked".into() }
}

impl Collective for LocalGroup {
    fn rank(&self) -> usize {
        self.rank
    }
    fn world_size(&self) -> usize {
        self.world
    }
    fn all_reduce_sum(&self, tensors: &mut [Tensor]) -> Result<()> {
        let all = self.gather(tensors)?;
        tch::no_grad(|| {
            for (i, t) in tensors.iter_mut().enumerate() {
                // Summed in rank order on every rank, so all ranks get bit-identical results.
                let mut sum = all[0][i].copy();
                for other in &all[1..] {
                    sum += &other[i];
                }
                t.copy_(&sum);
            }
        });
        Ok(())
    }
    fn broadcast(&self, tensors: &mut [Tensor], root: usize) -> Result<()> {
        if root >= self.world {
            return Err(Error::Collective {
                operation: "broadcast",
                problem: format!("root {root} ≥ world {}", self.world),
            });
        }
        let all = self.gather(tensors)?;
        tch::no_grad(|| {
            for (t, r) in tensors.iter_mut().zip(&all[root]) {
                t.copy_(r);
            }
        });
        Ok(())
    }
    fn barrier(&self) -> Result<()> {
        self.shared.barrier.wait();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Vectors of different lengths, one of them empty, come back whole and in rank order.
    #[test]
    fn all_gather_keeps_lengths_and_order() {
        let handles: Vec<_> = LocalGroup::new(3)
            .into_iter()
            .map(|g| {
                std::thread::spawn(move || {
                    let mine: Vec<f64> = (0..2 * g.rank()).map(|i| (10 * g.rank() + i) as f64).collect();
                    all_gather_f64(&g, &mine, Device::Cpu).unwrap()
                })
            })
            .collect();
        for h in handles {
            assert_eq!(h.join().unwrap(), vec![vec![], vec![10.0, 11.0], vec![20.0, 21.0, 22.0, 23.0]]);
        }
    }

    #[test]
    fn local_ranks_sum_and_broadcast() {
        let handles: Vec<_> = LocalGroup::new(3)
            .into_iter()
            .map(|g| {
                std::thread::spawn(move || {
                    let r = g.rank() as f32;
                    let mut t = [Tensor::from_slice(&[r, 10.0 * r])];
                    g.all_reduce_sum(&mut t).unwrap();
                    let summed = Vec::<f32>::try_from(&t[0]).unwrap();
                    let mut b = [Tensor::from_slice(&[r])];
                    g.broadcast(&mut b, 2).unwrap();
                    g.barrier().unwrap();
                    (summed, Vec::<f32>::try_from(&b[0]).unwrap())
                })
            })
            .collect();
        for h in handles {
            let (summed, root) = h.join().unwrap();
            assert_eq!(summed, vec![3.0, 30.0]);
            assert_eq!(root, vec![2.0]);
        }
    }
}
