//! `ospw-matrix`: render, check and operate a private Matrix server described
//! by one host description.

#![forbid(unsafe_code)]

mod admin_api;
mod commands;
mod http;
mod tls;
mod turn_client;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Turn one host description into a private Matrix server's configuration,
/// and operate it.
#[derive(Parser)]
#[command(name = "ospw-matrix", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a host description and write every component's configuration.
    Render {
        /// The host description (YAML or JSON). Without it, the embedded
        /// example host (example.org) is rendered.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// The output directory; replaced atomically.
        #[arg(long, short)]
        out: PathBuf,
    },
    /// Validate a host description and report every problem; write nothing.
    Check {
        /// The host description (YAML or JSON).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Print the JSON Schema of the host description.
    Schema {
        /// Print the schema of `doctor --json`'s report instead.
        #[arg(long, conflicts_with = "secret_rules")]
        doctor_report: bool,
        /// Print the inline-secret detector's word lists instead (read by
        /// the NixOS module's evaluation-time check).
        #[arg(long)]
        secret_rules: bool,
    },
    /// Print the embedded example host description.
    Example,
    /// Print one new Synapse signing key (`ed25519 a_XXXX <seed>`).
    Keygen,
    /// Manage the secrets directory.
    Secrets {
        #[command(subcommand)]
        command: SecretsCommand,
    },
    /// Write a component's runtime configuration with its secret filled in.
    Materialize {
        #[command(subcommand)]
        command: MaterializeCommand,
    },
    /// Manage accounts (the server has no public registration).
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Write one archive (mode 0600) with a consistent database dump, the
    /// secrets, the media store and the host description, while the server
    /// runs.
    Backup(commands::backup::BackupArgs),
    /// Restore a backup archive onto a fresh host (Synapse stopped); the
    /// archive is verified completely before anything is changed.
    Restore(commands::restore::RestoreArgs),
    /// Migrate from the old Docker Compose setup: write a host description
    /// and secrets that keep the server name and signing key.
    ImportCompose(commands::import_compose::ImportComposeArgs),
    /// Check that the server works as promised and is still private, from
    /// the outside (DNS, TLS, discovery, privacy, TURN) and the inside
    /// (services, database, secrets, disk, backups); exit 1 when a check
    /// fails.
    Doctor(Box<commands::doctor::DoctorArgs>),
}

#[derive(Subcommand)]
enum SecretsCommand {
    /// Create every missing secret; never overwrite an existing one.
    Init {
        /// The secrets directory (created with mode 0700).
        #[arg(long, env = "OSPW_MATRIX_SECRETS_DIR")]
        dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum MaterializeCommand {
    /// coturn's turnserver.conf with the TURN shared secret (mode 0600).
    Coturn {
        /// The rendered template (`coturn/turnserver.conf`).
        #[arg(long)]
        template: PathBuf,
        /// The file holding the TURN shared secret.
        #[arg(long)]
        secret_file: PathBuf,
        /// Where to write the runtime configuration.
        #[arg(long)]
        out: PathBuf,
    },
    /// Synapse's runtime secrets file (mode 0600), read after
    /// homeserver.yaml with a second --config-path: the secrets Synapse
    /// cannot read from a file (the SMTP password of `email`).
    SynapseSecrets {
        /// The host description (YAML or JSON, such as the rendered host.json).
        #[arg(long, short, env = "OSPW_MATRIX_CONFIG", value_name = "FILE")]
        config: PathBuf,
        /// Where to write the file.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create an account through Synapse's shared-secret registration.
    Add(commands::user::AddArgs),
    /// List the accounts (through Synapse's admin API).
    List(commands::accounts::ListArgs),
    /// Set a new password (generated and printed once, or from a file) and
    /// log the account's sessions out.
    ResetPassword(commands::accounts::ResetPasswordArgs),
    /// Deactivate an account (--erase: GDPR erasure).
    Deactivate(commands::accounts::DeactivateArgs),
    /// Grant or revoke server administration: `admin NAME on|off`.
    Admin(commands::accounts::AdminFlagArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Render { config, out } => commands::render::render(config.as_deref(), &out),
        Command::Check { config } => commands::render::check(&config),
        Command::Schema {
            doctor_report: true,
            ..
        } => commands::doctor::schema(),
        Command::Schema {
            secret_rules: true, ..
        } => {
            let mut text = serde_json::to_string_pretty(&ospw_matrix::inline_secrets::rules())
                .unwrap_or_default();
            text.push('\n');
            print!("{text}");
            Ok(())
        }
        Command::Schema { .. } => commands::render::schema(),
        Command::Example => {
            print!("{}", ospw_matrix::EXAMPLE_HOST_YAML);
            Ok(())
        }
        Command::Keygen => commands::secrets::keygen(),
        Command::Secrets {
            command: SecretsCommand::Init { dir },
        } => commands::secrets::init(&dir),
        Command::Materialize {
            command:
                MaterializeCommand::Coturn {
                    template,
                    secret_file,
                    out,
                },
        } => commands::materialize::coturn(&template, &secret_file, &out),
        Command::Materialize {
            command: MaterializeCommand::SynapseSecrets { config, out },
        } => commands::materialize::synapse_secrets(&config, &out),
        Command::User {
            command: UserCommand::Add(args),
        } => commands::user::add(args),
        Command::User {
            command: UserCommand::List(args),
        } => commands::accounts::list(args),
        Command::User {
            command: UserCommand::ResetPassword(args),
        } => commands::accounts::reset_password(args),
        Command::User {
            command: UserCommand::Deactivate(args),
        } => commands::accounts::deactivate(args),
        Command::User {
            command: UserCommand::Admin(args),
        } => commands::accounts::set_admin(args),
        Command::Backup(args) => commands::backup::backup(args),
        Command::Restore(args) => commands::restore::restore(args),
        Command::ImportCompose(args) => commands::import_compose::import_compose(args),
        Command::Doctor(args) => commands::doctor::doctor(*args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // Quoted values are shortened once more here (a last line of
            // defence: no secret or whole file is printed back).
            eprintln!(
                "ospw-matrix: {}",
                ospw_matrix::redact::message(&err.to_string())
            );
            ExitCode::FAILURE
        }
    }
}
