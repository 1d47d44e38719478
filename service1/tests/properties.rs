//! Property tests for service1's REST router with hostile input: whatever
//! the path, method, query string or request id, the answer is a clear
//! 200/400/404/405 with a JSON body, never a 5xx. Requests go through
//! `tower::ServiceExt::oneshot`, so no socket is opened.

use std::sync::OnceLock;

use axum::{body::Body, Router};
use http::{Method, Request, StatusCode, Uri};
use proptest::prelude::*;
use settings::HttpLimits;
use tower::ServiceExt;
use wire::{names, query, request_id};

const ROUTE: &str = "/api/v1/name";

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime")
    })
}

fn router(max_name_bytes: usize) -> Router {
    service1::rest::router(max_name_bytes, &HttpLimits::default(), &Default::default())
}

/// Escapes every byte as `%XX`, except unreserved ones that stay raw.
fn escape(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Query strings: `name=` with arbitrary bytes escaped (so sometimes not
/// UTF-8), raw printable ASCII (bad escapes included), raw non-ASCII text,
/// or several pairs of those.
fn query_string() -> impl Strategy<Value = String> {
    // Printable ASCII the URI parser takes in a query: not `"`, `#`, `<`, `>`.
    let raw_ascii = "[!$-;=?-~]{0,40}";
    let pair = prop_oneof![
        4 => "[a-zA-Z0-9 ßé日]{0,20}".prop_map(|name| format!("name={}", escape(name.as_bytes()))),
        1 => proptest::collection::vec(any::<u8>(), 0..24)
            .prop_map(|bytes| format!("name={}", escape(&bytes))),
        1 => raw_ascii.prop_map(|raw| format!("name={raw}")),
        1 => raw_ascii,
        1 => "name=[a-zé日\u{1F600}%+]{0,12}",
    ];
    proptest::collection::vec(pair, 0..3).prop_map(|pairs| pairs.join("&"))
}

/// Paths: mostly the real route, and near misses and arbitrary ones.
fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => Just(ROUTE.to_owned()),
        1 => prop::sample::select(vec![
            "/", "/api", "/api/v1", "/api/v1/name/", "/API/V1/NAME", "//api/v1/name", "/api/v1/%6Eame",
            "/api/v1/name/extra", "/metrics",
        ])
        .prop_map(str::to_owned),
        // Characters the URI parser takes in a path (not `?` or `#`).
        1 => "/[!$-;=@-_a-z|~{}\"]{0,30}",
    ]
}

fn method() -> impl Strategy<Value = Method> {
    prop_oneof![
        6 => Just(Method::GET),
        1 => prop::sample::select(vec![
            Method::POST, Method::PUT, Method::DELETE, Method::PATCH, Method::OPTIONS, Method::HEAD,
            Method::TRACE, Method::CONNECT,
        ]),
    ]
}

/// Request ids a header can carry: good, too long, or with spaces and
/// non-ASCII bytes.
fn request_id_header() -> impl Strategy<Value = Option<Vec<u8>>> {
    proptest::option::of(prop_oneof![
        "[!-~]{1,140}".prop_map(String::into_bytes),
        proptest::collection::vec(prop_oneof![0x20u8..=0x7E, 0x80u8..=0xFF], 0..40),
    ])
}

/// What the handler should answer, worked out from the functions it uses:
/// the upper-cased name, or the error message of a 400.
fn expected_answer(raw_query: Option<&str>, max_name_bytes: usize) -> Result<String, String> {
    let name = query::param(raw_query, "name").map_err(|e| e.to_string())?;
    names::validate(name.as_deref(), max_name_bytes).map(names::upper).map_err(|e| e.to_string())
}

fn json_body(target: &str, body: &[u8]) -> Result<serde_json::Value, TestCaseError> {
    serde_json::from_slice(body)
        .map_err(|e| TestCaseError::fail(format!("{target:?}: the body is not JSON ({e}): {body:?}")))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn any_request_gets_a_json_answer_of_200_400_404_or_405_and_never_a_5xx(
        path in path(),
        query in proptest::option::weighted(0.9, query_string()),
        method in method(),
        id in request_id_header(),
        max_name_bytes in 1usize..64,
    ) {
        let target = match &query {
            Some(query) => format!("{path}?{query}"),
            None => path.clone(),
        };
        // The generators only make URIs the parser takes; check anyway, as a
        // URI it rejects would never reach the router.
        let uri: Uri = target.parse().map_err(|e| TestCaseError::fail(format!("{target:?}: {e}")))?;
        // An HTTP/1.1 request, with the one Host header every client sends
        // (without it, the answer is a 400 whatever the path).
        let mut request = Request::builder().method(method.clone()).uri(uri.clone()).header("host", "service1");
        if let Some(id) = &id {
            request = request.header(request_id::HEADER, id.as_slice());
        }
        let request = request.body(Body::empty()).expect("a request");

        let response = runtime().block_on(router(max_name_bytes).oneshot(request)).expect("infallible");
        let status = response.status();
        let echoed = response.headers().get(request_id::HEADER).map(|v| v.as_bytes().to_vec());
        let body = runtime()
            .block_on(axum::body::to_bytes(response.into_body(), 64 * 1024))
            .expect("a body under 64 KiB");

        prop_assert!(
            [StatusCode::OK, StatusCode::BAD_REQUEST, StatusCode::NOT_FOUND, StatusCode::METHOD_NOT_ALLOWED]
                .contains(&status),
            "{method} {target:?} gave {status}"
        );

        if uri.path() == ROUTE && (method == Method::GET || method == Method::HEAD) {
            let expected = expected_answer(uri.query(), max_name_bytes);
            match &expected {
                Ok(_) => prop_assert_eq!(status, StatusCode::OK, "{:?}", target),
                Err(_) => prop_assert_eq!(status, StatusCode::BAD_REQUEST, "{:?}", target),
            }
            if method != Method::HEAD {
                let json = json_body(&target, &body)?;
                match expected {
                    Ok(name) => prop_assert_eq!(&json, &serde_json::json!({ "name": name })),
                    Err(message) => prop_assert_eq!(&json, &serde_json::json!({ "error": message })),
                }
            }
        } else {
            prop_assert!(status == StatusCode::NOT_FOUND || status == StatusCode::METHOD_NOT_ALLOWED);
            if uri.path() == ROUTE {
                prop_assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
            }
            if method != Method::HEAD {
                let json = json_body(&target, &body)?;
                prop_assert!(json.get("error").is_some_and(serde_json::Value::is_string), "{json}");
            }
        }
        if method == Method::HEAD {
            // HEAD is answered like GET, without the body.
            prop_assert!(body.is_empty(), "{target:?}: HEAD gave a body {body:?}");
        }

        // Every answer carries a request id that is safe to echo: the
        // caller's when acceptable, else a fresh one.
        let echoed = echoed.expect("X-Request-ID on every response");
        match id.filter(|id| wire::RequestId::parse(id).is_some()) {
            Some(id) => prop_assert_eq!(echoed, id),
            None => prop_assert!(wire::RequestId::parse(&echoed).is_some() && echoed.len() == 36),
        }
    }
}
