//! The console's users, sessions, API tokens and audit trail, in `console.db` of the host's
//! data directory. Passwords are hashed with argon2 (PHC strings); session ids and tokens
//! are 32 random bytes, kept only as their SHA-256. The audit table is append-only: triggers
//! refuse every UPDATE and DELETE.

use std::path::Path;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// The file, in the host's data directory.
pub const CONSOLE_FILE: &str = "console.db";
/// A console session lasts this long after its login.
pub const SESSION_MS: i64 = 8 * 3_600_000;
/// Passwords shorter than this are refused.
pub const PASSWORD_CHARS_MIN: usize = 10;
/// Passwords longer than this are refused (argon2 hashes anything; a bound keeps it cheap).
pub const PASSWORD_BYTES_MAX: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("{0}")]
    Invalid(String),
    #[error("console.db: {0}")]
    Store(#[from] rusqlite::Error),
    /// The host's ledger could not say whether a merchant exists.
    #[error("host.sqlite: {0}")]
    Ledger(#[from] poskit_host::store::StoreError),
}

/// What a user may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Its own merchant's terminals, transactions and disputes, nothing else.
    Merchant,
    /// Reads everything, acknowledges alerts, works disputes.
    Operator,
    /// Users, the fault plan and master data besides.
    Admin,
}

impl Role {
    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "merchant" => Some(Role::Merchant),
            "operator" => Some(Role::Operator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Merchant => "merchant",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

/// A user, as listed.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct User {
    pub name: String,
    pub role: Role,
    /// The merchant a merchant user belongs to.
    pub merchant: Option<String>,
    pub created_ms: i64,
}

/// Opens (creating when missing, 0600) `console.db` in `data`.
pub fn open(data: &Path) -> Result<Connection, UserError> {
    let path = data.join(CONSOLE_FILE);
    let conn = Connection::open(&path)?;
    restrict(&path);
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         CREATE TABLE IF NOT EXISTS users (
             name TEXT PRIMARY KEY, role TEXT NOT NULL, merchant TEXT,
             password TEXT NOT NULL, created_ms INTEGER NOT NULL
         ) STRICT;
         CREATE TABLE IF NOT EXISTS credentials (
             digest TEXT PRIMARY KEY, kind TEXT NOT NULL, user TEXT NOT NULL,
             csrf TEXT, created_ms INTEGER NOT NULL, expires_ms INTEGER
         ) STRICT;
         CREATE TABLE IF NOT EXISTS audit (
             id INTEGER PRIMARY KEY AUTOINCREMENT, at_ms INTEGER NOT NULL, user TEXT NOT NULL,
             action TEXT NOT NULL, target TEXT NOT NULL, from_addr TEXT NOT NULL,
             detail TEXT NOT NULL
         ) STRICT;
         CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
             BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
         CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
             BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;",
    )?;
    Ok(conn)
}

#[cfg(unix)]
fn restrict(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
}

#[cfg(not(unix))]
fn restrict(_: &Path) {}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Adds a user; a merchant user needs its merchant, the others have none.
pub fn add(
    conn: &Connection,
    name: &str,
    role: Role,
    merchant: Option<&str>,
    password: &str,
) -> Result<(), UserError> {
    let name_ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b));
    if !name_ok {
        return Err(UserError::Invalid(
            "name: 1 to 64 letters, digits, - _ . @".into(),
        ));
    }
    match (role, merchant) {
        (Role::Merchant, None) => {
            return Err(UserError::Invalid(
                "merchant: a merchant user needs its merchant's MID (--merchant)".into(),
            ));
        }
        (Role::Operator | Role::Admin, Some(_)) => {
            return Err(UserError::Invalid(
                "merchant: only merchant users belong to a merchant (--merchant)".into(),
            ));
        }
        _ => {}
    }
    if password.chars().count() < PASSWORD_CHARS_MIN || password.len() > PASSWORD_BYTES_MAX {
        return Err(UserError::Invalid(format!(
            "password: {PASSWORD_CHARS_MIN} characters at least, {PASSWORD_BYTES_MAX} bytes at most"
        )));
    }
    let hash = hash_password(password)?;
    let added = conn.execute(
        "INSERT OR IGNORE INTO users (name, role, merchant, password, created_ms)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![name, role.as_str(), merchant, hash, now_ms()],
    )?;
    if added == 0 {
        return Err(UserError::Invalid(format!("user {name} exists already")));
    }
    Ok(())
}

