//! Persistent worker threads for the GEMM driver. Starting a thread per product cost tens of
//! microseconds, as much as a whole 256-sized product on two cores; these workers are started
//! once and sleep on a condition variable between products.
//!
//! A job is a closure every participant runs; it takes its units of work from a shared
//! counter, so the result never depends on which thread ran what, and the caller (which
//! always takes part) finishes everything alone when the workers are busy or slow to wake.
//!
//! With workers that slept between products, two threads ran a 256x784x64 product slower
//! than one on the virtual machine measured: waking a sleeping thread (a futex wake a
//! virtual CPU may answer late) cost about as much as the product. So a worker that
//! finished a job first spins briefly for the next one, and products issued back to back
//! (a training step's) start on both cores at once; the caller likewise spins briefly for
//! the workers' last chunks before sleeping.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long an idle worker watches for the next job before sleeping.
const SPIN: Duration = Duration::from_micros(200);

/// The job being run, with its lifetime erased; `run` does not return before every worker
/// that picked it up is done with it.
#[derive(Clone, Copy)]
struct JobRef(*const (dyn Fn() + Sync));

// Safety: the closure is `Sync` and outlives every use (see `run`).
unsafe impl Send for JobRef {}

struct State {
    job: Option<JobRef>,
    /// Bumped per job, so a worker joins each job at most once.
    generation: u64,
    /// Workers still invited to join the current job.
    open_seats: usize,
    /// Workers inside the current job.
    running: usize,
    /// Workers waiting on the condition variable (only they need a notification).
    sleeping: usize,
    worker_panicked: bool,
}

struct Pool {
    /// Held by the one caller using the workers; other callers run their product alone.
    owner: Mutex<()>,
    state: Mutex<State>,
    /// `State::generation`, readable without the lock by spinning workers.
    posted: AtomicU64,
    /// `State::running`, readable without the lock by a spinning caller.
    active: AtomicUsize,
    wake: Condvar,
    done: Condvar,
    workers: usize,
}

thread_local! {
    static IS_WORKER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn pool(workers: usize) -> &'static Pool {
    static POOL: OnceLock<&'static Pool> = OnceLock::new();
    POOL.get_or_init(|| {
        let pool: &'static Pool = Box::leak(Box::new(Pool {
            owner: Mutex::new(()),
            state: Mutex::new(State { job: None, generation: 0, open_seats: 0, running: 0, sleeping: 0, worker_panicked: false }),
            posted: AtomicU64::new(0),
            active: AtomicUsize::new(0),
            wake: Condvar::new(),
            done: Condvar::new(),
            workers,
        }));
        for index in 0..workers {
            let spawned = std::thread::Builder::new()
                .name(format!("amber-gemm-{index}"))
                .spawn(move || worker_loop(pool));
            if spawned.is_err() {
                // Fewer workers only means fewer helpers; the caller always does the rest.
                break;
            }
        }
        pool
    })
}

fn worker_loop(pool: &'static Pool) {
    IS_WORKER.with(|w| w.set(true));
    let mut seen = 0u64;
    let mut state = pool.state.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        if !(state.generation != seen && state.open_seats > 0) {
            seen = state.generation.max(seen);
            drop(state);
            let start = Instant::now();
            while pool.posted.load(Ordering::Acquire) == seen && start.elapsed() < SPIN {
                std::hint::spin_loop();
            }
            state = pool.state.lock().unwrap_or_else(|e| e.into_inner());
        }
        while !(state.generation != seen && state.open_seats > 0) {
            seen = state.generation.max(seen);
            state.sleeping += 1;
            state = pool.wake.wait(state).unwrap_or_else(|e| e.into_inner());
            state.sleeping -= 1;
        }
        seen = state.generation;
        state.open_seats -= 1;
        state.running += 1;
        pool.active.store(state.running, Ordering::Release);
        let job = state.job.expect("an open seat always comes with a job");
        drop(state);
        // Safety: the job stays alive until `running` is back to zero (see `run`).
        let outcome = catch_unwind(AssertUnwindSafe(|| unsafe { (*job.0)() }));
        state = pool.state.lock().unwrap_or_else(|e| e.into_inner());
        state.running -= 1;
        pool.active.store(state.running, Ordering::Release);
        state.worker_panicked |= outcome.is_err();
        if state.running == 0 {
            pool.done.notify_all();
        }
    }
}

/// Runs `job` on the calling thread and on up to `helpers` pool workers at once, returning
/// when all of them are done. `job` must itself hand out the work (a shared counter), since
/// any number of helpers (possibly none) may join.
pub(crate) fn run(helpers: usize, job: &(dyn Fn() + Sync)) {
    if helpers == 0 || IS_WORKER.with(|w| w.get()) {
        job();
        return;
    }
    let pool = pool(super::dispatch::max_threads().saturating_sub(1).max(1));
    // Another product already owns the workers (a second calling thread): run alone.
    let Ok(_owner) = pool.owner.try_lock() else {
        job();
        return;
    };
    {
        let mut state = pool.state.lock().unwrap_or_else(|e| e.into_inner());
        // Safety (lifetime erasure): this function waits below until no worker runs the job.
        let erased: *const (dyn Fn() + Sync + 'static) = unsafe { std::mem::transmute(job as *const (dyn Fn() + Sync)) };
        state.job = Some(JobRef(erased));
        state.generation += 1;
        state.open_seats = helpers.min(pool.workers);
        state.worker_panicked = false;
        pool.posted.store(state.generation, Ordering::Release);
        if state.sleeping > 0 {
            pool.wake.notify_all();
        }
    }
    let caller_outcome = catch_unwind(AssertUnwindSafe(job));
    let mut state = pool.state.lock().unwrap_or_else(|e| e.into_inner());
    // Workers that have not woken yet are not waited for: the caller has done their share.
    state.open_seats = 0;
    if state.running > 0 {
        // The last chunks usually end within microseconds; sleeping on the condition
        // variable would add a wake-up as slow as the workers' (see the module comment).
        drop(state);
        let start = Instant::now();
        while pool.active.load(Ordering::Acquire) > 0 && start.elapsed() < SPIN {
            std::hint::spin_loop();
        }
        state = pool.state.lock().unwrap_or_else(|e| e.into_inner());
    }
    while state.running > 0 {
        state = pool.done.wait(state).unwrap_or_else(|e| e.into_inner());
    }
    state.job = None;
    let worker_panicked = state.worker_panicked;
    drop(state);
    if let Err(payload) = caller_outcome {
        std::panic::resume_unwind(payload);
    }
    assert!(!worker_panicked, "a GEMM worker thread panicked");
}
