//! Mail transports: SMTP (lettre) and a Resend-shaped HTTP API. Neither is called unless the
//! operator configured one (`mail.transport`) and the job asked to send.
//!
//! What a send can come to ([`Outcome`]) is what the effect ledger records:
//! - `Sent` with the server's id (the HTTP API's `id`, SMTP's queue answer);
//! - `Rejected`: the server refused it for good (5xx; a 4xx from the API that is not a rate
//!   limit) — it was not delivered;
//! - `Deferred`: refused for now (SMTP 4xx) — not delivered, safe to send again later;
//! - `Unknown`: the message may or may not have been taken (SMTP: the connection broke while
//!   sending). It is never sent again.

use std::fmt;
use std::time::Duration;

use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::http::{Auth, CallError, Request, Secret, Service};

/// One message.
#[derive(Debug, Clone)]
pub struct Message {
    pub from: String,
    pub to: String,
    pub subject: String,
    pub body: String,
    /// Without the angle brackets: `<local>@<domain>`.
    pub message_id: String,
    /// The unsubscribe URL (`List-Unsubscribe: <url>` with `List-Unsubscribe-Post`).
    pub unsubscribe_url: Option<String>,
    /// The ledger key, sent as `Idempotency-Key` by the HTTP transport.
    pub idempotency_key: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Sent { id: String },
    Rejected { reason: String },
    Deferred { reason: String },
    Unknown,
}

/// A configured transport.
#[derive(Clone)]
pub enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Http(Service),
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Transport::Smtp(_) => f.write_str("Transport::Smtp"),
            Transport::Http(service) => write!(f, "Transport::Http({service:?})"),
        }
    }
}

impl Transport {
    /// SMTP from `smtp://host:port` (plain, for relays on a private network and the
    /// sandbox), `smtp://…?tls=required` (STARTTLS) or `smtps://host:port`, with optional
    /// `user:password@`.
    pub fn smtp(url: &str, timeout: Duration) -> Result<Self, String> {
        let builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| format!("mail.smtp_url: {}", redact_url_error(&e.to_string())))?;
        Ok(Transport::Smtp(builder.timeout(Some(timeout)).build()))
    }

    /// The Resend-shaped API at `base_url` (`POST {base_url}/emails`).
    pub fn http(base_url: &str, api_key: Secret, timeout: Duration) -> Result<Self, String> {
        Service::new("mail", base_url, Auth::Bearer(api_key), timeout).map(Transport::Http)
    }

    /// Whether the transport can take messages now (an SMTP server answers): checked before
    /// a send is recorded, so a server that is down defers the send instead of making its
    /// outcome unknown.
    pub async fn ready(&self) -> bool {
        match self {
            Transport::Smtp(smtp) => smtp.test_connection().await.unwrap_or(false),
            Transport::Http(_) => true,
        }
    }

    /// Sends `message` once. HTTP errors that may be retried come back as `Err` (the API
    /// honours the idempotency key, so sending again is safe); SMTP never errs: every end is
    /// an [`Outcome`].
    pub async fn send(&self, message: &Message) -> Result<Outcome, CallError> {
        match self {
            Transport::Smtp(smtp) => Ok(send_smtp(smtp, message).await),
            Transport::Http(service) => send_http(service, message).await,
        }
    }
}

fn redact_url_error(message: &str) -> String {
    // lettre's URL errors do not echo the URL, but be sure no password slips through.
    if message.contains('@') {
        "not a valid smtp:// or smtps:// URL".into()
    } else {
        message.to_string()
    }
}

fn header(name: &'static str, value: String) -> HeaderValue {
    HeaderValue::new(HeaderName::new_from_ascii_str(name), value)
}

async fn send_smtp(smtp: &AsyncSmtpTransport<Tokio1Executor>, message: &Message) -> Outcome {
    let parse = |field: &str, value: &str| {
        value
            .parse::<Mailbox>()
            .map_err(|e| format!("{field} `{value}` is not an address: {e}"))
    };
    let built = (|| {
        let mut builder = lettre::Message::builder()
            .from(parse("from", &message.from)?)
            .to(parse("to", &message.to)?)
            .subject(message.subject.clone())
            .message_id(Some(format!("<{}>", message.message_id)))
            .header(ContentType::TEXT_PLAIN);
        if let Some(url) = &message.unsubscribe_url {
            builder = builder
                .raw_header(header("List-Unsubscribe", format!("<{url}>")))
                .raw_header(header(
                    "List-Unsubscribe-Post",
                    "List-Unsubscribe=One-Click".into(),
                ));
        }
        builder
            .body(message.body.clone())
            .map_err(|e| format!("the message cannot be built: {e}"))
    })();
    let email = match built {
        Ok(email) => email,
        Err(reason) => return Outcome::Rejected { reason },
    };
    match smtp.send(email).await {
        Ok(response) => Outcome::Sent {
            id: response
                .message()
                .next()
                .map(str::to_string)
                .unwrap_or_else(|| format!("{}", response.code())),
        },
        Err(err) if err.is_permanent() => Outcome::Rejected {
            reason: format!("SMTP {}", smtp_code(&err)),
        },
        Err(err) if err.is_transient() => Outcome::Deferred {
            reason: format!("SMTP {}", smtp_code(&err)),
        },
        // The connection broke or timed out mid-conversation: it may have been taken.
        Err(_) => Outcome::Unknown,
    }
}

fn smtp_code(err: &lettre::transport::smtp::Error) -> String {
    err.status()
        .map(|code| code.to_string())
        .unwrap_or_else(|| "error".into())
}

async fn send_http(service: &Service, message: &Message) -> Result<Outcome, CallError> {
    let mut headers = serde_json::Map::new();
    if let Some(url) = &message.unsubscribe_url {
        headers.insert("List-Unsubscribe".into(), json!(format!("<{url}>")));
        headers.insert(
            "List-Unsubscribe-Post".into(),
            json!("List-Unsubscribe=One-Click"),
        );
    }
    headers.insert(
        "Message-ID".into(),
        json!(format!("<{}>", message.message_id)),
    );
    let body = json!({
        "from": message.from,
        "to": [message.to],
        "subject": message.subject,
        "text": message.body,
        "headers": headers,
    });
    let request = Request {
        body: Some(body),
        headers: vec![("idempotency-key", message.idempotency_key.clone())],
    };
    match service.post("/emails", request).await {
        Ok(reply) => {
            #[derive(Deserialize)]
            struct Sent {
                id: String,
            }
            let sent: Sent = reply.json("mail")?;
            Ok(Outcome::Sent { id: sent.id })
        }
        Err(CallError::Permanent { message, .. }) => Ok(Outcome::Rejected { reason: message }),
        Err(CallError::NotFound { .. }) => Ok(Outcome::Rejected {
            reason: "HTTP 404".into(),
        }),
        Err(other) => Err(other),
    }
}
