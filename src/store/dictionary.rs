//! Per-collection zstd dictionaries and the compression contexts using them.
//!
//! Kubernetes objects of one kind share most of their field names and many
//! values, so a dictionary trained on the collection's own objects makes
//! small objects compress several times better than plain zstd. Dictionaries
//! are numbered (1, 2, ...), stored in the collection's tree in the same
//! atomic batch as the first records that use them, and never deleted, since
//! each record names the dictionary it needs.

use std::io;
use std::ops::{Deref, DerefMut};
use std::sync::{Mutex, PoisonError};

use zstd::zstd_safe::{self, CCtx, CDict, DCtx, DDict};

/// zstd level for objects: fast to write, and the dictionary does most of the work.
pub const DEFAULT_LEVEL: i32 = 3;

/// A trained zstd dictionary, ready for compression and decompression.
pub struct Dictionary {
    id: u32,
    bytes: Vec<u8>,
    cdict: CDict<'static>,
    ddict: DDict<'static>,
}

impl std::fmt::Debug for Dictionary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dictionary")
            .field("id", &self.id)
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

impl Dictionary {
    /// Prepares dictionary `bytes` (as trained or as stored) under `id`.
    pub fn new(id: u32, bytes: Vec<u8>, level: i32) -> io::Result<Dictionary> {
        let cdict = CDict::try_create(&bytes, level)
            .ok_or_else(|| io::Error::other("zstd refused the dictionary for compression"))?;
        let ddict = DDict::try_create(&bytes)
            .ok_or_else(|| io::Error::other("zstd refused the dictionary for decompression"))?;
        Ok(Dictionary {
            id,
            bytes,
            cdict,
            ddict,
        })
    }

    /// Trains a dictionary of at most `max_size` bytes on `samples`.
    pub fn train(
        id: u32,
        samples: &[Vec<u8>],
        max_size: usize,
        level: i32,
    ) -> io::Result<Dictionary> {
        let bytes = zstd::dict::from_samples(samples, max_size)?;
        Dictionary::new(id, bytes, level)
    }

    /// The id records use to name this dictionary.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The raw dictionary, as stored.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// Reusable zstd contexts: one per reading thread, and for writers a
/// [`ContextPool`]'s; never one per record.
/// Each context is allocated on first use, so a reader never pays for a
/// compression context.
pub struct ZstdContext {
    level: i32,
    cctx: Option<CCtx<'static>>,
    dctx: Option<DCtx<'static>>,
}

impl ZstdContext {
    /// Contexts compressing at `level`.
    pub fn new(level: i32) -> ZstdContext {
        ZstdContext {
            level,
            cctx: None,
            dctx: None,
        }
    }

    /// Compresses `raw`, with `dictionary` if given.
    pub fn compress(&mut self, raw: &[u8], dictionary: Option<&Dictionary>) -> io::Result<Vec<u8>> {
        let cctx =
            match &mut self.cctx {
                Some(c) => c,
                None => self.cctx.insert(CCtx::try_create().ok_or_else(|| {
                    io::Error::other("zstd: cannot allocate a compression context")
                })?),
            };
        let mut out = Vec::with_capacity(zstd_safe::compress_bound(raw.len()));
        let res = match dictionary {
            Some(d) => cctx.compress_using_cdict(&mut out, raw, &d.cdict),
            None => cctx.compress(&mut out, raw, self.level),
        };
        res.map_err(zstd_error)?;
        Ok(out)
    }

    /// Decompresses `data` that must expand to exactly `raw_len` bytes.
    pub fn decompress(
        &mut self,
        data: &[u8],
        raw_len: usize,
        dictionary: Option<&Dictionary>,
    ) -> io::Result<Vec<u8>> {
        let dctx = match &mut self.dctx {
            Some(d) => d,
            None => self.dctx.insert(DCtx::try_create().ok_or_else(|| {
                io::Error::other("zstd: cannot allocate a decompression context")
            })?),
        };
        let mut out = Vec::with_capacity(raw_len);
        let res = match dictionary {
            Some(d) => dctx.decompress_using_ddict(&mut out, data, &d.ddict),
            None => dctx.decompress(&mut out, data),
        };
        res.map_err(zstd_error)?;
        Ok(out)
    }
}

/// Writers' compression contexts, kept between batches: setting a context
/// up again for every batch was half of a single event's compression. It
/// keeps as many as were ever in use at once (one per collection being
/// written at the same time), not one per collection: a context holds its
/// hash tables, sized for the dictionary's parameters.
pub(crate) struct ContextPool {
    level: i32,
    free: Mutex<Vec<ZstdContext>>,
}

impl ContextPool {
    /// An empty pool of contexts compressing at `level`.
    pub fn new(level: i32) -> ContextPool {
        ContextPool {
            level,
            free: Mutex::new(Vec::new()),
        }
    }

