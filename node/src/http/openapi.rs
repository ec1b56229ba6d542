//! The OpenAPI 3.1 document of the HTTP API, generated from the code that serves it.
//!
//! Every route is declared once, in [`super::routes::OPERATIONS`]: its method and path, the
//! handler, the type of its query, of its body and of every answer. The server registers
//! its handlers from that table and [`document`] describes the same table, so a route is
//! never served undocumented nor documented unserved. Each schema is derived (`schemars`)
//! from the Rust type the handler reads or writes, in JSON Schema 2020-12 (the dialect of
//! OpenAPI 3.1): the job spec with its kinds, every estimator with its parameters, every
//! answer and the error body. Doc comments on those types become the descriptions.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use meshml_client::api::ErrorBody;
use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::{json, Map, Value};

/// Where the schemas of named types go in the document.
const SCHEMAS: &str = "#/components/schemas";

/// Makes the schema of a type, adding the types it names to the generator's definitions.
pub type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

/// The schema of `T` (a reference to its definition, for a named type).
pub fn schema<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<T>()
}

/// An HTTP method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// GET.
    Get,
    /// POST.
    Post,
    /// PUT.
    Put,
    /// DELETE.
    Delete,
}

impl Method {
    /// The method as actix routes it.
    pub fn http(self) -> actix_web::http::Method {
        match self {
            Method::Get => actix_web::http::Method::GET,
            Method::Post => actix_web::http::Method::POST,
            Method::Put => actix_web::http::Method::PUT,
            Method::Delete => actix_web::http::Method::DELETE,
        }
    }

    /// The method's key in an OpenAPI path item.
    pub fn key(self) -> &'static str {
        match self {
            Method::Get => "get",
            Method::Post => "post",
            Method::Put => "put",
            Method::Delete => "delete",
        }
    }
}

/// A request or answer body.
#[derive(Debug, Clone, Copy)]
pub enum Body {
    /// None.
    Empty,
    /// JSON of this type.
    Json(SchemaFn),
    /// JSON or MessagePack (`application/msgpack`) of this type: a request in either, an
    /// answer as `Accept` asks (else in the request's format).
    Negotiated(SchemaFn),
    /// A file, in one of these media types.
    File(&'static [&'static str]),
    /// Any JSON value.
    AnyJson,
}

/// Who may call a route, and so which refusals every call may get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone.
    Open,
    /// The bearer token, when the node requires one (`401` without it).
    Token,
    /// The token, and a node running the mesh services (`503` on one that does not).
    Mesh,
}

/// One documented answer.
#[derive(Debug, Clone, Copy)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// When it is given.
    pub description: &'static str,
    /// Its body; `None` for a refusal, whose body is an [`ErrorBody`].
    pub body: Option<Body>,
    /// Headers it carries: name and meaning.
    pub headers: &'static [(&'static str, &'static str)],
}

/// A successful answer.
pub const fn ok(status: u16, description: &'static str, body: Body) -> Answer {
    Answer {
        status,
        description,
        body: Some(body),
        headers: &[],
    }
}

/// A successful answer with headers.
pub const fn ok_with(
    status: u16,
    description: &'static str,
    body: Body,
    headers: &'static [(&'static str, &'static str)],
) -> Answer {
    Answer {
        status,
        description,
        body: Some(body),
        headers,
    }
}

/// A refusal: `{"error": "..."}`.
pub const fn refused(status: u16, description: &'static str) -> Answer {
    Answer {
        status,
        description,
        body: None,
        headers: &[],
    }
}

/// One route: how it is served and how it is described.
#[derive(Debug)]
pub struct Operation {
    /// The operation's id in the document (`submitJob`).
    pub id: &'static str,
    /// Method.
    pub method: Method,
    /// Path, with `{param}` segments as actix routes them.
    pub path: &'static str,
    /// What it does.
    pub summary: &'static str,
    /// Who may call it.
    pub access: Access,
    /// Each `{param}` of the path: its name and meaning (`version` is an integer >= 1,
    /// the others strings).
    pub path_params: &'static [(&'static str, &'static str)],
    /// A struct whose fields are the query parameters.
    pub query: Option<SchemaFn>,
    /// The request body.
    pub body: Body,
    /// Every answer but the refusals [`Access`] adds.
    pub answers: &'static [Answer],
    /// Attaches the handler to the route.
    pub handler: fn(actix_web::Route) -> actix_web::Route,
}

