//! `user add`: creates an account through Synapse's shared-secret
//! registration, talking to Synapse's own listener (loopback TCP or Unix
//! socket), never through the proxy.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ospw_matrix::components::synapse::HomeserverConfig;
use ospw_matrix::host::SecretKind;
use ospw_matrix::registration::{
    check_localpart, interpret_register_response, parse_nonce, registration_body, REGISTER_PATH,
};
use ospw_matrix::render::synapse::homeserver;
use ospw_matrix::{load_host, Error, RenderContext};

use crate::http::{request, Endpoint};

/// The length of a generated password: 32 alphanumerics, about 190 bits.
const GENERATED_PASSWORD_LEN: usize = 32;
/// Synapse refuses longer passwords.
const MAX_PASSWORD_LEN: usize = 512;

/// Arguments of `user add`.
#[derive(clap::Args)]
pub struct AddArgs {
    /// The localpart of the new account (`alice` for `@alice:example.org`):
    /// lower-case letters, digits and . _ = - /.
    pub name: String,
    /// Make the account a server administrator.
    #[arg(long)]
    pub admin: bool,
    /// Read the password from this file (one line). Without it, a strong
    /// password is generated and printed once, alone, on standard output.
    /// With `sso.password_login: false` the account gets no usable password
    /// (none is printed) and this option is refused: a single sign-on
    /// provider with `allow_existing_users` links it on the first sign-in.
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// The account's e-mail address, for password resets and notification
    /// mails (`email` in the host description); set through the admin API,
    /// so it needs --config. People cannot add addresses themselves.
    #[arg(long, value_name = "ADDRESS")]
    pub email: Option<String>,
    /// The host description (YAML or JSON, such as the rendered host.json);
    /// it gives Synapse's listener and the registration secret's path.
    #[arg(long, short, env = "OSPW_MATRIX_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The registration shared secret file (default: from the host description).
    #[arg(
        long,
        env = "OSPW_MATRIX_REGISTRATION_SECRET_FILE",
        value_name = "FILE"
    )]
    pub registration_secret_file: Option<PathBuf>,
    /// Synapse's listener, HOST:PORT or unix:/PATH (default: from the host
    /// description).
    #[arg(long, env = "OSPW_MATRIX_SYNAPSE", value_name = "ADDRESS")]
    pub synapse: Option<String>,
    /// How long to wait for Synapse, in seconds.
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    pub timeout: u64,
}

/// What the host description says about reaching Synapse and signing in.
struct Target {
    endpoint: Option<Endpoint>,
    secret_file: Option<PathBuf>,
    server_name: Option<String>,
    /// `sso.password_login`.
    password_login: bool,
    /// The names of the providers that link first sign-ins to existing
    /// accounts (`allow_existing_users`).
    linking_providers: Vec<String>,
}

/// Reads Synapse's client listener and registration secret path from the
/// configuration derived from the host description (so `synapse.settings`
/// overrides are honoured).
fn target_from_host(config: &Path) -> Result<Target, Error> {
    let host = load_host(config)?;
    let ctx = RenderContext {
        output_dir: PathBuf::from("/nonexistent"),
    };
    let derived: HomeserverConfig = homeserver(&host, &ctx).map_err(|errs| {
        Error::Other(format!(
            "{}: the host description does not give a valid Synapse configuration: {errs}",
            config.display()
        ))
    })?;
    let endpoint = crate::admin_api::endpoint_of(&host).ok();
    let secret_file = derived
        .registration_shared_secret_path
        .map(PathBuf::from)
        .or_else(|| Some(host.secrets.path(SecretKind::RegistrationSharedSecret)));
    Ok(Target {
        endpoint,
        secret_file,
        server_name: Some(host.server_name),
        password_login: host.sso.password_login,
        linking_providers: host
            .sso
            .providers
            .iter()
            .filter(|p| p.allow_existing_users)
            .map(|p| format!("{} ({})", p.name, p.id))
            .collect(),
    })
}

/// Reads the password file: one line, the line ending removed.
pub(crate) fn read_password(path: &Path) -> Result<String, Error> {
    let text =
        std::fs::read_to_string(path).map_err(|e| Error::io(path, "read the password file", e))?;
    let line = text.strip_suffix('\n').unwrap_or(&text);
    let line = line.strip_suffix('\r').unwrap_or(line);
    let bad = |why: &str| Error::BadSecret {
        path: path.to_path_buf(),
        message: format!("{why}: expected the password on one line"),
    };
    if line.is_empty() {
        return Err(bad("is empty"));
    }
    if line.contains(['\n', '\r', '\0']) {
        return Err(bad("holds more than one line or a NUL character"));
    }
    if line.chars().count() > MAX_PASSWORD_LEN {
        return Err(bad(&format!(
            "holds more than {MAX_PASSWORD_LEN} characters, which Synapse refuses"
        )));
    }
    Ok(line.to_owned())
}

/// Reads the registration shared secret (surrounding whitespace removed, as
/// Synapse reads it).
fn read_registration_secret(path: &Path) -> Result<String, Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::io(path, "read the registration shared secret", e))?;
    let secret = text.trim();
    if secret.is_empty() {
        return Err(Error::BadSecret {
            path: path.to_path_buf(),
            message: "is empty: expected the registration shared secret Synapse reads (registration_shared_secret_path)".into(),
        });
    }
    Ok(secret.to_owned())
}

