use serde_json::json;
use system_tests::spawn_service1;

use crate::{client, get, get_with};

#[tokio::test]
async fn name_returns_the_upper_cased_name_as_json() {
    let service1 = spawn_service1(&[]).await;

    let reply = get(&format!("http://{}/api/v1/name?name=test", service1.rest_addr), None).await;

    assert_eq!(reply.status, 200);
    assert_eq!(reply.content_type, "application/json");
    assert_eq!(reply.body, json!({ "name": "TEST" }));
}

#[tokio::test]
async fn name_validates_like_the_grpc_api() {
    let service1 = spawn_service1(&["--max-name-bytes", "3"]).await;
    let url = |query: &str| format!("http://{}/api/v1/name{query}", service1.rest_addr);
    let cases = [
        ("", "the 'name' parameter is required"),
        ("?name=", "the name must not be empty"),
        ("?name=abcd", "the name must be at most 3 bytes of UTF-8"),
        ("?name=%E0%A4", "the query string has invalid percent-encoding"),
    ];
    for (query, message) in cases {
        let reply = get(&url(query), None).await;
        assert_eq!((reply.status, reply.body), (400, json!({ "error": message })), "{query}");
    }
}

#[tokio::test]
async fn unknown_paths_get_a_json_404_and_wrong_methods_a_json_405() {
    let service1 = spawn_service1(&[]).await;
    let base = format!("http://{}", service1.rest_addr);

    let missing = get(&format!("{base}/api/v1/nope"), None).await;
    let wrong_method = get_with(client().post(format!("{base}/api/v1/name?name=x")), None).await;

    assert_eq!((missing.status, missing.body), (404, json!({ "error": "no such resource" })));
    assert_eq!(missing.content_type, "application/json");
    assert_eq!(
        (wrong_method.status, wrong_method.body),
        (405, json!({ "error": "method not allowed for this resource" }))
    );
    assert_eq!(wrong_method.content_type, "application/json");
}
