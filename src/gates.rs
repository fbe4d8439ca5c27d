//! `drover gates` (the inbox of questions jobs ask), and the printing `drover jobs gates` and
//! `drover jobs decide` share.

use std::process::ExitCode;

use clap::Args;
use drover_queue::{Gate, GateCursor, GateFilter, GateStatus, Store};
use serde_json::Value;

use crate::client::ApiClient;

#[derive(Args)]
pub struct InboxArgs {
    /// Only gates in this status: open (default), decided or timed_out.
    #[arg(long, default_value = "open", value_parser = parse_status)]
    pub status: GateStatus,
    /// Gates per page, 1 to 1000.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub limit: u16,
    /// Continue after this cursor (printed at the end of the previous page).
    #[arg(long)]
    pub cursor: Option<String>,
    /// Print the page as JSON.
    #[arg(long)]
    pub json: bool,
}

fn parse_status(s: &str) -> Result<GateStatus, String> {
    s.parse()
}

/// A decision as typed: JSON when it parses as JSON, else the text itself (`approve`).
pub fn parse_decision(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

fn short(value: &Option<Value>) -> String {
    match value {
        None => "-".into(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// Prints gates as a table (or JSON).
pub fn print_gates(gates: &[Gate], json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(gates)?);
        return Ok(());
    }
    if gates.is_empty() {
        println!("no gates");
        return Ok(());
    }
    println!(
        "{:<36}  {:<24}  {:<9}  {:<12}  {:<20}  prompt",
        "job", "key", "status", "decision", "deadline"
    );
    for g in gates {
        let choices = g
            .decisions
            .as_ref()
            .map(|d| {
                let list: Vec<String> = d.iter().map(|v| short(&Some(v.clone()))).collect();
                format!(" [{}]", list.join(" / "))
            })
            .unwrap_or_default();
        println!(
            "{:<36}  {:<24}  {:<9}  {:<12}  {:<20}  {}{choices}",
            g.job_id,
            g.key,
            g.status,
            short(&g.decision),
            g.deadline.format("%Y-%m-%d %H:%M:%SZ"),
            g.prompt
        );
    }
    Ok(())
}

pub fn print_decided(gate: &Gate) {
    println!(
        "gate {} of job {}: {} ({})",
        gate.key,
        gate.job_id,
        short(&gate.decision),
        gate.status
    );
}

fn cursor(args: &InboxArgs) -> anyhow::Result<Option<GateCursor>> {
    args.cursor
        .as_deref()
        .map(|c| {
            GateCursor::parse(c)
                .ok_or_else(|| anyhow::anyhow!("--cursor: not a cursor `drover gates` printed"))
        })
        .transpose()
}

fn print_page(gates: &[Gate], next: Option<String>, json: bool) -> anyhow::Result<()> {
    print_gates(gates, json)?;
    if let (Some(next), false) = (next, json) {
        println!("more: drover gates --cursor {next}");
    }
    Ok(())
}

/// `drover gates` on the store.
pub async fn run(store: &dyn Store, args: InboxArgs) -> anyhow::Result<ExitCode> {
    let page = store
        .gate_inbox(&GateFilter {
            status: Some(args.status),
            after: cursor(&args)?,
            limit: args.limit as usize,
        })
        .await?;
    print_page(&page.gates, page.next.map(|c| c.token()), args.json)?;
    Ok(ExitCode::SUCCESS)
}

/// `drover gates` through the HTTP API.
pub async fn run_api(client: &ApiClient, args: InboxArgs) -> anyhow::Result<ExitCode> {
    cursor(&args)?;
    let mut path = format!("/v1/gates?status={}&limit={}", args.status, args.limit);
    if let Some(c) = &args.cursor {
        path.push_str(&format!("&cursor={c}"));
    }
    let body = client.get_json(&path).await?;
    let gates: Vec<Gate> = serde_json::from_value(body["gates"].clone())?;
    let next = body["next_cursor"].as_str().map(String::from);
    print_page(&gates, next, args.json)?;
    Ok(ExitCode::SUCCESS)
}
