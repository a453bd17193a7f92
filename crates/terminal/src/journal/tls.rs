//! The terminal's TLS settings in its journal: the paths of its PEM files (never their
//! contents) and the name the host's certificate must carry, in nullable columns of
//! `config`. A journal made before them gets the columns when it is opened; without a CA
//! the terminal talks plain TCP, as before.

use std::path::PathBuf;

use rusqlite::{Connection, OptionalExtension, params};

use poskit_keystore::tls::ClientFiles;

use super::{Journal, Result};

const COLUMNS: [&str; 4] = ["tls_ca", "tls_cert", "tls_key", "tls_name"];

/// Adds the TLS columns a journal lacks, all in one transaction.
pub(super) fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let mut missing = Vec::new();
    for column in COLUMNS {
        let present: i64 = conn.query_row(
            "SELECT count(*) FROM pragma_table_info('config') WHERE name = ?1",
            [column],
            |r| r.get(0),
        )?;
        if present == 0 {
            missing.push(format!("ALTER TABLE config ADD COLUMN {column} TEXT;"));
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    conn.execute_batch(&format!("BEGIN IMMEDIATE; {} COMMIT;", missing.concat()))
}

fn text(path: &Option<PathBuf>) -> Option<String> {
    path.as_ref().map(|p| p.to_string_lossy().into_owned())
}

impl Journal {
    /// Sets (or, with `None`, clears) how the terminal reaches its host over TLS.
    pub fn set_tls(&self, tls: Option<&ClientFiles>) -> Result<()> {
        let (ca, cert, key, name) = match tls {
            Some(t) => (
                Some(t.ca.to_string_lossy().into_owned()),
                text(&t.cert),
                text(&t.key),
                t.name.clone(),
            ),
            None => (None, None, None, None),
        };
        self.conn.execute(
            "UPDATE config SET tls_ca = ?1, tls_cert = ?2, tls_key = ?3, tls_name = ?4 WHERE id = 1",
            params![ca, cert, key, name],
        )?;
        Ok(())
    }

    /// How the terminal reaches its host over TLS; `None`: plain TCP.
    pub fn tls(&self) -> Result<Option<ClientFiles>> {
        let row = self
            .conn
            .query_row(
                "SELECT tls_ca, tls_cert, tls_key, tls_name FROM config WHERE id = 1",
                [],
                |r| {
                    Ok((
                        r.get::<_, Option<String>>(0)?,
                        r.get::<_, Option<String>>(1)?,
                        r.get::<_, Option<String>>(2)?,
                        r.get::<_, Option<String>>(3)?,
                    ))
                },
            )
            .optional()?;
        Ok(row.and_then(|(ca, cert, key, name)| {
            Some(ClientFiles {
                ca: PathBuf::from(ca?),
                cert: cert.map(PathBuf::from),
                key: key.map(PathBuf::from),
                name,
            })
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `config` table as journals had it before the TLS columns.
    const OLD_CONFIG: &str = "CREATE TABLE config (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        tid TEXT NOT NULL, mid TEXT NOT NULL, tmk BLOB NOT NULL, host TEXT NOT NULL,
        response_timeout_ms INTEGER NOT NULL, reversal_attempts_max INTEGER NOT NULL,
        fail_after_approval INTEGER NOT NULL DEFAULT 0
    );
    INSERT INTO config VALUES (1, '10100001', '898310048160001', x'00', '127.0.0.1:5800', 1, 1, 0);";

    #[test]
    fn an_old_journal_gets_the_columns_and_talks_plain_tcp() {
        let temp = tempfile::tempdir().unwrap();
        let conn = Connection::open(temp.path().join(super::super::JOURNAL_FILE)).unwrap();
        conn.execute_batch(OLD_CONFIG).unwrap();
        migrate(&conn).unwrap();
        migrate(&conn).unwrap();
        let (kek, _) = poskit_keystore::LocalKek::generate("test").unwrap();
        let sealed = crate::sealed::Sealed::load(&conn, std::sync::Arc::new(kek)).unwrap();
        let journal = Journal {
            conn,
            sealed,
            created_kek: None,
            _lock: None,
        };
        assert_eq!(journal.tls().unwrap(), None);
        let files = ClientFiles {
            ca: "/etc/poskit/ca.pem".into(),
            cert: Some("/etc/poskit/pos.crt".into()),
            key: Some("/etc/poskit/pos.key".into()),
            name: Some("host.example".into()),
        };
        journal.set_tls(Some(&files)).unwrap();
        assert_eq!(journal.tls().unwrap(), Some(files));
        journal.set_tls(None).unwrap();
        assert_eq!(journal.tls().unwrap(), None);
    }
}
