//! Exit codes: what a script can tell apart without parsing messages.

use std::process::ExitCode;

use kube_persist::informer::FailureCause;
use kube_persist::inspect;
use kube_persist::store;
use kube_persist::{informer, watcher};

use super::sync::GaveUp;

/// The command did what was asked.
pub const OK: u8 = 0;
/// The command failed for a reason not listed below; `verify`: the store is damaged.
pub const FAILED: u8 = 1;
/// The store is open in another process; nothing was read or changed.
pub const IN_USE: u8 = 2;
/// The directory holds no kube-persist store.
pub const NOT_A_STORE: u8 = 3;
/// The store was written by a newer kube-persist; it was left untouched.
pub const NEWER_SCHEMA: u8 = 4;
/// A record failed its checksum or could not be decoded.
pub const CORRUPT: u8 = 5;
/// The object or resource asked for is not in the store (`sync`: the
/// server has no such resource).
pub const NOT_FOUND: u8 = 6;
/// `sync`: the API server could not be reached, or what answered is not one
/// (with `--until-synced`: nothing better within `--sync-timeout`).
pub const UNREACHABLE: u8 = 7;
/// `sync --until-synced`: not synced within `--sync-timeout` because the
/// store's disk (or quota) is full; what was stored before is kept.
pub const DISK_FULL: u8 = 8;
/// The store is encrypted and no key, or another key, was given; or the
/// key given cannot be used (a key file readable by others, not 64 hex
/// digits). Nothing is damaged.
pub const KEY: u8 = 9;
/// `sync`: stopped by SIGINT or SIGTERM before the store was synced (128 +
/// SIGINT's number, as shells report an interrupted command).
pub const INTERRUPTED: u8 = 130;
/// The command line was wrong (unknown option, bad selector or key...).
pub const USAGE: u8 = 64;

/// The exit-code table shown by `--help`.
pub const HELP: &str = "\
Exit codes:
  0   success
  1   failure not listed below
  2   the store is in use by another process; nothing was changed
  3   the path does not exist, is not a directory, or is not a kube-persist store
      (`repair`: it holds no database, or one that registers no collection)
  4   the store has a newer schema than this build supports; it was left untouched
  5   the store is damaged: a corrupt record or unreadable files (the message
      names which); export and list still write every readable object and
      name each bad key on stderr; verify reports every problem on stdout;
      `sync` moves a damaged database aside and relists
  6   the object or resource is not in the store; for `sync`: not on the server
  7   `sync`: the API server could not be reached
      (or what answered is not one: HTML, garbage), for --until-synced
      within --sync-timeout
  8   `sync --until-synced`: not synced within --sync-timeout because the store's
      disk (or quota) is full; what was stored before is kept
  9   the store is encrypted and no key or the wrong key was given (--key-file PATH
      or KUBE_PERSIST_KEY), or the key cannot be used: a key file readable by
      others than its owner (it must be 0600), not 64 hex digits; nothing is damaged
  64  invalid command line (option, resource, namespace, key, selector, --server URL,
      KUBE_PERSIST_NOW)
  130 `sync`: stopped by SIGINT or SIGTERM before the store was synced

Environment:
  RUST_LOG          log filter (logs go to stderr; default: info); kube's client logs
                    its own line per failed request only when this names kube_client
  KUBE_PERSIST_KEY  the store's at-rest encryption key, 64 hex digits, when --key-file
                    is not given
  KUBE_PERSIST_NOW  RFC 3339 time used as \"now\" for ages, for reproducible output
                    (empty: unset)
  TMPDIR            where read-only commands copy the store's database to read it (default /tmp)";

/// A command-line mistake clap cannot see (an environment variable, a value
/// that only makes sense once the store is open); exits with [`USAGE`].
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(pub String);

/// Print a command-line error (or the help/version clap renders as one).
pub fn usage(err: clap::Error) -> ExitCode {
    // Printing can only fail when stderr/stdout are gone; nothing to tell then.
    let _ = err.print();
    if err.use_stderr() {
        ExitCode::from(USAGE)
    } else {
        ExitCode::from(OK)
    }
}

/// Print `err` on one line and pick its exit code.
pub fn report(err: &anyhow::Error) -> ExitCode {
    let code = code_of(err);
    // A reader that went away (`| head`) is not an error worth a message.
    if code != OK {
        match remedy(err) {
            Some(remedy) => eprintln!("error: {}; {remedy}", one_line(err)),
            None => eprintln!("error: {}", one_line(err)),
        }
    }
    ExitCode::from(code)
}