fn hash_password(password: &str) -> Result<String, UserError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| UserError::Invalid(format!("randomness: {e}")))?;
    let salt =
        SaltString::encode_b64(&salt).map_err(|e| UserError::Invalid(format!("salt: {e}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| UserError::Invalid(format!("hash: {e}")))
}

/// Refuses a merchant the host (its ledger, `ledger`) does not have: a merchant user of
/// a merchant that does not exist would see nothing.
pub fn check_merchant(ledger: &Connection, mid: &str) -> Result<(), UserError> {
    match poskit_host::store::lookup::merchant_status(ledger, mid)? {
        Some(_) => Ok(()),
        None => Err(UserError::Invalid(format!(
            "no merchant {mid} at this host"
        ))),
    }
}

/// Whether there is a user of this name.
pub fn exists(conn: &Connection, name: &str) -> Result<bool, UserError> {
    Ok(conn
        .query_row("SELECT 1 FROM users WHERE name = ?1", [name], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Every user, by name.
pub fn list(conn: &Connection) -> Result<Vec<User>, UserError> {
    let mut stmt =
        conn.prepare("SELECT name, role, merchant, created_ms FROM users ORDER BY name")?;
    let rows = stmt.query_map([], user_of)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn user_of(r: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    let role: String = r.get(1)?;
    Ok(User {
        name: r.get(0)?,
        role: Role::parse(&role).unwrap_or(Role::Merchant),
        merchant: r.get(2)?,
        created_ms: r.get(3)?,
    })
}

/// Removes a user and every session and token of theirs; `false` when there was none.
pub fn remove(conn: &mut Connection, name: &str) -> Result<bool, UserError> {
    let tx = conn.transaction()?;
    tx.execute("DELETE FROM credentials WHERE user = ?1", [name])?;
    let n = tx.execute("DELETE FROM users WHERE name = ?1", [name])?;
    tx.commit()?;
    Ok(n == 1)
}

/// The user, when `password` is theirs.
pub fn verify(conn: &Connection, name: &str, password: &str) -> Result<Option<User>, UserError> {
    let found: Option<(String, User)> = conn
        .query_row(
            "SELECT password, name, role, merchant, created_ms FROM users WHERE name = ?1",
            [name],
            |r| {
                let hash: String = r.get(0)?;
                let role: String = r.get(2)?;
                Ok((
                    hash,
                    User {
                        name: r.get(1)?,
                        role: Role::parse(&role).unwrap_or(Role::Merchant),
                        merchant: r.get(3)?,
                        created_ms: r.get(4)?,
                    },
                ))
            },
        )
        .optional()?;
    let Some((hash, user)) = found else {
        // The same work for an unknown name: timing does not tell which names exist.
        let _ = hash_password(password);
        return Ok(None);
    };
    let parsed = PasswordHash::new(&hash).map_err(|e| UserError::Invalid(e.to_string()))?;
    let ok = Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok();
    Ok(ok.then_some(user))
}

fn random_secret() -> Result<String, UserError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| UserError::Invalid(format!("randomness: {e}")))?;
    Ok(hex::encode(bytes))
}

/// A password for a made-up user (the demo's): 16 random hex digits.
pub fn random_password() -> Result<String, UserError> {
    Ok(random_secret()?[..16].to_owned())
}

fn digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A new API token for `name` (shown once; only its digest is kept).
pub fn new_token(conn: &Connection, name: &str) -> Result<String, UserError> {
    if !list(conn)?.iter().any(|u| u.name == name) {
        return Err(UserError::Invalid(format!("no user {name}")));
    }
    let token = format!("pk_{}", random_secret()?);
    conn.execute(
        "INSERT INTO credentials (digest, kind, user, created_ms) VALUES (?1, 'token', ?2, ?3)",
        params![digest(&token), name, now_ms()],
    )?;
    Ok(token)
}

/// A new console session for `name`: (session id, CSRF token).
pub fn new_session(conn: &Connection, name: &str) -> Result<(String, String), UserError> {
    let (id, csrf) = (random_secret()?, random_secret()?);
    let now = now_ms();
    conn.execute(
        "INSERT INTO credentials (digest, kind, user, csrf, created_ms, expires_ms)
         VALUES (?1, 'session', ?2, ?3, ?4, ?5)",
        params![digest(&id), name, csrf, now, now + SESSION_MS],
    )?;
    Ok((id, csrf))
}

/// Ends a session.
pub fn end_session(conn: &Connection, id: &str) -> Result<(), UserError> {
    conn.execute(
        "DELETE FROM credentials WHERE digest = ?1 AND kind = 'session'",
        [digest(id)],
    )?;
    Ok(())
}

/// Whose credential this is (a session not expired, or a token), and the session's CSRF
/// token.
pub fn resolve(
    conn: &Connection,
    secret: &str,
    kind: &str,
) -> Result<Option<(User, Option<String>)>, UserError> {
    Ok(conn
        .query_row(
            "SELECT u.name, u.role, u.merchant, u.created_ms, c.csrf FROM credentials c
             JOIN users u ON u.name = c.user
             WHERE c.digest = ?1 AND c.kind = ?2 AND (c.expires_ms IS NULL OR c.expires_ms > ?3)",
            params![digest(secret), kind, now_ms()],
            |r| Ok((user_of(r)?, r.get(4)?)),
        )
        .optional()?)
}

/// One line of the audit trail.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Audited {
    pub id: i64,
    pub at_ms: i64,
    pub user: String,
    pub action: String,
    pub target: String,
    pub from_addr: String,
    pub detail: String,
}

/// Appends to the audit trail: who did what to what, from where.
pub fn audit(
    conn: &Connection,
    user: &str,
    action: &str,
    target: &str,
    from_addr: &str,
    detail: &str,
) -> Result<(), UserError> {
    conn.execute(
        "INSERT INTO audit (at_ms, user, action, target, from_addr, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![now_ms(), user, action, target, from_addr, detail],
    )?;
    Ok(())
}

/// The newest `limit` lines of the audit trail.
pub fn audit_trail(conn: &Connection, limit: usize) -> Result<Vec<Audited>, UserError> {
    audit_before(conn, None, limit)
}

/// The newest `limit` lines of the audit trail older than line `before` (all when
/// `None`), newest first.
pub fn audit_before(
    conn: &Connection,
    before: Option<i64>,
    limit: usize,
) -> Result<Vec<Audited>, UserError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, at_ms, user, action, target, from_addr, detail FROM audit
         WHERE id < ?2 ORDER BY id DESC LIMIT ?1",
    )?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = stmt.query_map(params![limit, before.unwrap_or(i64::MAX)], |r| {
        Ok(Audited {
            id: r.get(0)?,
            at_ms: r.get(1)?,
            user: r.get(2)?,
            action: r.get(3)?,
            target: r.get(4)?,
            from_addr: r.get(5)?,
            detail: r.get(6)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_log_in_by_password_tokens_resolve_and_the_audit_trail_cannot_change() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = open(dir.path()).unwrap();
        add(
            &conn,
            "li",
            Role::Merchant,
            Some("898310048160001"),
            "correct horse 1",
        )
        .unwrap();
        assert!(add(&conn, "li", Role::Operator, None, "another secret").is_err());
        assert!(add(&conn, "wu", Role::Merchant, None, "correct horse 1").is_err());
        assert!(add(&conn, "wu", Role::Operator, None, "short").is_err());
        let li = verify(&conn, "li", "correct horse 1").unwrap().unwrap();
        assert_eq!(li.merchant.as_deref(), Some("898310048160001"));
        assert!(verify(&conn, "li", "wrong horse 1").unwrap().is_none());
        assert!(
            verify(&conn, "nobody", "correct horse 1")
                .unwrap()
                .is_none()
        );
        let token = new_token(&conn, "li").unwrap();
        assert_eq!(
            resolve(&conn, &token, "token").unwrap().unwrap().0.name,
            "li"
        );
        assert!(resolve(&conn, &token, "session").unwrap().is_none());
        let (session, csrf) = new_session(&conn, "li").unwrap();
        let (user, kept_csrf) = resolve(&conn, &session, "session").unwrap().unwrap();
        assert_eq!((user.role, kept_csrf), (Role::Merchant, Some(csrf)));
        audit(&conn, "li", "ack", "alert 1", "127.0.0.1", "").unwrap();
        assert!(conn.execute("UPDATE audit SET user = 'x'", []).is_err());
        assert!(conn.execute("DELETE FROM audit", []).is_err());
        assert_eq!(audit_trail(&conn, 10).unwrap().len(), 1);
        assert!(remove(&mut conn, "li").unwrap());
        assert!(resolve(&conn, &token, "token").unwrap().is_none());
    }
}