impl Operation {
    /// Errors come as `Accept` asks (JSON or MessagePack) on routes that speak both.
    fn negotiates(&self) -> bool {
        matches!(self.body, Body::Negotiated(_))
    }
}

/// Registers every operation's handler.
pub fn register(operations: &'static [Operation], cfg: &mut actix_web::web::ServiceConfig) {
    for op in operations {
        cfg.route(
            op.path,
            (op.handler)(actix_web::web::method(op.method.http())),
        );
    }
}

fn settings() -> SchemaSettings {
    SchemaSettings::draft2020_12().with(|s| {
        s.definitions_path = SCHEMAS.into();
        s.meta_schema = None;
    })
}

fn content(generator: &mut SchemaGenerator, body: Body) -> Option<Value> {
    let mut media = Map::new();
    match body {
        Body::Empty => return None,
        Body::Json(f) => {
            media.insert("application/json".into(), json!({ "schema": f(generator) }));
        }
        Body::Negotiated(f) => {
            let s = f(generator);
            media.insert("application/json".into(), json!({ "schema": s }));
            media.insert("application/msgpack".into(), json!({ "schema": s }));
        }
        Body::File(types) => {
            for t in types {
                let schema = if t.starts_with("text/") {
                    json!({ "schema": { "type": "string" } })
                } else {
                    // Binary: OpenAPI 3.1 describes it by the media type alone.
                    json!({})
                };
                media.insert((*t).into(), schema);
            }
        }
        Body::AnyJson => {
            media.insert("application/json".into(), json!({ "schema": {} }));
        }
    }
    Some(Value::Object(media))
}

/// The query parameters a struct's schema describes, each with its field's doc comment.
fn query_parameters(f: SchemaFn) -> Vec<Value> {
    let mut inline = settings()
        .with(|s| s.inline_subschemas = true)
        .into_generator();
    let schema = f(&mut inline).to_value();
    let required: Vec<&str> = schema["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let Some(properties) = schema["properties"].as_object() else {
        return Vec::new();
    };
    properties
        .iter()
        .map(|(name, property)| {
            let mut property = property.clone();
            let mut description = Value::Null;
            if let Some(p) = property.as_object_mut() {
                description = p.remove("description").unwrap_or(Value::Null);
                // A parameter is absent or a value: an `Option`'s null is not sent.
                if p.get("default") == Some(&Value::Null) {
                    p.remove("default");
                }
                if let Some(Value::Array(types)) = p.get_mut("type") {
                    types.retain(|t| t != "null");
                    if types.len() == 1 {
                        let t = types.remove(0);
                        p.insert("type".into(), t);
                    }
                }
            }
            let mut p = json!({
                "name": name,
                "in": "query",
                "required": required.contains(&name.as_str()),
                "schema": property,
            });
            if !description.is_null() {
                p["description"] = description;
            }
            p
        })
        .collect()
}

fn path_parameter(name: &str, description: &str) -> Value {
    let schema = if name == "version" {
        json!({ "type": "integer", "minimum": 1 })
    } else {
        json!({ "type": "string" })
    };
    json!({
        "name": name,
        "in": "path",
        "required": true,
        "description": description,
        "schema": schema,
    })
}

