//! The record codec: how one object (or journal entry) is laid out on disk.
//!
//! ```text
//! record = envelope_len: u16 LE | envelope (bincode 2, standard config) | payload | crc32: u32 LE
//! ```
//!
//! A record of format [`FORMAT_SEALED`] is encrypted (see
//! [`super::encryption`]): its envelope is followed, inside `envelope_len`,
//! by the 8-byte id of the key, and its payload is
//! `nonce (24) | ciphertext of the zstd payload | tag (16)`, authenticated
//! together with `envelope_len | envelope | key id`. The envelope's fields
//! are the same in both formats, so format 1 records read as before.
//!
//! The crc covers every byte before it, so any single-bit flip anywhere in a
//! record (the crc included) is detected before anything is parsed. The
//! envelope can be read without touching the payload, which is what keeps
//! [`Collection::versions`](super::Collection::versions) cheap. Small
//! internal records (state, cursors, dictionaries) use the same crc trailer
//! through [`seal`] / [`unseal`].

use bincode::{Decode, Encode};

use std::borrow::Cow;

use super::dictionary::{Dictionary, ZstdContext};
use super::error::Cause;
use super::encryption::{EncryptionKey, KeyId};

/// Version of the envelope layout; bumped (with a migration) when it changes.
pub const FORMAT_VERSION: u8 = 1;

/// The format of a sealed (encrypted) record: a format 1 envelope followed
/// by the key id, and an encrypted payload.
pub const FORMAT_SEALED: u8 = 2;

/// Bytes of the key id after a sealed record's envelope.
const KEY_ID_LEN: usize = 8;

/// bincode 2's format is frozen; the standard (varint) config is the one on disk.
const BINCODE: bincode::config::Configuration = bincode::config::standard();

/// The same format for reading, with a bound on what one value may claim:
/// bincode allocates a string's bytes as its length prefix says before it
/// reads them, so a checksummed record with a wild length would otherwise
/// abort the process. Nothing the store writes comes near this (an envelope
/// is at most 64 KiB, by its u16 length).
const BINCODE_READ: bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<{ 1 << 20 }>,
> = BINCODE.with_limit::<{ 1 << 20 }>();

/// The largest object a record holds, in bytes of JSON. kube-apiserver
/// refuses request bodies over 3 MiB and etcd values over 1.5 MiB by
/// default, so only a server configured far past both comes near it;
/// `apply` refuses a bigger object rather than write a record that could
/// not be read back.
pub const MAX_OBJECT_LEN: usize = 32 << 20;

/// The most a record's payload may expand to. A journal entry holds a small
/// head plus either its object or a merge patch, which can name every field
/// of the old object besides the new one's: within four objects. Checked
/// before decompressing, so a record whose length field is wild (its crc
/// matching by chance, or a fuzzer's) cannot make the reader allocate
/// gigabytes for it.
pub const MAX_RAW_LEN: usize = 4 * MAX_OBJECT_LEN;

/// How a record's payload is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
pub enum Codec {
    /// zstd-compressed JSON, no dictionary.
    Zstd,
    /// zstd-compressed JSON with the collection dictionary named in the envelope.
    ZstdDictionary,
}

/// The small header in front of every record's payload.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct Envelope {
    /// [`FORMAT_VERSION`] at the time of writing.
    pub format: u8,
    /// Payload encoding.
    pub codec: Codec,
    /// Dictionary id the payload needs (0 when [`Codec::Zstd`]).
    pub dictionary: u32,
    /// The object's resourceVersion (for journal entries: the change's).
    pub rv: String,
    /// Written empty: the payload holds the object's `metadata.uid`.
    /// Records written by earlier builds copied it here, and still decode;
    /// nothing reads it.
    pub uid: String,
    /// Written empty, like [`Self::uid`]: the payload holds
    /// `metadata.creationTimestamp`.
    pub created: String,
    /// When the record was written, in milliseconds since the Unix epoch.
    pub stored_at_ms: u64,
    /// Length of the uncompressed JSON payload.
    pub raw_len: u32,
}

