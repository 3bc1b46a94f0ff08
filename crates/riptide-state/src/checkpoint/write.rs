//! Writing a checkpoint file (see [`super::format`] for the layout): from a bounded
//! stream of parts, on a blocking thread, into a temp file that is fsynced and renamed
//! into place only when complete, and removed otherwise.

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use tokio::sync::mpsc;

use super::format::{Footer, HEADER_LEN, Header, IO_BUFFER};

/// zstd level of the body: fast, and already a large saving on JSON and base64.
const ZSTD_LEVEL: i32 = 3;

/// What the writer thread receives.
#[derive(Debug)]
pub enum WriteMsg {
    /// Complete body lines.
    Data(Vec<u8>),
    /// The body is complete: write the footer and the checksum, and persist the file.
    Finish(Footer),
}

/// Why writing failed.
#[derive(Debug)]
pub enum WriteError {
    /// The producer stopped without [`WriteMsg::Finish`]; it reports its own error.
    Aborted,
    /// A file operation failed.
    Io(&'static str, io::Error),
    /// The gate before the rename refused (see [`write_file_gated`]).
    Refused(riptide_store::fence::FenceError),
}

/// A temp file removed on drop unless persisted.
struct TempFile {
    path: PathBuf,
    persisted: bool,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.persisted {
            riptide_store::private_fs::discard(&self.path);
        }
    }
}

/// A writer that hashes and counts what passes through it.
struct Hashing<W> {
    inner: W,
    hasher: blake3::Hasher,
    written: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Name of the temp file of checkpoint `id` (hidden, never listed as a checkpoint).
pub fn temp_name(id: &str) -> String {
    format!(".{id}.ckpt.tmp")
}

/// [`write_file_gated`] without a gate.
#[cfg(test)]
pub fn write_file(
    dir: &Path,
    id: &str,
    header: Header,
    rx: mpsc::Receiver<WriteMsg>,
) -> Result<(PathBuf, u64, Footer), WriteError> {
    write_file_gated(dir, id, header, rx, || Ok(()))
}

/// Writes checkpoint `id` into `dir` from the parts received on `rx` (run on a blocking
/// thread): the directory (created or narrowed to mode `0700`), temp file (mode `0600`,
/// see [`riptide_store::private_fs`]), header, compressed body, footer, checksum, fsync, rename to
/// `<id>.ckpt`, fsync of the directory. Returns the final path, its size and its footer.
/// On any failure, or when the sender goes away without [`WriteMsg::Finish`], the temp
/// file is removed.
///
/// `gate` is called once the temp file is complete and fsynced, right before the
/// rename: when it refuses, the temp file is removed and nothing is renamed. It runs on
/// this (blocking) thread, so it decides even when whoever awaits the writer has gone
/// away meanwhile.
pub fn write_file_gated(
    dir: &Path,
    id: &str,
    header: Header,
    mut rx: mpsc::Receiver<WriteMsg>,
    gate: impl FnOnce() -> Result<(), riptide_store::fence::FenceError>,
) -> Result<(PathBuf, u64, Footer), WriteError> {
    let final_path = dir.join(format!("{id}.ckpt"));
    let mut temp = TempFile {
        path: dir.join(temp_name(id)),
        persisted: false,
    };
    riptide_store::private_fs::create_dir(dir)
        .map_err(|e| WriteError::Io("create the checkpoint directory", e))?;
    // Mode 0600 from the start: a checkpoint holds sessions (cookies) and key records.
    let file = riptide_store::private_fs::create_new(&temp.path)
        .map_err(|e| WriteError::Io("create the temp file", e))?;
    let mut out = Hashing {
        inner: BufWriter::with_capacity(IO_BUFFER, file),
        hasher: blake3::Hasher::new(),
        written: 0,
    };
    out.write_all(&header.encode())
        .map_err(|e| WriteError::Io("write the header", e))?;
    let mut encoder = zstd::stream::write::Encoder::new(&mut out, ZSTD_LEVEL)
        .map_err(|e| WriteError::Io("start compression", e))?;
    let mut footer = loop {
        match rx.blocking_recv() {
            Some(WriteMsg::Data(bytes)) => encoder
                .write_all(&bytes)
                .map_err(|e| WriteError::Io("write the body", e))?,
            Some(WriteMsg::Finish(footer)) => break footer,
            None => return Err(WriteError::Aborted),
        }
    };
    encoder
        .finish()
        .map_err(|e| WriteError::Io("finish compression", e))?;
    footer.body_len = out.written - HEADER_LEN;
    out.write_all(&footer.encode())
        .map_err(|e| WriteError::Io("write the footer", e))?;
    let checksum = out.hasher.finalize();
    let mut inner = out.inner;
    inner
        .write_all(checksum.as_bytes())
        .map_err(|e| WriteError::Io("write the checksum", e))?;
    let file = inner
        .into_inner()
        .map_err(|e| WriteError::Io("flush the file", e.into_error()))?;
    file.sync_all()
        .map_err(|e| WriteError::Io("fsync the file", e))?;
    let size = file
        .metadata()
        .map_err(|e| WriteError::Io("stat the file", e))?
        .len();
    drop(file);
    gate().map_err(WriteError::Refused)?;
    std::fs::rename(&temp.path, &final_path)
        .map_err(|e| WriteError::Io("rename the temp file", e))?;
    temp.persisted = true;
    riptide_store::private_fs::sync_dir(dir)
        .map_err(|e| WriteError::Io("fsync the directory", e))?;
    Ok((final_path, size, footer))
}
