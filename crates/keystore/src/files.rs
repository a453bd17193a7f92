//! Data files readable by their owner only (DESIGN.md, invariant 8: data files are 0600).

use std::path::Path;

/// Makes `path` a file only its owner may read and write: creates it empty with mode 0600
/// when absent (before SQLite opens it, so that its journal and WAL files get the same
/// mode), and takes group and others' rights away from one that exists.
///
/// A file that exists is never opened here, only `chmod`ed: closing any descriptor of a
/// database file drops every POSIX lock this process holds on it, SQLite's included, and
/// another process could then take the write-ahead log away from a live connection.
pub fn private_file(path: &Path) -> std::io::Result<()> {
    if std::fs::symlink_metadata(path).is_err() {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        match options.open(path) {
            Ok(_) => {}
            // Made by another process since: restricted below like any other.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    restrict(path)
}

/// Takes group and others' rights away from `path` if it exists.
pub fn restrict(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        match std::fs::metadata(path) {
            Ok(meta) if meta.permissions().mode() & 0o077 != 0 => {
                let mode = meta.permissions().mode() & 0o700;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// [`private_file`] for an SQLite database, and [`restrict`] for its `-wal` and `-shm`
/// files, which an earlier version may have left readable.
pub fn private_database(path: &Path) -> std::io::Result<()> {
    private_file(path)?;
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut side = path.as_os_str().to_owned();
        side.push(suffix);
        restrict(Path::new(&side))?;
    }
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_database_is_created_0600_and_an_old_one_made_so() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("x.sqlite");
        super::private_database(&db).unwrap();
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&db), 0o600);
        let wal = dir.path().join("x.sqlite-wal");
        std::fs::write(&wal, b"").unwrap();
        std::fs::set_permissions(&wal, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
        super::private_database(&db).unwrap();
        assert_eq!((mode(&db), mode(&wal)), (0o600, 0o600));
    }
}
