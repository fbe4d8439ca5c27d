//! The OpenAPI document, as true as the handlers: utoipa's document from the route
//! annotations ([`crate::ops::ApiDoc`]), then what the annotations cannot say, added here in
//! one place:
//!
//! - the answers every route can give from a layer: 401 on `/v1` (the token), 403 (the
//!   `Host` and cross-site checks), 503 (the request deadline, an unreachable store), and
//!   on routes with a body 400, 413, 415 and 422;
//! - the constraints the validation enforces: ranges, lengths, the queue-name and no-NUL
//!   patterns, the status enum, and `kind` as the kinds this process registered, each
//!   with the schema of its `config` (a `oneOf` on `kind`);
//! - links from `POST /v1/jobs` to the routes that take the new job's id.
//!
//! `tests/openapi.rs` checks that every route of the router is in the document, and
//! `scripts/test-schemathesis` checks the document against a live server.

use drover_queue::job::{MAX_IDEMPOTENCY_KEY_LEN, MAX_QUEUE_NAME_LEN};
use drover_queue::schedule::MAX_ID_LEN;
use drover_queue::JobStatus;
use drover_worker::Registry;
use serde_json::{json, Map, Value};
use utoipa::OpenApi as _;

use crate::ops::ApiDoc;

/// Text without U+0000, which every store refuses (see `NewJob::validate`).
const NO_NUL: &str = "^[^\\u0000]*$";

const ERROR_BODY: &str = "#/components/schemas/ErrorBody";

/// The document for a server whose jobs are checked by `registry`.
pub fn document(registry: &Registry) -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_else(|_| json!({}));
    // utoipa writes 3.1; the schemas below use 3.1's JSON Schema (`type` lists, `const`).
    add_layer_answers(&mut doc);
    constrain_parameters(&mut doc);
    constrain_gates(&mut doc);
    constrain_suppressions(&mut doc);
    constrain_profiles(&mut doc);
    constrain_new_job(&mut doc, registry);
    add_links(&mut doc);
    if let Some(batch) = doc.pointer_mut(&format!(
        "/paths/{}/post/requestBody/content/application~1json/schema",
        pointer_escape("/v1/jobs/batch")
    )) {
        batch["minItems"] = json!(1);
        batch["maxItems"] = json!(crate::routes::MAX_BATCH);
    }
    doc
}

fn error(description: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": { "$ref": ERROR_BODY } } }
    })
}

/// Adds `status` to an operation's responses unless its annotation declared it.
fn declare(op: &mut Value, status: &str, answer: Value) {
    if let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) {
        responses.entry(status).or_insert(answer);
    }
}

fn operations(doc: &mut Value) -> impl Iterator<Item = (String, String, &mut Value)> {
    doc.get_mut("paths")
        .and_then(Value::as_object_mut)
        .into_iter()
        .flat_map(|paths| paths.iter_mut())
        .flat_map(|(path, item)| {
            let path = path.clone();
            item.as_object_mut()
                .into_iter()
                .flat_map(|methods| methods.iter_mut())
                .map(move |(method, op)| (path.clone(), method.clone(), op))
        })
}

fn add_layer_answers(doc: &mut Value) {
    for (path, _method, op) in operations(doc) {
        if path.starts_with("/v1/") {
            declare(
                op,
                "401",
                error("The token is missing or wrong (`Authorization: Bearer <token>`)"),
            );
        }
        declare(
            op,
            "403",
            error("`Host` is not a name of this server, or a state-changing request is cross-site"),
        );
        declare(
            op,
            "503",
            error("No answer within api.request_timeout, or the store is unreachable"),
        );
        if op.get("requestBody").is_some() {
            declare(
                op,
                "413",
                json!({ "description": "The body is larger than api.max_body_bytes" }),
            );
        }
        // `/v1` bodies are JSON; the unsubscribe form's is not parsed.
        if op.get("requestBody").is_some() && path.starts_with("/v1/") {
            declare(op, "400", error("The body is not JSON"));
            declare(op, "415", error("`Content-Type` is not application/json"));
            declare(
                op,
                "422",
                error("A field is invalid (the message names it)"),
            );
        }
    }
}

/// The schema of the named parameter of every operation that has one.
fn parameters<'a>(doc: &'a mut Value, name: &'a str) -> impl Iterator<Item = &'a mut Value> + 'a {
    operations(doc)
        .filter_map(|(_, _, op)| op.get_mut("parameters").and_then(Value::as_array_mut))
        .flat_map(|params| params.iter_mut())
        .filter(move |param| param["name"] == name)
        .map(|param| &mut param["schema"])
}