/// Creates the account.
pub fn add(args: AddArgs) -> Result<(), Error> {
    check_localpart(&args.name, None)
        .map_err(|m| Error::Other(format!("invalid user name: {m}")))?;
    if let Some(email) = &args.email {
        ospw_matrix::values::check_email_address(email)
            .map_err(|m| Error::Other(format!("--email: {m}")))?;
        if args.config.is_none() {
            return Err(Error::Other(
                "--email needs the host description (--config, or OSPW_MATRIX_CONFIG): the address is set through the admin API".into(),
            ));
        }
    }
    let needs_host = args.synapse.is_none() || args.registration_secret_file.is_none();
    let target = match (&args.config, needs_host) {
        (Some(config), _) => target_from_host(config)?,
        (None, false) => Target {
            endpoint: None,
            secret_file: None,
            server_name: None,
            password_login: true,
            linking_providers: Vec::new(),
        },
        (None, true) => {
            return Err(Error::Other(
                "no host description: give --config FILE (or set OSPW_MATRIX_CONFIG), or both --synapse and --registration-secret-file".into(),
            ))
        }
    };
    if let Some(server) = &target.server_name {
        check_localpart(&args.name, Some(server))
            .map_err(|m| Error::Other(format!("invalid user name: {m}")))?;
    }
    let endpoint = match &args.synapse {
        Some(text) => Endpoint::parse(text).map_err(|m| Error::Other(format!("--synapse: {m}")))?,
        None => target.endpoint.ok_or_else(|| {
            Error::Other("the host description gives Synapse no listener: give --synapse".into())
        })?,
    };
    let secret_file = args
        .registration_secret_file
        .clone()
        .or(target.secret_file)
        .ok_or_else(|| {
            Error::Other("no registration secret file: give --registration-secret-file".into())
        })?;
    if !target.password_login {
        if args.password_file.is_some() {
            return Err(Error::Other(
                "sso.password_login is false: passwords do not sign anyone in on this server, so \
                 the account gets none; leave out --password-file"
                    .into(),
            ));
        }
        if target.linking_providers.is_empty() {
            return Err(Error::Other(format!(
                "sso.password_login is false and no sso provider has allow_existing_users: {:?} \
                 could never sign in. People get their accounts by signing in through a provider \
                 that creates them (require or auto_create); to prepare an account (an admin, a \
                 chosen name), set allow_existing_users on the provider",
                args.name
            )));
        }
    }
    let secret = read_registration_secret(&secret_file)?;
    let (password, generated) = match &args.password_file {
        Some(path) => (read_password(path)?, false),
        None => (
            ospw_matrix::secrets::random_alphanumeric(GENERATED_PASSWORD_LEN)?,
            true,
        ),
    };

    let timeout = Duration::from_secs(args.timeout.max(1));
    let http = |e: crate::http::HttpError| Error::Other(e.to_string());
    let answer = request(&endpoint, "GET", REGISTER_PATH, &[], None, timeout).map_err(http)?;
    if answer.status != 200 {
        return Err(Error::Other(format!(
            "Synapse at {endpoint} did not hand out a registration nonce (HTTP {}): {}",
            answer.status,
            String::from_utf8_lossy(&answer.body)
                .chars()
                .take(300)
                .collect::<String>()
        )));
    }
    let nonce = parse_nonce(&answer.body)
        .map_err(|m| Error::Other(format!("Synapse at {endpoint}: {m}")))?;
    let body = registration_body(&secret, &nonce, &args.name, &password, args.admin)?;
    let body = serde_json::to_vec(&body).map_err(|e| Error::Other(e.to_string()))?;
    let answer =
        request(&endpoint, "POST", REGISTER_PATH, &[], Some(&body), timeout).map_err(http)?;
    let user_id = interpret_register_response(answer.status, &answer.body)
        .map_err(|failure| Error::Other(format!("cannot create {:?}: {failure}", args.name)))?;
    if let (Some(email), Some(config)) = (&args.email, &args.config) {
        set_email(&args, config, &user_id, email)?;
        eprintln!("{user_id}'s e-mail address is {email}");
    }
    let role = if args.admin { " (administrator)" } else { "" };
    let linked_by = target.linking_providers.join(", ");
    if !target.password_login {
        // The random password was never shown: with passwords off it is
        // unusable, and nothing is printed on standard output.
        eprintln!(
            "created {user_id}{role} without a password (sso.password_login is false); the first \
             sign-in through {linked_by} whose claims map to {:?} becomes this account",
            args.name
        );
        return Ok(());
    }
    if !linked_by.is_empty() {
        eprintln!(
            "note: the first sign-in through {linked_by} whose claims map to {:?} also becomes this account",
            args.name
        );
    }
    if generated {
        eprintln!("created {user_id}{role}; its password, shown only this once, follows on standard output");
        println!("{password}");
    } else {
        eprintln!("created {user_id}{role}");
    }
    Ok(())
}

/// Gives `user_id` the e-mail address `email`, through the admin API as the
/// CLI's service account.
fn set_email(args: &AddArgs, config: &Path, user_id: &str, email: &str) -> Result<(), Error> {
    let admin = crate::admin_api::AdminArgs {
        config: config.to_owned(),
        registration_secret_file: args.registration_secret_file.clone(),
        state_dir: std::env::var_os("OSPW_MATRIX_STATE_DIR").map(PathBuf::from),
        synapse: args.synapse.clone(),
        timeout: args.timeout,
    };
    let mut client = crate::admin_api::AdminClient::new(&admin)?;
    let path = format!(
        "/_synapse/admin/v2/users/{}",
        crate::admin_api::encode_segment(user_id)
    );
    let body = serde_json::json!({"threepids": [{"medium": "email", "address": email}]});
    let r = client.call("PUT", &path, Some(&body))?;
    crate::admin_api::expect_ok(&r, &format!("setting {user_id}'s e-mail address"))
}
