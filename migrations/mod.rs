//! Schema migrations: one module per schema step, run in order on open.
//!
//! The schema version lives in the store's marker file (see
//! `store::directory`), so a store from a newer build is refused before
//! anything is opened. Each step is idempotent: it recognises data already in
//! its layout and leaves it alone, so a crash between a step and the marker
//! update is harmless (the step runs again on the next open).

use crate::store::engine::Engine;
use crate::store::{Error, Result};

pub mod v1;
pub mod v2;

/// The schema version this build writes and the newest it can open.
pub const SCHEMA_VERSION: u32 = 2;

/// Brings the database of a store at schema `from` up to [`SCHEMA_VERSION`].
pub(crate) fn run(db: &dyn Engine, from: u32) -> Result<()> {
    for step in from + 1..=SCHEMA_VERSION {
        match step {
            1 => v1::migrate(db)?,
            2 => v2::migrate(db)?,
            other => {
                return Err(Error::InvalidArgument(format!(
                    "no migration to schema {other}"
                )))
            }
        }
    }
    Ok(())
}

/// The spaces of a database holding a collection each (schema v1 and v2).
fn collection_spaces(db: &dyn Engine) -> Result<Vec<String>> {
    Ok(db
        .spaces()?
        .into_iter()
        .filter(|n| n.starts_with(crate::store::TREE_PREFIX))
        .collect())
}
