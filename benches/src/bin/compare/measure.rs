//! Measuring one process from outside, the same way for every contender: spawn it (pinned
//! to the first N allowed CPUs when asked), drain its stdout and stderr, kill it after a
//! timeout, and read wall time, user + system CPU and peak RSS from `wait4`. Knows nothing
//! about workloads; `contender` turns a `Run` into figures and a masked output.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What one run measured.
#[derive(Clone, Debug, Default)]
pub(crate) struct Run {
    pub(crate) wall: f64,
    pub(crate) cpu: f64,
    pub(crate) rss: u64,
    pub(crate) pause_max_ms: Option<f64>,
    pub(crate) collections: Option<u64>,
    /// The program exited 0 (its own check passed).
    pub(crate) ok: bool,
    /// Its output with the measured figures masked, for comparing contenders.
    pub(crate) output: String,
    /// Why it failed, when it did.
    pub(crate) error: String,
}

/// The CPUs this process may run on, in order.
pub(crate) fn allowed_cpus() -> Vec<usize> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; sched_getaffinity writes at most
    // size_of::<cpu_set_t>() bytes into it.
    let set = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return vec![];
        }
        set
    };
    // SAFETY: CPU_ISSET only reads the set, with an index below CPU_SETSIZE.
    (0..libc::CPU_SETSIZE as usize)
        .filter(|&i| unsafe { libc::CPU_ISSET(i, &set) })
        .collect()
}

/// Starts `cmd`, waits for it (killing it after `timeout`) and measures it.
pub(crate) fn measure(
    mut cmd: Command,
    pin: Option<&[usize]>,
    timeout: Duration,
) -> Result<(Run, String, String), String> {
    if let Some(cpus) = pin {
        // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET writes inside it for
        // indices below CPU_SETSIZE, which allowed_cpus() guarantees.
        let set = unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            for &cpu in cpus {
                libc::CPU_SET(cpu, &mut set);
            }
            set
        };
        // SAFETY: the closure runs in the child between fork and exec and makes one
        // system call, which is async-signal-safe, on a set copied into the closure.
        unsafe {
            cmd.pre_exec(move || {
                if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {:?}: {e}", cmd.get_program()))?;
    let pid = child.id() as libc::pid_t;
    let drain = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut s = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut s);
            }
            String::from_utf8_lossy(&s).into_owned()
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );

    // The watchdog may only kill a child that has not been reaped (after that its pid can
    // be reused): the main thread waits for the exit without reaping, then marks it
    // reaped under the same lock the watchdog kills under, then reaps.
    let reaped = Arc::new(Mutex::new(false));
    let killed = Arc::new(Mutex::new(false));
    {
        let (reaped, killed) = (reaped.clone(), killed.clone());
        std::thread::spawn(move || {
            let deadline = Instant::now() + timeout;
            while Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
                if *reaped.lock().unwrap_or_else(|e| e.into_inner()) {
                    return;
                }
            }
            let r = reaped.lock().unwrap_or_else(|e| e.into_inner());
            if !*r {
                // SAFETY: kill only sends a signal; the pid is our unreaped child's.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                *killed.lock().unwrap_or_else(|e| e.into_inner()) = true;
            }
        });
    }
    loop {
        // SAFETY: waitid writes only the siginfo we pass; WNOWAIT leaves the child
        // unreaped.
        let r = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if r == 0 {
            break;
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(format!("waiting for the run: {e}"));
        }
    }
    let wall = start.elapsed().as_secs_f64();
    *reaped.lock().unwrap_or_else(|e| e.into_inner()) = true;
    let mut status = 0;
    // SAFETY: wait4 writes only the status and the rusage we pass; zeroed is a valid
    // rusage; the child has exited (waitid above), so this returns at once.
    let (r, ru) = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        let r = libc::wait4(pid, &mut status, 0, &mut ru);
        (r, ru)
    };
    if r != pid {
        return Err(format!("wait4: {}", std::io::Error::last_os_error()));
    }
    let (stdout, stderr) = (
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    );
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let mut run = Run {
        wall,
        cpu: tv(ru.ru_utime) + tv(ru.ru_stime),
        rss: ru.ru_maxrss as u64 * 1024,
        ok: libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        ..Run::default()
    };
    if *killed.lock().unwrap_or_else(|e| e.into_inner()) {
        run.error = format!("killed after {} s", timeout.as_secs());
    } else if libc::WIFSIGNALED(status) {
        run.error = format!("killed by signal {}", libc::WTERMSIG(status));
    } else if !run.ok {
        run.error = format!("exit status {}", libc::WEXITSTATUS(status));
    }
    // The Child was reaped by hand; dropping it neither waits nor kills.
    drop(child);
    Ok((run, stdout, stderr))
}
