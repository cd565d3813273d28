//! `quern login` and `quern logout`: a user's token for the CLI, kept in
//! `~/.config/quern/login.json` (or `$XDG_CONFIG_HOME/quern/`), readable by
//! its owner only; and how client commands choose their coordinator and
//! token ([`Credentials::resolve`]): `--token`/`QUERN_TOKEN` if given,
//! otherwise the saved login.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use quern_proto as pb;
use serde_json::json;

use crate::cli::Refused;

/// Where a coordinator is when nothing says otherwise.
pub(crate) const DEFAULT_COORDINATOR: &str = "http://127.0.0.1:7070";

#[derive(Args)]
pub(crate) struct LoginArgs {
    /// The coordinator, as http://host:port.
    #[arg(long, env = "QUERN_COORDINATOR", default_value = DEFAULT_COORDINATOR)]
    coordinator: String,
    /// The user name (asked for if not given).
    #[arg(long)]
    user: Option<String>,
    /// Read the password from the first line of standard input instead of
    /// a prompt.
    #[arg(long)]
    password_stdin: bool,
    /// How long to wait for the coordinator.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

/// A saved login.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SavedLogin {
    coordinator: String,
    user: String,
    token: String,
    expires_at_ms: u64,
}

/// The file a login is saved in.
fn login_file() -> anyhow::Result<PathBuf> {
    let config = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
            Some(home) => PathBuf::from(home).join(".config"),
            None => bail!(Refused("neither XDG_CONFIG_HOME nor HOME is set: nowhere to keep a login".into())),
        },
    };
    Ok(config.join("quern").join("login.json"))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl SavedLogin {
    /// The saved login, if any. A file that does not parse is an error
    /// naming it, never a silent logout.
    fn load() -> anyhow::Result<Option<SavedLogin>> {
        let path = login_file()?;
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let bad = |what: &str| Refused(format!("{}: {what}: run quern login again", path.display()));
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(&format!("not JSON ({e})")))?;
        let text_of = |field: &str| {
            v[field].as_str().map(str::to_owned).ok_or_else(|| bad(&format!("field {field} is missing or not text")))
        };
        Ok(Some(SavedLogin {
            coordinator: text_of("coordinator")?,
            user: text_of("user")?,
            token: text_of("token")?,
            expires_at_ms: v["expires_at_ms"]
                .as_u64()
                .ok_or_else(|| bad("field expires_at_ms is missing or not a number"))?,
        }))
    }

    /// Saves it, readable by its owner only, replacing any other whole.
    fn save(&self) -> anyhow::Result<PathBuf> {
        let path = login_file()?;
        let dir = path.parent().unwrap_or(&path);
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let text = json!({
            "coordinator": self.coordinator,
            "user": self.user,
            "token": self.token,
            "expires_at_ms": self.expires_at_ms,
        });
        let temporary = path.with_extension("json.tmp");
        {
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(&temporary).with_context(|| format!("writing {}", temporary.display()))?;
            writeln!(file, "{text:#}").with_context(|| format!("writing {}", temporary.display()))?;
            file.sync_all().with_context(|| format!("writing {}", temporary.display()))?;
        }
        std::fs::rename(&temporary, &path).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }
}

/// Where a client command connects, and the token it presents.
pub(crate) struct Credentials {
    /// The coordinator's address.
    pub(crate) coordinator: String,
    /// The bearer token: the cluster token, or a user's.
    pub(crate) token: String,
}

impl Credentials {
    /// `--coordinator` and `--token` as given (either may be absent):
    /// a given token is used as is; otherwise the saved login's, if it is
    /// for that coordinator and has not expired.
    pub(crate) fn resolve(coordinator: Option<String>, token: Option<String>) -> anyhow::Result<Credentials> {
        if let Some(token) = token {
            return Ok(Credentials { coordinator: coordinator.unwrap_or_else(|| DEFAULT_COORDINATOR.into()), token });
        }
        let Some(saved) = SavedLogin::load()? else {
            bail!(Refused("no token: pass --token (or set QUERN_TOKEN), or run quern login".into()));
        };
        let coordinator = coordinator.unwrap_or_else(|| saved.coordinator.clone());
        if coordinator != saved.coordinator {
            bail!(Refused(format!(
                "no token for {coordinator}: you are logged in to {} (run quern login --coordinator {coordinator}, \
                 or pass --token)",
                saved.coordinator
            )));
        }
        if saved.expires_at_ms <= now_ms() {
            bail!(Refused(format!("your login to {coordinator} as {} has expired: run quern login", saved.user)));
        }
        Ok(Credentials { coordinator, token: saved.token })
    }
}

/// A line from standard input, after a prompt on standard error when it
/// is a terminal.
fn read_line(prompt: &str) -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        eprint!("{prompt}");
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).context("reading standard input")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

pub(crate) fn login(args: LoginArgs) -> anyhow::Result<()> {
    let user = match args.user {
        Some(user) => user,
        None => read_line("Username: ")?,
    };
    if user.is_empty() {
        bail!(Refused("no user name".into()));
    }
    let password = if args.password_stdin || !std::io::stdin().is_terminal() {
        read_line("")?
    } else {
        rpassword::prompt_password("Password: ").context("reading the password")?
    };
    let endpoint = tonic::transport::Endpoint::from_shared(args.coordinator.clone())
        .with_context(|| format!("coordinator address {}", args.coordinator))?
        .connect_timeout(args.timeout)
        .timeout(args.timeout);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let answer = runtime.block_on(async {
        let channel = endpoint
            .connect()
            .await
            .with_context(|| format!("could not connect to the coordinator at {}", args.coordinator))?;
        let mut client = pb::coordinator_client::CoordinatorClient::new(channel);
        let request = pb::LoginRequest { username: user.clone(), password };
        match client.login(request).await {
            Ok(answer) => Ok(answer.into_inner()),
            Err(s) if matches!(s.code(), tonic::Code::Unauthenticated | tonic::Code::ResourceExhausted) => {
                Err(anyhow::Error::new(Refused(s.message().to_owned())))
            }
            Err(s) => {
                Err(anyhow::anyhow!("the coordinator at {} refused the login: {}", args.coordinator, s.message()))
            }
        }
    })?;
    let saved = SavedLogin {
        coordinator: args.coordinator.clone(),
        user: user.clone(),
        token: answer.token,
        expires_at_ms: answer.expires_at_ms,
    };
    let path = saved.save()?;
    let minutes = saved.expires_at_ms.saturating_sub(now_ms()) / 60_000;
    println!(
        "logged in to {} as {user} ({}), for {minutes} min; the token is in {}",
        args.coordinator,
        answer.role,
        path.display()
    );
    Ok(())
}

pub(crate) fn logout() -> anyhow::Result<()> {
    let path = login_file()?;
    match std::fs::remove_file(&path) {
        Ok(()) => println!("logged out ({} removed)", path.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => println!("not logged in"),
        Err(e) => return Err(e).with_context(|| format!("removing {}", path.display())),
    }
    Ok(())
}
