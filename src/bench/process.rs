//! Spawning a contender's child process, reading its report lines, and
//! reaping it within a deadline.
//!
//! The child's peak RSS comes from the child itself (`VmHWM`, see
//! [`super::child::peak_rss_bytes`]), not from `wait4`'s `ru_maxrss`: Linux
//! carries the high-water mark of the address space a process had before
//! `exec` into `ru_maxrss`, and that is the parent's, which holds the whole
//! simulated cluster. Measured that way every contender looked as big as the
//! simulator.

use std::ffi::OsString;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::clock;
use super::{Error, Result};

/// How much of a failed child's stderr an error quotes.
const STDERR_TAIL_BYTES: u64 = 4096;

/// A child process that has been spawned and not yet reaped.
#[derive(Debug)]
pub struct Running {
    label: String,
    pid: libc::pid_t,
    spawned_ns: u64,
    lines: mpsc::Receiver<String>,
    stderr_path: PathBuf,
    deadline: Instant,
    timeout: Duration,
    reaped: bool,
}

impl Running {
    /// Spawns `exe args`, its stderr going to `stderr_path`; the whole run
    /// (every line and the exit) must happen within `timeout`.
    pub fn spawn(
        label: &str,
        exe: &Path,
        args: &[OsString],
        stderr_path: &Path,
        timeout: Duration,
    ) -> Result<Running> {
        let spawn_err = |source| Error::Spawn {
            contender: label.to_owned(),
            source,
        };
        let stderr = File::create(stderr_path).map_err(|source| Error::Io {
            path: stderr_path.to_owned(),
            source,
        })?;
        let spawned_ns = clock::now_ns();
        let mut child = Command::new(exe)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            // The child's logs are only read when it fails; keep them short.
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .spawn()
            .map_err(spawn_err)?;
        let pid =
            libc::pid_t::try_from(child.id()).map_err(|e| spawn_err(std::io::Error::other(e)))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| spawn_err(std::io::Error::other("no stdout pipe")))?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            // Ends at EOF, on a read error, or when the parent stops listening.
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // `child` is dropped without `wait`: this module reaps the pid itself
        // with wait4, which std's Child cannot do.
        drop(child);
        Ok(Running {
            label: label.to_owned(),
            pid,
            spawned_ns,
            lines,
            stderr_path: stderr_path.to_owned(),
            deadline: Instant::now() + timeout,
            timeout,
            reaped: false,
        })
    }

    /// [`Running::spawn`] with the child's stderr going to
    /// `<work_dir>/<label>.stderr`.
    pub fn spawn_in(
        label: &str,
        exe: &Path,
        args: &[OsString],
        work_dir: &Path,
        timeout: Duration,
    ) -> Result<Running> {
        let log = work_dir.join(format!("{}.stderr", label.replace([' ', '%'], "-")));
        Running::spawn(label, exe, args, &log, timeout)
    }

    /// Runs a child that prints one report and exits: spawns it
    /// ([`Running::spawn_in`]), reads the report, waits for a clean exit.
    /// Returns the report and the instant just before the spawn, which the
    /// report's milestones are measured from.
    pub fn report_once<T: serde::de::DeserializeOwned>(
        label: &str,
        exe: &Path,
        args: &[OsString],
        work_dir: &Path,
        timeout: Duration,
    ) -> Result<(T, u64)> {
        let mut child = Running::spawn_in(label, exe, args, work_dir, timeout)?;
        let report = child.next_report()?;
        let spawned_ns = child.spawned_ns();
        child.finish()?;
        Ok((report, spawned_ns))
    }

    /// The monotonic instant just before the process was spawned.
    pub fn spawned_ns(&self) -> u64 {
        self.spawned_ns
    }

    /// The next line the child prints. A child that exits or times out
    /// before printing it is an error carrying the end of its stderr.
    pub fn next_line(&mut self) -> Result<String> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        match self.lines.recv_timeout(left) {
            Ok(line) => Ok(line),
            Err(mpsc::RecvTimeoutError::Timeout) => Err(self.kill_for_timeout()),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                // stdout closed: the child is exiting; its status says why.
                let status = self.reap_before_deadline()?;
                Err(match status {
                    ExitStatus::Exited(0) => Error::BadReport {
                        contender: self.label.clone(),
                        line: String::new(),
                        reason: format!(
                            "it exited without printing a report; its last output:\n{}",
                            self.stderr_tail()
                        ),
                    },
                    other => self.failed(other),
                })
            }
        }
    }

    /// The next line, parsed as `T`.
    pub fn next_report<T: serde::de::DeserializeOwned>(&mut self) -> Result<T> {
        let line = self.next_line()?;
        serde_json::from_str(&line).map_err(|e| Error::BadReport {
            contender: self.label.clone(),
            reason: e.to_string(),
            line,
        })
    }

    /// Waits for the child to exit successfully.
    pub fn finish(mut self) -> Result<()> {
        match self.reap_before_deadline()? {
            ExitStatus::Exited(0) => Ok(()),
            other => Err(self.failed(other)),
        }
    }

    /// Polls waitpid until the child exits or the deadline passes (then
    /// kills it). Polling keeps one code path for "exited" and "timed out"
    /// without a second thread racing to reap the pid.
    fn reap_before_deadline(&mut self) -> Result<ExitStatus> {
        loop {
            if let Some(status) = self.try_wait(libc::WNOHANG)? {
                return Ok(status);
            }
            if Instant::now() >= self.deadline {
                return Err(self.kill_for_timeout());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn try_wait(&mut self, flags: i32) -> Result<Option<ExitStatus>> {
        let mut status: libc::c_int = 0;
        // SAFETY: `status` is a valid writable location, and `pid` is our
        // own unreaped child.
        let r = unsafe { libc::waitpid(self.pid, &mut status, flags) };
        if r == 0 {
            return Ok(None);
        }
        if r < 0 {
            return Err(Error::Io {
                path: PathBuf::from(format!("<child {} pid {}>", self.label, self.pid)),
                source: std::io::Error::last_os_error(),
            });
        }
        self.reaped = true;
        Ok(Some(if libc::WIFEXITED(status) {
            ExitStatus::Exited(libc::WEXITSTATUS(status))
        } else if libc::WIFSIGNALED(status) {
            ExitStatus::Signaled(libc::WTERMSIG(status))
        } else {
            ExitStatus::Other(status)
        }))
    }

    fn kill_for_timeout(&mut self) -> Error {
        self.kill_and_reap();
        Error::Timeout {
            contender: self.label.clone(),
            seconds: self.timeout.as_secs(),
            stderr_tail: self.stderr_tail(),
        }
    }

    fn kill_and_reap(&mut self) {
        if self.reaped {
            return;
        }
        // SAFETY: the pid is our unreaped child (a zombie at worst), so it
        // cannot have been reused by another process.
        unsafe {
            libc::kill(self.pid, libc::SIGKILL);
        }
        // A blocking wait after SIGKILL returns promptly; its error, if
        // any, leaves nothing more to clean up.
        let _ = self.try_wait(0);
    }

    fn failed(&self, status: ExitStatus) -> Error {
        Error::ChildFailed {
            contender: self.label.clone(),
            status: status.to_string(),
            stderr_tail: self.stderr_tail(),
        }
    }

    /// The last few KiB the child wrote to stderr.
    fn stderr_tail(&self) -> String {
        let mut buf = Vec::new();
        let read = File::open(&self.stderr_path).and_then(|mut f| {
            let len = f.metadata()?.len();
            f.seek(SeekFrom::Start(len.saturating_sub(STDERR_TAIL_BYTES)))?;
            f.read_to_end(&mut buf)
        });
        match read {
            Ok(_) => String::from_utf8_lossy(&buf).trim_end().to_owned(),
            Err(e) => format!("(could not read {}: {e})", self.stderr_path.display()),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // An abandoned run (an error elsewhere) must not leave a contender
        // running and loading the machine.
        self.kill_and_reap();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ExitStatus {
    Exited(i32),
    Signaled(i32),
    Other(i32),
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitStatus::Exited(code) => write!(f, "exit code {code}"),
            ExitStatus::Signaled(sig) => write!(f, "killed by signal {sig}"),
            ExitStatus::Other(raw) => write!(f, "wait status {raw:#x}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str, timeout: Duration) -> (tempfile::TempDir, Running) {
        let dir = tempfile::tempdir().unwrap();
        let run = Running::spawn(
            "test",
            Path::new("/bin/sh"),
            &["-c".into(), script.into()],
            &dir.path().join("stderr"),
            timeout,
        )
        .unwrap();
        (dir, run)
    }

    #[test]
    fn reads_lines_then_reaps_a_successful_child() {
        let (_dir, mut run) = sh("echo '{\"a\":1}'; echo second", Duration::from_secs(30));
        let v: serde_json::Value = run.next_report().unwrap();
        assert_eq!(v["a"], 1);
        assert_eq!(run.next_line().unwrap(), "second");
        run.finish().unwrap();
    }

    #[test]
    fn a_child_failing_after_its_report_fails_at_finish() {
        let (_dir, mut run) = sh(
            "echo '{}'; echo late-trouble >&2; exit 4",
            Duration::from_secs(30),
        );
        let _: serde_json::Value = run.next_report().unwrap();
        match run.finish() {
            Err(Error::ChildFailed {
                status,
                stderr_tail,
                ..
            }) => {
                assert_eq!(status, "exit code 4");
                assert!(stderr_tail.contains("late-trouble"));
            }
            other => panic!("expected ChildFailed, got {other:?}"),
        }
    }

    #[test]
    fn a_failing_child_is_an_error_quoting_its_stderr() {
        let (_dir, mut run) = sh("echo boom-on-stderr >&2; exit 3", Duration::from_secs(30));
        match run.next_line() {
            Err(Error::ChildFailed {
                contender,
                status,
                stderr_tail,
            }) => {
                assert_eq!(contender, "test");
                assert_eq!(status, "exit code 3");
                assert!(stderr_tail.contains("boom-on-stderr"), "{stderr_tail}");
            }
            other => panic!("expected ChildFailed, got {other:?}"),
        }
    }

    #[test]
    fn a_silent_successful_child_is_a_bad_report() {
        let (_dir, mut run) = sh("exit 0", Duration::from_secs(30));
        assert!(matches!(run.next_line(), Err(Error::BadReport { .. })));
    }

    #[test]
    fn garbage_on_stdout_is_a_bad_report_naming_the_line() {
        let (_dir, mut run) = sh("echo not-json", Duration::from_secs(30));
        match run.next_report::<serde_json::Value>() {
            Err(Error::BadReport { line, .. }) => assert_eq!(line, "not-json"),
            other => panic!("expected BadReport, got {other:?}"),
        }
    }

    #[test]
    fn a_hung_child_is_killed_at_the_deadline() {
        // The deadline runs from the spawn, so it leaves the shell ample
        // time to start and write before it.
        let (_dir, mut run) = sh("echo started >&2; exec sleep 600", Duration::from_secs(3));
        let pid = run.pid;
        match run.next_line() {
            Err(Error::Timeout { stderr_tail, .. }) => assert!(stderr_tail.contains("started")),
            other => panic!("expected Timeout, got {other:?}"),
        }
        // Reaped: the pid is no longer our child.
        let r = unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) };
        assert_eq!(r, -1);
    }

    #[test]
    fn a_child_that_hangs_after_reporting_is_killed_at_finish() {
        let (_dir, mut run) = sh("echo '{}'; exec sleep 600", Duration::from_secs(3));
        let _: serde_json::Value = run.next_report().unwrap();
        assert!(matches!(run.finish(), Err(Error::Timeout { .. })));
    }
}