/// Why a record could not be read. Rendered into [`super::Error::Corrupt`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// Too short to hold even the framing.
    #[error("record is truncated ({0} bytes)")]
    Truncated(usize),
    /// The stored crc does not match the bytes.
    #[error("checksum mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    Checksum {
        /// crc32 found in the record.
        stored: u32,
        /// crc32 of the bytes.
        computed: u32,
    },
    /// The envelope does not parse: the decoder's error, or what is
    /// inconsistent in what it decoded.
    #[error("bad envelope: {0}")]
    Envelope(#[source] Cause),
    /// Written by a newer record format.
    #[error("unknown record format {0}")]
    UnknownFormat(u8),
    /// The payload does not decompress to the size the envelope promises:
    /// the decompressor's error, or how the sizes differ.
    #[error("payload does not decompress: {0}")]
    Payload(#[source] Cause),
    /// The payload needs a dictionary that is not in the store.
    #[error("payload needs zstd dictionary {0}, which is missing")]
    MissingDictionary(u32),
    /// A sealed record that fails authentication under its key: damage.
    #[error("sealed payload fails authentication under key {0}")]
    Authentication(KeyId),
    /// A sealed record under another key than the one given (or none given).
    #[error("record is sealed under key {found}, not {expected}")]
    KeyMismatch {
        /// The key id in the record.
        found: KeyId,
        /// The key id given ("none" without a key).
        expected: String,
    },
    /// A plaintext record where every record is sealed.
    #[error("record is not encrypted, though the store is")]
    NotSealed,
}

/// A record split into its parts, its crc verified.
pub struct Framed<'a> {
    /// The envelope.
    pub envelope: Envelope,
    /// The key a sealed record is sealed under.
    pub key_id: Option<KeyId>,
    /// `envelope_len | envelope [| key id]`: what a seal authenticates.
    pub header: &'a [u8],
    /// The payload (sealed or not).
    pub payload: &'a [u8],
}

impl<'a> Framed<'a> {
    /// The compressed payload: opened with `key` when sealed (which must be
    /// the key it was sealed under); as is when not, unless `key` is given
    /// and `plaintext_allowed` is not (a store whose every record is sealed).
    pub fn compressed(
        &self,
        key: Option<&EncryptionKey>,
        plaintext_allowed: bool,
    ) -> Result<Cow<'a, [u8]>, RecordError> {
        match (self.key_id, key) {
            (None, Some(_)) if !plaintext_allowed => Err(RecordError::NotSealed),
            (None, _) => Ok(Cow::Borrowed(self.payload)),
            (Some(found), Some(key)) if found == key.id() => key
                .open(self.header, self.payload)
                .map(Cow::Owned)
                .ok_or(RecordError::Authentication(found)),
            (Some(found), key) => Err(RecordError::KeyMismatch {
                found,
                expected: key.map_or("none".to_string(), |k| k.id().to_string()),
            }),
        }
    }
}

/// Appends a crc32 of `body` to it.
pub fn seal(mut body: Vec<u8>) -> Vec<u8> {
    let crc = crc32fast::hash(&body);
    body.extend_from_slice(&crc.to_le_bytes());
    body
}

/// Checks the crc trailer and returns the body it covers.
pub fn unseal(bytes: &[u8]) -> Result<&[u8], RecordError> {
    if bytes.len() < 4 {
        return Err(RecordError::Truncated(bytes.len()));
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    let stored = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
    let computed = crc32fast::hash(body);
    if stored != computed {
        return Err(RecordError::Checksum { stored, computed });
    }
    Ok(body)
}

/// Lays out a record from an envelope and an already-encoded payload.
pub fn encode(envelope: &Envelope, payload: &[u8]) -> Vec<u8> {
    let (mut out, _) = header(envelope, None, payload.len());
    out.extend_from_slice(payload);
    seal(out)
}

/// `envelope_len | envelope [| key id]`, with room for the payload and crc.
fn header(envelope: &Envelope, key_id: Option<KeyId>, payload_len: usize) -> (Vec<u8>, usize) {
    // Encoding a plain struct into a Vec cannot fail.
    let mut env = bincode::encode_to_vec(envelope, BINCODE).unwrap_or_default();
    if let Some(id) = key_id {
        env.extend_from_slice(&id.0);
    }
    let mut out = Vec::with_capacity(2 + env.len() + payload_len + 4);
    out.extend_from_slice(&(env.len() as u16).to_le_bytes());
    out.extend_from_slice(&env);
    let len = out.len();
    (out, len)
}

/// Lays out a sealed record: `compressed` encrypted under `key`, bound to
/// the envelope (whose format is set to [`FORMAT_SEALED`]).
pub fn encode_sealed(envelope: &Envelope, key: &EncryptionKey, compressed: &[u8]) -> Vec<u8> {
    let envelope = Envelope {
        format: FORMAT_SEALED,
        ..envelope.clone()
    };
    let sealed_len = compressed.len() + super::encryption::NONCE_LEN + super::encryption::TAG_LEN;
    let (mut out, _) = header(&envelope, Some(key.id()), sealed_len);
    let sealed = key.seal(&out, compressed);
    out.extend_from_slice(&sealed);
    seal(out)
}

/// Verifies a record and splits it into its envelope and (encoded) payload.
pub fn decode(bytes: &[u8]) -> Result<(Envelope, &[u8]), RecordError> {
    decode_framed(bytes).map(|f| (f.envelope, f.payload))
}

/// Verifies a record and splits it into its parts.
pub fn decode_framed(bytes: &[u8]) -> Result<Framed<'_>, RecordError> {
    let body = unseal(bytes)?;
    if body.len() < 2 {
        return Err(RecordError::Truncated(bytes.len()));
    }
    let env_len = u16::from_le_bytes([body[0], body[1]]) as usize;
    let env_bytes = body
        .get(2..2 + env_len)
        .ok_or(RecordError::Truncated(bytes.len()))?;
    let (envelope, used): (Envelope, usize) = bincode::decode_from_slice(env_bytes, BINCODE_READ)
        .map_err(|e| RecordError::Envelope(e.into()))?;
    let key_id = match envelope.format {
        FORMAT_VERSION => None,
        FORMAT_SEALED => env_bytes
            .get(used..)
            .and_then(|id| <[u8; KEY_ID_LEN]>::try_from(id).ok())
            .map(KeyId),
        other => return Err(RecordError::UnknownFormat(other)),
    };
    let expected = used + key_id.map_or(0, |_| KEY_ID_LEN);
    if expected != env_len {
        return Err(RecordError::Envelope(format!(
            "envelope is {expected} bytes, header says {env_len}"
        ).into()));
    }
    Ok(Framed {
        envelope,
        key_id,
        header: &body[..2 + env_len],
        payload: &body[2 + env_len..],
    })
}

