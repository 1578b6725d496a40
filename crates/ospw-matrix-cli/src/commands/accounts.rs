//! `user list`, `user reset-password`, `user deactivate` and `user admin`,
//! through Synapse's admin API on its own loopback listener, authenticated
//! as the CLI's admin service account (see `admin_api.rs`).

use std::path::PathBuf;

use ospw_matrix::Error;

use crate::admin_api::{encode_segment, expect_ok, AdminArgs, AdminClient};
use crate::commands::user::read_password;

/// Arguments of `user list`.
#[derive(clap::Args)]
pub struct ListArgs {
    /// Also list deactivated accounts.
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub admin: AdminArgs,
}

/// Arguments of `user reset-password`.
#[derive(clap::Args)]
pub struct ResetPasswordArgs {
    /// The account (`alice` or `@alice:example.org`).
    pub name: String,
    /// Read the new password from this file (one line). Without it, a strong
    /// password is generated and printed once, alone, on standard output.
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Keep the account's other sessions logged in (by default they are
    /// logged out).
    #[arg(long)]
    pub keep_sessions: bool,
    #[command(flatten)]
    pub admin: AdminArgs,
}

/// Arguments of `user deactivate`.
#[derive(clap::Args)]
pub struct DeactivateArgs {
    /// The account (`alice` or `@alice:example.org`).
    pub name: String,
    /// Also erase the account's data (GDPR erasure): its messages are hidden
    /// from users who join later, its display name and avatar removed.
    #[arg(long)]
    pub erase: bool,
    #[command(flatten)]
    pub admin: AdminArgs,
}

/// `on` or `off`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnOff {
    /// Grant.
    On,
    /// Revoke.
    Off,
}

/// Arguments of `user admin`.
#[derive(clap::Args)]
pub struct AdminFlagArgs {
    /// The account (`alice` or `@alice:example.org`).
    pub name: String,
    /// Grant (`on`) or revoke (`off`) server administration.
    #[arg(value_enum)]
    pub state: OnOff,
    #[command(flatten)]
    pub admin: AdminArgs,
}

fn ts(ms: Option<i64>) -> String {
    match ms {
        Some(ms) if ms > 0 => {
            let s = ospw_matrix::backup::rfc3339((ms / 1000) as u64);
            s.get(..10).unwrap_or(&s).to_owned()
        }
        _ => "-".into(),
    }
}

/// Lists the accounts.
pub fn list(args: ListArgs) -> Result<(), Error> {
    let mut client = AdminClient::new(&args.admin)?;
    let mut users = Vec::new();
    let mut from: Option<String> = Some("0".into());
    while let Some(f) = from.take() {
        let path = format!(
            "/_synapse/admin/v2/users?from={}&limit=100&guests=false&deactivated={}",
            encode_segment(&f),
            args.all
        );
        let r = client.call("GET", &path, None)?;
        expect_ok(&r, "listing the accounts")?;
        let v: serde_json::Value = serde_json::from_slice(&r.body)
            .map_err(|e| Error::Other(format!("Synapse's account list: {e}")))?;
        if let Some(list) = v.get("users").and_then(|u| u.as_array()) {
            users.extend(list.iter().cloned());
        }
        from = v.get("next_token").and_then(|t| match t {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        });
    }
    let service = client.service_user_id().map(str::to_owned);
    println!(
        "{:<40} {:<6} {:<12} {:<10} DISPLAY NAME",
        "USER", "ADMIN", "STATE", "CREATED"
    );
    for u in &users {
        let name = u.get("name").and_then(|n| n.as_str()).unwrap_or("?");
        let admin = u
            .get("admin")
            .and_then(|a| a.as_bool().or(a.as_i64().map(|i| i != 0)));
        let deactivated = u
            .get("deactivated")
            .and_then(|a| a.as_bool().or(a.as_i64().map(|i| i != 0)))
            .unwrap_or(false);
        let display = u.get("displayname").and_then(|d| d.as_str()).unwrap_or("");
        let created = ts(u.get("creation_ts").and_then(|c| c.as_i64()));
        let display = if Some(name) == service.as_deref() {
            format!("{display} (ospw-matrix's admin service account)")
        } else {
            display.to_owned()
        };
        println!(
            "{:<40} {:<6} {:<12} {:<10} {}",
            name,
            if admin == Some(true) { "yes" } else { "no" },
            if deactivated { "deactivated" } else { "active" },
            created,
            display
        );
    }
    eprintln!("{} accounts", users.len());
    Ok(())
}

