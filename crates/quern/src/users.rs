//! `quern user`: the REST API's users, managed on the coordinator's host
//! with the coordinator's `--data-dir` and `--state` (beside a running
//! coordinator: users are read at each login).

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use quern_coordinator::state::Role;
use quern_coordinator::store::StoredUser;

/// Where the coordinator's state is.
#[derive(Args)]
pub(crate) struct StateArgs {
    /// The coordinator's directory (the default state database is in it).
    #[arg(long, default_value = ".")]
    data_dir: PathBuf,
    /// The coordinator's state: sqlite://PATH or postgres://… (default:
    /// sqlite://DATA_DIR/quern.db).
    #[arg(long, env = "QUERN_STATE", hide_env_values = true)]
    state: Option<String>,
}

impl StateArgs {
    fn url(&self) -> String {
        self.state.clone().unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("quern.db").display()))
    }
}

#[derive(Args)]
pub(crate) struct UserArgs {
    #[command(subcommand)]
    command: UserCommand,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a user (the first admin too).
    Add {
        /// The user's name.
        name: String,
        /// What they may do: `admin` (everything) or `user` (their own jobs).
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// Read the password from the first line of standard input instead
        /// of prompting for it.
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        state: StateArgs,
    },
    /// List the users.
    List {
        #[command(flatten)]
        state: StateArgs,
    },
    /// Remove a user.
    Remove {
        /// The user's name.
        name: String,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Change a user's password.
    Passwd {
        /// The user's name.
        name: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        state: StateArgs,
    },
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s).map_err(|_| "expected admin or user".to_owned())
}

/// A new password: the first line of stdin, or typed twice at a prompt.
fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    let password = if from_stdin || !std::io::stdin().is_terminal() {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).context("reading the password on standard input")?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    } else {
        let first = rpassword::prompt_password("Password: ").context("reading the password")?;
        let again = rpassword::prompt_password("Again: ").context("reading the password")?;
        if first != again {
            bail!(crate::cli::Refused("the passwords differ".into()));
        }
        first
    };
    quern_coordinator::access::check_password(&password).map_err(crate::cli::Refused)?;
    Ok(password)
}

pub(crate) fn user(args: UserArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async move {
        match args.command {
            UserCommand::Add { name, role, password_stdin, state } => {
                quern_coordinator::access::check_user_name(&name).map_err(crate::cli::Refused)?;
                let store = open(&state).await?;
                if store.users().await?.iter().any(|u| u.name == name) {
                    bail!(crate::cli::Refused(format!(
                        "user {name} exists: `quern user passwd {name}` changes the password"
                    )));
                }
                let password = read_password(password_stdin)?;
                let hash = quern_coordinator::access::hash_password(&password).map_err(anyhow::Error::msg)?;
                let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as i64;
                store
                    .put_user(&StoredUser { name: name.clone(), role, password_hash: hash, created_at_ms: now })
                    .await?;
                println!("added {name} ({})", role.as_str());
            }
            UserCommand::List { state } => {
                for u in open(&state).await?.users().await? {
                    println!("{}\t{}", u.name, u.role.as_str());
                }
            }
            UserCommand::Remove { name, state } => {
                if !open(&state).await?.remove_user(&name).await? {
                    bail!(crate::cli::Refused(format!("no user {name}")));
                }
                println!("removed {name}");
            }
            UserCommand::Passwd { name, password_stdin, state } => {
                let store = open(&state).await?;
                let Some(user) = store.users().await?.into_iter().find(|u| u.name == name) else {
                    bail!(crate::cli::Refused(format!("no user {name}")));
                };
                let password = read_password(password_stdin)?;
                let hash = quern_coordinator::access::hash_password(&password).map_err(anyhow::Error::msg)?;
                store.put_user(&StoredUser { password_hash: hash, ..user }).await?;
                println!("changed {name}'s password");
            }
        }
        Ok(())
    })
}

async fn open(state: &StateArgs) -> anyhow::Result<quern_coordinator::Store> {
    let url = state.url();
    let shown = quern_coordinator::store::redact(&url);
    quern_coordinator::store::open_unlocked(&url).await.with_context(|| format!("opening {shown}"))
}

/// The REST API's signing key: `path`'s bytes, or, if it does not exist, a
/// new random key written there (readable by its owner only).
pub(crate) fn signing_key(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    match std::fs::read(path) {
        Ok(key) if key.len() >= 32 => Ok(key),
        Ok(_) => bail!(crate::cli::Refused(format!("{}: a signing key needs at least 32 bytes", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let key = quern_coordinator::access::new_signing_key();
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .with_context(|| format!("creating the signing key {}", path.display()))?;
            file.write_all(&key)
                .and_then(|()| file.sync_all())
                .with_context(|| format!("writing {}", path.display()))?;
            Ok(key)
        }
        Err(e) => Err(e).with_context(|| format!("reading the signing key {}", path.display())),
    }
}