/// The OpenAPI 3.1 document of these operations.
pub fn document(operations: &[Operation]) -> Value {
    // Requests are described as the node reads them (a field with a default may be left
    // out), answers as it writes them (every field it always writes is required).
    let mut reads = settings().into_generator();
    let mut writes = settings().for_serialize().into_generator();
    let error = writes.subschema_for::<ErrorBody>();
    let mut paths: BTreeMap<&str, Map<String, Value>> = BTreeMap::new();
    for op in operations {
        let mut o = Map::new();
        o.insert("operationId".into(), op.id.into());
        o.insert("summary".into(), op.summary.into());
        let mut parameters: Vec<Value> = op
            .path_params
            .iter()
            .map(|(n, d)| path_parameter(n, d))
            .collect();
        if let Some(q) = op.query {
            parameters.extend(query_parameters(q));
        }
        if !parameters.is_empty() {
            o.insert("parameters".into(), parameters.into());
        }
        if let Some(c) = content(&mut reads, op.body) {
            o.insert(
                "requestBody".into(),
                json!({ "required": true, "content": c }),
            );
        }
        let mut answers: Vec<Answer> = op.answers.to_vec();
        // The refusals every call of the route may get, whatever it does.
        if op.query.is_some() {
            answers.push(refused(400, "a query parameter does not parse"));
        }
        if op.access != Access::Open {
            answers.push(refused(401, "missing or wrong bearer token"));
        }
        if op.access == Access::Mesh {
            answers.push(refused(
                500,
                "an internal error (the data directory, the consensus log)",
            ));
            answers.push(refused(
                503,
                "this node does not run the mesh services, or no driver is reachable",
            ));
        }
        let mut responses = Map::new();
        for a in &answers {
            let mut r = json!({ "description": a.description });
            let body = match a.body {
                Some(b) => content(&mut writes, b),
                None if op.negotiates() => Some(json!({
                    "application/json": { "schema": error },
                    "application/msgpack": { "schema": error },
                })),
                None => Some(json!({ "application/json": { "schema": error } })),
            };
            if let Some(b) = body {
                r["content"] = b;
            }
            if !a.headers.is_empty() {
                let headers: Map<String, Value> = a
                    .headers
                    .iter()
                    .map(|(n, d)| {
                        (
                            (*n).to_string(),
                            json!({ "description": d, "schema": { "type": "string" } }),
                        )
                    })
                    .collect();
                r["headers"] = headers.into();
            }
            match responses.get_mut(&a.status.to_string()) {
                // A refusal added above for a status the route documents already.
                Some(earlier) => {
                    let d = format!(
                        "{}; or {}",
                        earlier["description"].as_str().unwrap_or(""),
                        a.description
                    );
                    earlier["description"] = d.into();
                }
                None => {
                    responses.insert(a.status.to_string(), r);
                }
            }
        }
        o.insert("responses".into(), responses.into());
        if op.access != Access::Open {
            o.insert("security".into(), json!([{}, { "bearer": [] }]));
        }
        paths
            .entry(op.path)
            .or_default()
            .insert(op.method.key().into(), o.into());
    }
    let (schemas, renamed) = components(&mut reads, &mut writes);
    for item in paths.values_mut() {
        for op in item.values_mut() {
            if let Some(body) = op.get_mut("requestBody") {
                rename_refs(body, &renamed);
            }
        }
    }
    json!({
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": "meshml node API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The HTTP API of a meshml node. Binds 127.0.0.1 by default; bound \
                to any other address every route but this document requires \
                `Authorization: Bearer <token>`. Refusals are `{\"error\": \"...\"}` with a \
                4xx or 5xx status. Generated from the node's own types.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
        },
    })
}

const INPUT: &str = "Input";

/// Points each reference to a schema in `renamed` at its `...Input` form.
fn rename_refs(v: &mut Value, renamed: &std::collections::BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get_mut("$ref") {
                let renamed_to = r
                    .strip_prefix(SCHEMAS)
                    .and_then(|n| n.strip_prefix('/'))
                    .filter(|n| renamed.contains(*n))
                    .map(|n| format!("{SCHEMAS}/{n}{INPUT}"));
                if let Some(to) = renamed_to {
                    *r = to;
                }
            }
            m.values_mut().for_each(|x| rename_refs(x, renamed));
        }
        Value::Array(a) => a.iter_mut().for_each(|x| rename_refs(x, renamed)),
        _ => {}
    }
}

fn names_referenced(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(n) = m
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix(SCHEMAS))
                .and_then(|n| n.strip_prefix('/'))
            {
                out.push(n.to_string());
            }
            m.values().for_each(|x| names_referenced(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| names_referenced(x, out)),
        _ => {}
    }
}

/// The component schemas: every type as written, and as read where that differs (or
/// references a type whose forms differ), named `TypeInput`. Returns them and the
/// renamed types.
fn components(
    reads: &mut SchemaGenerator,
    writes: &mut SchemaGenerator,
) -> (Map<String, Value>, std::collections::BTreeSet<String>) {
    let read = reads.take_definitions(true);
    let mut all = writes.take_definitions(true);
    let mut renamed = std::collections::BTreeSet::new();
    loop {
        let before = renamed.len();
        for (name, schema) in &read {
            let Some(written) = all.get(name) else {
                continue;
            };
            let mut refs = Vec::new();
            names_referenced(schema, &mut refs);
            if written != schema || refs.iter().any(|r| renamed.contains(r)) {
                renamed.insert(name.clone());
            }
        }
        if renamed.len() == before {
            break;
        }
    }
    for (name, mut schema) in read {
        rename_refs(&mut schema, &renamed);
        if renamed.contains(&name) {
            all.insert(format!("{name}{INPUT}"), schema);
        } else if !all.contains_key(&name) {
            all.insert(name, schema);
        }
    }
    (all, renamed)
}

