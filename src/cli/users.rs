//! `lector user …` and `lector token create`: what an administrator does with accounts from
//! the command line, without the browser: add one, set its password, end its sessions, issue
//! a one-time reset link, list and delete accounts.

use std::{io::IsTerminal, time::Duration};

use crate::{
    app::accounts::{Accounts, generate_password},
    config::Config,
    domain::User,
    startup,
};

async fn accounts(config: &Config) -> anyhow::Result<Accounts> {
    let connected = startup::connect(config).await?;
    Ok(Accounts::new(
        connected.store,
        std::sync::Arc::new(config.clone()),
    ))
}

async fn account(accounts: &Accounts, email: &str) -> anyhow::Result<User> {
    let email = email.trim().to_lowercase();
    accounts
        .user_by_email(&email)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no account has the e-mail {email}"))
}

/// A password from the first line of standard input, from a prompt on a terminal (asked
/// twice), or else, when `generate`, a new one (then true).
fn read_password(email: &str, from_stdin: bool, generate: bool) -> anyhow::Result<(String, bool)> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        return Ok((line.trim_end_matches(['\r', '\n']).to_owned(), false));
    }
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password(format!("Password for {email}: "))?;
        let again = rpassword::prompt_password("Password again: ")?;
        anyhow::ensure!(first == again, "the two passwords do not match");
        return Ok((first, false));
    }
    anyhow::ensure!(
        generate,
        "give the password on standard input with --password-stdin, or run this on a terminal"
    );
    Ok((generate_password(), true))
}

/// `lector user add`: the administrator's way to add accounts when sign-up is not open.
pub async fn add(config: &Config, email: &str, password_stdin: bool) -> anyhow::Result<()> {
    let (password, generated) = read_password(email, password_stdin, true)?;
    let user = accounts(config)
        .await?
        .add_user(email, &password)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("added {}", user.email);
    if generated {
        println!("password: {password}");
    }
    Ok(())
}

/// `lector user password`: sets an account's password; every session of it ends.
pub async fn set_password(
    config: &Config,
    email: &str,
    password_stdin: bool,
) -> anyhow::Result<()> {
    let accounts = accounts(config).await?;
    let user = account(&accounts, email).await?;
    let (password, _) = read_password(&user.email, password_stdin, false)?;
    accounts
        .set_password(&user, &password)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!(
        "password of {} changed; every session of it has ended",
        user.email
    );
    Ok(())
}

/// `lector user sessions revoke`: ends every session of an account (and with `tokens`,
/// revokes its API tokens).
pub async fn end_sessions(config: &Config, email: &str, tokens: bool) -> anyhow::Result<()> {
    let accounts = accounts(config).await?;
    let user = account(&accounts, email).await?;
    accounts.end_sessions(&user, tokens).await?;
    let also = if tokens {
        " and its API tokens revoked"
    } else {
        ""
    };
    println!("every session of {} has ended{also}", user.email);
    Ok(())
}

/// `lector user list`: every account with what it owns.
pub async fn list(config: &Config) -> anyhow::Result<()> {
    let accounts = accounts(config).await?;
    println!(
        "{:<40} {:<10} {:>9} {:>6} {:>8}",
        "e-mail", "since", "documents", "tokens", "webhooks"
    );
    for summary in accounts.list().await? {
        println!(
            "{:<40} {:<10} {:>9} {:>6} {:>8}",
            summary.user.email,
            summary.user.created_at.format("%Y-%m-%d"),
            summary.documents,
            summary.tokens,
            summary.webhooks
        );
    }
    Ok(())
}

/// `lector user delete`: the account and everything it holds. Asks for the e-mail again on
/// a terminal unless `yes`.
pub async fn delete(config: &Config, email: &str, yes: bool) -> anyhow::Result<()> {
    let accounts = accounts(config).await?;
    let user = account(&accounts, email).await?;
    if !yes {
        anyhow::ensure!(
            std::io::stdin().is_terminal(),
            "add --yes to delete {} without being asked",
            user.email
        );
        eprint!(
            "This deletes {} with all its documents, tokens and webhooks. Type the e-mail to confirm: ",
            user.email
        );
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        anyhow::ensure!(
            line.trim().eq_ignore_ascii_case(&user.email),
            "not confirmed: nothing was deleted"
        );
    }
    let engines = startup::engines(config).await?;
    let documents = accounts.delete_account(&user, &engines.blobs).await?;
    println!("deleted {} and its {documents} document(s)", user.email);
    Ok(())
}

/// `lector user reset-link`: prints a one-time link to set a new password, for the
/// administrator to pass on.
pub async fn reset_link(config: &Config, email: &str, minutes: u64) -> anyhow::Result<()> {
    anyhow::ensure!(
        (1..=7 * 24 * 60).contains(&minutes),
        "--minutes must be between 1 and 10080 (a week)"
    );
    let accounts = accounts(config).await?;
    let (user, token) = accounts
        .issue_reset_link(email, Duration::from_secs(minutes * 60))
        .await?;
    let base = match &config.public_url {
        Some(url) => url.clone(),
        None => {
            eprintln!("(LECTOR_PUBLIC_URL is not set: the address below assumes this machine)");
            format!("http://localhost:{}", config.bind.port())
        }
    };
    println!("{base}/reset/{token}");
    eprintln!(
        "one-time link for {}, valid for {minutes} minutes: every session of the account ends when it is used",
        user.email
    );
    Ok(())
}

/// `lector token create`: a token for scripts, without the browser.
pub async fn create_token(config: &Config, email: &str, name: &str) -> anyhow::Result<()> {
    let accounts = accounts(config).await?;
    let user = account(&accounts, email).await?;
    let (_, token) = accounts
        .create_token(&user, name)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("{token}");
    Ok(())
}