/// The parameters of one operation, by name.
fn operation_parameters<'a>(
    doc: &'a mut Value,
    path: &str,
    method: &str,
) -> impl Iterator<Item = &'a mut Value> {
    doc.pointer_mut(&format!(
        "/paths/{}/{method}/parameters",
        pointer_escape(path)
    ))
    .and_then(Value::as_array_mut)
    .into_iter()
    .flatten()
}

/// The gate routes: their own status enum and cursor, and gate keys by their pattern.
fn constrain_gates(doc: &mut Value) {
    for param in operation_parameters(doc, "/v1/gates", "get") {
        match param["name"].as_str() {
            Some("status") => {
                param["schema"] =
                    json!({ "type": "string", "enum": ["open", "decided", "timed_out"] })
            }
            Some("cursor") => {
                param["schema"] = json!({
                    "type": "string",
                    "pattern": "^-?[0-9]{1,15}\\.[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\\.[A-Za-z0-9._:-]{1,128}$"
                })
            }
            _ => {}
        }
    }
    for param in operation_parameters(doc, "/v1/jobs/{id}/gates/{key}", "post") {
        if param["name"] == "key" {
            param["schema"] = json!({ "type": "string", "pattern": "^[A-Za-z0-9._:-]{1,128}$" });
        }
    }
}

/// The suppression routes: `after` is an address (not an event number), a new
/// suppression's `email` holds one `@` (the rest of the address rule, `normalise_email`'s,
/// is a 422 naming `email`), and an unsubscribe token has its shape.
fn constrain_suppressions(doc: &mut Value) {
    for param in operation_parameters(doc, "/v1/suppressions", "get") {
        if param["name"] == "after" {
            param["schema"] = json!({ "type": "string", "pattern": NO_NUL });
        }
    }
    if let Some(fields) = doc.pointer_mut("/components/schemas/NewSuppression/properties") {
        fields["email"] = json!({
            "type": "string",
            "pattern": "^[^@\\u0000]+@[^@\\u0000]+$",
        });
        fields["note"] = json!({
            "type": ["string", "null"],
            "maxLength": crate::suppressions::MAX_NOTE_BYTES,
            "pattern": NO_NUL,
        });
    }
    for method in ["get", "post"] {
        for param in operation_parameters(doc, "/u/{token}", method) {
            if param["name"] == "token" {
                param["schema"] = json!({
                    "type": "string",
                    "pattern": "^[A-Za-z0-9_-]{2,}\\.[A-Za-z0-9_-]{22}$",
                });
            }
        }
    }
}

/// The profile routes: user ids and sites by their patterns, the ledger's `after` as a
/// posting key, the résumé as PDF bytes, and a session as a list of WebDriver cookies.
fn constrain_profiles(doc: &mut Value) {
    use drover_queue::profile::MAX_USER_ID_LEN;
    for (path, _, op) in operations(doc) {
        if !path.starts_with("/v1/profiles/") {
            continue;
        }
        for param in op
            .get_mut("parameters")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            let schema = match param["name"].as_str() {
                Some("user_id") => json!({
                    "type": "string",
                    "pattern": format!("^[A-Za-z0-9._@-]{{1,{MAX_USER_ID_LEN}}}$"),
                }),
                Some("site") => json!({
                    "type": "string",
                    "pattern": format!("^[A-Za-z0-9._-]{{1,{MAX_USER_ID_LEN}}}$"),
                }),
                Some("after") => json!({ "type": "string", "pattern": NO_NUL }),
                Some("filename") => json!({
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 255,
                    "pattern": "^[^\\u0000-\\u001f\\u007f/\\\\\"]*[^\\u0000-\\u0020\\u007f/\\\\\".][^\\u0000-\\u001f\\u007f/\\\\\"]*$",
                }),
                _ => continue,
            };
            param["schema"] = schema;
        }
    }
    if let Some(content) = doc.pointer_mut(&format!(
        "/paths/{}/put/requestBody/content",
        pointer_escape("/v1/profiles/{user_id}/resume")
    )) {
        // 5 MiB at most: said in the description, not as `maxLength` (a fuzzer would make
        // a body of that size for each negative example).
        let binary = json!({ "schema": { "type": "string", "format": "binary" } });
        *content = json!({
            "application/pdf": binary,
            "application/octet-stream": binary,
        });
    }
    if let Some(fields) = doc.pointer_mut("/components/schemas/Profile/properties") {
        // The rest of the address rule (`normalise_email`'s) is a 422 naming `email`.
        fields["email"] =
            json!({ "type": "string", "pattern": "^[^@\\s\\u0000]+@[^@\\s\\u0000]+$" });
        fields["min_salary"] = json!({
            "type": ["integer", "null"],
            "minimum": 0,
            "maximum": drover_queue::profile::MAX_SALARY,
        });
        fields["name"] = json!({
            "type": "string",
            "minLength": 1,
            "maxLength": drover_queue::profile::MAX_TEXT_LEN,
            "pattern": "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$",
        });
    }
    if let Some(body) = doc.pointer_mut(&format!(
        "/paths/{}/put/requestBody/content/application~1json/schema",
        pointer_escape("/v1/profiles/{user_id}/sessions/{site}")
    )) {
        let text = json!({ "type": "string", "pattern": NO_NUL });
        *body = json!({
            "type": "array",
            "maxItems": drover_queue::seal::MAX_COOKIES,
            "items": {
                "type": "object",
                "required": ["name", "value"],
                "additionalProperties": false,
                "properties": {
                    "name": { "type": "string", "minLength": 1, "pattern": NO_NUL },
                    "value": text,
                    "path": text,
                    "domain": text,
                    "secure": { "type": "boolean" },
                    "httpOnly": { "type": "boolean" },
                    "expiry": { "type": "integer", "minimum": 0, "maximum": u64::MAX },
                    "sameSite": text,
                }
            }
        });
    }
}

