//! What a store command acts on: the store directory and, within it, one
//! collection named kubectl-style.

use std::path::{Path, PathBuf};

use kube_persist::inspect::{self, resource};
use kube_persist::store::{Collection, CollectionId, EncryptionKey, Store};

/// The store directory argument every store command takes.
#[derive(Debug, clap::Args)]
pub struct StoreDir {
    /// The store directory. The read-only commands (inspect, get, list,
    /// history, verify, export) read a redb store in place, and a sled
    /// store (sled cannot open read-only) through a private copy under
    /// $TMPDIR.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    #[command(flatten)]
    pub key: KeyArg,
}

impl StoreDir {
    /// Open the store for reading: nothing in it changes, and it fails if a
    /// writer has it open.
    pub fn open(&self) -> anyhow::Result<Store> {
        Ok(Store::open_read_only_with_key(&self.dir, self.key.load()?)?)
    }
}

/// `--key-file`: the at-rest encryption key of a store.
#[derive(Debug, Default, clap::Args)]
pub struct KeyArg {
    /// The store's at-rest encryption key: a file holding 64 hex digits
    /// (`openssl rand -hex 32`), readable by its owner only (0600). Default:
    /// $KUBE_PERSIST_KEY, if set. Needed to read an encrypted store; a
    /// command that writes encrypts a plaintext store under it.
    #[arg(long, value_name = "PATH")]
    pub key_file: Option<PathBuf>,
}

impl KeyArg {
    /// The key from `--key-file`, else from the environment, if any.
    pub fn load(&self) -> Result<Option<EncryptionKey>, kube_persist::store::KeyError> {
        match &self.key_file {
            Some(path) => EncryptionKey::from_file(path).map(Some),
            None => EncryptionKey::from_env(),
        }
    }

    /// The key, required (for `encrypt`).
    pub fn require(&self, store: &Path) -> anyhow::Result<EncryptionKey> {
        self.load()?.ok_or_else(|| {
            super::exit::Usage(format!(
                "encrypting {} needs a key: --key-file PATH or $KUBE_PERSIST_KEY",
                store.display()
            ))
            .into()
        })
    }
}

/// The forms `--resource` takes, shared by every command's help so that they
/// cannot drift apart (a macro, not a const: `concat!` needs a literal).
macro_rules! resource_forms {
    () => {
        "plural, singular, short name or kind, optionally followed by .group or \
         .version.group (pods, po, Pod, deployments.apps, deploy.v1.apps); or a \
         collection's full name as inspect prints it, restrictions included \
         ('pods [namespace=default]')"
    };
}
pub(crate) use resource_forms;

/// `--resource`, for commands that read one collection.
#[derive(Debug, clap::Args)]
pub struct ResourceArg {
    #[arg(
        long,
        short = 'r',
        value_name = "R",
        help = concat!(
            "Resource type: ",
            resource_forms!(),
            ". May be omitted when the store holds one collection."
        )
    )]
    pub resource: Option<String>,
}

/// One object of one collection: `DIR [--resource R] NAMESPACE/NAME`.
#[derive(Debug, clap::Args)]
pub struct ObjectArg {
    #[command(flatten)]
    pub store: StoreDir,
    #[command(flatten)]
    pub resource: ResourceArg,
    /// The object: NAMESPACE/NAME, or NAME for cluster-scoped resources.
    #[arg(value_name = "NAMESPACE/NAME")]
    pub key: String,
}

/// `--show-secrets`.
#[derive(Debug, clap::Args)]
pub struct SecretsArg {
    /// Show the values of Secrets instead of `<redacted N bytes>`.
    #[arg(long)]
    pub show_secrets: bool,
}

/// The collection `--resource` names in `store`.
pub fn collection(store: &Store, resource: &ResourceArg) -> anyhow::Result<Collection> {
    let mut named = Vec::new();
    for id in store.collections()? {
        // Damage to a shortcut must not stop every lookup; verify reports it.
        let short_names = store.short_names(&id).unwrap_or_else(|e| {
            tracing::warn!("{e}; its short names are ignored");
            Vec::new()
        });
        named.push((id, short_names));
    }
    let id = resource::resolve(store.path(), &named, resource.resource.as_deref())?;
    find(store, id)
}

/// Open collection `id`, which the store listed.
pub fn find(store: &Store, id: &CollectionId) -> anyhow::Result<Collection> {
    store.find_collection(id)?.ok_or_else(|| {
        inspect::Error::UnknownResource {
            given: resource::display_name(id),
            available: String::new(),
        }
        .into()
    })
}

/// The collection `resource` names, or every collection when it is `None`.
pub fn collections(store: &Store, resource: Option<&str>) -> anyhow::Result<Vec<Collection>> {
    match resource {
        Some(r) => Ok(vec![collection(
            store,
            &ResourceArg {
                resource: Some(r.to_string()),
            },
        )?]),
        None => store
            .collections()?
            .iter()
            .map(|id| find(store, id))
            .collect(),
    }
}