    /// A context of the pool's, or a new one; back in the pool when dropped.
    pub fn take(&self) -> PooledContext<'_> {
        let ctx = self.free_list().pop();
        PooledContext {
            ctx: ctx.unwrap_or_else(|| ZstdContext::new(self.level)),
            pool: self,
        }
    }

    fn free_list(&self) -> std::sync::MutexGuard<'_, Vec<ZstdContext>> {
        // A context is whole whatever panicked: each use starts a new frame.
        self.free.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A context taken from a [`ContextPool`], returned to it when dropped.
pub(crate) struct PooledContext<'a> {
    ctx: ZstdContext,
    pool: &'a ContextPool,
}

impl Deref for PooledContext<'_> {
    type Target = ZstdContext;
    fn deref(&self) -> &ZstdContext {
        &self.ctx
    }
}

impl DerefMut for PooledContext<'_> {
    fn deref_mut(&mut self) -> &mut ZstdContext {
        &mut self.ctx
    }
}

impl Drop for PooledContext<'_> {
    fn drop(&mut self) {
        let ctx = std::mem::replace(&mut self.ctx, ZstdContext::new(self.pool.level));
        self.pool.free_list().push(ctx);
    }
}

fn zstd_error(code: usize) -> io::Error {
    io::Error::other(zstd_safe::get_error_name(code))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<Vec<u8>> {
        (0..300)
            .map(|i| {
                format!(
                    r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"web-{i}","namespace":"ns-{}","labels":{{"app":"web","tier":"frontend"}}}},"spec":{{"containers":[{{"name":"app","image":"registry.example/web:1.{}"}}]}}}}"#,
                    i % 7,
                    i % 13
                )
                .into_bytes()
            })
            .collect()
    }

    #[test]
    fn dictionary_round_trips_and_beats_plain_zstd_on_small_objects() {
        let s = samples();
        let dict = Dictionary::train(1, &s, 16 * 1024, DEFAULT_LEVEL).unwrap();
        let mut ctx = ZstdContext::new(DEFAULT_LEVEL);
        let with = ctx.compress(&s[5], Some(&dict)).unwrap();
        let without = ctx.compress(&s[5], None).unwrap();
        assert!(
            with.len() < without.len(),
            "{} vs {}",
            with.len(),
            without.len()
        );
        assert_eq!(
            ctx.decompress(&with, s[5].len(), Some(&dict)).unwrap(),
            s[5]
        );
        assert_eq!(ctx.decompress(&without, s[5].len(), None).unwrap(), s[5]);
        // Wrong dictionary (none) must fail rather than produce garbage.
        assert!(ctx.decompress(&with, s[5].len(), None).is_err());
    }

    #[test]
    fn a_pool_keeps_the_contexts_in_use_at_once_and_a_reused_one_compresses_anew() {
        let s = samples();
        let dict = Dictionary::train(1, &s, 16 * 1024, DEFAULT_LEVEL).unwrap();
        let pool = ContextPool::new(DEFAULT_LEVEL);
        {
            let (mut a, mut b) = (pool.take(), pool.take());
            a.compress(&s[0], Some(&dict)).unwrap();
            b.compress(&s[1], None).unwrap();
        }
        assert_eq!(pool.free_list().len(), 2);
        let mut reused = pool.take();
        assert_eq!(pool.free_list().len(), 1);
        // Whatever it compressed before, with or without a dictionary.
        let mut reader = ZstdContext::new(0);
        let plain = reused.compress(&s[2], None).unwrap();
        assert_eq!(reader.decompress(&plain, s[2].len(), None).unwrap(), s[2]);
        let with = reused.compress(&s[3], Some(&dict)).unwrap();
        assert_eq!(
            reader.decompress(&with, s[3].len(), Some(&dict)).unwrap(),
            s[3]
        );
        drop(reused);
        assert_eq!(pool.free_list().len(), 2);
    }

    #[test]
    fn decompressing_into_too_small_a_buffer_fails() {
        let mut ctx = ZstdContext::new(DEFAULT_LEVEL);
        let data = ctx.compress(&[7u8; 1000], None).unwrap();
        assert!(ctx.decompress(&data, 999, None).is_err());
    }
}
