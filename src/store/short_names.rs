//! The short names (`po`, `wd`) of a collection's resource, as the API
//! server's discovery gave them, so that offline tools accept them the way
//! kubectl does.
//!
//! They live beside the collection, in the default space under
//! `short-names/<collection>`, not in the [`CollectionId`]: they are not part
//! of what a collection is, and a CRD may gain or lose one without its data
//! changing. Older builds never read these keys.

use std::sync::PoisonError;

use super::engine::WriteBatch;
use super::{CollectionId, Error, Result, Store, DEFAULT_SPACE, REGISTRY_PREFIX};

const PREFIX: &str = "short-names/";

/// The key of the short names of the collection named `name`.
pub(crate) fn key(name: &str) -> String {
    format!("{PREFIX}{name}")
}

/// Whether `name` can be a short name: one word, without dots (which
/// separate a group) or slashes (which name a subresource).
pub fn is_short_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(['.', '/']) && !name.chars().any(char::is_whitespace)
}

/// Decodes a short-names record of collection `name`.
pub(crate) fn decode(name: &str, body: &[u8]) -> Result<Vec<String>> {
    serde_json::from_slice(body)
        .map_err(|e| Error::corrupt_by(name, key(name), "short names do not parse", e))
}

impl Store {
    /// The short names recorded for the resource of collection `id`; empty
    /// when none were.
    pub fn short_names(&self, id: &CollectionId) -> Result<Vec<String>> {
        let name = id.name();
        match self.db().get(DEFAULT_SPACE, key(&name).as_bytes())? {
            Some(body) => decode(&name, &body),
            None => Ok(Vec::new()),
        }
    }

    /// Records the short names of the resource of collection `id`, which
    /// must exist; an empty list clears them. Writes nothing when they are
    /// already recorded, so an informer may call it on every start, and
    /// replaces a record that no longer parses.
    pub fn set_short_names(&self, id: &CollectionId, short_names: &[String]) -> Result<()> {
        let name = id.name();
        if let Some(bad) = short_names.iter().find(|n| !is_short_name(n)) {
            return Err(Error::InvalidArgument(format!(
                "short name {bad:?} of {name}: a short name is one word, without dots or slashes"
            )));
        }
        // Held so that a concurrent drop_collection cannot leave the names
        // of a collection that no longer exists.
        let _open = self
            .collections
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let db = self.db();
        let registered = format!("{REGISTRY_PREFIX}{name}");
        if db.get(DEFAULT_SPACE, registered.as_bytes())?.is_none() {
            return Err(Error::InvalidArgument(format!(
                "the store has no collection {name} to record short names for"
            )));
        }
        let recorded = db.get(DEFAULT_SPACE, key(&name).as_bytes())?;
        if recorded.as_deref().map_or(short_names.is_empty(), |body| {
            decode(&name, body).is_ok_and(|r| r == short_names)
        }) {
            return Ok(());
        }
        self.shared.writable()?;
        let mut batch = WriteBatch::default();
        if short_names.is_empty() {
            batch.delete(key(&name));
        } else {
            let body = serde_json::to_vec(short_names)
                .map_err(|e| Error::encode(format!("short names of {name}"), e))?;
            batch.put(key(&name), body);
        }
        db.write(DEFAULT_SPACE, batch, true)
    }
}
