//! [`Expect`]: what the service should answer a hostile page with, under its default limits.
//!
//! The service answers every page with either a 200 and a bounded extraction, or an error status
//! with a stable code in `{"error":{"code":…}}`. Some pages sit on a limit whose exact value is
//! the service's choice (a 4 MiB attribute may or may not be "too complex"), so an expectation
//! can allow more than one answer; what it never allows is an answer outside its list, such as a
//! 500, a dropped connection or a timeout of the API itself.

use std::fmt;

/// The answers the service may give a hostile page. Match one with [`Expect::allows`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// A 200 with an extraction.
    Ok,
    /// This error status and code, nothing else.
    Refused {
        /// HTTP status of the answer.
        status: u16,
        /// The `error.code` of its body.
        code: &'static str,
    },
    /// A 200, or this error status and code.
    OkOrRefused {
        /// HTTP status of the error answer.
        status: u16,
        /// The `error.code` of its body.
        code: &'static str,
    },
    /// One of these `(status, code)` error answers.
    OneOf(&'static [(u16, &'static str)]),
}

impl Expect {
    /// Whether the answer `status`, with the body's `error.code` (`None` when it has none), is
    /// one this expectation allows. For a 200 the code is not looked at.
    pub fn allows(&self, status: u16, code: Option<&str>) -> bool {
        let is = |s: u16, c: &str| status == s && code == Some(c);
        match *self {
            Self::Ok => status == 200,
            Self::Refused { status: s, code: c } => is(s, c),
            Self::OkOrRefused { status: s, code: c } => status == 200 || is(s, c),
            Self::OneOf(pairs) => pairs.iter().any(|&(s, c)| is(s, c)),
        }
    }
}

impl fmt::Display for Expect {
    /// `200`, `422 page_too_complex`, `200 or 422 page_too_complex`,
    /// `502 decode_failed or 502 upstream_unreachable`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Ok => f.write_str("200"),
            Self::Refused { status, code } => write!(f, "{status} {code}"),
            Self::OkOrRefused { status, code } => write!(f, "200 or {status} {code}"),
            Self::OneOf(pairs) => {
                for (i, (status, code)) in pairs.iter().enumerate() {
                    let or = if i == 0 { "" } else { " or " };
                    write!(f, "{or}{status} {code}")?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOO_COMPLEX: Expect = Expect::Refused {
        status: 422,
        code: "page_too_complex",
    };

    #[test]
    fn refused_allows_only_its_status_and_code() {
        assert!(TOO_COMPLEX.allows(422, Some("page_too_complex")));
        assert!(!TOO_COMPLEX.allows(200, None));
        assert!(!TOO_COMPLEX.allows(422, Some("invalid_url")));
        assert!(!TOO_COMPLEX.allows(413, Some("page_too_complex")));
        assert!(!TOO_COMPLEX.allows(422, None));
        assert!(!TOO_COMPLEX.allows(500, Some("internal")));
    }

    #[test]
    fn ok_variants_allow_a_200_whatever_its_body() {
        assert!(Expect::Ok.allows(200, None));
        assert!(!Expect::Ok.allows(422, Some("page_too_complex")));
        let either = Expect::OkOrRefused {
            status: 422,
            code: "page_too_complex",
        };
        assert!(either.allows(200, Some("anything")));
        assert!(either.allows(422, Some("page_too_complex")));
        assert!(!either.allows(413, Some("page_too_large")));
    }

    #[test]
    fn one_of_allows_each_listed_pair() {
        let bad = Expect::OneOf(&[(502, "decode_failed"), (502, "upstream_unreachable")]);
        assert!(bad.allows(502, Some("decode_failed")));
        assert!(bad.allows(502, Some("upstream_unreachable")));
        assert!(!bad.allows(502, Some("upstream_status")));
        assert!(!bad.allows(200, None));
    }

    #[test]
    fn displays_as_the_allowed_answers() {
        assert_eq!(Expect::Ok.to_string(), "200");
        assert_eq!(TOO_COMPLEX.to_string(), "422 page_too_complex");
        let either = Expect::OkOrRefused {
            status: 422,
            code: "page_too_complex",
        };
        assert_eq!(either.to_string(), "200 or 422 page_too_complex");
        let bad = Expect::OneOf(&[(502, "decode_failed"), (502, "upstream_unreachable")]);
        assert_eq!(
            bad.to_string(),
            "502 decode_failed or 502 upstream_unreachable"
        );
    }
}