/// Sets a new password.
pub fn reset_password(args: ResetPasswordArgs) -> Result<(), Error> {
    let (password, generated) = match &args.password_file {
        Some(path) => (read_password(path)?, false),
        None => (ospw_matrix::secrets::random_alphanumeric(32)?, true),
    };
    let mut client = AdminClient::new(&args.admin)?;
    if !client.password_login() {
        return Err(Error::Other(
            "sso.password_login is false: passwords do not sign anyone in on this server, so there \
             is none to reset; people sign in through their single sign-on provider"
                .into(),
        ));
    }
    let user_id = client.user_id(&args.name)?;
    let user = client.get_user(&user_id)?;
    if user.get("deactivated").and_then(|d| d.as_bool()) == Some(true) {
        return Err(Error::Other(format!(
            "{user_id} is deactivated: its password cannot be reset"
        )));
    }
    let body = serde_json::json!({
        "new_password": password,
        "logout_devices": !args.keep_sessions,
    });
    let path = format!(
        "/_synapse/admin/v1/reset_password/{}",
        encode_segment(&user_id)
    );
    let r = client.call("POST", &path, Some(&body))?;
    expect_ok(&r, &format!("resetting the password of {user_id}"))?;
    let sessions = if args.keep_sessions {
        "other sessions kept"
    } else {
        "every session logged out"
    };
    if generated {
        eprintln!("new password for {user_id} ({sessions}); shown only this once, it follows on standard output");
        println!("{password}");
    } else {
        eprintln!("password of {user_id} reset ({sessions})");
    }
    Ok(())
}

/// Deactivates an account.
pub fn deactivate(args: DeactivateArgs) -> Result<(), Error> {
    let mut client = AdminClient::new(&args.admin)?;
    let user_id = client.user_id(&args.name)?;
    let user = client.get_user(&user_id)?;
    if user.get("deactivated").and_then(|d| d.as_bool()) == Some(true) && !args.erase {
        eprintln!("{user_id} is already deactivated");
        return Ok(());
    }
    if client.service_user_id() == Some(user_id.as_str()) {
        eprintln!("note: {user_id} is the CLI's own service account; a new one will be registered when needed");
    }
    let path = format!("/_synapse/admin/v1/deactivate/{}", encode_segment(&user_id));
    let body = serde_json::json!({ "erase": args.erase });
    let r = client.call("POST", &path, Some(&body))?;
    expect_ok(&r, &format!("deactivating {user_id}"))?;
    if args.erase {
        eprintln!(
            "{user_id} deactivated and erased (its messages are hidden from users who join later)"
        );
    } else {
        eprintln!("{user_id} deactivated: it can no longer log in");
    }
    Ok(())
}

/// Grants or revokes server administration.
pub fn set_admin(args: AdminFlagArgs) -> Result<(), Error> {
    let mut client = AdminClient::new(&args.admin)?;
    let user_id = client.user_id(&args.name)?;
    // PUT /v2/users/<id> would create a missing account: check first.
    let user = client.get_user(&user_id)?;
    if user.get("deactivated").and_then(|d| d.as_bool()) == Some(true) {
        return Err(Error::Other(format!("{user_id} is deactivated")));
    }
    let on = args.state == OnOff::On;
    let path = format!("/_synapse/admin/v2/users/{}", encode_segment(&user_id));
    let r = client.call("PUT", &path, Some(&serde_json::json!({ "admin": on })))?;
    expect_ok(&r, &format!("changing {user_id}"))?;
    eprintln!(
        "{user_id} is {} a server administrator",
        if on { "now" } else { "no longer" }
    );
    Ok(())
}
