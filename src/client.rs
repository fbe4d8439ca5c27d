//! The CLI's client of the HTTP API (`--api <url>` / `DROVER_API`), with an SSE reader
//! that reconnects with `Last-Event-ID`.

use std::time::Duration;

use anyhow::{anyhow, Context as _};
use drover_queue::{Job, NewJob};
use futures_util::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// One Server-Sent Event.
#[derive(Debug, Clone)]
pub struct SseMessage {
    pub id: Option<i64>,
    pub event: String,
    pub data: String,
}

pub struct ApiClient {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl ApiClient {
    pub fn new(base: &str, token: Option<String>) -> anyhow::Result<Self> {
        let base = base.trim_end_matches('/').to_string();
        reqwest::Url::parse(&base).with_context(|| format!("--api: `{base}` is not a URL"))?;
        Ok(ApiClient {
            base,
            token,
            http: reqwest::Client::new(),
        })
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<(StatusCode, Value)> {
        let mut request = self.request(method, path);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach the API at {}", self.base))?;
        let status = response.status();
        let value: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let message = value["error"]["message"]
                .as_str()
                .unwrap_or("no error message");
            return Err(anyhow!("{message} (HTTP {})", status.as_u16()));
        }
        Ok((status, value))
    }

    fn job(value: Value) -> anyhow::Result<Job> {
        serde_json::from_value(value).context("the API answered with something that is not a job")
    }

    /// Submits a job; true when it was created (false: it existed by idempotency key).
    pub async fn submit(&self, job: &NewJob) -> anyhow::Result<(Job, bool)> {
        let body = serde_json::to_value(job)?;
        let (status, value) = self.call(Method::POST, "/v1/jobs", Some(&body)).await?;
        Ok((Self::job(value)?, status == StatusCode::CREATED))
    }

    pub async fn get(&self, id: &str) -> anyhow::Result<Job> {
        Self::job(
            self.call(Method::GET, &format!("/v1/jobs/{id}"), None)
                .await?
                .1,
        )
    }

    /// `GET /v1/jobs?…`: the jobs and the next cursor.
    pub async fn list(
        &self,
        query: &[(&str, String)],
    ) -> anyhow::Result<(Vec<Job>, Option<String>)> {
        let query: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let (_, value) = self
            .call(Method::GET, &format!("/v1/jobs?{}", query.join("&")), None)
            .await?;
        let jobs = serde_json::from_value(value["jobs"].clone()).context("job list")?;
        Ok((jobs, value["next_cursor"].as_str().map(String::from)))
    }

    /// `POST /v1/jobs/{id}/{action}` (pause, resume, cancel).
    pub async fn control(&self, id: &str, action: &str) -> anyhow::Result<Job> {
        Self::job(
            self.call(Method::POST, &format!("/v1/jobs/{id}/{action}"), None)
                .await?
                .1,
        )
    }

    /// The live workers (`GET /v1/workers`).
    pub async fn workers(&self) -> anyhow::Result<Vec<Value>> {
        let value = self.call(Method::GET, "/v1/workers", None).await?.1;
        Ok(value["workers"].as_array().cloned().unwrap_or_default())
    }

    pub async fn queues(&self) -> anyhow::Result<Value> {
        Ok(self.call(Method::GET, "/v1/queues", None).await?.1)
    }

    /// `GET` of an API path, its JSON body.
    pub async fn get_json(&self, path: &str) -> anyhow::Result<Value> {
        Ok(self.call(Method::GET, path, None).await?.1)
    }

    /// `POST` of a JSON body to an API path, its JSON answer.
    pub async fn post_json(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        Ok(self.call(Method::POST, path, Some(body)).await?.1)
    }

    /// `POST` to an API path without a body, its JSON answer.
    pub async fn post_empty(&self, path: &str) -> anyhow::Result<Value> {
        Ok(self.call(Method::POST, path, None).await?.1)
    }

    /// `PUT` of a JSON body to an API path, its JSON answer.
    pub async fn put_json(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        Ok(self.call(Method::PUT, path, Some(body)).await?.1)
    }

