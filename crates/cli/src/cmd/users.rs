//! `poskit users`: the console's users (`console.db` in the host's data directory) — add
//! one (its password from standard input, so that scripts can), list, remove, and print a
//! bearer token for the API. Every change is in the audit trail.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use poskit_web::users::{self, Role};

use crate::fail::{EXIT_NOT_FOUND, usage};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The host's data directory.
    #[arg(long, value_name = "DIR", global = true)]
    data: Option<PathBuf>,
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, clap::Subcommand)]
enum What {
    /// Add a user.
    Add {
        /// The user's name (1 to 64 letters, digits, - _ . @).
        name: String,
        /// merchant (its own merchant's data only), operator (reads everything, acks
        /// alerts, works disputes) or admin (users, fault plan, master data besides).
        #[arg(long, value_name = "merchant|operator|admin")]
        role: String,
        /// The merchant of a merchant user.
        #[arg(long, value_name = "MID")]
        merchant: Option<String>,
        /// Read the password from standard input (its first line); required.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Every user, with role and merchant.
    List {
        /// Print JSON: [{name, role, merchant, created_ms}].
        #[arg(long)]
        json: bool,
    },
    /// Remove a user, with every session and token of theirs.
    Remove {
        /// The user's name.
        name: String,
    },
    /// Print a new bearer token for the API (shown once; `Authorization: Bearer TOKEN`).
    Token {
        /// The user's name.
        name: String,
    },
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let Some(data) = args.data else {
        return Err(usage("--data DIR is required"));
    };
    let dir = crate::cmd::host::existing_data_dir(&data)?;
    let mut conn = users::open(&dir.path)?;
    let by = std::env::var("USER").unwrap_or_else(|_| "cli".into());
    match args.what {
        What::Add {
            name,
            role,
            merchant,
            password_stdin,
        } => {
            let role = Role::parse(&role)
                .ok_or_else(|| usage(format!("--role {role}: merchant, operator or admin")))?;
            if !password_stdin {
                return Err(usage(
                    "--password-stdin is required (the password is read from standard input)",
                ));
            }
            let password = read_password()?;
            if let Some(mid) = &merchant {
                users::check_merchant(&dir.open_store()?, mid)
                    .map_err(|e| usage(format!("--merchant {mid}: {e}")))?;
            }
            users::add(&conn, &name, role, merchant.as_deref(), &password)
                .map_err(|e| usage(e.to_string()))?;
            users::audit(&conn, &by, "user-add", &name, "cli", role.as_str())?;
            outln!("user {name} added ({})", role.as_str())?;
        }
        What::List { json } => {
            let all = users::list(&conn)?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&all)?)?;
            }
            for u in all.iter().filter(|_| !json) {
                outln!(
                    "{:<24} {:<9} {}",
                    u.name,
                    u.role.as_str(),
                    u.merchant.as_deref().unwrap_or("")
                )?;
            }
        }
        What::Remove { name } => {
            if !users::remove(&mut conn, &name)? {
                outln!("no user {name}")?;
                return Ok(ExitCode::from(EXIT_NOT_FOUND));
            }
            users::audit(&conn, &by, "user-remove", &name, "cli", "")?;
            outln!("user {name} removed")?;
        }
        What::Token { name } => {
            let token = users::new_token(&conn, &name).map_err(|e| usage(e.to_string()))?;
            users::audit(&conn, &by, "token", &name, "cli", "")?;
            outln!("{token}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The first line of standard input, without its line ending.
fn read_password() -> anyhow::Result<String> {
    let mut text = String::new();
    std::io::stdin()
        .take(users::PASSWORD_BYTES_MAX as u64 + 2)
        .read_to_string(&mut text)?;
    Ok(text.lines().next().unwrap_or("").to_owned())
}
