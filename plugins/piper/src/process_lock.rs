//! A lock shared by every copy of this plugin loaded in the process.
//!
//! espeak-ng is one C library with global state, loaded once per process, but
//! a hot reload loads a second copy of this plugin (its own statics, its own
//! `Mutex`) while the old copy finishes its requests: a `static` lock would let
//! both copies call espeak at once. This lock is an abstract Unix socket named
//! after the process id: binding it succeeds for one holder at a time in the
//! whole process, and it is released when the socket closes (also if the
//! holder panics). Abstract sockets leave no file behind. On other systems the
//! per-copy `Mutex` remains the only lock.

use std::time::Duration;

/// Held while the process-wide lock is held.
pub(crate) struct ProcessLock {
    #[cfg(target_os = "linux")]
    _socket: Option<std::os::unix::net::UnixListener>,
}

impl ProcessLock {
    /// Wait for the lock named `name` (process-wide, across plugin copies).
    pub(crate) fn acquire(name: &str) -> Self {
        #[cfg(target_os = "linux")]
        {
            use std::os::linux::net::SocketAddrExt;
            let id = format!("rustai-{name}-{}", std::process::id());
            let Ok(addr) = std::os::unix::net::SocketAddr::from_abstract_name(id.as_bytes()) else {
                return Self { _socket: None };
            };
            let mut wait = Duration::from_micros(200);
            loop {
                match std::os::unix::net::UnixListener::bind_addr(&addr) {
                    Ok(socket) => return Self { _socket: Some(socket) },
                    Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                        std::thread::sleep(wait);
                        wait = (wait * 2).min(Duration::from_millis(5));
                    }
                    // Sockets unavailable (a sandbox): fall back to the per-copy lock alone.
                    Err(_) => return Self { _socket: None },
                }
            }
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = (name, Duration::ZERO);
            Self {}
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    };

    use super::*;

    #[test]
    fn one_holder_at_a_time() {
        let inside = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let inside = Arc::clone(&inside);
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        let _lock = ProcessLock::acquire("test-lock");
                        assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two holders at once");
                        std::thread::sleep(Duration::from_micros(100));
                        inside.fetch_sub(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    }
}