    /// `PUT` of raw bytes (a résumé) with `content_type` and query `params`, its JSON answer.
    pub async fn put_bytes(
        &self,
        path: &str,
        params: &[(&str, &str)],
        content_type: &str,
        body: Vec<u8>,
    ) -> anyhow::Result<Value> {
        let response = self
            .request(Method::PUT, path)
            .query(params)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body)
            .send()
            .await
            .with_context(|| format!("cannot reach the API at {}", self.base))?;
        let status = response.status();
        let value: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let message = value["error"]["message"]
                .as_str()
                .unwrap_or("no error message");
            return Err(anyhow!("{message} (HTTP {})", status.as_u16()));
        }
        Ok(value)
    }

    pub async fn delete(&self, path: &str) -> anyhow::Result<()> {
        self.call(Method::DELETE, path, None).await.map(|_| ())
    }

    pub async fn queue(&self, name: &str, action: &str) -> anyhow::Result<()> {
        self.call(Method::POST, &format!("/v1/queues/{name}/{action}"), None)
            .await
            .map(|_| ())
    }

    /// Follows a job's SSE stream after `after`, calling `on_event` for each event, until
    /// `event: end`. A dropped connection is resumed with `Last-Event-ID`.
    pub async fn follow(
        &self,
        id: &str,
        mut after: i64,
        mut on_event: impl FnMut(&SseMessage),
    ) -> anyhow::Result<()> {
        let mut failures = 0u32;
        loop {
            let response = self
                .request(Method::GET, &format!("/v1/jobs/{id}/events"))
                .header("Last-Event-ID", after.to_string())
                .send()
                .await;
            let response = match response {
                Ok(r) if r.status().is_success() => r,
                Ok(r) if r.status().is_client_error() => {
                    let status = r.status();
                    let value: Value = r.json().await.unwrap_or(Value::Null);
                    let message = value["error"]["message"].as_str().unwrap_or("refused");
                    return Err(anyhow!("{message} (HTTP {})", status.as_u16()));
                }
                Ok(r) => {
                    failures += 1;
                    tracing::warn!(status = %r.status(), "event stream refused; retrying");
                    retry_pause(failures).await?;
                    continue;
                }
                Err(err) => {
                    failures += 1;
                    tracing::warn!(error = %err, "event stream unreachable; retrying");
                    retry_pause(failures).await?;
                    continue;
                }
            };
            let mut body = response.bytes_stream();
            let mut buffer = String::new();
            loop {
                let chunk = match body.next().await {
                    Some(Ok(chunk)) => chunk,
                    Some(Err(_)) | None => break,
                };
                failures = 0;
                buffer.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buffer.find("\n\n") {
                    let block: String = buffer.drain(..end + 2).collect();
                    let Some(message) = parse_block(&block) else {
                        continue;
                    };
                    if let Some(id) = message.id {
                        after = id;
                    }
                    if message.event == "end" {
                        return Ok(());
                    }
                    on_event(&message);
                }
            }
            failures += 1;
            retry_pause(failures).await?;
        }
    }
}

async fn retry_pause(failures: u32) -> anyhow::Result<()> {
    if failures > 30 {
        return Err(anyhow!("lost the event stream and could not reconnect"));
    }
    tokio::time::sleep(Duration::from_millis(200 * u64::from(failures.min(10)))).await;
    Ok(())
}

/// Parses one SSE block (lines up to a blank line); comments (keep-alives) give `None`.
pub fn parse_block(block: &str) -> Option<SseMessage> {
    let mut message = SseMessage {
        id: None,
        event: "message".into(),
        data: String::new(),
    };
    let mut any = false;
    for line in block.lines() {
        if line.starts_with(':') || line.is_empty() {
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        any = true;
        match field {
            "id" => message.id = value.parse().ok(),
            "event" => message.event = value.to_string(),
            "data" => {
                if !message.data.is_empty() {
                    message.data.push('\n');
                }
                message.data.push_str(value);
            }
            _ => {}
        }
    }
    any.then_some(message)
}

#[cfg(test)]
mod tests {
    use super::parse_block;

    #[test]
    fn parses_events_and_skips_comments() {
        let m = parse_block("id: 7\nevent: progress\ndata: {\"a\":1}\n\n").expect("event");
        assert_eq!(
            (m.id, m.event.as_str(), m.data.as_str()),
            (Some(7), "progress", "{\"a\":1}")
        );
        assert!(parse_block(":\n\n").is_none());
        let m = parse_block("event: end\ndata: {}\n\n").expect("end");
        assert_eq!((m.id, m.event.as_str()), (None, "end"));
    }
}