/// The leading fields of an [`Envelope`], in its order: all a relist diff
/// needs, without allocating the fields after the rv.
#[derive(Decode)]
struct EnvelopeHead {
    format: u8,
    codec: Codec,
    dictionary: u32,
    rv: String,
}

/// Verifies a record (crc over all of it) and reads only its rv.
pub fn decode_rv(bytes: &[u8]) -> Result<String, RecordError> {
    decode_head(bytes).map(|(rv, _)| rv)
}

/// Verifies a record (crc over all of it) and reads its rv and the
/// dictionary its payload needs (`None`: none).
pub fn decode_head(bytes: &[u8]) -> Result<(String, Option<u32>), RecordError> {
    let body = unseal(bytes)?;
    let env_len = match body {
        [a, b, ..] => u16::from_le_bytes([*a, *b]) as usize,
        _ => return Err(RecordError::Truncated(bytes.len())),
    };
    let env_bytes = body
        .get(2..2 + env_len)
        .ok_or(RecordError::Truncated(bytes.len()))?;
    let (head, _): (EnvelopeHead, usize) = bincode::decode_from_slice(env_bytes, BINCODE_READ)
        .map_err(|e| RecordError::Envelope(e.into()))?;
    if head.format != FORMAT_VERSION && head.format != FORMAT_SEALED {
        return Err(RecordError::UnknownFormat(head.format));
    }
    let dictionary = (head.codec == Codec::ZstdDictionary).then_some(head.dictionary);
    Ok((head.rv, dictionary))
}

/// What a record says about its object, besides the payload.
#[derive(Debug, Clone, Default)]
pub struct RecordMeta {
    /// resourceVersion.
    pub rv: String,
    /// Write time, ms since the Unix epoch.
    pub stored_at_ms: u64,
}

/// Compresses `raw` JSON (with `dictionary` if given) into a full record.
pub fn seal_payload(
    ctx: &mut ZstdContext,
    raw: &[u8],
    meta: RecordMeta,
    dictionary: Option<&Dictionary>,
) -> std::io::Result<Vec<u8>> {
    let payload = ctx.compress(raw, dictionary)?;
    Ok(seal_compressed(&payload, raw.len(), meta, dictionary))
}

/// Lays out a full record around a payload already compressed (with
/// `dictionary` if given) from `raw_len` bytes of JSON. The payload may be
/// several zstd frames back to back: they decompress to their contents
/// concatenated (schema v2 wrote Added journal entries that way, reusing
/// their object's frame).
pub fn seal_compressed(
    payload: &[u8],
    raw_len: usize,
    meta: RecordMeta,
    dictionary: Option<&Dictionary>,
) -> Vec<u8> {
    seal_compressed_under(payload, raw_len, meta, dictionary, None)
}

