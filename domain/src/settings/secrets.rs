//! Values a printed config or a log line must not show whole: a [`Secret`] never, a
//! [`ConnectionUrl`] without its password.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A value that must never reach a log line or a printed config: `Debug` and `Serialize`
/// show `[redacted]`; only [`Secret::expose`] gives the value.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("[redacted]")
    }
}

/// A Redis or Postgres URL: `Debug`, `Display` and `Serialize` show it with its password
/// (in the user info or a `password` query parameter) replaced by `[redacted]`, so a printed
/// config or an error names the host and user; only [`ConnectionUrl::expose`] gives the value.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct ConnectionUrl(String);

impl ConnectionUrl {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with any password hidden.
    pub fn redacted(&self) -> String {
        let url = self.0.as_str();
        let Some(scheme_end) = url.find("://").map(|at| at + 3) else {
            // Not a URL we can take apart: show none of it.
            return "[redacted]".into();
        };
        let rest = &url[scheme_end..];
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        let mut shown = url[..scheme_end].to_owned();
        match authority.rsplit_once('@') {
            Some((user_info, host)) => {
                match user_info.split_once(':') {
                    Some((user, _password)) => shown.push_str(&format!("{user}:[redacted]")),
                    None => shown.push_str(user_info),
                }
                shown.push('@');
                shown.push_str(host);
            }
            None => shown.push_str(authority),
        }
        let (path, query) = tail.split_once('?').map_or((tail, None), |(path, query)| (path, Some(query)));
        shown.push_str(path);
        if let Some(query) = query {
            let (query, fragment) = query.split_once('#').map_or((query, None), |(q, f)| (q, Some(f)));
            let pairs: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((key, _)) if key.to_ascii_lowercase().contains("password") => {
                        format!("{key}=[redacted]")
                    }
                    _ => pair.to_owned(),
                })
                .collect();
            shown.push('?');
            shown.push_str(&pairs.join("&"));
            if let Some(fragment) = fragment {
                shown.push('#');
                shown.push_str(fragment);
            }
        }
        shown
    }
}

impl fmt::Debug for ConnectionUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Display for ConnectionUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl Serialize for ConnectionUrl {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.redacted())
    }
}
