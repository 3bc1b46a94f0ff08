//! Private files and directories: how RipTide creates everything it writes to disk
//! (the embedded store, checkpoints, session spill files, secrets, the bootstrap admin
//! token, and the temporary files behind each), so that only its own user can read it.
//!
//! These files hold what must not leak to other local users: tenants' session cookies
//! and headers, cached pages, API key hashes, wrapped data keys, the master key. So:
//!
//! - **Files** are created with mode `0600` by `open(2)` itself ([`create_new`],
//!   [`open_or_create`]), never created open and narrowed afterwards; the mode is then
//!   checked on the open handle and set exactly (`fchmod`) when the umask took more
//!   than the group and other bits, so the result is `0600` whatever the umask.
//!   [`open_or_create`] also narrows an existing file that group or others can reach
//!   (a store written by an older version).
//! - **Directories** are created with mode `0700` ([`create_dir`]), parents included.
//!   An existing directory that group or others can reach is narrowed to `0700` when
//!   this process's user owns it: RipTide is told to use it, so it is RipTide's, and its
//!   mode is what protects files written before this rule (older checkpoints). A
//!   directory of another user, or a shared one with the sticky bit (such as `/tmp`),
//!   is never changed; a warning says why it stays open.
//! - Replacing a file is atomic: [`write_temp`] writes a fresh temporary file beside the
//!   target (hidden, `0600`, fsynced); the caller renames or links it into place and
//!   fsyncs the directory ([`sync_dir`]). [`write_atomic`] does all three.
//!
//! Only Unix has modes; elsewhere the functions create files and directories as the
//! platform does.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use rand::RngCore;

/// Mode of every directory RipTide creates.
pub const DIR_MODE: u32 = 0o700;

/// Mode of every file RipTide writes.
pub const FILE_MODE: u32 = 0o600;

/// Creates `dir` and its missing parents with mode `0700`, and narrows an existing
/// `dir` that group or others can reach (see the module docs).
pub fn create_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(DIR_MODE);
    }
    builder.create(dir)?;
    #[cfg(unix)]
    narrow_dir(dir)?;
    Ok(())
}

/// Creates the new file `path` for writing, mode `0600`; fails if it exists.
pub fn create_new(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    private(&mut options);
    let file = options.open(path)?;
    exact_mode(&file)?;
    Ok(file)
}

/// Opens `path` for reading and writing without truncating it, creating it with mode
/// `0600` when missing; an existing file that group or others can reach is narrowed to
/// `0600`.
pub fn open_or_create(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    private(&mut options);
    let file = options.open(path)?;
    exact_mode(&file)?;
    Ok(file)
}

/// A fresh hidden name beside `path` for its temporary file:
/// `.<name>.<pid>.<random>.tmp`. Nothing else ever uses it.
pub fn temp_path(path: &Path) -> io::Result<PathBuf> {
    let dir = parent(path)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut nonce = [0u8; 8];
    rand::rng().fill_bytes(&mut nonce);
    Ok(dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        hex::encode(nonce)
    )))
}

/// Writes `bytes` to a new temporary file beside `path` (creating the directory, mode
/// `0700`), fsyncs it and returns its path. On failure nothing is left behind.
pub fn write_temp(path: &Path, bytes: &[u8]) -> io::Result<PathBuf> {
    create_dir(parent(path)?)?;
    let tmp = temp_path(path)?;
    let written = create_new(&tmp).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    match written {
        Ok(()) => Ok(tmp),
        Err(e) => {
            discard(&tmp);
            Err(e)
        }
    }
}

/// Replaces `path` with `bytes` atomically: [`write_temp`], rename over `path`, fsync
/// of the directory. A reader sees the old file or the new one, never a mix.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = write_temp(path, bytes)?;
    if let Err(e) = fs::rename(&tmp, path) {
        discard(&tmp);
        return Err(e);
    }
    sync_dir(parent(path)?)
}

/// Removes a temporary file that is no longer needed; a failure other than "already
/// gone" is logged.
pub fn discard(tmp: &Path) {
    if let Err(e) = fs::remove_file(tmp)
        && e.kind() != io::ErrorKind::NotFound
    {
        tracing::warn!(path = %tmp.display(), error = %e, "could not remove a temporary file");
    }
}