/// [`seal_compressed`], encrypted under `key` when one is given.
pub fn seal_compressed_under(
    payload: &[u8],
    raw_len: usize,
    meta: RecordMeta,
    dictionary: Option<&Dictionary>,
    key: Option<&EncryptionKey>,
) -> Vec<u8> {
    let envelope = Envelope {
        format: FORMAT_VERSION,
        codec: if dictionary.is_some() {
            Codec::ZstdDictionary
        } else {
            Codec::Zstd
        },
        dictionary: dictionary.map_or(0, Dictionary::id),
        rv: meta.rv,
        // About 60 bytes a record that the payload already holds.
        uid: String::new(),
        created: String::new(),
        stored_at_ms: meta.stored_at_ms,
        raw_len: raw_len as u32,
    };
    match key {
        Some(key) => encode_sealed(&envelope, key, payload),
        None => encode(&envelope, payload),
    }
}

/// Decompresses a payload, checking it against what the envelope promises.
/// `dictionary` must be the one the envelope names (callers look it up).
pub fn open_payload(
    ctx: &mut ZstdContext,
    envelope: &Envelope,
    payload: &[u8],
    dictionary: Option<&Dictionary>,
) -> Result<Vec<u8>, RecordError> {
    let dict = match envelope.codec {
        Codec::Zstd => None,
        Codec::ZstdDictionary => match dictionary {
            Some(d) if d.id() == envelope.dictionary => Some(d),
            _ => return Err(RecordError::MissingDictionary(envelope.dictionary)),
        },
    };
    if envelope.raw_len as usize > MAX_RAW_LEN {
        return Err(RecordError::Payload(format!(
            "envelope claims {} bytes, more than the {MAX_RAW_LEN} a record may hold",
            envelope.raw_len
        ).into()));
    }
    let raw = ctx
        .decompress(payload, envelope.raw_len as usize, dict)
        .map_err(|e| RecordError::Payload(e.into()))?;
    if raw.len() != envelope.raw_len as usize {
        return Err(RecordError::Payload(format!(
            "{} bytes, envelope says {}",
            raw.len(),
            envelope.raw_len
        ).into()));
    }
    Ok(raw)
}

/// Encodes a small internal value (state, cursor) with a crc trailer.
pub(crate) fn seal_value<T: Encode>(value: &T) -> Vec<u8> {
    seal(bincode::encode_to_vec(value, BINCODE).unwrap_or_default())
}

