//! At-rest encryption: an AEAD over each record's compressed payload.
//!
//! A store opened with an [`EncryptionKey`] seals every record that holds
//! object content (objects, journal entries) with XChaCha20-Poly1305: a
//! random 24-byte nonce per record (random nonces of that size never repeat
//! in practice, so no counter has to survive a crash), the record's
//! envelope as associated data (an envelope cannot be moved onto another
//! payload), compress first, then encrypt. The crc still covers the whole
//! record, so a flipped byte is found before the cipher runs; a record that
//! passes its crc but fails authentication under the store's key is damage.
//!
//! The key id (the first 8 bytes of SHA-256 over a domain string and the
//! key) is written in every sealed record and in the store's marker, so a
//! missing or wrong key is told apart from damage before anything is read.
//!
//! Under encryption no zstd dictionary is trained or used: a dictionary is
//! made of pieces of its sample objects, in plaintext. Encrypting a store
//! that has dictionaries recompresses its records without them and removes
//! them.
//!
//! What stays plaintext: record keys (namespace/name), index keys (label
//! values, namespaces), the envelope (resourceVersion, write time, size;
//! records written by earlier builds also copied the uid and creation
//! time there), the state record (last resourceVersion, counters) and
//! consumers' cursors.

use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// The environment variable a key is read from when no key file is given:
/// 64 hex digits.
pub const KEY_ENV: &str = "KUBE_PERSIST_KEY";

/// Bytes of a nonce, stored in front of each sealed payload.
pub(crate) const NONCE_LEN: usize = 24;
/// Bytes of the authentication tag, after the ciphertext.
pub(crate) const TAG_LEN: usize = 16;

/// Separates our key ids from any other hash of the same key.
const KEY_ID_DOMAIN: &[u8] = b"kube-persist key id v1\0";

/// The short public fingerprint of a key, written beside what it sealed.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId(pub [u8; 8]);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

impl std::str::FromStr for KeyId {
    type Err = String;

    fn from_str(s: &str) -> Result<KeyId, String> {
        let bytes = decode_hex(s).ok_or_else(|| format!("key id {s:?} is not hex"))?;
        bytes
            .try_into()
            .map(KeyId)
            .map_err(|_| format!("key id {s:?} is not 16 hex digits"))
    }
}

/// Why a key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key file could be read by others than its owner.
    #[error("key file {path} has mode {mode:04o}; it must be readable by its owner only (chmod 600 {path})")]
    Permissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The key file could not be read.
    #[error("key file {path}: {source}")]
    Io {
        /// The key file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The key is not 64 hex digits.
    #[error("{from}: a key is 64 hex digits (32 bytes), e.g. from `openssl rand -hex 32`")]
    Malformed {
        /// Where the key came from: the file, or the environment variable.
        from: String,
    },
}

/// A 32-byte key for at-rest encryption. Its bytes are wiped when it is
/// dropped and never printed.
#[derive(Clone)]
pub struct EncryptionKey {
    bytes: Zeroizing<[u8; 32]>,
    id: KeyId,
}

impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptionKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl EncryptionKey {
    /// A key from its 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> EncryptionKey {
        let mut hash = Sha256::new();
        hash.update(KEY_ID_DOMAIN);
        hash.update(bytes);
        let digest = hash.finalize();
        let mut id = [0; 8];
        id.copy_from_slice(&digest[..8]);
        EncryptionKey {
            bytes: Zeroizing::new(bytes),
            id: KeyId(id),
        }
    }

    /// A key from 64 hex digits (surrounding whitespace ignored); `from`
    /// names the source in the error.
    pub fn from_hex(text: &str, from: &str) -> Result<EncryptionKey, KeyError> {
        let malformed = || KeyError::Malformed {
            from: from.to_string(),
        };
        let bytes = Zeroizing::new(decode_hex(text.trim()).ok_or_else(malformed)?);
        let bytes: [u8; 32] = bytes.as_slice().try_into().map_err(|_| malformed())?;
        Ok(EncryptionKey::from_bytes(bytes))
    }

    /// A key from a file holding 64 hex digits, which must be readable by
    /// its owner only (mode 0600 or stricter), as the store's own files are.
    pub fn from_file(path: &Path) -> Result<EncryptionKey, KeyError> {
        let io = |source| KeyError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mode = std::fs::metadata(path).map_err(io)?.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(KeyError::Permissions {
                path: path.to_path_buf(),
                mode,
            });
        }
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(io)?);
        EncryptionKey::from_hex(&text, &format!("key file {}", path.display()))
    }

    /// The key in [`KEY_ENV`], if it is set.
    pub fn from_env() -> Result<Option<EncryptionKey>, KeyError> {
        match std::env::var(KEY_ENV) {
            Ok(text) => {
                let text = Zeroizing::new(text);
                EncryptionKey::from_hex(&text, &format!("${KEY_ENV}")).map(Some)
            }
            Err(_) => Ok(None),
        }
    }

    /// The key's public fingerprint.
    pub fn id(&self) -> KeyId {
        self.id
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(self.bytes.as_ref().into())
    }

    /// `nonce | ciphertext | tag` of `plaintext`, bound to `aad`.
    pub(crate) fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let mut out = Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN);
        out.extend_from_slice(&nonce);
        // Encryption fails only for inputs beyond 256 GiB.
        let sealed = self
            .cipher()
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .unwrap_or_default();
        out.extend_from_slice(&sealed);
        out
    }

    /// The plaintext of what [`seal`](Self::seal) made, if it authenticates.
    pub(crate) fn open(&self, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < NONCE_LEN + TAG_LEN {
            return None;
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        self.cipher()
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .ok()
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    text.as_bytes()
        .chunks(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::OpenOptionsExt;

    const HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    #[test]
    fn a_sealed_payload_opens_only_with_its_key_and_its_aad() {
        let key = EncryptionKey::from_hex(HEX, "test").unwrap();
        let sealed = key.seal(b"envelope", b"payload");
        assert_eq!(sealed.len(), NONCE_LEN + 7 + TAG_LEN);
        assert_eq!(key.open(b"envelope", &sealed).unwrap(), b"payload");
        assert!(key.open(b"envelopE", &sealed).is_none());
        let other = EncryptionKey::from_bytes([9; 32]);
        assert_ne!(other.id(), key.id());
        assert!(other.open(b"envelope", &sealed).is_none());
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            assert!(key.open(b"envelope", &bad).is_none(), "flip at {i}");
        }
        assert!(key
            .open(b"envelope", &sealed[..NONCE_LEN + TAG_LEN - 1])
            .is_none());
        // Two seals of the same plaintext differ (a fresh nonce each).
        assert_ne!(key.seal(b"e", b"p"), key.seal(b"e", b"p"));
    }

    #[test]
    fn keys_parse_from_hex_and_never_print() {
        let key = EncryptionKey::from_hex(&format!(" {HEX}\n"), "test").unwrap();
        let id = key.id();
        assert_eq!(id.to_string().parse::<KeyId>().unwrap(), id);
        assert_eq!(id.to_string().len(), 16);
        let debug = format!("{key:?}");
        assert!(
            !debug.contains("0102") && debug.contains(&id.to_string()),
            "{debug}"
        );
        for bad in ["", "00", &HEX[1..], &format!("{}zz", &HEX[2..])] {
            let err = EncryptionKey::from_hex(bad, "$X").unwrap_err();
            assert!(
                err.to_string().starts_with("$X: a key is 64 hex digits"),
                "{err}"
            );
        }
    }

    #[test]
    fn a_key_file_readable_by_others_is_refused_naming_its_mode() {
        let tmp = tempfile::tempdir().unwrap();
        let write = |name: &str, mode: u32| {
            let path = tmp.path().join(name);
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .write(true)
                .mode(mode)
                .open(&path)
                .unwrap();
            std::io::Write::write_all(&mut f, HEX.as_bytes()).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            path
        };
        let good = write("good", 0o600);
        assert_eq!(
            EncryptionKey::from_file(&good).unwrap().id(),
            EncryptionKey::from_hex(HEX, "").unwrap().id()
        );
        assert!(EncryptionKey::from_file(&write("ro", 0o400)).is_ok());
        let open = write("open", 0o644);
        let err = EncryptionKey::from_file(&open).unwrap_err().to_string();
        assert!(
            err.contains(&open.display().to_string()) && err.contains("mode 0644"),
            "{err}"
        );
        let missing = EncryptionKey::from_file(&tmp.path().join("nope")).unwrap_err();
        assert!(matches!(missing, KeyError::Io { .. }), "{missing}");
    }
}