/// Fsyncs a directory, so the renames and links in it are durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    // Only Unix can open (and so fsync) a directory; elsewhere the rename is what we get.
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// The directory of `path` (`.` for a bare file name).
fn parent(path: &Path) -> io::Result<&Path> {
    match path.parent() {
        Some(p) if p.as_os_str().is_empty() => Ok(Path::new(".")),
        Some(p) => Ok(p),
        None => Err(io::Error::other(format!(
            "{} has no directory",
            path.display()
        ))),
    }
}

fn private(options: &mut OpenOptions) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(FILE_MODE);
    }
    #[cfg(not(unix))]
    let _ = options;
}

/// Sets the open file's mode to exactly `0600` unless it already is: the umask may have
/// taken owner bits too, and an existing file may be open to group or others.
fn exact_mode(file: &File) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = file.metadata()?.permissions().mode() & 0o7777;
        if mode != FILE_MODE {
            file.set_permissions(fs::Permissions::from_mode(FILE_MODE))?;
        }
    }
    #[cfg(not(unix))]
    let _ = file;
    Ok(())
}

/// Narrows `dir` to `0700` when group or others can reach it, if this user owns it and
/// it is not a shared sticky directory; otherwise warns.
#[cfg(unix)]
fn narrow_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = fs::metadata(dir)?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o777 == DIR_MODE {
        return Ok(());
    }
    let sticky = mode & 0o1000 != 0;
    let ours = meta.uid() == rustix::process::geteuid().as_raw();
    if !ours || sticky {
        if mode & 0o077 != 0 {
            tracing::warn!(
                path = %dir.display(),
                mode = format!("{mode:o}"),
                "directory RipTide writes to is open to group or others, and is left as it is \
                 ({}): give RipTide a directory of its own",
                if sticky { "a shared sticky directory" } else { "another user owns it" }
            );
        }
        return Ok(());
    }
    fs::set_permissions(dir, fs::Permissions::from_mode(DIR_MODE))?;
    if mode & 0o077 != 0 {
        tracing::warn!(
            path = %dir.display(),
            previous_mode = format!("{mode:o}"),
            "directory was open to group or others; narrowed to mode 700"
        );
    }
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).expect("stat").permissions().mode() & 0o7777
    }

    #[test]
    fn directories_are_created_and_narrowed_to_0700() {
        let root = tempfile::tempdir().expect("temp dir");
        let nested = root.path().join("a/b");
        create_dir(&nested).expect("created");
        assert_eq!(mode(&nested), 0o700);
        assert_eq!(mode(&root.path().join("a")), 0o700, "parents too");

        fs::set_permissions(&nested, fs::Permissions::from_mode(0o755)).expect("chmod");
        create_dir(&nested).expect("existing");
        assert_eq!(
            mode(&nested),
            0o700,
            "an open directory of ours is narrowed"
        );
    }

    #[test]
    fn a_sticky_shared_directory_is_left_alone() {
        let root = tempfile::tempdir().expect("temp dir");
        let shared = root.path().join("shared");
        fs::create_dir(&shared).expect("mkdir");
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o1777)).expect("chmod");
        create_dir(&shared).expect("existing");
        assert_eq!(mode(&shared), 0o1777);
    }

    #[test]
    fn files_are_0600_and_existing_ones_are_narrowed() {
        let root = tempfile::tempdir().expect("temp dir");
        let path = root.path().join("f");
        drop(create_new(&path).expect("created"));
        assert_eq!(mode(&path), 0o600);
        assert!(create_new(&path).is_err(), "never replaces a file");

        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
        drop(open_or_create(&path).expect("opened"));
        assert_eq!(mode(&path), 0o600);
        let fresh = root.path().join("g");
        drop(open_or_create(&fresh).expect("created"));
        assert_eq!(mode(&fresh), 0o600);
    }

    #[test]
    fn write_atomic_replaces_the_whole_file_and_leaves_no_temporary() {
        let root = tempfile::tempdir().expect("temp dir");
        let path = root.path().join("new-dir/token");
        write_atomic(&path, b"first").expect("written");
        write_atomic(&path, b"second").expect("replaced");
        assert_eq!(fs::read(&path).expect("read"), b"second");
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().expect("dir")), 0o700);
        let names = fs::read_dir(path.parent().expect("dir"))
            .expect("list")
            .count();
        assert_eq!(names, 1);
    }
}
