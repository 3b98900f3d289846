//! The runner: replays a target's corpus, then mutates it for a time budget, checking every
//! case for a panic, an allocation far above its input, and a case that takes too long (a
//! watchdog ends the process on a hang). Findings are written to `fuzz/findings/<target>/`.
//!
//! Environment:
//! - `FUZZ_SECONDS` (default 4): mutation time per target after the replay; 0 = replay only.
//! - `FUZZ_SEED` (default: from the target name): the PRNG seed, printed in every report.
//! - `FUZZ_KEEP_GOING=1`: record every distinct finding and go on (long runs), instead of
//!   failing at the first.
//! - `FUZZ_INPUT=FILE`: run only that input (reproducing a finding).
//! - `FUZZ_CASE_MS` (default 2000), `FUZZ_HANG_SECS` (default 20), `FUZZ_ALLOC_MB` (default 4)
//!   and `FUZZ_ALLOC_FACTOR` (default 64): the limits. A case may peak at
//!   `FUZZ_ALLOC_MB` MiB + `FUZZ_ALLOC_FACTOR` × its input length.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use super::alloc;
use super::mutate::{self, hash, Rng, Shape};

/// One fuzz target: a parser entry point and how to feed it.
pub struct Target {
    pub name: &'static str,
    /// Corpus folders under `fuzz/corpus/` read as seeds (the first is the target's own).
    pub dirs: &'static [&'static str],
    pub max_len: usize,
    pub shape: Shape,
    /// Tokens of the format the mutator inserts.
    pub dict: &'static [&'static [u8]],
    /// Seeds computed from other captures with the library's own parsers (e.g. the AMF0
    /// bodies of the recorded RTMP commands).
    pub derive: fn() -> Vec<Vec<u8>>,
    /// Runs once before any case (outside the counted allocations).
    pub setup: fn(),
    /// Parses one input; returns a signature of what happened (new signatures keep their
    /// input in the working corpus).
    pub run: fn(&[u8]) -> u64,
}

pub fn no_seeds() -> Vec<Vec<u8>> {
    Vec::new()
}

pub fn no_setup() {}

struct Limits {
    seconds: f64,
    seed: Option<u64>,
    keep_going: bool,
    case: Duration,
    hang: Duration,
    alloc_base: usize,
    alloc_factor: usize,
}

fn env<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

impl Limits {
    fn from_env() -> Limits {
        Limits {
            seconds: env("FUZZ_SECONDS").unwrap_or(4.0),
            seed: env("FUZZ_SEED"),
            keep_going: env::<u8>("FUZZ_KEEP_GOING").unwrap_or(0) != 0,
            case: Duration::from_millis(env("FUZZ_CASE_MS").unwrap_or(2000)),
            hang: Duration::from_secs(env("FUZZ_HANG_SECS").unwrap_or(20)),
            alloc_base: env::<usize>("FUZZ_ALLOC_MB").unwrap_or(4) << 20,
            alloc_factor: env("FUZZ_ALLOC_FACTOR").unwrap_or(64),
        }
    }

    fn alloc_limit(&self, input_len: usize) -> usize {
        self.alloc_base + self.alloc_factor * input_len
    }
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The seed files of `dirs`, in a stable order.
pub fn corpus_files(dirs: &[&str]) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(repo().join("fuzz/corpus").join(dir)) else { continue };
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for p in paths {
            if let Ok(data) = std::fs::read(&p) {
                files.push((p, data));
            }
        }
    }
    files
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Panic,
    Alloc,
    Slow,
}

struct Finding {
    kind: Kind,
    detail: String,
    file: PathBuf,
}

thread_local! {
    static IN_CASE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    static PANIC_MESSAGE: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// A panic hook that records (instead of printing) panics raised inside a case.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if IN_CASE.with(std::cell::Cell::get) {
                let location = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
                let payload = info
                    .payload()
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| info.payload().downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                PANIC_MESSAGE.with(|m| *m.borrow_mut() = Some(format!("{payload} (at {location})")));
            } else {
                default(info);
            }
        }));
    });
}

/// What the watchdog sees of the worker.
struct Shared {
    cases: AtomicU64,
    current: Mutex<Vec<u8>>,
}

struct Runner<'t> {
    target: &'t Target,
    limits: Limits,
    shared: Arc<Shared>,
    bomb: File,
    bomb_path: PathBuf,
    findings: Vec<Finding>,
    seen: HashSet<(Kind, String)>,
}

fn findings_dir(target: &str) -> PathBuf {
    repo().join("fuzz/findings").join(target)
}

