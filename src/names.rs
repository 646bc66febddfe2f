//! Which names may go into a certificate: the name policy (allowed domains, reserved names)
//! and the lookup that security level medium relies on. No database here: the services
//! build a `NamePolicy` from the settings and the server's own names.

use std::collections::HashMap;
use std::net::{IpAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// What kind of name a (normalised) name is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// At least two labels, the last one not all digits.
    Dns,
    /// An IPv4 or IPv6 address: certified only as an IP SAN, and only when an
    /// administrator mapped it by hand.
    Ip,
    /// One label (`db`): ambiguous across search domains, so never approved automatically.
    SingleLabel,
    /// The last label is all digits (`1.2.3.999`): neither a host name nor an address.
    Numeric,
}

pub fn kind(name: &str) -> Kind {
    if name.parse::<IpAddr>().is_ok() {
        return Kind::Ip;
    }
    match name.rsplit_once('.') {
        None => Kind::SingleLabel,
        Some((_, last)) if !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit()) => {
            Kind::Numeric
        }
        Some(_) => Kind::Dns,
    }
}

/// An address as the certificate will carry it, whatever way it was typed.
pub fn canonical_ip(input: &str) -> Option<String> {
    let t = input.trim();
    let t = t
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(t);
    t.parse::<IpAddr>().ok().map(|ip| ip.to_string())
}

/// A name without the DNS root's dot: `web01.example.com.` and `web01.example.com` are one
/// name. Exactly one dot goes: `a..` stays wrong rather than being silently repaired.
pub fn without_root_dot(name: &str) -> &str {
    name.strip_suffix('.').unwrap_or(name)
}

/// A host ID in any form a client may write a UUID (`urn:uuid:` prefix or not, dashes or
/// not, braces, any case), in the one form hostca stores: lower case with dashes.
pub fn host_id(input: &str) -> Option<String> {
    let t = input.trim();
    // The uuid crate reads `urn:uuid:` only before the dashed form, and in lower case.
    let t = match t.get(..9) {
        Some(p) if p.eq_ignore_ascii_case("urn:uuid:") => &t[9..],
        _ => t,
    };
    uuid::Uuid::parse_str(t)
        .ok()
        .map(|u| u.hyphenated().to_string())
}

/// A host named by host ID or by name, as a path or body gives it: a host ID in its stored
/// form, anything else as sent (the services read and check names).
pub fn host_key(input: &str) -> String {
    host_id(input).unwrap_or_else(|| input.to_string())
}

/// Most entries in one list: a policy, not a zone file.
pub const MAX_ENTRIES: usize = 500;

/// Reads a settings list (one entry a line, or separated by commas or spaces): lower case,
/// no trailing dot, no duplicates, in the order typed. `ips` says whether addresses are
/// acceptable entries. The error names every entry that is wrong and what to do.
pub fn parse_list(text: &str, ips: bool) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    let mut bad: Vec<String> = Vec::new();
    for raw in text.split(|c: char| c == ',' || c.is_whitespace()) {
        let raw = raw.trim();
        if raw.is_empty() {
            continue;
        }
        let shown: String = raw.chars().take(80).collect();
        if raw.contains('*') {
            bad.push(format!(
                "'{shown}': wildcards are not allowed (a domain already covers every name under it)"
            ));
            continue;
        }
        if let Some(ip) = canonical_ip(raw) {
            if ips {
                if !out.contains(&ip) {
                    out.push(ip);
                }
            } else {
                bad.push(format!("'{shown}' is an IP address, not a DNS domain"));
            }
            continue;
        }
        match crate::services::hosts::normalize_hostname(raw) {
            Ok(n) if kind(&n) == Kind::Numeric => bad.push(format!(
                "'{shown}' ends in an all-digit label: it is neither a DNS name nor an IP address"
            )),
            Ok(n) => {
                if !out.contains(&n) {
                    out.push(n);
                }
            }
            Err(_) => bad.push(format!(
                "'{shown}' is not a DNS name (letters, digits and '-' in dot-separated labels)"
            )),
        }
    }
    if !bad.is_empty() {
        return Err(bad.join("; "));
    }
    if out.len() > MAX_ENTRIES {
        return Err(format!("at most {MAX_ENTRIES} entries"));
    }
    Ok(out)
}