/// The document of [`super::routes::OPERATIONS`] as served, built once.
pub fn served() -> &'static [u8] {
    static DOC: OnceLock<Vec<u8>> = OnceLock::new();
    DOC.get_or_init(|| {
        serde_json::to_vec_pretty(&document(super::routes::OPERATIONS))
            .expect("a JSON value encodes")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::routes::OPERATIONS;
    use meshml_client::api::JobRequest;
    use meshml_models::estimator::{CLASSIFIERS, CLUSTERERS, REGRESSORS};
    use meshml_models::Estimator;

    fn doc() -> Value {
        serde_json::from_slice(served()).unwrap()
    }

    /// A validator for one schema of the document (its references resolve in it).
    fn validator(doc: &Value, schema: &Value) -> jsonschema::Validator {
        let mut root = schema.clone();
        root["components"] = doc["components"].clone();
        jsonschema::draft202012::new(&root).unwrap()
    }

    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r.clone());
                }
                m.values().for_each(|x| refs(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
            _ => {}
        }
    }

    #[test]
    fn every_route_is_described_once_with_its_parameters_and_resolvable_schemas() {
        let doc = doc();
        assert_eq!(doc["openapi"], "3.1.0");
        let mut seen = std::collections::BTreeSet::new();
        for op in OPERATIONS {
            assert!(seen.insert((op.method.key(), op.path)), "{} twice", op.path);
            let segments: Vec<&str> = op
                .path
                .split('/')
                .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
                .collect();
            let declared: Vec<&str> = op.path_params.iter().map(|(n, _)| *n).collect();
            assert_eq!(segments, declared, "{}", op.path);
            let described = &doc["paths"][op.path][op.method.key()];
            assert_eq!(described["operationId"], op.id);
            assert!(
                described["responses"].as_object().unwrap().len() >= 2 || op.access == Access::Open
            );
        }
        let mut all = Vec::new();
        refs(&doc, &mut all);
        assert!(all.len() > 50, "{} references", all.len());
        for r in all {
            let name = r
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("{r}"));
            assert!(
                doc["components"]["schemas"][name].is_object(),
                "{r} does not resolve"
            );
        }
        // Every schema is a valid JSON Schema 2020-12 document.
        for (name, schema) in doc["components"]["schemas"].as_object().unwrap() {
            assert!(jsonschema::meta::is_valid(schema), "{name}");
        }
    }

    #[test]
    fn query_parameters_come_from_the_query_types() {
        let doc = doc();
        let put = doc["paths"]["/v1/datasets"]["post"]["parameters"]
            .as_array()
            .unwrap();
        let names: Vec<&str> = put.iter().map(|p| p["name"].as_str().unwrap()).collect();
        assert_eq!(
            names,
            [
                "categorical",
                "chunk_rows",
                "format",
                "max_categories",
                "na_values",
                "name",
                "numeric",
                "regression",
                "replicas",
                "source",
                "target"
            ]
        );
        let by_name = |n: &str| put.iter().find(|p| p["name"] == n).unwrap();
        assert_eq!(by_name("name")["required"], true);
        assert_eq!(by_name("replicas")["required"], false);
        assert_eq!(by_name("replicas")["schema"]["default"], 1);
        assert_eq!(by_name("replicas")["schema"]["minimum"], 1);
        assert_eq!(
            by_name("format")["schema"],
            json!({"type": "string", "enum": ["csv", "parquet"]})
        );
        assert!(by_name("target")["description"]
            .as_str()
            .unwrap()
            .contains("the last"));
        let show = &doc["paths"]["/v1/jobs/{id}"]["get"]["parameters"];
        assert_eq!(show[0]["in"], "path");
        assert_eq!(show[1]["name"], "tasks");
        assert_eq!(show[1]["schema"]["type"], "boolean");
    }

    fn job(kind: Value, estimator: &Estimator) -> Value {
        let mut j = kind;
        j["seed"] = 7.into();
        if j.get("estimator").is_some() {
            j["estimator"] = serde_json::to_value(estimator).unwrap();
        }
        json!({ "dataset": "iris", "job": j, "name": "m" })
    }

    /// Every way to damage a JSON value one step: drop a key, change a value's type.
    fn damaged(v: &Value) -> Vec<Value> {
        let mut out = Vec::new();
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    let mut without = m.clone();
                    without.remove(k);
                    out.push(Value::Object(without));
                    for d in damaged(x) {
                        let mut with = m.clone();
                        with.insert(k.clone(), d);
                        out.push(Value::Object(with));
                    }
                }
            }
            Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    for d in damaged(x) {
                        let mut with = a.clone();
                        with[i] = d;
                        out.push(Value::Array(with));
                    }
                }
            }
            Value::String(_) => out.push(json!(12)),
            Value::Number(_) | Value::Bool(_) => out.push(json!("twelve")),
            Value::Null => out.push(json!([])),
        }
        out
    }

    /// The job schema names every job kind, estimator and parameter, and allows exactly
    /// what the job decoder accepts: every estimator's defaults in every kind, and each
    /// of their one-step damages (a key dropped, a value of the wrong type) checked both
    /// ways.
    #[test]
    fn the_job_schema_allows_what_the_job_decoder_accepts() {
        let doc = doc();
        let v = validator(&doc, &json!({ "$ref": "#/components/schemas/JobRequest" }));
        let kinds = [
            json!({ "kind": "fit", "estimator": null }),
            json!({ "kind": "grid_search", "estimator": null, "grid": [["C", ["0.1", "1"]]], "cv": 3, "refit": true }),
            json!({ "kind": "random_search", "estimator": null, "space": [["C", { "log_uniform": { "low": 0.01, "high": 10.0 } }], ["max_iter", { "int_range": { "low": 10, "high": 20 } }], ["tol", { "choice": ["0.001"] }]], "n_iter": 4, "cv": 3, "refit": false }),
            json!({ "kind": "one_vs_rest", "estimator": null }),
            json!({ "kind": "bagging", "estimator": null, "n_estimators": 3 }),
            json!({ "kind": "multi_output", "estimator": null, "targets": ["a", "b"] }),
        ];
        let mut names: Vec<&str> = CLASSIFIERS
            .iter()
            .chain(REGRESSORS)
            .chain(CLUSTERERS)
            .map(|(n, _)| *n)
            .collect();
        names.push("standard_scaler+logistic_regression");
        let (mut accepted, mut refused) = (0, 0);
        for name in &names {
            let e = Estimator::from_name(name).unwrap();
            for kind in &kinds {
                let request = job(kind.clone(), &e);
                let decoded = serde_json::from_value::<JobRequest>(request.clone());
                assert!(decoded.is_ok(), "{request}");
                assert!(
                    v.is_valid(&request),
                    "{request}: {:?}",
                    v.validate(&request).err()
                );
                for d in damaged(&request) {
                    let decodes = serde_json::from_value::<JobRequest>(d.clone()).is_ok();
                    assert_eq!(
                        v.is_valid(&d),
                        decodes,
                        "schema and decoder disagree on {d}: {:?}",
                        v.validate(&d).err()
                    );
                    if decodes {
                        accepted += 1
                    } else {
                        refused += 1
                    }
                }
            }
        }
        assert!(
            refused > 1000 && accepted > 10,
            "{accepted} accepted, {refused} refused"
        );
        // Each estimator's parameters, by their scikit-learn names.
        let schemas = &doc["components"]["schemas"];
        assert!(schemas["LogisticRegressionParams"]["properties"]["C"]["description"].is_string());
        let kinds: Vec<&str> = schemas["JobSpec"]["oneOf"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["properties"]["kind"]["const"].as_str().unwrap())
            .collect();
        for k in [
            "fit",
            "grid_search",
            "random_search",
            "multi_search",
            "one_vs_rest",
            "one_vs_one",
            "bagging",
            "voting",
            "stacking",
            "cascade",
            "multi_output",
        ] {
            assert!(kinds.contains(&k), "{k} missing from {kinds:?}");
        }
    }
}