impl Runner<'_> {
    /// Runs one case with every check; a finding is written out and returned.
    fn case(&mut self, input: &[u8]) -> Result<u64, Kind> {
        {
            let mut current = self.shared.current.lock().unwrap_or_else(|e| e.into_inner());
            current.clear();
            current.extend_from_slice(input);
        }
        self.shared.cases.fetch_add(1, Ordering::Relaxed);
        let run = self.target.run;
        let started = Instant::now();
        IN_CASE.with(|c| c.set(true));
        alloc::arm(input, &self.bomb);
        let result = panic::catch_unwind(AssertUnwindSafe(|| run(input)));
        let peak = alloc::disarm();
        IN_CASE.with(|c| c.set(false));
        let took = started.elapsed();
        let limit = self.limits.alloc_limit(input.len());
        let (kind, detail) = match result {
            Err(_) => {
                let message = PANIC_MESSAGE.with(|m| m.borrow_mut().take()).unwrap_or_else(|| "panic".into());
                (Kind::Panic, message)
            }
            Ok(_) if peak > limit => {
                (Kind::Alloc, format!("peak {peak} bytes live for a {}-byte input (limit {limit})", input.len()))
            }
            Ok(_) if took > self.limits.case => (Kind::Slow, format!("took {took:?} (limit {:?})", self.limits.case)),
            Ok(signature) => return Ok(signature),
        };
        self.record(kind, detail, input);
        Err(kind)
    }

    fn record(&mut self, kind: Kind, detail: String, input: &[u8]) {
        // One report per panic place / kind of excess.
        let key = match kind {
            Kind::Panic => detail.rsplit(" (at ").next().unwrap_or_default().to_string(),
            Kind::Alloc | Kind::Slow => String::new(),
        };
        if !self.seen.insert((kind, key)) {
            return;
        }
        let dir = findings_dir(self.target.name);
        let _ = std::fs::create_dir_all(&dir);
        let file = dir.join(format!("{kind:?}-{:016x}.bin", hash(input)).to_lowercase());
        let _ = std::fs::write(&file, input);
        eprintln!("fuzz {}: {kind:?}: {detail}\n  input: {}", self.target.name, file.display());
        self.findings.push(Finding { kind, detail, file });
    }

    fn stop(&self) -> bool {
        !self.findings.is_empty() && !self.limits.keep_going
    }
}

/// Replays `target`'s corpus, then fuzzes it; panics with a summary when anything was found.
pub fn fuzz(target: &'static Target) {
    install_panic_hook();
    (target.setup)();
    let limits = Limits::from_env();
    let dir = findings_dir(target.name);
    let _ = std::fs::create_dir_all(&dir);
    let bomb_path = dir.join(format!("alloc-abort-{}.bin", std::process::id()));
    let bomb = File::create(&bomb_path).expect("create the alloc-abort file");
    let shared = Arc::new(Shared { cases: AtomicU64::new(0), current: Mutex::new(Vec::new()) });
    let hang = limits.hang;
    let mut runner =
        Runner { target, limits, shared: shared.clone(), bomb, bomb_path, findings: Vec::new(), seen: HashSet::new() };

    // The cases run on a thread with the stack of a tokio worker (2 MiB), as in the gateway.
    let worker = std::thread::Builder::new()
        .name(format!("fuzz-{}", target.name))
        .stack_size(2 << 20)
        .spawn(move || {
            let report = work(&mut runner);
            let _ = std::fs::remove_file(&runner.bomb_path);
            (report, runner.findings)
        })
        .expect("spawn the fuzz worker");
    watch(target.name, &shared, &worker, hang);
    let (report, findings) = match worker.join() {
        Ok(r) => r,
        Err(_) => panic!("fuzz {}: the runner itself panicked", target.name),
    };
    eprintln!("fuzz {}: {report}", target.name);
    if !findings.is_empty() {
        let list: Vec<String> =
            findings.iter().map(|f| format!("  {:?}: {}\n    {}", f.kind, f.detail, f.file.display())).collect();
        panic!(
            "fuzz {}: {} finding(s) ({report}):\n{}\nreproduce: FUZZ_INPUT=<file> cargo nextest run --release --test fuzz {}",
            target.name,
            findings.len(),
            list.join("\n"),
            target.name
        );
    }
}

/// Ends the process when one case runs longer than `hang` (after saving its input).
fn watch(name: &str, shared: &Shared, worker: &std::thread::JoinHandle<(String, Vec<Finding>)>, hang: Duration) {
    let mut last = (shared.cases.load(Ordering::Relaxed), Instant::now());
    while !worker.is_finished() {
        std::thread::sleep(Duration::from_millis(50));
        let cases = shared.cases.load(Ordering::Relaxed);
        if cases != last.0 {
            last = (cases, Instant::now());
        } else if last.1.elapsed() > hang {
            let input = shared.current.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let dir = findings_dir(name);
            let file = dir.join(format!("hang-{:016x}.bin", hash(&input)));
            let _ = std::fs::write(&file, &input);
            eprintln!("fuzz {name}: Hang: one case has run for {hang:?}\n  input: {}", file.display());
            std::process::exit(3);
        }
    }
}

