//! `drover profiles put|show|delete|resume|session|sessions|applications`: the apply
//! workload's users, through the API (`--api` / `DROVER_API`, with `--token`). Only the API
//! seals session cookies (it holds the `secrets` key), so these commands always go through
//! it. Ids are checked here first, so a bad one is named before anything is sent.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, Context as _};
use clap::Subcommand;
use drover_queue::profile::{check_site, check_user_id};
use serde_json::Value;

use crate::client::ApiClient;

#[derive(Subcommand)]
pub enum ProfileCommand {
    /// Create or replace a profile from a JSON file (`-` for stdin), the body of
    /// `PUT /v1/profiles/{user_id}`.
    Put {
        /// The user's id: 1 to 128 of [A-Za-z0-9._@-].
        user_id: String,
        /// The profile as JSON.
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
        /// Print the stored profile as JSON.
        #[arg(long)]
        json: bool,
    },
    /// A profile with its résumé's metadata and its sessions' sites.
    Show {
        /// The user's id: 1 to 128 of [A-Za-z0-9._@-].
        user_id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete a profile with its résumé and sessions (the applications ledger stays).
    Delete {
        /// The user's id.
        user_id: String,
    },
    /// Upload the résumé (a PDF, at most 5 MiB).
    Resume {
        /// The user's id: 1 to 128 of [A-Za-z0-9._@-].
        user_id: String,
        /// The PDF.
        file: PathBuf,
        /// The name forms upload it as (default: the file's name).
        #[arg(long)]
        filename: Option<String>,
    },
    /// Store session cookies for a site (a JSON array of WebDriver cookies, `-` for
    /// stdin); the API seals them, and never shows them again.
    Session {
        /// The user's id: 1 to 128 of [A-Za-z0-9._@-].
        user_id: String,
        /// The site: greenhouse, lever, …
        site: String,
        /// The cookies as JSON.
        #[arg(long, value_name = "FILE", required_unless_present = "delete")]
        file: Option<PathBuf>,
        /// Forget the site's session instead.
        #[arg(long, conflicts_with = "file")]
        delete: bool,
    },
    /// The sites with stored sessions, and when each was stored.
    Sessions {
        /// The user's id: 1 to 128 of [A-Za-z0-9._@-].
        user_id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The applications ledger with today's and this month's counts (Asia/Kolkata).
    Applications {
        /// The user's id: 1 to 128 of [A-Za-z0-9._@-].
        user_id: String,
        /// Entries per page (1 to 1000).
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Posting keys after this one (the previous page's `next_after`).
        #[arg(long)]
        after: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn read_input(flag: &str, path: &Path) -> anyhow::Result<Vec<u8>> {
    if path.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)
            .with_context(|| format!("{flag}: cannot read stdin"))?;
        return Ok(buf);
    }
    std::fs::read(path).with_context(|| format!("{flag}: cannot read {}", path.display()))
}

fn read_json(flag: &str, path: &Path) -> anyhow::Result<Value> {
    let bytes = read_input(flag, path)?;
    // serde_json's error names a line and column, never the text (cookies stay unprinted).
    serde_json::from_slice(&bytes)
        .map_err(|e| anyhow!("{flag}: {} is not JSON: {e}", path.display()))
}

fn user(user_id: &str) -> anyhow::Result<()> {
    check_user_id(user_id).map_err(|e| anyhow!("{e}"))
}

fn print_json(value: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("-")
}

fn list(v: &Value) -> String {
    let items: Vec<&str> = v
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if items.is_empty() {
        "-".into()
    } else {
        items.join(", ")
    }
}

fn print_profile(view: &Value) {
    let p = &view["profile"];
    println!("user:       {}", text(&view["user_id"]));
    println!("name:       {} <{}>", text(&p["name"]), text(&p["email"]));
    println!("titles:     {}", list(&p["titles"]));
    println!(
        "locations:  {}{}",
        list(&p["locations"]),
        if p["remote_ok"] == true {
            " (remote ok)"
        } else {
            ""
        }
    );
    println!(
        "caps:       {} a day, {} a month",
        p["caps"]["daily"], p["caps"]["monthly"]
    );
    let sources: Vec<String> = p["sources"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| format!("{}:{}", text(&s["type"]), text(&s["board"])))
        .collect();
    println!(
        "nightly:    {}{}",
        if p["nightly"] == true { "yes" } else { "no" },
        if sources.is_empty() {
            String::new()
        } else {
            format!(" ({})", sources.join(", "))
        }
    );
    match view["resume"].as_object() {
        Some(r) => println!(
            "résumé:     {} ({} bytes, {})",
            text(&r["filename"]),
            r["bytes"],
            text(&r["uploaded_at"])
        ),
        None => println!("résumé:     none"),
    }
    print_sessions(&view["sessions"]);
}

fn print_sessions(sessions: &Value) {
    let sessions = sessions.as_array().cloned().unwrap_or_default();
    if sessions.is_empty() {
        println!("sessions:   none");
    }
    for s in sessions {
        println!(
            "session:    {} (stored {})",
            text(&s["site"]),
            text(&s["updated_at"])
        );
    }
}

pub async fn run_api(client: &ApiClient, command: ProfileCommand) -> anyhow::Result<ExitCode> {
    let path = |user_id: &str| format!("/v1/profiles/{user_id}");
    match command {
        ProfileCommand::Put {
            user_id,
            file,
            json,
        } => {
            user(&user_id)?;
            let body = read_json("--file", &file)?;
            let view = client.put_json(&path(&user_id), &body).await?;
            if json {
                print_json(&view)?;
            } else {
                print_profile(&view);
            }
        }
        ProfileCommand::Show { user_id, json } => {
            user(&user_id)?;
            let view = client.get_json(&path(&user_id)).await?;
            if json {
                print_json(&view)?;
            } else {
                print_profile(&view);
            }
        }
        ProfileCommand::Delete { user_id } => {
            user(&user_id)?;
            client.delete(&path(&user_id)).await?;
            println!("profile {user_id} deleted (its applications ledger stays)");
        }
        ProfileCommand::Resume {
            user_id,
            file,
            filename,
        } => {
            user(&user_id)?;
            let data = read_input("FILE", &file)?;
            let filename = filename
                .or_else(|| file.file_name().map(|n| n.to_string_lossy().into_owned()))
                .unwrap_or_else(|| "resume.pdf".into());
            let info = client
                .put_bytes(
                    &format!("{}/resume", path(&user_id)),
                    &[("filename", filename.as_str())],
                    "application/pdf",
                    data,
                )
                .await?;
            println!(
                "résumé {} stored ({} bytes)",
                text(&info["filename"]),
                info["bytes"]
            );
        }
        ProfileCommand::Session {
            user_id,
            site,
            file,
            delete,
        } => {
            user(&user_id)?;
            check_site(&site).map_err(|e| anyhow!("{e}"))?;
            let route = format!("{}/sessions/{site}", path(&user_id));
            if delete {
                client.delete(&route).await?;
                println!("session of {user_id} for {site} deleted");
            } else {
                let file = file.ok_or_else(|| anyhow!("--file: the cookies to store"))?;
                let cookies = read_json("--file", &file)?;
                let info = client.put_json(&route, &cookies).await?;
                println!(
                    "session of {user_id} for {} stored, sealed ({})",
                    text(&info["site"]),
                    text(&info["updated_at"])
                );
            }
        }
        ProfileCommand::Sessions { user_id, json } => {
            user(&user_id)?;
            let body = client
                .get_json(&format!("{}/sessions", path(&user_id)))
                .await?;
            if json {
                print_json(&body)?;
            } else {
                print_sessions(&body["sessions"]);
            }
        }
        ProfileCommand::Applications {
            user_id,
            limit,
            after,
            json,
        } => {
            user(&user_id)?;
            let mut route = format!("{}/applications?limit={limit}", path(&user_id));
            if let Some(after) = &after {
                route.push_str("&after=");
                route.push_str(&urlencode(after));
            }
            let body = client.get_json(&route).await?;
            if json {
                print_json(&body)?;
                return Ok(ExitCode::SUCCESS);
            }
            let caps = &body["caps"];
            println!(
                "today {} of {}, this month {} of {} (Asia/Kolkata)",
                body["counts"]["day"],
                if caps.is_null() {
                    Value::from("-")
                } else {
                    caps["daily"].clone()
                },
                body["counts"]["month"],
                if caps.is_null() {
                    Value::from("-")
                } else {
                    caps["monthly"].clone()
                },
            );
            let entries = body["applications"].as_array().cloned().unwrap_or_default();
            if entries.is_empty() {
                println!("no applications");
            } else {
                println!(
                    "{:<40}  {:<8}  {:<7}  {:<24}  JOB",
                    "POSTING", "OUTCOME", "COUNTED", "CLAIMED"
                );
            }
            for a in entries {
                println!(
                    "{:<40}  {:<8}  {:<7}  {:<24}  {}",
                    text(&a["posting_key"]),
                    text(&a["outcome"]),
                    if a["counted"] == true { "yes" } else { "no" },
                    text(&a["claimed_at"]),
                    text(&a["job_id"])
                );
            }
            if let Some(next) = body["next_after"].as_str() {
                println!("more: --after {next}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Percent-encodes a query value (every byte but unreserved ones).
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