fn constrain_parameters(doc: &mut Value) {
    let statuses: Vec<&str> = JobStatus::ALL.iter().map(|s| s.as_str()).collect();
    for schema in parameters(doc, "status") {
        *schema = json!({ "type": "string", "enum": statuses });
    }
    for schema in parameters(doc, "limit") {
        *schema = json!({ "type": "integer", "minimum": 1, "maximum": 1000 });
    }
    for schema in parameters(doc, "cursor") {
        *schema = json!({ "type": "string", "format": "uuid" });
    }
    for name in ["after", "Last-Event-ID"] {
        for schema in parameters(doc, name) {
            *schema = json!({ "type": "integer", "minimum": 0, "maximum": i64::MAX });
        }
    }
    for name in ["kind", "created_by"] {
        for schema in parameters(doc, name) {
            *schema = json!({ "type": "string", "pattern": NO_NUL });
        }
    }
    // A job's id is a UUID; a schedule's is the client's name for it.
    for (path, _, op) in operations(doc) {
        let schedule = path.starts_with("/v1/schedules/");
        for param in op
            .get_mut("parameters")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
            .filter(|param| param["name"] == "id")
        {
            param["schema"] = if schedule {
                schedule_id()
            } else {
                json!({ "type": "string", "format": "uuid" })
            };
        }
    }
    if let Some(params) = doc
        .pointer_mut(&format!(
            "/paths/{}/get/parameters",
            pointer_escape("/v1/jobs/{id}/artifacts/{name}")
        ))
        .and_then(Value::as_array_mut)
    {
        for param in params.iter_mut().filter(|p| p["name"] == "name") {
            param["schema"] = json!({
                "type": "string",
                "pattern": format!(
                    r"^([A-Za-z0-9_-][A-Za-z0-9._-]{{0,{n}}}|\.[A-Za-z0-9_-]|\.[A-Za-z0-9._-]{{2,{n}}})$",
                    n = drover_queue::MAX_ARTIFACT_NAME_LEN - 1
                ),
            });
        }
    }
    // Queue names (the `name` of /v1/queues/{name}/…) follow the store's rule.
    for (path, _, op) in operations(doc) {
        if !path.starts_with("/v1/queues/") {
            continue;
        }
        for param in op
            .get_mut("parameters")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            if param["name"] == "name" {
                param["schema"] = queue_name();
            }
        }
    }
}

fn schedule_id() -> Value {
    json!({
        "type": "string",
        "pattern": format!("^[A-Za-z0-9._-]{{1,{MAX_ID_LEN}}}$"),
    })
}

fn queue_name() -> Value {
    json!({
        "type": "string",
        "pattern": format!("^[A-Za-z0-9._-]{{1,{MAX_QUEUE_NAME_LEN}}}$"),
    })
}

/// Any JSON value whose strings and keys hold no U+0000: what a job's `config` may hold.
fn json_value() -> Value {
    json!({
        "description": "Any JSON value; no string or key in it may hold U+0000",
        "anyOf": [
            { "type": ["null", "boolean", "number"] },
            { "type": "string", "pattern": NO_NUL },
            { "type": "array", "items": { "$ref": "#/components/schemas/JsonValue" } },
            {
                "type": "object",
                "propertyNames": { "pattern": NO_NUL },
                "additionalProperties": { "$ref": "#/components/schemas/JsonValue" }
            }
        ]
    })
}

/// `kind`'s published config schema, with the no-NUL rule on whatever it leaves open.
fn config_schema(registry: &Registry, kind: &str) -> Value {
    let mut schema = registry
        .config_schema(kind)
        .cloned()
        .unwrap_or_else(|| json!({ "type": "object" }));
    if let Some(object) = schema.as_object_mut() {
        object
            .entry("propertyNames")
            .or_insert(json!({ "pattern": NO_NUL }));
        object
            .entry("additionalProperties")
            .or_insert(json!({ "$ref": "#/components/schemas/JsonValue" }));
    }
    schema
}