/// What to do about a store another process holds.
const IN_USE_REMEDY: &str =
    "try again once the process that holds it (a running `kube-persist sync`, say) has stopped";

/// The command that fixes what `err` reports, when there is one.
fn remedy(err: &anyhow::Error) -> Option<String> {
    err.chain().find_map(store_error).and_then(|e| match e {
        store::Error::NotAStore { path, what } if *what == store::directory::MARKER_MISSING => {
            Some(format!(
                "`kube-persist repair {}` restores it",
                path.display()
            ))
        }
        // A store is locked for as long as a writer has it open; the
        // offline commands read it once that writer is gone.
        store::Error::InUse { .. } => Some(IN_USE_REMEDY.to_string()),
        _ => None,
    })
}

/// The store error `cause` is or wraps transparently, if any: the library's
/// errors wrap the store's transparently, so that the store error is not a
/// cause of its own in the chain.
fn store_error<'a>(cause: &'a (dyn std::error::Error + 'static)) -> Option<&'a store::Error> {
    if let Some(e) = cause.downcast_ref::<store::Error>() {
        return Some(e);
    }
    match cause.downcast_ref::<kube_persist::Error>() {
        Some(kube_persist::Error::Store(e)) => return Some(e),
        Some(_) => return None,
        None => {}
    }
    match cause.downcast_ref::<informer::Error>() {
        Some(informer::Error::Store(e)) => return Some(e),
        Some(_) => return None,
        None => {}
    }
    match cause.downcast_ref::<inspect::Error>() {
        Some(inspect::Error::Store(e)) => Some(e),
        _ => None,
    }
}

/// Tell about one record a salvaging read (`export`, `list`) left out, on
/// one stderr line naming the collection, the key and what is wrong; the
/// command goes on and exits with [`CORRUPT`] at the end.
pub fn skipped(err: &store::Error) {
    eprintln!("error: {}", err.to_string().replace('\n', " "));
}

/// The exit code of a salvaging read that left out `skipped` records.
pub fn salvaged(skipped: usize) -> ExitCode {
    ExitCode::from(if skipped == 0 { OK } else { CORRUPT })
}

/// The error and its causes joined by `: `, on one line. A cause whose text
/// the message so far already ends with is left out: library errors often
/// print their source themselves (`i/o error on PATH: {source}`) and also
/// return it from `source()`, which anyhow's `{:#}` would print twice.
fn one_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if line.ends_with(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line.replace('\n', " ")
}

fn code_of(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if cause.is::<Usage>() {
            return USAGE;
        }
        if let Some(gave_up) = cause.downcast_ref::<GaveUp>() {
            return gave_up_code(gave_up);
        }
        if let Some(e) = store_error(cause) {
            return store_code(e);
        }
        if cause.is::<store::KeyError>() {
            return KEY;
        }
        if let Some(e) = cause.downcast_ref::<informer::Error>() {
            return informer_code(e);
        }
        if cause.is::<watcher::Error>() {
            return USAGE;
        }
        if let Some(e) = cause.downcast_ref::<inspect::Error>() {
            return match e {
                inspect::Error::Store(e) => store_code(e),
                inspect::Error::Empty { .. }
                | inspect::Error::UnknownResource { .. }
                | inspect::Error::NotFound { .. } => NOT_FOUND,
                inspect::Error::ResourceRequired { .. }
                | inspect::Error::EmptyResource
                | inspect::Error::AmbiguousResource { .. }
                | inspect::Error::BadKey { .. }
                | inspect::Error::BadNamespace { .. }
                | inspect::Error::Selector(_) => USAGE,
                _ => FAILED,
            };
        }
        if let Some(e) = cause.downcast_ref::<std::io::Error>() {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                return OK;
            }
        }
    }
    FAILED
}

/// The exit code of a sync that gave up: named after its last failure.
fn gave_up_code(gave_up: &GaveUp) -> u8 {
    match gave_up.cause() {
        Some(FailureCause::Unreachable | FailureCause::NotAnApiServer) => UNREACHABLE,
        Some(FailureCause::StorageFull) => DISK_FULL,
        Some(FailureCause::Server | FailureCause::Store) => FAILED,
        // Discovery never answered; a sync under way has nothing to blame.
        None => match gave_up.stage {
            super::sync::Stage::Discovery => UNREACHABLE,
            super::sync::Stage::Sync { .. } => FAILED,
        },
    }
}

