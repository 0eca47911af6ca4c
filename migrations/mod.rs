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
pub mod v3;

/// The schema version this build writes and the newest it can open.
pub const SCHEMA_VERSION: u32 = 3;

/// Brings the database of a store at schema `from` up to [`SCHEMA_VERSION`].
pub(crate) fn run(db: &dyn Engine, from: u32) -> Result<()> {
    for step in from + 1..=SCHEMA_VERSION {
        match step {
            1 => v1::migrate(db)?,
            2 => v2::migrate(db)?,
            3 => v3::migrate(db)?,
            other => {
                return Err(Error::InvalidArgument(format!(
                    "no migration to schema {other}"
                )))
            }
        }
    }
    Ok(())
}

/// The schema a database is at, told from its data alone (for a store
/// whose marker, which records it, was lost): state records are never
/// sealed, so this reads an encrypted store without its key. The oldest
/// schema found wins, as a migration interrupted between two collections
/// leaves both; every step skips what is already in its layout. A database
/// whose collections hold no state record yet is at [`SCHEMA_VERSION`]: the
/// schemas differ in nothing else.
pub(crate) fn schema_of_data(db: &dyn Engine) -> Result<u32> {
    Ok(state_records(db)?
        .iter()
        .map(|s| s.schema)
        .min()
        .unwrap_or(SCHEMA_VERSION))
}

/// A collection's state record, as a migration step finds it.
pub(crate) struct StateRecord {
    /// The collection's space.
    pub space: String,
    /// The schema that wrote it, told by its leading layout byte.
    pub schema: u32,
    /// The record as stored.
    pub bytes: Vec<u8>,
}

/// Every collection's state record. A layout byte of neither schema is
/// damage or a newer build's: no step of this build may touch it.
pub(crate) fn state_records(db: &dyn Engine) -> Result<Vec<StateRecord>> {
    let mut found = Vec::new();
    for space in collection_spaces(db)? {
        let Some(bytes) = db.get(&space, &crate::store::state_key())? else {
            continue;
        };
        let schema = match bytes.first().copied() {
            Some(crate::store::state::STATE_LAYOUT) => 3,
            Some(v2::LAYOUT) => 2,
            Some(v1::LAYOUT) => 1,
            other => {
                return Err(Error::corrupt(
                    &space,
                    "state",
                    format!("state layout {other:?} is none of v1, v2 and v3"),
                ))
            }
        };
        found.push(StateRecord {
            space,
            schema,
            bytes,
        });
    }
    Ok(found)
}

/// Replaces the state record of every collection at schema `from` by what
/// `next` makes of it (given the space and the record), then makes it all
/// durable: a schema step whose data change is the state record's.
pub(crate) fn rewrite_states(
    db: &dyn Engine,
    from: u32,
    mut next: impl FnMut(&str, &[u8]) -> Result<crate::store::state::State>,
) -> Result<()> {
    for StateRecord {
        space,
        schema,
        bytes,
    } in state_records(db)?
    {
        if schema != from {
            continue;
        }
        let state = next(&space, &bytes)?;
        let mut batch = crate::store::engine::WriteBatch::default();
        batch.put(crate::store::state_key(), crate::store::record::seal_value(&state));
        db.write(&space, batch, false)?;
    }
    db.sync()
}

/// The spaces of a database holding a collection each (every schema).
fn collection_spaces(db: &dyn Engine) -> Result<Vec<String>> {
    Ok(db
        .spaces()?
        .into_iter()
        .filter(|n| n.starts_with(crate::store::TREE_PREFIX))
        .collect())
}