/// Reads back a value written by [`seal_value`].
pub(crate) fn unseal_value<T: Decode<()>>(bytes: &[u8]) -> Result<T, RecordError> {
    let body = unseal(bytes)?;
    let (value, used) = bincode::decode_from_slice(body, BINCODE_READ)
        .map_err(|e| RecordError::Envelope(e.into()))?;
    if used != body.len() {
        return Err(RecordError::Envelope(format!(
            "{} trailing bytes",
            body.len() - used
        ).into()));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flipped_crc_byte_is_detected_and_named() {
        let mut r = encode(
            &Envelope {
                format: FORMAT_VERSION,
                codec: Codec::Zstd,
                dictionary: 0,
                rv: "5".into(),
                uid: String::new(),
                created: String::new(),
                stored_at_ms: 1,
                raw_len: 0,
            },
            b"",
        );
        assert_eq!(decode_rv(&r).unwrap(), "5");
        let last = r.len() - 1;
        r[last] ^= 0x80;
        assert!(matches!(decode_rv(&r), Err(RecordError::Checksum { .. })));
        assert!(matches!(decode(&r), Err(RecordError::Checksum { .. })));
        assert!(matches!(decode(&r[..3]), Err(RecordError::Truncated(3))));
    }

    #[test]
    fn a_record_whose_envelope_copies_uid_and_created_still_opens() {
        // As written before the envelope stopped copying them.
        let raw = br#"{"metadata":{"uid":"u-1","creationTimestamp":"2026-01-01T00:00:00Z"}}"#;
        let mut ctx = ZstdContext::new(3);
        let payload = ctx.compress(raw, None).unwrap();
        let old = Envelope {
            format: FORMAT_VERSION,
            codec: Codec::Zstd,
            dictionary: 0,
            rv: "7".into(),
            uid: "u-1".into(),
            created: "2026-01-01T00:00:00Z".into(),
            stored_at_ms: 1,
            raw_len: raw.len() as u32,
        };
        let rec = encode(&old, &payload);
        assert_eq!(decode_rv(&rec).unwrap(), "7");
        let (env, body) = decode(&rec).unwrap();
        assert_eq!(env, old);
        assert_eq!(open_payload(&mut ctx, &env, body, None).unwrap(), raw);
        // Written now, the same object's record is smaller by those copies.
        let meta = RecordMeta {
            rv: "7".into(),
            stored_at_ms: 1,
        };
        let new = seal_compressed(&payload, raw.len(), meta, None);
        assert_eq!(rec.len() - new.len(), "u-1".len() + "2026-01-01T00:00:00Z".len());
    }

    /// The envelope of a 2-byte payload (`{}`) compressed without a
    /// dictionary.
    fn zstd_envelope_of_2_bytes() -> Envelope {
        Envelope {
            format: FORMAT_VERSION,
            codec: Codec::Zstd,
            dictionary: 0,
            rv: "1".into(),
            uid: String::new(),
            created: String::new(),
            stored_at_ms: 1,
            raw_len: 2,
        }
    }

    /// A record may claim any u32 length behind a good crc; the reader
    /// refuses one past what a record holds before allocating for it.
    #[test]
    fn a_payload_claiming_more_than_a_record_holds_is_refused_before_decompressing() {
        let mut ctx = ZstdContext::new(1);
        let frame = ctx.compress(b"{}", None).unwrap();
        let mut envelope = zstd_envelope_of_2_bytes();
        assert_eq!(
            open_payload(&mut ctx, &envelope, &frame, None).unwrap(),
            b"{}"
        );
        for claim in [MAX_RAW_LEN as u32 + 1, u32::MAX] {
            envelope.raw_len = claim;
            let rec = encode(&envelope, &frame);
            let (env, payload) = decode(&rec).unwrap();
            let err = open_payload(&mut ctx, &env, payload, None).unwrap_err();
            assert!(
                matches!(&err, RecordError::Payload(m) if m.to_string().contains(&format!("claims {claim} bytes"))),
                "{err}"
            );
        }
    }

    /// Found by the `disk_bytes` fuzz target: a state record whose crc
    /// holds but whose rv claims ~3.5 EB made bincode allocate that much
    /// (an abort, not an error) before noticing the bytes are not there.
    #[test]
    fn a_wild_length_behind_a_good_crc_is_an_error_not_an_allocation() {
        let state: &[u8] = &[
            2, 1, 253, 109, 0, 0, 4, 49, 50, 53, 48, 1, 253, 109, 0, 0, 4, 49, 50, 51, 52, 10, 53,
            102, 48, 115, 50, 49, 50, 51, 52, 10, 53, 102, 48, 115, 50, 186, 45,
        ];
        let err = unseal_value::<crate::store::state::State>(&seal(state.to_vec())).unwrap_err();
        assert!(matches!(err, RecordError::Envelope(_)), "{err}");
        assert_eq!(
            err.to_string(),
            format!("bad envelope: {}", decoder_error(&err)),
            "the message carries the decoder's"
        );
        // The same claim in an envelope, and in a string as long as bincode
        // can say (u64::MAX).
        for len in [0x3035_3231_0400_006d_u64, u64::MAX] {
            let mut env = vec![FORMAT_VERSION, 0, 0, 253];
            env.extend_from_slice(&len.to_le_bytes());
            let mut rec = (env.len() as u16).to_le_bytes().to_vec();
            rec.extend_from_slice(&env);
            let rec = seal(rec);
            for err in [decode(&rec).unwrap_err(), decode_rv(&rec).unwrap_err()] {
                assert!(matches!(err, RecordError::Envelope(_)), "{err}");
                decoder_error(&err);
            }
        }
    }

    /// The bincode error an error keeps as its source.
    fn decoder_error(err: &RecordError) -> &bincode::error::DecodeError {
        std::error::Error::source(err)
            .and_then(|s| s.downcast_ref::<bincode::error::DecodeError>())
            .unwrap_or_else(|| panic!("{err:?} keeps no bincode error as its source"))
    }

    #[test]
    fn a_payload_zstd_cannot_decompress_keeps_zstd_s_error_as_its_source() {
        let mut ctx = ZstdContext::new(1);
        let envelope = zstd_envelope_of_2_bytes();
        let err = open_payload(&mut ctx, &envelope, b"not a zstd frame", None).unwrap_err();
        assert!(matches!(err, RecordError::Payload(_)), "{err}");
        let zstd = std::error::Error::source(&err)
            .and_then(|s| s.downcast_ref::<std::io::Error>())
            .unwrap_or_else(|| panic!("{err:?} keeps no zstd error as its source"));
        assert_eq!(
            err.to_string(),
            format!("payload does not decompress: {zstd}")
        );
    }
}
