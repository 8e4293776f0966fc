//! What a client sends the console before anyone is authenticated: JSON bodies of every public
//! and authenticated route, form bodies with their CSRF field, Cookie headers and bearer tokens.
//! Whatever the bytes, each parser answers (a value or an error), never panics, and a parsed
//! token's id is always 16 hex digits.
#![no_main]

use axum::http::{HeaderMap, HeaderValue, header};
use hearth_console::api::{ClaimBody, CreateUserBody, LoginBody, RoleBody, TokenBody, UnlockBody};
use hearth_console::model::{check_label, check_password, check_user_name};
use hearth_console::routes::{cookie, form_urlencoded_field};
use hearth_console::service::parse_token;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<ClaimBody>(data);
    let _ = serde_json::from_slice::<LoginBody>(data);
    let _ = serde_json::from_slice::<CreateUserBody>(data);
    let _ = serde_json::from_slice::<RoleBody>(data);
    let _ = serde_json::from_slice::<TokenBody>(data);
    let _ = serde_json::from_slice::<UnlockBody>(data);
    let _ = form_urlencoded_field(data, "csrf");
    if let Ok(value) = HeaderValue::from_bytes(data) {
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, value);
        let _ = cookie(&headers, "__Host-hearth_session");
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Some((id, secret)) = parse_token(text) {
            assert_eq!(id.len(), 16);
            assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
            assert!(!secret.is_empty());
        }
        let _ = check_user_name(text);
        let _ = check_password(text);
        let _ = check_label(text);
    }
});
