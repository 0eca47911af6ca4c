//! Schema v3: an Added journal entry may hold no copy of its object and
//! refer to the object's record instead (`"object": "stored"` in place of
//! the patch; its history entry marked). A v2 build would read such an
//! entry as damage, so the schema says which builds may open the store.
//!
//! v2 data is valid v3 data: every v2 entry holds its patch. The step only
//! gives each state record the v3 layout byte, so that a store which lost
//! its marker is still told to be v3 from its data (`schema_of_data`).

use crate::store::engine::Engine;
use crate::store::state::{State, STATE_LAYOUT};
use crate::store::{record, Error, Result};

pub(crate) fn migrate(db: &dyn Engine) -> Result<()> {
    super::rewrite_states(db, 2, |space, bytes| {
        // v2's fields are v3's: only the layout byte differs.
        let mut state: State =
            record::unseal_value(bytes).map_err(|e| Error::undecodable(space, "state", e))?;
        state.layout = STATE_LAYOUT;
        Ok(state)
    })
}
