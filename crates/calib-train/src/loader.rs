//! Batches prepared on a loader thread: decoding, augmentation and padding of the next batches
//! overlap the device's work on the current one. On CUDA the loader pins each batch's host
//! memory and the training thread copies it with `non_blocking`, so the copy overlaps too.
//!
//! On the CPU the batches are built inline, on the training thread: there the "device" is the
//! same cores, and a loader thread only competes with libtorch's own threads for them (measured
//! on 2 cores: 10–15 % fewer samples/s with the thread, the same without it once libtorch has one
//! thread; docs/performance.md).

use crate::task::{Batch, Batches};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tch::Device;

/// Where batches come from: the loader thread, or built inline.
enum Source<'r, B> {
    Thread(&'r mpsc::Receiver<B>),
    Inline(Batches<'r, B>),
}

/// Batches received from the loader thread (or built inline on the CPU), moved to the device;
/// counts how long the training thread waited for them.
pub struct Prefetched<'r, B> {
    source: Source<'r, B>,
    device: Device,
    waited: Duration,
}

impl<B: Batch> Prefetched<'_, B> {
    /// Time spent waiting for the loader so far.
    pub fn waited(&self) -> Duration {
        self.waited
    }
}

impl<B: Batch> Iterator for Prefetched<'_, B> {
    type Item = B;
    fn next(&mut self) -> Option<B> {
        let start = Instant::now();
        let batch = match &mut self.source {
            Source::Thread(rx) => rx.recv().ok(),
            Source::Inline(batches) => batches.next(),
        };
        self.waited += start.elapsed();
        let device = self.device;
        batch.map(|b| {
            if device.is_cuda() {
                b.map_tensors(&mut |t| t.to_device_(device, t.kind(), true, false))
            } else {
                b.map_tensors(&mut |t| t.to_device(device))
            }
        })
    }
}

/// Runs `body` over `batches` delivered on `device`: on CUDA built `depth` batches ahead on a
/// loader thread, on the CPU inline (see the module's note). When `body` stops early (an
/// error), the loader stops after its current batch.
pub fn with_prefetch<B: Batch, R>(
    batches: Batches<'_, B>,
    depth: usize,
    device: Device,
    body: impl FnOnce(&mut Prefetched<'_, B>) -> R,
) -> R {
    if device.is_cuda() {
        on_loader_thread(batches, depth, device, body)
    } else {
        body(&mut Prefetched { source: Source::Inline(batches), device, waited: Duration::ZERO })
    }
}

/// [`with_prefetch`] through a loader thread (on any device: the CPU tests use it too).
fn on_loader_thread<B: Batch, R>(
    batches: Batches<'_, B>,
    depth: usize,
    device: Device,
    body: impl FnOnce(&mut Prefetched<'_, B>) -> R,
) -> R {
    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::sync_channel::<B>(depth.max(1));
        scope.spawn(move || {
            for batch in batches {
                let batch = if device.is_cuda() { batch.map_tensors(&mut |t| t.pin_memory(device)) } else { batch };
                if tx.send(batch).is_err() {
                    break;
                }
            }
        });
        let mut it = Prefetched { source: Source::Thread(&rx), device, waited: Duration::ZERO };
        let out = body(&mut it);
        // Closing the receiver wakes a loader blocked on a full channel, which then ends.
        drop(it);
        drop(rx);
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Tensor;

    #[test]
    fn delivers_every_batch_in_order_and_stops_early() {
        let batches: Batches<'_, Vec<Tensor>> = Box::new((0..20i64).map(|i| vec![Tensor::from_slice(&[i, i + 1])]));
        let got: Vec<i64> = with_prefetch(batches, 3, Device::Cpu, |it| it.map(|b| b[0].int64_value(&[0])).collect());
        assert_eq!(got, (0..20).collect::<Vec<_>>());
        // A body that stops after two batches: the loader thread ends (the scope returns).
        let endless: Batches<'_, Vec<Tensor>> = Box::new((0..).map(|i: i64| vec![Tensor::from_slice(&[i])]));
        let first: Vec<i64> =
            with_prefetch(endless, 2, Device::Cpu, |it| it.take(2).map(|b| b[0].int64_value(&[0])).collect());
        assert_eq!(first, vec![0, 1]);
    }
}
