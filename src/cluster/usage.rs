//! The CPU this process used between two readings, in cores: the load a node reports.

use std::time::Instant;

pub struct CpuMeter {
    last: Option<(Instant, f64)>,
}

impl CpuMeter {
    pub fn new() -> CpuMeter {
        CpuMeter { last: None }
    }

    /// Cores used since the last call (0 on the first).
    pub fn cores(&mut self) -> f64 {
        let now = Instant::now();
        let used = process_cpu_seconds();
        let cores = match self.last {
            Some((at, before)) => {
                let wall = now.duration_since(at).as_secs_f64();
                if wall > 0.0 {
                    ((used - before) / wall).max(0.0)
                } else {
                    0.0
                }
            }
            None => 0.0,
        };
        self.last = Some((now, used));
        (cores * 100.0).round() / 100.0
    }
}

/// User and system CPU seconds of the whole process.
fn process_cpu_seconds() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes the struct it is given and nothing else.
    let ok = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) } == 0;
    if !ok {
        return 0.0;
    }
    // SAFETY: getrusage succeeded, so the struct is initialized.
    let usage = unsafe { usage.assume_init() };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_busy_thread_reads_as_about_one_core() {
        let mut meter = super::CpuMeter::new();
        assert_eq!(meter.cores(), 0.0);
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < std::time::Duration::from_millis(300) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        let cores = meter.cores();
        assert!(cores > 0.5 && cores < 2.5, "{cores}");
    }
}
