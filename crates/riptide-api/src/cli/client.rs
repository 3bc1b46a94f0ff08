//! The admin API client of the CLI: where the service is and which admin token to send
//! ([`Connection`], from flags, environment or the token file), the requests, and the
//! mapping of every failure to a [`CliError`] that says what went wrong.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use reqwest::{Method, StatusCode, Url};
use serde::Serialize;
use serde_json::Value;

/// Where the admin API is and how to authenticate; shared by every admin command.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Connection")]
pub struct Connection {
    /// Base URL of the RipTide service
    #[arg(
        long,
        global = true,
        env = "RIPTIDE_URL",
        default_value = "http://127.0.0.1:8080",
        value_parser = parse_base_url,
        value_name = "URL"
    )]
    pub url: Url,

    /// Admin token [default: read from --token-file]
    #[arg(
        long,
        global = true,
        env = "RIPTIDE_ADMIN_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,

    /// File holding the admin token, used when no token is given (the service writes
    /// its first token to `<data dir>/admin-token`)
    #[arg(
        long,
        global = true,
        env = "RIPTIDE_ADMIN_TOKEN_FILE",
        default_value = "./data/admin-token",
        value_name = "PATH"
    )]
    pub token_file: PathBuf,

    /// Seconds to wait for each answer
    #[arg(long, global = true, default_value_t = 30, value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout: u64,

    /// Print the API's JSON instead of tables
    #[arg(long, global = true)]
    pub json: bool,
}

/// A base URL given on the command line: `http` or `https`, no query or fragment.
fn parse_base_url(raw: &str) -> Result<Url, String> {
    let url = Url::parse(raw).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("scheme {:?} is not http or https", url.scheme()));
    }
    if url.cannot_be_a_base() || url.host().is_none() {
        return Err("the URL has no host".to_owned());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("a base URL has no query or fragment".to_owned());
    }
    Ok(url)
}

/// Why a command failed; printed as `riptide: <this>` with exit code 1.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The API answered with an error.
    #[error("{message} ({code}, HTTP {status})")]
    Api {
        /// The HTTP status.
        status: u16,
        /// The error's stable code (`http_error` when the body had none).
        code: String,
        /// The error's message.
        message: String,
    },
    /// Nothing answered at the URL.
    #[error("could not reach {url}: {cause}")]
    Unreachable {
        /// The URL that was tried.
        url: String,
        /// Why, from the operating system or TLS.
        cause: String,
    },
    /// The service did not answer in time.
    #[error("no answer from {url} within {secs} s")]
    Timeout {
        /// The URL that was tried.
        url: String,
        /// The limit (`--timeout`).
        secs: u64,
    },
    /// An answer that is not the admin API's (another service at the URL?).
    #[error("unexpected answer from {url}: {reason}")]
    Protocol {
        /// The URL that was tried.
        url: String,
        /// What was wrong with it.
        reason: String,
    },
    /// No admin token could be found.
    #[error(
        "no admin token: pass --token, set RIPTIDE_ADMIN_TOKEN, or point --token-file at the \
         service's admin-token file (reading {path}: {cause})"
    )]
    NoToken {
        /// The token file that was tried.
        path: String,
        /// Why it could not be used.
        cause: String,
    },
    /// The operation finished but did not succeed (a refused reload, a failed job).
    #[error("{0}")]
    Failed(String),
}

/// Result of a CLI step.
pub type CliResult<T> = Result<T, CliError>;

/// The admin token to send: `--token` / `RIPTIDE_ADMIN_TOKEN`, else the token file's
/// first line.
fn resolve_token(token: Option<&str>, file: &Path) -> CliResult<String> {
    if let Some(token) = token.map(str::trim).filter(|t| !t.is_empty()) {
        return Ok(token.to_owned());
    }
    let no_token = |cause: String| CliError::NoToken {
        path: file.display().to_string(),
        cause,
    };
    let text = std::fs::read_to_string(file).map_err(|e| no_token(e.to_string()))?;
    text.lines()
        .next()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| no_token("the file is empty".to_owned()))
}

/// A client of one service's admin API.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    token: String,
    timeout_secs: u64,
}