fn informer_code(err: &informer::Error) -> u8 {
    match err {
        informer::Error::Store(e) => store_code(e),
        // Every watcher setting `sync` passes comes from its command line.
        informer::Error::Watcher(_) | informer::Error::EmptyResource => USAGE,
        informer::Error::UnknownResource { .. } => NOT_FOUND,
        informer::Error::Unreachable { .. } => UNREACHABLE,
        _ => FAILED,
    }
}

fn store_code(err: &store::Error) -> u8 {
    match err {
        store::Error::InUse { .. } => IN_USE,
        store::Error::NotAStore { .. } => NOT_A_STORE,
        store::Error::NewerSchema { .. } => NEWER_SCHEMA,
        store::Error::Corrupt { .. } | store::Error::Damaged { .. } => CORRUPT,
        store::Error::KeyNeeded { .. } | store::Error::WrongKey { .. } => KEY,
        _ => FAILED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let io = std::io::Error::from_raw_os_error(libc::EACCES);
        let err = anyhow::Error::from(store::Error::Io {
            path: "/x/lock".into(),
            source: io,
        });
        assert_eq!(
            one_line(&err),
            "i/o error on /x/lock: Permission denied (os error 13)"
        );
        // Context over it keeps every distinct part, still on one line.
        let err = err.context("opening store /x\nfor list");
        assert_eq!(
            one_line(&err),
            "opening store /x for list: i/o error on /x/lock: Permission denied (os error 13)"
        );
        assert_eq!(code_of(&err), FAILED);
    }

    #[test]
    fn a_sync_that_gave_up_exits_with_the_code_of_its_last_failure() {
        use super::super::sync::Stage;
        use kube_persist::informer::LastFailure;
        let sync = Stage::Sync { objects: 3 };
        let gave_up = |cause: Option<FailureCause>, stage| {
            let failure = cause.map(|cause| LastFailure {
                cause,
                message: "what failed".into(),
                at: std::time::SystemTime::now(),
            });
            let limit = std::time::Duration::from_secs(2);
            anyhow::Error::from(GaveUp {
                limit,
                stage,
                failure,
            })
        };
        for (cause, stage, code) in [
            (Some(FailureCause::Unreachable), sync, UNREACHABLE),
            (Some(FailureCause::NotAnApiServer), sync, UNREACHABLE),
            (Some(FailureCause::StorageFull), sync, DISK_FULL),
            (Some(FailureCause::Server), sync, FAILED),
            (Some(FailureCause::Store), sync, FAILED),
            (None, Stage::Discovery, UNREACHABLE),
            (None, sync, FAILED),
        ] {
            assert_eq!(code_of(&gave_up(cause, stage)), code, "{cause:?} {stage:?}");
        }
        assert_eq!(
            one_line(&gave_up(Some(FailureCause::StorageFull), sync)),
            "not synced within --sync-timeout 2s: the store's disk is full: what failed"
        );
        assert_eq!(
            one_line(&gave_up(None, sync)),
            "not synced within --sync-timeout 2s: nothing failed, the sync is still under way \
             (3 objects stored); give a longer --sync-timeout"
        );
    }

    #[test]
    fn store_errors_inside_informer_errors_keep_their_codes() {
        let in_use = informer::Error::Store(store::Error::InUse { path: "/s".into() });
        let err = anyhow::Error::from(in_use).context("opening store /s");
        assert_eq!(code_of(&err), IN_USE);
        let not_a_store = informer::Error::Store(store::Error::NotAStore {
            path: "/s".into(),
            what: "is not a directory",
        });
        assert_eq!(code_of(&anyhow::Error::from(not_a_store)), NOT_A_STORE);
        let unknown = informer::Error::UnknownResource {
            name: "gizmo".into(),
            failed: Vec::new(),
        };
        assert_eq!(code_of(&anyhow::Error::from(unknown)), NOT_FOUND);
        let selector = watcher::Error::Selector(kube_persist::selector::Error::Field {
            input: "bogus".into(),
            reason: "no operator".into(),
        });
        assert_eq!(code_of(&anyhow::Error::from(selector)), USAGE);
    }
}