/// A stored list (as `parse_list` wrote it) back to its entries.
pub fn stored_list(text: &str) -> Vec<String> {
    text.split(|c: char| c == ',' || c.is_whitespace())
        .map(|s| without_root_dot(s.trim()).to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect()
}

/// The names an administrator allowed, as the enrollment and mapping rules read them.
#[derive(Clone, Debug, Default)]
pub struct NamePolicy {
    /// DNS suffixes; empty means any name (and nothing is approved automatically).
    pub allowed_domains: Vec<String>,
    /// The server's own names and the names an administrator reserved: never mapped,
    /// never certified.
    pub reserved: Vec<String>,
}

impl NamePolicy {
    pub fn new(allowed_domains: &str, reserved_names: &str, server_names: &[String]) -> Self {
        let mut reserved = stored_list(reserved_names);
        reserved.extend(server_names.iter().map(|n| n.to_ascii_lowercase()));
        NamePolicy {
            allowed_domains: stored_list(allowed_domains),
            reserved,
        }
    }

    pub fn is_reserved(&self, name: &str) -> bool {
        self.reserved.iter().any(|r| r == name)
    }

    /// Whether `name` equals an allowed domain or lies under one. False when the list is
    /// empty: "any name" allows requests, never automatic approval.
    pub fn in_allowed_domains(&self, name: &str) -> bool {
        kind(name) == Kind::Dns
            && self.allowed_domains.iter().any(|d| {
                name == d
                    || (name.len() > d.len()
                        && name.ends_with(d.as_str())
                        && name.as_bytes()[name.len() - d.len() - 1] == b'.')
            })
    }

    /// Whether a name discovered in a certificate request may be approved without an
    /// administrator (conflicts with other hosts are the caller's to check).
    pub fn auto_approvable(&self, name: &str) -> bool {
        !self.is_reserved(name) && self.in_allowed_domains(name)
    }

    /// The refusal for a name no one may map or certify, if `name` is one.
    pub fn refuse_reserved(&self, name: &str) -> Option<String> {
        self.is_reserved(name).then(|| {
            format!("{name} is a reserved name (one of this server's own names, or reserved under Global security settings): no host can be mapped to it or certified for it")
        })
    }

    /// Why a host may not ask for `name` as its certificate's primary name through a
    /// token or a security level; `registered` says an administrator already gave the
    /// host this name (registered the host, or approved the mapping).
    pub fn refuse_requested(&self, name: &str, registered: bool) -> Option<String> {
        if let Some(r) = self.refuse_reserved(name) {
            return Some(r);
        }
        match kind(name) {
            Kind::Ip => Some(format!(
                "{name} is an IP address: a host cannot request a certificate for an address; request its DNS name (an administrator may map the address to the host by hand)"
            )),
            Kind::Numeric => Some(format!(
                "{name} ends in an all-digit label: it is neither a DNS name nor an IP address"
            )),
            Kind::SingleLabel if !registered => Some(format!(
                "{name} is a single-label name: request the fully qualified name, or ask an administrator to register the host under {name}"
            )),
            _ if registered || self.allowed_domains.is_empty() || self.in_allowed_domains(name) => None,
            _ => Some(format!(
                "{name} is outside the allowed domains ({}): request a name in one of them, or ask an administrator",
                self.allowed_domains.join(", ")
            )),
        }
    }
}

/// How long a lookup may take before the request is answered without it.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);
/// How long an answer is reused.
pub const CACHE_FOR: Duration = Duration::from_secs(60);
/// Lookups waiting at once; past this, a name counts as not resolving rather than
/// starting yet another thread behind a resolver that does not answer.
pub const MAX_IN_FLIGHT: usize = 64;

type Lookup = Arc<dyn Fn(&str) -> Vec<IpAddr> + Send + Sync>;

fn system_lookup(name: &str) -> Vec<IpAddr> {
    (name, 0u16)
        .to_socket_addrs()
        .map(|a| a.map(|s| s.ip()).collect())
        .unwrap_or_default()
}

/// Name lookups for security level medium, off the write path: each runs on its own
/// thread (the system resolver cannot be told to give up) and is abandoned after
/// `LOOKUP_TIMEOUT`; answers are cached for `CACHE_FOR`.
pub struct Resolver {
    lookup: RwLock<Lookup>,
    cache: Mutex<HashMap<String, (Instant, Vec<IpAddr>)>>,
    in_flight: Arc<AtomicUsize>,
}

impl Default for Resolver {
    fn default() -> Self {
        Resolver {
            lookup: RwLock::new(Arc::new(system_lookup)),
            cache: Mutex::default(),
            in_flight: Arc::default(),
        }
    }
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Resolver")
    }
}