impl Client {
    /// A client for `connection`; fails when no admin token can be found.
    pub fn new(connection: &Connection) -> CliResult<Self> {
        let token = resolve_token(connection.token.as_deref(), &connection.token_file)?;
        let http = reqwest::Client::builder()
            .user_agent(concat!("riptide-cli/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(connection.timeout.min(10)))
            .timeout(Duration::from_secs(connection.timeout))
            .build()
            .map_err(|e| CliError::Failed(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            http,
            base: connection.url.clone(),
            token,
            timeout_secs: connection.timeout,
        })
    }

    /// The URL of `segments` (each percent-encoded) under the base URL, with `query`.
    pub fn url(&self, segments: &[&str], query: &[(&str, String)]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        url
    }

    /// `GET` with a query string.
    pub async fn get(&self, segments: &[&str], query: &[(&str, String)]) -> CliResult<Value> {
        self.send::<()>(Method::GET, self.url(segments, query), None)
            .await
    }

    /// `POST` without a body.
    pub async fn post(&self, segments: &[&str]) -> CliResult<Value> {
        self.send::<()>(Method::POST, self.url(segments, &[]), None)
            .await
    }

    /// `POST` with `body` as JSON: the route's own request type (`routes::admin`), so
    /// what the CLI sends is what the route reads.
    pub async fn post_json<B: Serialize>(&self, segments: &[&str], body: &B) -> CliResult<Value> {
        self.send(Method::POST, self.url(segments, &[]), Some(body))
            .await
    }

    /// `PUT` with `body` as JSON (the route's request type, as for [`Self::post_json`]).
    pub async fn put<B: Serialize>(&self, segments: &[&str], body: &B) -> CliResult<Value> {
        self.send(Method::PUT, self.url(segments, &[]), Some(body))
            .await
    }

    /// `DELETE`.
    pub async fn delete(&self, segments: &[&str]) -> CliResult<Value> {
        self.send::<()>(Method::DELETE, self.url(segments, &[]), None)
            .await
    }

    /// Sends one request; a success's JSON body (`null` when empty), or the failure.
    async fn send<B: Serialize>(
        &self,
        method: Method,
        url: Url,
        body: Option<&B>,
    ) -> CliResult<Value> {
        let mut request = self
            .http
            .request(method, url.clone())
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| self.transport_error(&url, &e))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(&url, &e))?;
        if !status.is_success() {
            return Err(api_error(status, &bytes));
        }
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes).map_err(|e| CliError::Protocol {
            url: url.to_string(),
            reason: format!("the body is not JSON ({e})"),
        })
    }

    fn transport_error(&self, url: &Url, e: &reqwest::Error) -> CliError {
        if e.is_timeout() {
            return CliError::Timeout {
                url: url.to_string(),
                secs: self.timeout_secs,
            };
        }
        let cause = root_cause(e);
        if e.is_connect() {
            CliError::Unreachable {
                url: self.base.to_string(),
                cause,
            }
        } else {
            CliError::Protocol {
                url: url.to_string(),
                reason: cause,
            }
        }
    }
}

/// The innermost cause of `e` (the OS error, not reqwest's wrappers).
fn root_cause(e: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// An error answer: the service's `{"error":{"code","message"}}`, else the status and
/// the start of the body.
fn api_error(status: StatusCode, body: &[u8]) -> CliError {
    let parsed: Option<(String, String)> =
        serde_json::from_slice::<Value>(body).ok().and_then(|v| {
            let error = v.get("error")?;
            let code = error.get("code")?.as_str()?.to_owned();
            let message = error.get("message")?.as_str()?.to_owned();
            Some((code, message))
        });
    let (code, message) = parsed.unwrap_or_else(|| {
        let text = String::from_utf8_lossy(body);
        let text: String = text.trim().chars().take(200).collect();
        let reason = status.canonical_reason().unwrap_or("error");
        let message = if text.is_empty() {
            reason.to_owned()
        } else {
            format!("{reason}: {text}")
        };
        ("http_error".to_owned(), message)
    });
    CliError::Api {
        status: status.as_u16(),
        code,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_checked() {
        assert!(parse_base_url("http://127.0.0.1:8080").is_ok());
        assert!(parse_base_url("https://riptide.example/prefix/").is_ok());
        for bad in [
            "127.0.0.1:8080",
            "ftp://x",
            "http://x/?a=1",
            "http://x/#f",
            "nope",
        ] {
            assert!(parse_base_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn paths_are_joined_and_encoded() {
        let client = |base: &str| Client {
            http: reqwest::Client::new(),
            base: parse_base_url(base).expect("url"),
            token: "t".into(),
            timeout_secs: 1,
        };
        let url = client("http://h:1").url(&["admin", "tenants", "a/b c"], &[]);
        assert_eq!(url.as_str(), "http://h:1/admin/tenants/a%2Fb%20c");
        let url = client("http://h:1/api/").url(&["admin", "audit"], &[("limit", "5".into())]);
        assert_eq!(url.as_str(), "http://h:1/api/admin/audit?limit=5");
    }

    #[test]
    fn error_bodies_become_messages() {
        let body = br#"{"error":{"code":"not_found","message":"tenant \"x\" not found"}}"#;
        let e = api_error(StatusCode::NOT_FOUND, body);
        assert_eq!(
            e.to_string(),
            "tenant \"x\" not found (not_found, HTTP 404)"
        );
        let e = api_error(StatusCode::BAD_GATEWAY, b"upstream down");
        assert_eq!(
            e.to_string(),
            "Bad Gateway: upstream down (http_error, HTTP 502)"
        );
        let e = api_error(StatusCode::UNAUTHORIZED, b"");
        assert_eq!(e.to_string(), "Unauthorized (http_error, HTTP 401)");
    }

    #[test]
    fn tokens_come_from_the_flag_else_the_file() {
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("admin-token");
        assert_eq!(resolve_token(Some(" abc "), &file).expect("flag"), "abc");
        let err = resolve_token(None, &file).unwrap_err();
        assert!(err.to_string().contains("admin-token"), "{err}");
        std::fs::write(&file, "from-file\n").expect("write");
        assert_eq!(resolve_token(None, &file).expect("file"), "from-file");
        assert_eq!(resolve_token(Some(""), &file).expect("file"), "from-file");
        std::fs::write(&file, "\n").expect("write");
        assert!(resolve_token(None, &file).is_err());
    }
}
