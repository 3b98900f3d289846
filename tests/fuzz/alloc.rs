//! A counting global allocator: per thread, the bytes live now and the peak since the case
//! started, so one parse that allocates far more than its input is a finding.
//!
//! Only allocations through Rust's global allocator are seen (GStreamer's SDP parser
//! allocates through GLib and is not counted). While a case runs, a single request that would
//! take the thread past [`HARD_LIMIT`] is refused after the input is written to the finding
//! file the runner opened (the process then aborts with "memory allocation failed"), so an
//! allocation bomb cannot take the machine down before it is reported.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::fs::File;
use std::io::Write;

/// Live bytes above which a case is stopped at once (the rest is the runner's soft limit).
pub const HARD_LIMIT: usize = 1 << 30;

thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
    /// The running case's input and where to write it if it hits [`HARD_LIMIT`].
    static INPUT: Cell<(*const u8, usize)> = const { Cell::new((std::ptr::null(), 0)) };
    static BOMB_FILE: Cell<*const File> = const { Cell::new(std::ptr::null()) };
}

pub struct Counting;

/// Counts `delta` bytes for this thread; false when a case is running and the request
/// (`delta` > 0) would pass the hard limit.
fn track(delta: isize) -> bool {
    let Ok(armed) = ARMED.try_with(Cell::get) else { return true };
    let Ok(live) = LIVE.try_with(|l| {
        let v = l.get() + delta;
        l.set(v);
        v
    }) else {
        return true;
    };
    if !armed {
        return true;
    }
    if live > HARD_LIMIT as isize {
        LIVE.with(|l| l.set(live - delta));
        ARMED.with(|a| a.set(false)); // nothing below may count (or refuse) again
        bomb(live as usize);
        return false;
    }
    PEAK.with(|p| p.set(p.get().max(live)));
    true
}

/// Writes the running input to the finding file (no allocation on this path).
fn bomb(live: usize) {
    let (ptr, len) = INPUT.with(Cell::get);
    let file = BOMB_FILE.with(Cell::get);
    if !ptr.is_null() && !file.is_null() {
        // SAFETY: the runner keeps the input and the file alive while the case is armed.
        let (input, mut file) = unsafe { (std::slice::from_raw_parts(ptr, len), &*file) };
        let _ = file.write_all(input);
    }
    let _ = writeln!(
        std::io::stderr(),
        "fuzz: one case asked for more than {live} live bytes; its input is in the runner's alloc-abort file"
    );
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !track(layout.size() as isize) {
            return std::ptr::null_mut();
        }
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !track(layout.size() as isize) {
            return std::ptr::null_mut();
        }
        System.alloc_zeroed(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        track(-(layout.size() as isize));
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !track(new_size as isize - layout.size() as isize) {
            return std::ptr::null_mut();
        }
        System.realloc(ptr, layout, new_size)
    }
}

/// Starts counting a case on this thread. `input` and `bomb_file` must outlive [`disarm`].
pub fn arm(input: &[u8], bomb_file: &File) {
    INPUT.with(|i| i.set((input.as_ptr(), input.len())));
    BOMB_FILE.with(|f| f.set(bomb_file as *const File));
    LIVE.with(|l| l.set(0));
    PEAK.with(|p| p.set(0));
    ARMED.with(|a| a.set(true));
}

/// Stops counting; returns the case's peak of live bytes above where it started.
pub fn disarm() -> usize {
    ARMED.with(|a| a.set(false));
    INPUT.with(|i| i.set((std::ptr::null(), 0)));
    BOMB_FILE.with(|f| f.set(std::ptr::null()));
    PEAK.with(Cell::get).max(0) as usize
}