/// The worker: replay, then mutate until the budget is spent. Returns a one-line report.
fn work(runner: &mut Runner<'_>) -> String {
    let target = runner.target;
    if let Ok(path) = std::env::var("FUZZ_INPUT") {
        let input = std::fs::read(&path).unwrap_or_else(|e| panic!("FUZZ_INPUT {path}: {e}"));
        let outcome = runner.case(&input);
        return format!("FUZZ_INPUT {path}: {outcome:?}");
    }
    let mut pool: Vec<Vec<u8>> = corpus_files(target.dirs).into_iter().map(|(_, d)| d).collect();
    pool.extend((target.derive)());
    pool.retain(|s| s.len() <= target.max_len);
    if pool.is_empty() {
        pool.push(Vec::new());
    }
    let seeds = pool.len();
    let mut signatures: HashMap<u64, usize> = HashMap::new();
    for seed in pool.clone() {
        if let Ok(sig) = runner.case(&seed) {
            *signatures.entry(sig).or_default() += 1;
        }
        if runner.stop() {
            return format!("replay of {seeds} seeds stopped at a finding");
        }
    }
    let seed = runner.limits.seed.unwrap_or_else(|| hash(target.name.as_bytes()));
    let mut rng = Rng::new(seed);
    let budget = Duration::from_secs_f64(runner.limits.seconds.max(0.0));
    let started = Instant::now();
    let mut cases = 0u64;
    const MAX_POOL: usize = 2048;
    while started.elapsed() < budget && !runner.stop() {
        let base = rng.below(pool.len());
        let mut input = pool[base].clone();
        mutate::mutate(&mut input, &mut rng, &pool, target.dict, target.shape, target.max_len);
        cases += 1;
        if let Ok(sig) = runner.case(&input) {
            let count = signatures.entry(sig).or_default();
            *count += 1;
            if *count == 1 {
                if pool.len() < MAX_POOL {
                    pool.push(input);
                } else {
                    let i = seeds + rng.below(MAX_POOL - seeds);
                    pool[i] = input;
                }
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    format!(
        "seed {seed}: {seeds} seeds replayed, {cases} mutants in {secs:.1} s ({:.0}/s), {} outcomes, pool {}",
        cases as f64 / secs.max(1e-9),
        signatures.len(),
        pool.len()
    )
}

/// Cuts a stream into reads of varied sizes (as a socket delivers it), chosen from the input
/// itself so a case always replays the same way.
pub fn reads(input: &[u8]) -> Vec<&[u8]> {
    let mut rng = Rng::new(hash(input));
    let mut out = Vec::new();
    let mut rest = input;
    while !rest.is_empty() {
        let n = match rng.below(6) {
            0 => 1 + rng.below(16),
            1 => 1 + rng.below(200),
            2 => 1 + rng.below(1500),
            3 => 4096,
            _ => rest.len(),
        };
        let (head, tail) = rest.split_at(n.min(rest.len()));
        out.push(head);
        rest = tail;
    }
    out
}

/// Builds a signature from what a case saw.
#[derive(Debug, Clone, Copy)]
pub struct Sig(u64);

impl Default for Sig {
    fn default() -> Self {
        Sig(0xcbf2_9ce4_8422_2325)
    }
}

impl Sig {
    pub fn add(&mut self, v: u64) {
        self.0 = (self.0 ^ v).wrapping_mul(0x0100_0000_01b3).rotate_left(5);
    }

    /// A count, by its order of magnitude only.
    pub fn count(&mut self, n: usize) {
        self.add(u64::from(usize::BITS - n.leading_zeros()));
    }

    pub fn tag(&mut self, s: &str) {
        self.add(hash(s.as_bytes()));
    }

    /// The variant of an error or event (its Debug text up to the first field).
    pub fn variant<T: std::fmt::Debug>(&mut self, value: &T) {
        let text = format!("{value:?}");
        let end = text.find(['(', '{', ' ']).unwrap_or(text.len());
        self.tag(&text[..end]);
    }

    pub fn result<T, E: std::fmt::Debug>(&mut self, r: &Result<T, E>) {
        match r {
            Ok(_) => self.add(1),
            Err(e) => self.variant(e),
        }
    }

    pub fn finish(self) -> u64 {
        self.0
    }
}
