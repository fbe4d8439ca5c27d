//! An SMTP sink (RFC 5321's EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT; no TLS, no AUTH)
//! that keeps every message it accepts and can be told, per recipient, to answer 4xx or 5xx,
//! or to drop the connection after DATA without answering: the ambiguous outcome a client must
//! record as unknown and never resend.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use crate::log::Log;

/// What the sink does with a message to a recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// Answer `RCPT` with 450 (mailbox busy: try again later).
    Defer,
    /// Answer `RCPT` with 550 (no such mailbox).
    Reject,
    /// Take the message (it is kept) and close the connection before answering DATA.
    DropAfterData,
}

/// A message the sink took.
#[derive(Debug, Clone, Serialize)]
pub struct Message {
    pub from: String,
    pub to: Vec<String>,
    /// The message as sent (headers and body, dot-unstuffed).
    pub data: String,
    pub message_id: Option<String>,
    pub at: DateTime<Utc>,
    /// True when the connection was dropped before the sink answered DATA.
    pub unanswered: bool,
}

impl Message {
    /// The value of header `name` (the first one, unfolded).
    pub fn header(&self, name: &str) -> Option<String> {
        header(&self.data, name)
    }
}

fn header(data: &str, name: &str) -> Option<String> {
    let mut lines = data.split("\r\n").take_while(|l| !l.is_empty()).peekable();
    while let Some(line) = lines.next() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        if key.eq_ignore_ascii_case(name) {
            let mut value = value.trim().to_string();
            while let Some(next) = lines.peek().filter(|l| l.starts_with([' ', '\t'])) {
                value.push(' ');
                value.push_str(next.trim());
                lines.next();
            }
            return Some(value);
        }
    }
    None
}

#[derive(Default)]
pub struct Sink {
    messages: Mutex<Vec<Message>>,
    rules: Mutex<HashMap<String, Rule>>,
    log: Arc<Log>,
}

impl Sink {
    pub fn new(log: Arc<Log>) -> Sink {
        Sink {
            log,
            ..Sink::default()
        }
    }

    pub fn messages(&self) -> Vec<Message> {
        self.messages
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Applies `rule` to every later message to `recipient` (`None` clears it).
    pub fn set_rule(&self, recipient: &str, rule: Option<Rule>) {
        let mut rules = self.rules.lock().unwrap_or_else(|p| p.into_inner());
        match rule {
            Some(rule) => rules.insert(recipient.to_lowercase(), rule),
            None => rules.remove(&recipient.to_lowercase()),
        };
    }

    fn rule(&self, recipient: &str) -> Option<Rule> {
        let rules = self.rules.lock().unwrap_or_else(|p| p.into_inner());
        rules.get(&recipient.to_lowercase()).copied()
    }

    pub async fn serve(self: Arc<Self>, listener: TcpListener) {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let sink = self.clone();
            tokio::spawn(async move {
                if let Err(err) = sink.session(stream).await {
                    tracing::debug!(error = %err, "smtp session ended");
                }
            });
        }
    }

    async fn session(&self, stream: TcpStream) -> std::io::Result<()> {
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read);
        write
            .write_all(b"220 sandbox.test ESMTP drover sandbox\r\n")
            .await?;
        let (mut from, mut to): (Option<String>, Vec<String>) = (None, Vec::new());
        let mut line = String::new();
        loop {
            line.clear();
            if lines.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            let command = line.trim_end().to_string();
            let verb = command
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_ascii_uppercase();
            let reply: &[u8] = match verb.as_str() {
                "EHLO" => {
                    b"250-sandbox.test\r\n250-8BITMIME\r\n250-PIPELINING\r\n250 SIZE 10485760\r\n"
                }
                "HELO" => b"250 sandbox.test\r\n",
                "MAIL" => match address(&command) {
                    Some(a) => {
                        (from, to) = (Some(a), Vec::new());
                        b"250 2.1.0 OK\r\n"
                    }
                    None => b"501 5.5.4 Syntax: MAIL FROM:<address>\r\n",
                },
                "RCPT" if from.is_none() => b"503 5.5.1 MAIL first\r\n",
                "RCPT" => match address(&command) {
                    None => b"501 5.5.4 Syntax: RCPT TO:<address>\r\n",
                    Some(a) => match self.rule(&a) {
                        Some(Rule::Defer) => b"450 4.2.1 Mailbox busy, try again later\r\n",
                        Some(Rule::Reject) => b"550 5.1.1 No such user here\r\n",
                        _ => {
                            to.push(a);
                            b"250 2.1.5 OK\r\n"
                        }
                    },
                },
                "DATA" if to.is_empty() => b"503 5.5.1 RCPT first\r\n",
                "DATA" => {
                    write
                        .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                        .await?;
                    let data = read_data(&mut lines).await?;
                    let drop = to.iter().any(|r| self.rule(r) == Some(Rule::DropAfterData));
                    let message = Message {
                        from: from.take().unwrap_or_default(),
                        to: std::mem::take(&mut to),
                        message_id: header(&data, "message-id"),
                        data,
                        at: Utc::now(),
                        unanswered: drop,
                    };
                    for r in &message.to {
                        self.log.count_recipient(r);
                    }
                    self.messages
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(message);
                    if drop {
                        return Ok(());
                    }
                    b"250 2.0.0 OK: queued\r\n"
                }
                "RSET" => {
                    (from, to) = (None, Vec::new());
                    b"250 2.0.0 OK\r\n"
                }
                "NOOP" => b"250 2.0.0 OK\r\n",
                "QUIT" => {
                    write.write_all(b"221 2.0.0 Bye\r\n").await?;
                    return Ok(());
                }
                _ => b"502 5.5.2 Command not recognized\r\n",
            };
            write.write_all(reply).await?;
        }
    }
}

/// The address of `MAIL FROM:<a>` or `RCPT TO:<a>`.
fn address(command: &str) -> Option<String> {
    let start = command.find('<')? + 1;
    let end = start + command[start..].find('>')?;
    let a = &command[start..end];
    (a.is_empty() || a.contains('@')).then(|| a.to_string())
}

/// The message after DATA, up to the line holding a single dot, dot-unstuffed.
async fn read_data<R: tokio::io::AsyncBufRead + Unpin>(lines: &mut R) -> std::io::Result<String> {
    let mut data = String::new();
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed in DATA",
            ));
        }
        let text = line.trim_end_matches(['\r', '\n']);
        if text == "." {
            return Ok(data);
        }
        data.push_str(text.strip_prefix('.').unwrap_or(text));
        data.push_str("\r\n");
    }
}