fn constrain_new_job(doc: &mut Value, registry: &Registry) {
    let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    schemas.insert("JsonValue".into(), json_value());
    let Some(base) = schemas.get_mut("NewJob") else {
        return;
    };
    let text = || json!({ "type": "string", "pattern": NO_NUL });
    let nullable_text = || json!({ "type": ["string", "null"], "pattern": NO_NUL });
    let props = &mut base["properties"];
    props["goal"] = text();
    props["created_by"] = nullable_text();
    props["idempotency_key"] = json!({
        "type": ["string", "null"], "pattern": NO_NUL,
        "minLength": 1, "maxLength": MAX_IDEMPOTENCY_KEY_LEN,
        "description": "Submitting the same body with the same key again returns the first job (200)"
    });
    let mut queue = queue_name();
    queue["type"] = json!(["string", "null"]);
    props["queue"] = queue;
    props["max_attempts"] = json!({ "type": ["integer", "null"], "minimum": 1, "maximum": 1000 });
    props["run_at"] = json!({ "type": ["string", "null"], "format": "date-time" });
    props["config"] = config_schema(registry, "");
    if let Some(timeouts) = schemas
        .get_mut("Timeouts")
        .and_then(|t| t.get_mut("properties"))
        .and_then(Value::as_object_mut)
    {
        for seconds in timeouts.values_mut() {
            *seconds = json!({
                "type": ["integer", "null"], "minimum": 1, "maximum": i64::MAX as u64 / 1000,
                "description": "Seconds"
            });
        }
    }
    let names = registry.names();
    if names.is_empty() {
        // Every submission is refused with 422 naming `kind`; the schema says so.
        let base = &mut schemas["NewJob"];
        base["properties"]["kind"] = json!({
            "type": "string",
            "description": "No kinds are registered in this process: every kind is refused",
            "not": {}
        });
        return;
    }
    // One variant per kind: its name as `kind`, its schema as `config`.
    let base = schemas["NewJob"].clone();
    let variants: Vec<Value> = names
        .iter()
        .map(|name| {
            let mut variant = base.clone();
            variant["title"] = json!(format!("NewJob ({name})"));
            variant["properties"]["kind"] = json!({ "type": "string", "const": name });
            let config = config_schema(registry, name);
            // A kind whose config has required keys needs the config itself.
            let needs_config = config
                .get("required")
                .and_then(Value::as_array)
                .is_some_and(|r| !r.is_empty());
            variant["properties"]["config"] = config;
            if needs_config {
                match variant["required"].as_array_mut() {
                    Some(required) => required.push(json!("config")),
                    None => variant["required"] = json!(["kind", "goal", "config"]),
                }
            }
            variant
        })
        .collect();
    let description = base
        .get("description")
        .cloned()
        .unwrap_or(json!("A job as submitted"));
    schemas.insert(
        "NewJob".into(),
        json!({ "description": description, "oneOf": variants }),
    );
}

/// `POST /v1/jobs` answers the job; these routes take its `id`. (The event stream is left
/// out: it stays open until the job ends.)
fn add_links(doc: &mut Value) {
    let targets = [
        ("GetJob", "/v1/jobs/{id}", "get"),
        ("PauseJob", "/v1/jobs/{id}/pause", "post"),
        ("ResumeJob", "/v1/jobs/{id}/resume", "post"),
        ("CancelJob", "/v1/jobs/{id}/cancel", "post"),
        ("JobCheckpoints", "/v1/jobs/{id}/checkpoints", "get"),
        ("JobArtifacts", "/v1/jobs/{id}/artifacts", "get"),
    ];
    let ids: Vec<(String, Value)> = targets
        .iter()
        .filter_map(|(name, path, method)| {
            let op = doc.pointer(&format!("/paths/{}/{method}", pointer_escape(path)))?;
            let id = op.get("operationId")?.clone();
            Some((
                name.to_string(),
                json!({ "operationId": id, "parameters": { "id": "$response.body#/id" } }),
            ))
        })
        .collect();
    let links: Map<String, Value> = ids.into_iter().collect();
    for status in ["200", "201"] {
        if let Some(answer) = doc.pointer_mut(&format!(
            "/paths/{}/post/responses/{status}",
            pointer_escape("/v1/jobs")
        )) {
            answer["links"] = Value::Object(links.clone());
        }
    }
}

fn pointer_escape(path: &str) -> String {
    path.replace('~', "~0").replace('/', "~1")
}