impl Resolver {
    /// Replaces the system resolver (tests: a resolver that never answers).
    pub fn set_lookup(&self, f: impl Fn(&str) -> Vec<IpAddr> + Send + Sync + 'static) {
        *self.lookup.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(f);
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// The addresses of `name`, or `None` when the resolver did not answer in time.
    pub fn addresses(&self, name: &str) -> Option<Vec<IpAddr>> {
        let now = Instant::now();
        {
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            match cache.get(name) {
                Some((at, addrs)) if now.duration_since(*at) < CACHE_FOR => {
                    return Some(addrs.clone())
                }
                Some(_) => {
                    cache.remove(name);
                }
                None => {}
            }
        }
        if self.in_flight.fetch_add(1, Ordering::SeqCst) >= MAX_IN_FLIGHT {
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        let lookup = self
            .lookup
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let (owned, in_flight) = (name.to_string(), self.in_flight.clone());
        let spawned = std::thread::Builder::new()
            .name("hostca-lookup".into())
            .spawn(move || {
                let addrs = lookup(&owned);
                in_flight.fetch_sub(1, Ordering::SeqCst);
                let _ = tx.send(addrs);
            });
        if spawned.is_err() {
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        let addrs = rx.recv_timeout(LOOKUP_TIMEOUT).ok()?;
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() > 10_000 {
            cache.retain(|_, (at, _)| now.duration_since(*at) < CACHE_FOR);
        }
        cache.insert(name.to_string(), (now, addrs.clone()));
        Some(addrs)
    }

    /// Whether `name` resolves to `peer` (false when the resolver did not answer in time).
    pub fn resolves_to(&self, name: &str, peer: IpAddr) -> bool {
        let peer = match peer {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(peer, IpAddr::V4),
            v4 => v4,
        };
        self.addresses(name)
            .is_some_and(|addrs| addrs.contains(&peer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        assert_eq!(kind("10.0.0.5"), Kind::Ip);
        assert_eq!(kind("::1"), Kind::Ip);
        assert_eq!(kind("1.2.3.999"), Kind::Numeric);
        assert_eq!(kind("db"), Kind::SingleLabel);
        assert_eq!(kind("db.example.com"), Kind::Dns);
        assert_eq!(kind("1a.example.2com"), Kind::Dns);
    }

    #[test]
    fn allowed_domains_are_suffixes_on_a_label_boundary() {
        let p = NamePolicy::new("example.com\nCorp.Example.ORG.", "", &[]);
        assert!(p.in_allowed_domains("example.com"));
        assert!(p.in_allowed_domains("a.b.example.com"));
        assert!(p.in_allowed_domains("x.corp.example.org"));
        assert!(!p.in_allowed_domains("badexample.com"));
        assert!(!p.in_allowed_domains("example.com.evil.net"));
        assert!(!p.in_allowed_domains("example.org"));
        assert!(!NamePolicy::default().in_allowed_domains("a.example.com"));
    }

    #[test]
    fn lists_are_normalised_and_checked() {
        assert_eq!(
            parse_list(" A.example.com., b.example.com\na.example.com ", false).unwrap(),
            vec!["a.example.com", "b.example.com"]
        );
        assert!(parse_list("*.example.com", false)
            .unwrap_err()
            .contains("wildcard"));
        assert!(parse_list("10.0.0.1", false).is_err());
        assert_eq!(
            parse_list("10.0.0.1 [::1]", true).unwrap(),
            vec!["10.0.0.1", "::1"]
        );
        assert!(parse_list("1.2.3.999", true).is_err());
        assert!(parse_list("bad_name.example.com", true).is_err());
    }
}
