//! Fixtures shared by every area: stores built through the library, the
//! binary run against them, simulators and raw HTTP against them.

#[cfg(feature = "cli")]
pub mod apiserver;
#[cfg(feature = "cli")]
pub mod cli;
#[cfg(feature = "cli")]
pub mod conformance;
#[cfg(feature = "cli")]
pub mod controller;
#[cfg(feature = "sim")]
pub mod informer;
#[cfg(feature = "sim")]
pub mod sim;
pub mod store;

/// Whether the skip variable `var` is set to something other than empty,
/// `0` or `false`.
#[cfg(feature = "sim")]
pub fn skip_asked(var: &str) -> bool {
    std::env::var(var).is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// A test that cannot run here (`what`, because `why`): a failure, unless
/// skipping was asked for with `var`, then a banner nobody can miss. The
/// banner goes to the process's stderr itself, past libtest's capture,
/// which would hide it for a test that passes.
#[cfg(feature = "sim")]
pub fn unavailable(var: &str, what: &str, why: &str) {
    if !skip_asked(var) {
        panic!("{what} cannot run ({var}=1 skips it): {why}");
    }
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr().lock(),
        "\n################################################################\n\
         ## SKIPPING {what} ({var} is set): {why}\n\
         ################################################################\n"
    );
}
